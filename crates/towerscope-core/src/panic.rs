//! Catching panics in handlers and in response bodies.
//!
//! [`CatchPanicLayer`] turns a panic into a response the caller can read: HTTP callers get
//! `500 Internal Server Error`; gRPC callers get a trailers-only response with
//! `grpc-status: 13` (`INTERNAL`). The panic message is logged (`tracing::error!`) and never
//! sent to the caller.
//!
//! A panic while the response body is polled is caught too. The head has already gone out
//! then, so an HTTP body ends with a [`PanicError`] (the connection is reset, the client sees
//! a truncated response), and a gRPC body ends with `grpc-status: 13` trailers.
//!
//! Outer layers learn of a caught handler panic through the [`PanicCaught`] response
//! extension, and of a body panic through [`is_panic_error`] on the body error: the metrics
//! layer counts both as `error_type="panic"`.

use std::any::Any;
use std::cell::Cell;
use std::error::Error as StdError;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// A boxed error, the error type of [`CatchPanicBody`].
///
/// ```
/// let e: towerscope_core::BoxError = Box::new(towerscope_core::PanicError);
/// assert!(e.is::<towerscope_core::PanicError>());
/// ```
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Response extension set on the response [`CatchPanicLayer`] makes for a panicking handler.
///
/// ```
/// use towerscope_core::PanicCaught;
/// let mut resp = http::Response::new(());
/// resp.extensions_mut().insert(PanicCaught);
/// assert!(resp.extensions().get::<PanicCaught>().is_some());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanicCaught;

/// The error a [`CatchPanicBody`] ends with when the inner body panicked (HTTP only).
///
/// ```
/// let e = towerscope_core::PanicError;
/// assert_eq!(e.to_string(), "response body panicked");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanicError;

impl std::fmt::Display for PanicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response body panicked")
    }
}

impl StdError for PanicError {}

/// Whether a body error stands for a caught panic: a [`PanicError`], or an error whose
/// source chain holds one (axum wraps body errors in `axum::Error`).
///
/// ```
/// use towerscope_core::{is_panic_error, BoxError, PanicError};
/// let boxed: BoxError = Box::new(PanicError);
/// assert!(is_panic_error(&boxed));
/// assert!(!is_panic_error(&std::io::Error::other("x")));
/// ```
pub fn is_panic_error<E: 'static>(error: &E) -> bool {
    let any = error as &dyn Any;
    if any.is::<PanicError>() {
        return true;
    }
    if let Some(boxed) = any.downcast_ref::<BoxError>() {
        return chain_has_panic(boxed.as_ref());
    }
    #[cfg(feature = "axum")]
    if let Some(e) = any.downcast_ref::<axum::Error>() {
        return chain_has_panic(e);
    }
    false
}

fn chain_has_panic(mut e: &(dyn StdError + 'static)) -> bool {
    loop {
        if e.is::<PanicError>() {
            return true;
        }
        match e.source() {
            Some(next) => e = next,
            None => return false,
        }
    }
}

thread_local! {
    /// Set by a panic hook that has logged the panic now unwinding on this thread.
    static LOGGED_BY_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Tells [`CatchPanicLayer`] that a panic hook has already logged the panic now unwinding on
/// this thread, so that the layer does not log it a second time. The layer still answers the
/// caller and marks the response ([`PanicCaught`]); only its own `ERROR` event is left out.
///
/// A panic hook that records panics in the log calls this (towerscope-log's does, with the
/// panic's location and backtrace, which the layer cannot see). The mark is taken back by
/// the next panic the layer catches on this thread.
///
/// ```standalone_crate
/// use tower::{Layer as _, ServiceExt as _};
/// use towerscope_core::{CatchPanicLayer, PanicCaught};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let previous = std::panic::take_hook();
/// std::panic::set_hook(Box::new(|_info| {
///     // ... write the panic to the log here, then:
///     towerscope_core::mark_panic_logged();
/// }));
/// let svc = CatchPanicLayer::new().layer(tower::service_fn(|_req: http::Request<()>| async {
///     panic!("bug");
///     #[allow(unreachable_code)]
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// }));
/// let resp = svc.oneshot(http::Request::new(())).await.unwrap();
/// std::panic::set_hook(previous);
/// assert_eq!(resp.status(), 500); // answered as before; the layer logged nothing of its own
/// assert!(resp.extensions().get::<PanicCaught>().is_some());
/// # });
/// ```
pub fn mark_panic_logged() {
    // A thread being torn down has no mark left: the layer then logs the panic itself.
    let _ = LOGGED_BY_HOOK.try_with(|logged| logged.set(true));
}

/// Logs a caught panic, unless a panic hook did ([`mark_panic_logged`]).
fn log_caught(payload: &(dyn Any + Send), what: &'static str) {
    let logged = LOGGED_BY_HOOK
        .try_with(|logged| logged.replace(false))
        .unwrap_or(false);
    if !logged {
        tracing::error!(panic.message = panic_message(payload), "{what}");
    }
}

/// The message of a panic, from its payload (what `catch_unwind` returns, or a panic hook's
/// `info.payload()`): the text of `panic!("...")`, or a fixed text when the payload is not a
/// string (`std::panic::panic_any`).
///
/// ```
/// let caught = std::panic::catch_unwind(|| panic!("order {} has no lines", 7)).unwrap_err();
/// assert_eq!(towerscope_core::panic_message(&*caught), "order 7 has no lines");
/// let other = std::panic::catch_unwind(|| std::panic::panic_any(42)).unwrap_err();
/// assert_eq!(towerscope_core::panic_message(&*other), "non-string panic payload");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// Layer that catches panics; see the [module docs](self).
///
/// ```
/// use axum::{Router, routing::get};
/// use towerscope_core::CatchPanicLayer;
/// let app: Router = Router::new()
///     .route("/boom", get(|| async { panic!("bug") as &'static str }))
///     .layer(CatchPanicLayer::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer {
    _priv: (),
}

impl CatchPanicLayer {
    /// A new layer.
    ///
    /// ```
    /// use tower::{ServiceBuilder, ServiceExt as _};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let svc = ServiceBuilder::new()
    ///     .layer(towerscope_core::CatchPanicLayer::new())
    ///     .service_fn(|req: http::Request<()>| async move {
    ///         assert!(req.uri().path() != "/boom", "a bug");
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("fine")))
    ///     });
    /// let ok = svc.clone().oneshot(http::Request::get("/fine").body(()).unwrap()).await.unwrap();
    /// assert_eq!(ok.status(), 200);
    /// let boom = svc.oneshot(http::Request::get("/boom").body(()).unwrap()).await.unwrap();
    /// assert_eq!(boom.status(), 500);
    /// # });
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

/// Service made by [`CatchPanicLayer`].
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt as _};
/// use towerscope_core::{CatchPanicLayer, PanicCaught};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let svc = ServiceBuilder::new()
///     .layer(CatchPanicLayer::new())
///     .service_fn(|_req: http::Request<()>| async {
///         if true {
///             panic!("a bug");
///         }
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// let resp = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(resp.status(), 500);
/// assert!(resp.extensions().get::<PanicCaught>().is_some()); // metrics count it as a panic
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> CatchPanic<S> {
    /// The inner service.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut svc = towerscope_core::CatchPanicLayer::new().layer(vec![1]);
    /// svc.get_mut().push(2);
    /// assert_eq!(svc.get_ref(), &[1, 2]);
    /// assert_eq!(svc.into_inner(), [1, 2]);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut svc = towerscope_core::CatchPanicLayer::new().layer(vec![1]);
    /// svc.get_mut().push(2);
    /// assert_eq!(svc.get_ref(), &[1, 2]);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let svc = towerscope_core::CatchPanicLayer::new().layer(vec![1]);
    /// assert_eq!(svc.into_inner(), [1]);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for CatchPanic<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<CatchPanicBody<ResB>>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let grpc = crate::is_grpc_request(&req);
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(inner) => CatchPanicFuture::Inner { inner, grpc },
            Err(payload) => {
                log_caught(&*payload, "service panicked in call");
                CatchPanicFuture::Panicked { grpc }
            }
        }
    }
}

pin_project! {
    /// Response future of [`CatchPanic`]. `grpc` records whether the request was gRPC.
    ///
    /// ```
    /// use towerscope_core::{CatchPanic, CatchPanicBody, CatchPanicFuture};
    /// // Naming the types, for a struct field or a hand-written `Service` impl around the layer.
    /// type Guarded<S> = CatchPanic<S>;
    /// type GuardedFuture<F> = CatchPanicFuture<F>;
    /// type GuardedBody<B> = CatchPanicBody<B>;
    /// ```
    #[allow(missing_docs)]
    #[project = CatchPanicFutureProj]
    pub enum CatchPanicFuture<F> {
        /// Polling the inner future.
        Inner {
            #[pin]
            inner: F,
            grpc: bool,
        },
        /// `call` itself panicked.
        Panicked {
            grpc: bool,
        },
    }
}

impl<F, B, E> Future for CatchPanicFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<CatchPanicBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CatchPanicFutureProj::Inner { inner, grpc } => {
                match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(result)) => Poll::Ready(result.map(|resp| {
                        resp.map(|body| CatchPanicBody::Inner {
                            body,
                            grpc: *grpc,
                            done: false,
                        })
                    })),
                    Err(payload) => {
                        log_caught(&*payload, "handler panicked");
                        Poll::Ready(Ok(panic_response(*grpc)))
                    }
                }
            }
            CatchPanicFutureProj::Panicked { grpc } => Poll::Ready(Ok(panic_response(*grpc))),
        }
    }
}

fn panic_response<B>(grpc: bool) -> Response<CatchPanicBody<B>> {
    let mut resp = if grpc {
        let mut resp = Response::new(CatchPanicBody::Fixed { data: None });
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from_static("13"));
        h.insert("grpc-message", HeaderValue::from_static("internal%20error"));
        resp
    } else {
        let mut resp = Response::new(CatchPanicBody::Fixed {
            data: Some(Bytes::from_static(b"Internal Server Error")),
        });
        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    };
    resp.extensions_mut().insert(PanicCaught);
    resp
}

pin_project! {
    /// Response body of [`CatchPanic`]: the inner body, or the fixed body of a panic response.
    /// `grpc` records whether the request was gRPC (a body panic then ends with trailers);
    /// `done` is set once the inner body panicked, after which it is not polled again.
    ///
    /// ```
    /// use towerscope_core::{CatchPanic, CatchPanicBody, CatchPanicFuture};
    /// // Naming the types, for a struct field or a hand-written `Service` impl around the layer.
    /// type Guarded<S> = CatchPanic<S>;
    /// type GuardedFuture<F> = CatchPanicFuture<F>;
    /// type GuardedBody<B> = CatchPanicBody<B>;
    /// ```
    #[allow(missing_docs)]
    #[project = CatchPanicBodyProj]
    pub enum CatchPanicBody<B> {
        /// The inner service's body.
        Inner {
            #[pin]
            body: B,
            grpc: bool,
            done: bool,
        },
        /// The body of a response made for a panic.
        Fixed {
            data: Option<Bytes>,
        },
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for CatchPanicBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inner { body, grpc, done } => f
                .debug_struct("CatchPanicBody::Inner")
                .field("body", body)
                .field("grpc", grpc)
                .field("done", done)
                .finish(),
            Self::Fixed { .. } => f
                .debug_struct("CatchPanicBody::Fixed")
                .finish_non_exhaustive(),
        }
    }
}

impl<B> Body for CatchPanicBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            CatchPanicBodyProj::Inner { body, grpc, done } => {
                if *done {
                    return Poll::Ready(None);
                }
                match catch_unwind(AssertUnwindSafe(|| body.poll_frame(cx))) {
                    Ok(p) => p.map(|o| o.map(|r| r.map_err(Into::into))),
                    Err(payload) => {
                        *done = true;
                        log_caught(&*payload, "response body panicked");
                        if *grpc {
                            let mut trailers = HeaderMap::with_capacity(2);
                            trailers.insert("grpc-status", HeaderValue::from_static("13"));
                            trailers.insert(
                                "grpc-message",
                                HeaderValue::from_static("internal%20error"),
                            );
                            Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                        } else {
                            Poll::Ready(Some(Err(Box::new(PanicError))))
                        }
                    }
                }
            }
            CatchPanicBodyProj::Fixed { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body, done, .. } => *done || body.is_end_stream(),
            Self::Fixed { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner {
                body, done: false, ..
            } => body.size_hint(),
            Self::Inner { .. } => SizeHint::with_exact(0),
            Self::Fixed { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_body::{PanicAfter, frame_data};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// Taken by every test whose panic reaches the layer's `error!`. tracing-core registers
    /// a callsite and caches its interest in two steps; a first registration on another
    /// test's thread (no subscriber there) could store "never" after the counting test's
    /// subscriber had been counted in, and that test's event was dropped (one run in five
    /// on a loaded two-core machine, once in CI). Taken in turn, a registration has
    /// finished before the counting test sets its subscriber up.
    static LOG_CALLSITE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    async fn call<S, B>(svc: S, req: Request<()>) -> Response<CatchPanicBody<B>>
    where
        S: Service<Request<()>, Response = Response<B>, Error = std::convert::Infallible>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        CatchPanicLayer::new()
            .layer(svc)
            .oneshot(req)
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn handler_panic_becomes_500_with_marker() {
        let _serial = LOG_CALLSITE.lock().await;
        let svc = tower::service_fn(|_req: Request<()>| async {
            if true {
                panic!("secret detail");
            }
            Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
        });
        let resp = call(svc, Request::new(())).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(resp.extensions().get::<PanicCaught>().is_some());
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, "Internal Server Error");
    }

    /// Counts the `ERROR` events of the current thread's subscriber.
    #[derive(Clone, Default)]
    struct Errors(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Errors {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::ERROR {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// A caught panic is logged once: by the layer, or by a panic hook that says it did.
    #[test]
    fn a_panic_logged_by_a_hook_is_not_logged_again() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let _serial = LOG_CALLSITE.blocking_lock();
        let caught_errors = |hook_logged: bool| {
            let errors = Errors::default();
            let subscriber = tracing_subscriber::registry().with(errors.clone());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            tracing::subscriber::with_default(subscriber, || {
                let svc = tower::service_fn(move |_req: Request<()>| async move {
                    if hook_logged {
                        mark_panic_logged(); // what a logging panic hook does as the panic starts
                    }
                    panic!("bug");
                    #[allow(unreachable_code)]
                    Ok::<_, std::convert::Infallible>(Response::new(
                        http_body_util::Empty::<Bytes>::new(),
                    ))
                });
                let resp = rt.block_on(call(svc, Request::new(())));
                assert_eq!(resp.status(), 500);
            });
            errors.0.load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(
            caught_errors(false),
            1,
            "the layer logs a panic no hook logged"
        );
        assert_eq!(caught_errors(true), 0, "logged once, by the hook");
        // The mark was taken back: the next panic no hook logged is logged by the layer.
        assert_eq!(caught_errors(false), 1);
    }

    #[tokio::test]
    async fn grpc_handler_panic_is_trailers_only_internal() {
        let _serial = LOG_CALLSITE.lock().await;
        let svc = tower::service_fn(|_req: Request<()>| async {
            if true {
                panic!("bug");
            }
            Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
        });
        let req = Request::post("/shop.Orders/Get")
            .header("content-type", "application/grpc")
            .body(())
            .expect("req");
        let resp = call(svc, req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["grpc-status"], "13");
        assert!(resp.body().is_end_stream());
    }

    #[tokio::test]
    async fn panic_in_call_is_caught() {
        let _serial = LOG_CALLSITE.lock().await;
        #[derive(Clone)]
        struct PanicsInCall;
        impl Service<Request<()>> for PanicsInCall {
            type Response = Response<http_body_util::Empty<Bytes>>;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request<()>) -> Self::Future {
                panic!("in call")
            }
        }
        let resp = call(PanicsInCall, Request::new(())).await;
        assert_eq!(resp.status(), 500);
    }

    #[tokio::test]
    async fn body_panic_ends_http_body_with_panic_error() {
        let _serial = LOG_CALLSITE.lock().await;
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(PanicAfter::new(vec![frame_data("x")])))
        });
        let resp = call(svc, Request::new(())).await;
        let err = resp
            .into_body()
            .collect()
            .await
            .expect_err("panicked body fails");
        assert!(is_panic_error(&err));
    }

    #[tokio::test]
    async fn body_panic_ends_grpc_body_with_internal_trailers() {
        let _serial = LOG_CALLSITE.lock().await;
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(PanicAfter::new(vec![frame_data("x")])))
        });
        let req = Request::post("/shop.Orders/Get")
            .header("content-type", "application/grpc")
            .body(())
            .expect("req");
        let resp = call(svc, req).await;
        let collected = resp
            .into_body()
            .collect()
            .await
            .expect("trailers, not an error");
        assert_eq!(collected.trailers().expect("trailers")["grpc-status"], "13");
    }
}

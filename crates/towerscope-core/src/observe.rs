//! Completion, defined once: a response future and a response body that tell an
//! [`Observer`] how the exchange went, exactly once.
//!
//! Every towerscope layer that needs to know when a request is over (metrics, in-flight
//! gauges, spans, access logs) implements [`Observer`] and wraps the inner future in an
//! [`ObservedFuture`]. The future hands the observer to an [`ObservedBody`] when the response
//! head arrives, and the body reports the end:
//!
//! | what happened | [`End`] |
//! |---|---|
//! | body reached end of stream (or the response had no body) | [`End::Complete`] |
//! | inner service returned `Err` | [`End::ServiceError`] |
//! | body yielded an error | [`End::BodyError`] |
//! | future or body dropped before the end (client went away, timeout) | [`End::Cancelled`] |
//! | dropped while a panic unwinds through it | [`End::Panicked`] |
//!
//! The observer lives in an `Option` that is `take()`n once, in poll or in drop, so no
//! path can report twice and no path can forget to report.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How an exchange ended. See the [module docs](self).
///
/// ```
/// use towerscope_core::End;
/// let end = End::Cancelled { response_started: true };
/// assert!(end.is_cancelled());
/// ```
#[derive(Clone, Copy)]
pub enum End<'a> {
    /// The response body was read to its end.
    Complete,
    /// The inner service failed; there is no response.
    ServiceError(&'a dyn fmt::Display),
    /// The response body failed after the head was sent. `panic` is set when the error is
    /// a [`PanicError`](crate::PanicError) from [`CatchPanicLayer`](crate::CatchPanicLayer).
    BodyError {
        /// The error.
        error: &'a dyn fmt::Display,
        /// Whether the error stands for a panic caught while the body was polled.
        panic: bool,
    },
    /// The future or body was dropped before the end.
    Cancelled {
        /// Whether the response head had been produced.
        response_started: bool,
    },
    /// The future or body was dropped while a panic unwound through it.
    Panicked,
}

impl End<'_> {
    /// Whether the exchange was cut short by the caller.
    ///
    /// ```
    /// use towerscope_core::End;
    /// assert!(End::Cancelled { response_started: false }.is_cancelled());
    /// assert!(!End::Complete.is_cancelled());
    /// assert!(!End::Panicked.is_cancelled()); // a panic is not the caller's doing
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }
}

impl fmt::Debug for End<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete => f.write_str("Complete"),
            Self::ServiceError(e) => write!(f, "ServiceError({e})"),
            Self::BodyError { error, panic } => write!(f, "BodyError({error}, panic: {panic})"),
            Self::Cancelled { response_started } => {
                write!(f, "Cancelled {{ response_started: {response_started} }}")
            }
            Self::Panicked => f.write_str("Panicked"),
        }
    }
}

/// What an exchange came to, as every observing layer reports it: metrics, access log and
/// trace layer classify the same way.
///
/// ```
/// use towerscope_core::{End, NormalizedMethod, Outcome};
/// assert_eq!(Outcome::of(&End::Complete, NormalizedMethod::Get, Some(503), false), Outcome::ServerError);
/// // hyper never sends the body of a response to HEAD: dropping it is not a cancel.
/// let dropped = End::Cancelled { response_started: true };
/// assert_eq!(Outcome::of(&dropped, NormalizedMethod::Head, Some(200), false), Outcome::Ok);
/// assert_eq!(Outcome::of(&dropped, NormalizedMethod::Get, Some(200), false), Outcome::Cancelled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The response went out whole with a status below 500.
    Ok,
    /// The response went out whole with a 5xx status.
    ServerError,
    /// The caller went away (or a timeout dropped the request) before the end.
    Cancelled,
    /// The inner service returned an error: there is no response.
    ServiceError,
    /// The response body failed.
    BodyError,
    /// The handler or the body panicked ([`CatchPanicLayer`](crate::CatchPanicLayer) made a
    /// response, or the panic unwound through the layer).
    Panic,
}

impl Outcome {
    /// Classifies `end`, given the request method, the response status (if a response was
    /// made) and whether the response is one [`CatchPanicLayer`](crate::CatchPanicLayer)
    /// made for a panic ([`PanicCaught`](crate::PanicCaught)).
    ///
    /// ```
    /// use towerscope_core::{End, NormalizedMethod, Outcome};
    /// let get = NormalizedMethod::Get;
    /// assert_eq!(Outcome::of(&End::Complete, get, Some(404), false), Outcome::Ok);
    /// assert_eq!(Outcome::of(&End::Complete, get, Some(500), false), Outcome::ServerError);
    /// // A 500 made by the panic layer is a panic, not a server error.
    /// assert_eq!(Outcome::of(&End::Complete, get, Some(500), true), Outcome::Panic);
    /// let error = std::io::Error::other("reset");
    /// assert_eq!(Outcome::of(&End::BodyError { error: &error, panic: false }, get, Some(200), false),
    ///            Outcome::BodyError);
    /// assert_eq!(Outcome::of(&End::ServiceError(&error), get, None, false), Outcome::ServiceError);
    /// ```
    pub fn of(
        end: &End<'_>,
        method: crate::NormalizedMethod,
        status: Option<u16>,
        panic_caught: bool,
    ) -> Self {
        let complete = |status: Option<u16>| match status {
            Some(s) if s >= 500 => Self::ServerError,
            _ => Self::Ok,
        };
        match end {
            _ if panic_caught => Self::Panic,
            End::Complete => complete(status),
            // hyper never sends (so drops) the body of a response to HEAD.
            End::Cancelled {
                response_started: true,
            } if method == crate::NormalizedMethod::Head => complete(status),
            End::Cancelled { .. } => Self::Cancelled,
            End::ServiceError(_) => Self::ServiceError,
            End::BodyError { panic: true, .. } | End::Panicked => Self::Panic,
            End::BodyError { .. } => Self::BodyError,
        }
    }

    /// `ok`, `server_error`, `cancelled`, `service_error`, `body_error` or `panic`.
    ///
    /// ```
    /// use towerscope_core::Outcome;
    /// assert_eq!(Outcome::ServerError.as_str(), "server_error");
    /// assert_eq!(Outcome::Cancelled.as_str(), "cancelled");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ServerError => "server_error",
            Self::Cancelled => "cancelled",
            Self::ServiceError => "service_error",
            Self::BodyError => "body_error",
            Self::Panic => "panic",
        }
    }
}

/// The per-request state of a layer that wants to know how the exchange went.
///
/// ```
/// use towerscope_core::{End, Observer};
/// struct CountBytes { total: usize }
/// impl Observer for CountBytes {
///     fn on_data(&mut self, len: usize) { self.total += len; }
///     fn on_end(self, end: End<'_>) { println!("{} bytes, {end:?}", self.total); }
/// }
/// ```
pub trait Observer: Sized {
    /// The response head is ready; called before the body is polled, at most once.
    fn on_response<B>(&mut self, response: &Response<B>) {
        let _ = response;
    }
    /// A data frame of `len` bytes passed through the body.
    fn on_data(&mut self, len: usize) {
        let _ = len;
    }
    /// The body yielded trailers (where gRPC puts its status).
    fn on_trailers(&mut self, trailers: &HeaderMap) {
        let _ = trailers;
    }
    /// The exchange is over. Called exactly once, on every path.
    fn on_end(self, end: End<'_>);
}

impl<O: Observer> Observer for Option<O> {
    fn on_response<B>(&mut self, response: &Response<B>) {
        if let Some(o) = self {
            o.on_response(response);
        }
    }
    fn on_data(&mut self, len: usize) {
        if let Some(o) = self {
            o.on_data(len);
        }
    }
    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if let Some(o) = self {
            o.on_trailers(trailers);
        }
    }
    fn on_end(self, end: End<'_>) {
        if let Some(o) = self {
            o.on_end(end);
        }
    }
}

fn drop_end(response_started: bool) -> End<'static> {
    if std::thread::panicking() {
        End::Panicked
    } else {
        End::Cancelled { response_started }
    }
}

pin_project! {
    /// A response future that reports to an [`Observer`]; see the [module docs](self).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use towerscope_core::{End, Observer, ObservedFuture};
    /// struct Log;
    /// impl Observer for Log { fn on_end(self, end: End<'_>) { assert!(matches!(end, End::Complete)); } }
    /// # tokio_test_block_on(async {
    /// let fut = async { Ok::<_, Infallible>(http::Response::new(String::new())) };
    /// let resp = ObservedFuture::new(fut, Log).await.unwrap();
    /// drop(resp); // an empty body is complete even unpolled
    /// # });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
    /// ```
    pub struct ObservedFuture<F, O>
    where
        O: Observer,
    {
        #[pin]
        inner: F,
        observer: Option<O>,
    }

    impl<F, O> PinnedDrop for ObservedFuture<F, O>
    where
        O: Observer,
    {
        fn drop(this: Pin<&mut Self>) {
            if let Some(observer) = this.project().observer.take() {
                observer.on_end(drop_end(false));
            }
        }
    }
}

impl<F, O: Observer> ObservedFuture<F, O> {
    /// Wraps `inner`, reporting to `observer`.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use towerscope_core::{End, ObservedFuture, Observer};
    /// struct Report(Arc<Mutex<String>>);
    /// impl Observer for Report {
    ///     fn on_end(self, end: End<'_>) { *self.0.lock().unwrap() = format!("{end:?}"); }
    /// }
    /// let seen = Arc::new(Mutex::new(String::new()));
    /// let fut = ObservedFuture::new(
    ///     std::future::pending::<Result<http::Response<String>, std::io::Error>>(),
    ///     Report(seen.clone()),
    /// );
    /// drop(fut); // the caller went away before the response
    /// assert_eq!(*seen.lock().unwrap(), "Cancelled { response_started: false }");
    /// ```
    pub fn new(inner: F, observer: O) -> Self {
        Self {
            inner,
            observer: Some(observer),
        }
    }
}

impl<F, O, B, E> Future for ObservedFuture<F, O>
where
    F: Future<Output = Result<Response<B>, E>>,
    O: Observer,
    B: Body,
    E: fmt::Display,
{
    type Output = Result<Response<ObservedBody<B, O>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        // `poll` after `Ready` is a caller bug; the inner future would panic the same way.
        let Some(mut observer) = this.observer.take() else {
            panic!("ObservedFuture polled after completion");
        };
        Poll::Ready(match result {
            Ok(response) => {
                observer.on_response(&response);
                Ok(response.map(|body| ObservedBody::new(body, observer)))
            }
            Err(error) => {
                observer.on_end(End::ServiceError(&error));
                Err(error)
            }
        })
    }
}

pin_project! {
    /// A response body that reports to an [`Observer`]; see the [module docs](self).
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use towerscope_core::{End, Observer, ObservedBody};
    /// struct Bytes(usize);
    /// impl Observer for Bytes {
    ///     fn on_data(&mut self, n: usize) { self.0 += n; }
    ///     fn on_end(self, end: End<'_>) { assert_eq!(self.0, 5); assert!(matches!(end, End::Complete)); }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let body = ObservedBody::new(http_body_util::Full::new(bytes::Bytes::from("hello")), Bytes(0));
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    /// # });
    /// ```
    pub struct ObservedBody<B, O>
    where
        B: Body,
        O: Observer,
    {
        #[pin]
        inner: B,
        observer: Option<O>,
    }

    impl<B, O> PinnedDrop for ObservedBody<B, O>
    where
        B: Body,
        O: Observer,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(observer) = this.observer.take() {
                // hyper does not poll a body that says it is already at its end.
                if this.inner.is_end_stream() {
                    observer.on_end(End::Complete);
                } else {
                    observer.on_end(drop_end(true));
                }
            }
        }
    }
}

impl<B: Body + fmt::Debug, O: Observer> fmt::Debug for ObservedBody<B, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedBody")
            .field("inner", &self.inner)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl<B: Body, O: Observer> ObservedBody<B, O> {
    /// Wraps `inner`, reporting to `observer`.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use towerscope_core::{End, ObservedBody, Observer};
    /// struct Bytes(Arc<Mutex<Option<usize>>>, usize);
    /// impl Observer for Bytes {
    ///     fn on_data(&mut self, len: usize) { self.1 += len; }
    ///     fn on_end(self, end: End<'_>) {
    ///         if matches!(end, End::Complete) { *self.0.lock().unwrap() = Some(self.1); }
    ///     }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let total = Arc::new(Mutex::new(None));
    /// let body = ObservedBody::new(String::from("hello"), Bytes(total.clone(), 0));
    /// http_body_util::BodyExt::collect(body).await.unwrap();
    /// assert_eq!(*total.lock().unwrap(), Some(5));
    /// # });
    /// ```
    pub fn new(inner: B, observer: O) -> Self {
        Self {
            inner,
            observer: Some(observer),
        }
    }

    /// The wrapped body.
    ///
    /// ```
    /// use towerscope_core::{End, ObservedBody, Observer};
    /// struct Quiet;
    /// impl Observer for Quiet {
    ///     fn on_end(self, _end: End<'_>) {}
    /// }
    /// let body = ObservedBody::new(String::from("hello"), Quiet);
    /// assert_eq!(body.get_ref(), "hello");
    /// ```
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body,
    B::Error: fmt::Display + 'static,
    O: Observer,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll_frame(cx));
        match &result {
            Some(Ok(frame)) => {
                if let Some(observer) = this.observer.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        observer.on_data(bytes::Buf::remaining(data));
                    } else if let Some(trailers) = frame.trailers_ref() {
                        observer.on_trailers(trailers);
                    }
                }
                // End as soon as the last frame passes: the caller may never poll again.
                if this.inner.is_end_stream() {
                    if let Some(observer) = this.observer.take() {
                        observer.on_end(End::Complete);
                    }
                }
            }
            Some(Err(error)) => {
                if let Some(observer) = this.observer.take() {
                    let panic = crate::panic::is_panic_error(error);
                    observer.on_end(End::BodyError { error, panic });
                }
            }
            None => {
                if let Some(observer) = this.observer.take() {
                    observer.on_end(End::Complete);
                }
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Makes the [`Observer`] of each request: the one piece a layer built on
/// [`ObserveService`] writes. Returning `None` lets the request through unobserved (an
/// excluded path). It may add to the request (a trace layer puts its IDs into the
/// extensions).
///
/// The observer is made before the inner service is called, so state it holds (a gauge
/// unit, say) is released by its `Drop` even when `call` panics.
///
/// ```
/// use towerscope_core::{End, MakeObserver, ObserveService, Observer};
/// #[derive(Clone)]
/// struct LogEnds;
/// struct Ends;
/// impl Observer for Ends {
///     fn on_end(self, end: End<'_>) { println!("{end:?}"); }
/// }
/// impl MakeObserver for LogEnds {
///     type Observer = Ends;
///     fn make_observer<B>(&self, _req: &mut http::Request<B>) -> Option<Ends> { Some(Ends) }
/// }
/// let svc = ObserveService::new(tower::service_fn(|_r: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }), LogEnds);
/// # let _ = svc;
/// ```
pub trait MakeObserver: Clone {
    /// The per-request observer.
    type Observer: Observer;
    /// The observer for `req`, or `None` to leave it unobserved.
    fn make_observer<B>(&self, req: &mut Request<B>) -> Option<Self::Observer>;
}

/// A service that observes every request with the observer its [`MakeObserver`] makes:
/// the `Service` impl behind towerscope's metrics, in-flight and access-log layers.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use tower::ServiceExt as _;
/// use towerscope_core::{End, MakeObserver, ObserveService, Observer};
/// /// Counts the requests whose response body was read to its end.
/// #[derive(Clone, Default)]
/// struct Completed(Arc<AtomicUsize>);
/// impl Observer for Completed {
///     fn on_end(self, end: End<'_>) {
///         if matches!(end, End::Complete) {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// impl MakeObserver for Completed {
///     type Observer = Completed;
///     fn make_observer<B>(&self, _req: &mut http::Request<B>) -> Option<Completed> {
///         Some(self.clone())
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let completed = Completed::default();
/// let svc = ObserveService::new(
///     tower::service_fn(|_r: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
///     }),
///     completed.clone(),
/// );
/// let resp = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(completed.0.load(Ordering::Relaxed), 0); // the body is not read yet
/// http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
/// assert_eq!(completed.0.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ObserveService<S, M> {
    inner: S,
    make: M,
}

impl<S, M> ObserveService<S, M> {
    /// Wraps `inner`.
    ///
    /// ```
    /// use towerscope_core::{End, MakeObserver, ObserveService, Observer};
    /// #[derive(Clone)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_end(self, end: End<'_>) { println!("request ended: {end:?}"); }
    /// }
    /// impl MakeObserver for Log {
    ///     type Observer = Log;
    ///     fn make_observer<B>(&self, _req: &mut http::Request<B>) -> Option<Log> { Some(Log) }
    /// }
    /// let svc = ObserveService::new(vec![1], Log);
    /// assert_eq!(svc.get_ref(), &[1]);
    /// ```
    pub fn new(inner: S, make: M) -> Self {
        Self { inner, make }
    }
    /// The inner service.
    ///
    /// ```
    /// use towerscope_core::{End, MakeObserver, ObserveService, Observer};
    /// #[derive(Clone)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_end(self, _end: End<'_>) {}
    /// }
    /// impl MakeObserver for Log {
    ///     type Observer = Log;
    ///     fn make_observer<B>(&self, _req: &mut http::Request<B>) -> Option<Log> { Some(Log) }
    /// }
    /// let mut svc = ObserveService::new(vec![1], Log);
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
    /// use towerscope_core::{End, MakeObserver, ObserveService, Observer};
    /// #[derive(Clone)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_end(self, _end: End<'_>) {}
    /// }
    /// impl MakeObserver for Log {
    ///     type Observer = Log;
    ///     fn make_observer<B>(&self, _req: &mut http::Request<B>) -> Option<Log> { Some(Log) }
    /// }
    /// let mut svc = ObserveService::new(vec![1], Log);
    /// svc.get_mut().push(2);
    /// assert_eq!(svc.get_ref(), &[1, 2]);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    ///
    /// ```
    /// use towerscope_core::{End, MakeObserver, ObserveService, Observer};
    /// #[derive(Clone)]
    /// struct Log;
    /// impl Observer for Log {
    ///     fn on_end(self, _end: End<'_>) {}
    /// }
    /// impl MakeObserver for Log {
    ///     type Observer = Log;
    ///     fn make_observer<B>(&self, _req: &mut http::Request<B>) -> Option<Log> { Some(Log) }
    /// }
    /// let svc = ObserveService::new(vec![1], Log);
    /// assert_eq!(svc.into_inner(), [1]);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, M, ReqB, ResB> tower_service::Service<Request<ReqB>> for ObserveService<S, M>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    M: MakeObserver,
    ResB: Body,
    ResB::Error: fmt::Display + 'static,
{
    type Response = Response<ObservedBody<ResB, Option<M::Observer>>>;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future, Option<M::Observer>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let observer = self.make.make_observer(&mut req);
        ObservedFuture::new(self.inner.call(req), observer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_body::{StreamBody, frame_data, frame_trailers};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<String>>>);
    struct Rec(Record, usize);
    impl Observer for Rec {
        fn on_response<B>(&mut self, r: &Response<B>) {
            self.0
                .0
                .lock()
                .expect("lock")
                .push(format!("head {}", r.status().as_u16()));
        }
        fn on_data(&mut self, len: usize) {
            self.1 += len;
        }
        fn on_trailers(&mut self, t: &HeaderMap) {
            self.0
                .0
                .lock()
                .expect("lock")
                .push(format!("trailers {}", t.len()));
        }
        fn on_end(self, end: End<'_>) {
            self.0
                .0
                .lock()
                .expect("lock")
                .push(format!("end {} {end:?}", self.1));
        }
    }
    impl Record {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().expect("lock"))
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt")
    }

    #[test]
    fn streaming_body_reports_data_trailers_and_end_once() {
        use http_body_util::BodyExt;
        let rec = Record::default();
        let body = StreamBody::new(vec![
            frame_data("ab"),
            frame_data("cde"),
            frame_trailers("grpc-status", "0"),
        ]);
        let fut = async { Ok::<_, std::convert::Infallible>(Response::new(body)) };
        rt().block_on(async {
            let resp = ObservedFuture::new(fut, Rec(rec.clone(), 0))
                .await
                .expect("ok");
            resp.into_body().collect().await.expect("collect");
        });
        assert_eq!(rec.take(), ["head 200", "trailers 1", "end 5 Complete"]);
    }

    #[test]
    fn dropped_future_is_cancelled_before_response() {
        let rec = Record::default();
        let fut = std::future::pending::<Result<Response<String>, std::convert::Infallible>>();
        drop(ObservedFuture::new(fut, Rec(rec.clone(), 0)));
        assert_eq!(rec.take(), ["end 0 Cancelled { response_started: false }"]);
    }

    #[test]
    fn dropped_body_mid_stream_is_cancelled_after_response() {
        use http_body_util::BodyExt;
        let rec = Record::default();
        let body = StreamBody::new(vec![frame_data("ab"), frame_data("cd")]);
        rt().block_on(async {
            let fut = async { Ok::<_, std::convert::Infallible>(Response::new(body)) };
            let resp = ObservedFuture::new(fut, Rec(rec.clone(), 0))
                .await
                .expect("ok");
            let mut body = resp.into_body();
            let _first = body.frame().await;
            drop(body);
        });
        assert_eq!(
            rec.take(),
            ["head 200", "end 2 Cancelled { response_started: true }"]
        );
    }

    #[test]
    fn service_error_is_reported() {
        let rec = Record::default();
        rt().block_on(async {
            let fut = async { Err::<Response<String>, _>("boom") };
            assert!(ObservedFuture::new(fut, Rec(rec.clone(), 0)).await.is_err());
        });
        assert_eq!(rec.take(), ["end 0 ServiceError(boom)"]);
    }

    #[test]
    fn body_error_is_reported() {
        use http_body_util::BodyExt;
        let rec = Record::default();
        let body = StreamBody::new(vec![frame_data("ab"), Err("broken pipe".into())]);
        rt().block_on(async {
            let fut = async { Ok::<_, std::convert::Infallible>(Response::new(body)) };
            let resp = ObservedFuture::new(fut, Rec(rec.clone(), 0))
                .await
                .expect("ok");
            assert!(resp.into_body().collect().await.is_err());
        });
        assert_eq!(
            rec.take(),
            ["head 200", "end 2 BodyError(broken pipe, panic: false)"]
        );
    }

    #[test]
    fn unwinding_drop_reports_panic() {
        let rec = Record::default();
        let rec2 = rec.clone();
        let result = std::panic::catch_unwind(move || {
            let fut = std::future::pending::<Result<Response<String>, std::convert::Infallible>>();
            let _guard = ObservedFuture::new(fut, Rec(rec2, 0));
            panic!("handler bug");
        });
        assert!(result.is_err());
        assert_eq!(rec.take(), ["end 0 Panicked"]);
    }
}

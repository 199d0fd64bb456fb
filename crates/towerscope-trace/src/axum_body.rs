//! [`AxumTraceLayer`]: [`TraceLayer`] answering with axum's own body type, so that a span
//! its sampler drops costs no body wrapper.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use axum::body::Body;
use http::{Request, Response};
use opentelemetry::context::WithContext;
use opentelemetry::trace::Tracer;
use tower_layer::Layer;
use tower_service::Service;
use towerscope_core::ObservedFuture;

use crate::{SpanObserver, TraceLayer};

/// [`TraceLayer`] for services that answer with axum's [`Body`] (any axum `Router` or
/// handler): it answers with the same type. The body of a span that records is wrapped and
/// boxed into a `Body` (the one allocation `Router::layer` makes anyway for a layer with a
/// body type of its own); the body of a span its sampler dropped, which has nothing to
/// report, is passed on as it is: no wrapper, no allocation. Made by
/// [`TraceLayer::for_axum`]; everything else is the same as `TraceLayer`.
///
/// ```
/// use axum::{Router, routing::get};
/// use opentelemetry::trace::TracerProvider as _;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     .layer(towerscope_trace::TraceLayer::new(provider.tracer("shop")).for_axum());
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct AxumTraceLayer<T> {
    inner: TraceLayer<T>,
}

impl<T> TraceLayer<T> {
    /// This layer, answering with axum's [`Body`]: see [`AxumTraceLayer`].
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer: towerscope_trace::AxumTraceLayer<_> =
    ///     towerscope_trace::TraceLayer::new(provider.tracer("shop")).for_axum();
    /// # let _ = layer;
    /// ```
    pub fn for_axum(self) -> AxumTraceLayer<T> {
        AxumTraceLayer { inner: self }
    }
}

impl<S, T> Layer<S> for AxumTraceLayer<T> {
    type Service = AxumTraceService<S, T>;
    fn layer(&self, inner: S) -> Self::Service {
        AxumTraceService {
            inner,
            layer: self.inner.clone(),
        }
    }
}

/// The service [`AxumTraceLayer`] makes.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tower::{Layer as _, ServiceExt as _};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let svc: towerscope_trace::AxumTraceService<_, _> = towerscope_trace::TraceLayer::new(provider.tracer("shop"))
///     .for_axum()
///     .layer(tower::service_fn(|_req: http::Request<axum::body::Body>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from("hi")))
///     }));
/// let response: http::Response<axum::body::Body> = svc.oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct AxumTraceService<S, T> {
    inner: S,
    layer: TraceLayer<T>,
}

impl<S, T, ReqB> Service<Request<ReqB>> for AxumTraceService<S, T>
where
    S: Service<Request<ReqB>, Response = Response<Body>>,
    S::Error: std::fmt::Display,
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = AxumTraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        self.layer
            .call_traced(&mut self.inner, req, |future, observer| AxumTraceFuture {
                state: match observer {
                    Some(observer) => State::Recorded {
                        future: ObservedFuture::new(future, observer),
                    },
                    None => State::Dropped { future },
                },
            })
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`AxumTraceService`]: polled inside the request's context.
    ///
    /// ```
    /// // The type, for a struct field or a hand-written `Service` around the layer.
    /// type Fut<F> = towerscope_trace::AxumTraceFuture<F>;
    /// ```
    pub struct AxumTraceFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Recorded { #[pin] future: ObservedFuture<WithContext<F>, SpanObserver> },
        Dropped { #[pin] future: WithContext<F> },
    }
}

impl<F> std::fmt::Debug for AxumTraceFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AxumTraceFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for AxumTraceFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Recorded { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(Body::new)))
            }
            StateProj::Dropped { future } => future.poll(cx),
        }
    }
}

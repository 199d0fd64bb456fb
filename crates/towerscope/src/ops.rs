//! The operational endpoints as one tower service, for servers without axum.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use tower_service::Service;
use towerscope_dashboard::Dashboard;
use towerscope_health::Health;
use towerscope_metrics::MetricsService;
use towerscope_rum::Rum;

use crate::Observability;

/// `/metrics`, `/health`, `/ready`, `/dashboard`, `/api/dashboard/*`, `/rum.js` and
/// `/api/rum` (the pieces that are on) routed by path, 404 for anything else. For hyper
/// and for a tonic server's HTTP side port; axum users take
/// [`Observability::router`](crate::Observability::router).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower::ServiceExt as _;
/// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
/// let request = http::Request::get("/metrics").body(http_body_util::Empty::<bytes::Bytes>::new())?;
/// let response = obs.ops_service().oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OpsService {
    metrics: MetricsService,
    health: Option<Health>,
    dashboard: Option<Dashboard>,
    rum: Option<Rum>,
}

impl OpsService {
    pub(crate) fn new(obs: &Observability) -> Self {
        let (metrics, health, dashboard, rum) = obs.parts();
        Self {
            metrics: metrics.clone(),
            health: health.cloned(),
            dashboard: dashboard.cloned(),
            rum: rum.cloned(),
        }
    }
}

/// The response future of [`OpsService`].
///
/// ```
/// use tower::Service as _;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
/// let future: towerscope::OpsFuture = obs.ops_service().call(http::Request::get("/health").body(http_body_util::Empty::<bytes::Bytes>::new())?);
/// assert_eq!(future.await?.status(), 200);
/// # Ok(()) }
/// ```
pub type OpsFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn boxed<F>(future: F) -> OpsFuture
where
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    Box::pin(future)
}

impl<B> Service<Request<B>> for OpsService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = OpsFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> OpsFuture {
        let path = request.uri().path();
        match (path, &self.health, &self.dashboard, &self.rum) {
            ("/metrics", ..) => boxed(self.metrics.call(request)),
            ("/health", Some(health), ..) => boxed(health.liveness_service().call(request)),
            ("/ready", Some(health), ..) => boxed(health.readiness_service().call(request)),
            ("/dashboard", _, Some(dashboard), _) => boxed(dashboard.service().call(request)),
            (p, _, Some(dashboard), _) if p.starts_with("/api/dashboard/") => {
                boxed(dashboard.service().call(request))
            }
            ("/rum.js", .., Some(rum)) => boxed(rum.script_service().call(request)),
            ("/api/rum", .., Some(rum)) => boxed(rum.ingest_service().call(request)),
            _ => boxed(std::future::ready(Ok(not_found()))),
        }
    }
}

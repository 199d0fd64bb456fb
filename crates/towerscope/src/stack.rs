//! The request-path layers, composed in the order the architecture gives.

use opentelemetry_sdk::trace::SdkTracer;
use tower_layer::Layer;
use towerscope_core::{CatchPanic, CatchPanicLayer};
use towerscope_log::{AccessLog, AccessLogLayer};
use towerscope_metrics::{HttpMetrics, HttpMetricsLayer};
use towerscope_request_id::{RequestIdLayer, RequestIdService};
use towerscope_trace::{TraceLayer, TraceService};

use crate::toggle::{Toggle, Toggled};

/// Every request-path layer the [`Observability`](crate::Observability) switched on, as one
/// layer. Outermost first:
///
/// ```text
/// RequestIdLayer ─► TraceLayer ─► HttpMetricsLayer (+ in-flight) ─► AccessLogLayer ─► CatchPanicLayer ─► service
/// ```
///
/// - the request ID is set first, so every span, metric exemplar and log line of the request
///   can name it, and it is put on every response, including the panic layer's 500;
/// - the server span is current while the inner layers run, so the access-log line and the
///   handler's events carry its `trace_id`, and the metrics record it as an exemplar;
/// - the metrics see the panic layer's 500 (counted with `error_type="panic"`) and the
///   duration until the response body ends;
/// - the panic layer is innermost, so a panic becomes a response every other layer sees.
///
/// A piece that is off is passed through (see [`Toggle`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hi" }))
///     .layer(obs.layer());
/// # let _ = app;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ObservabilityLayer {
    pub(crate) request_id: Toggle<RequestIdLayer>,
    pub(crate) trace: Toggle<TraceLayer<SdkTracer>>,
    pub(crate) metrics: Toggle<HttpMetricsLayer>,
    pub(crate) access_log: Toggle<AccessLogLayer>,
    pub(crate) panic: Toggle<CatchPanicLayer>,
}

type WithPanic<S> = Toggled<CatchPanic<S>, S>;
type WithAccessLog<S> = Toggled<AccessLog<WithPanic<S>>, WithPanic<S>>;
type WithMetrics<S> = Toggled<HttpMetrics<WithAccessLog<S>>, WithAccessLog<S>>;
type WithTrace<S> = Toggled<TraceService<WithMetrics<S>, SdkTracer>, WithMetrics<S>>;

/// The service an [`ObservabilityLayer`] makes around `S`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower::Layer as _;
/// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
/// let inner = tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let service: towerscope::ObservabilityService<_> = obs.layer().layer(inner);
/// # let _ = service;
/// # Ok(()) }
/// ```
pub type ObservabilityService<S> = Toggled<RequestIdService<WithTrace<S>>, WithTrace<S>>;

impl<S> Layer<S> for ObservabilityLayer {
    type Service = ObservabilityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.panic.layer(inner);
        let inner = self.access_log.layer(inner);
        let inner = self.metrics.layer(inner);
        let inner = self.trace.layer(inner);
        self.request_id.layer(inner)
    }
}

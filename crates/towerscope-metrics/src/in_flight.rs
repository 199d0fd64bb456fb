//! [`InFlightLayer`]: a gauge of requests being served right now.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use http::Request;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tower_layer::Layer;
use towerscope_core::{End, MakeObserver, NormalizedMethod, ObserveService, Observer};

use crate::{ConfigError, MetricNames};
use towerscope_core::ExcludedPaths;

#[derive(Debug)]
struct Gauges {
    by_method: [AtomicI64; NormalizedMethod::COUNT],
    name: String,
    label: Option<String>,
    exclude: ExcludedPaths,
}

impl Gauges {
    /// Gives back one unit of `method`'s gauge.
    fn release(&self, method: usize) {
        if let Some(g) = self.by_method.get(method) {
            g.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Counts requests in flight: up when a request enters, down when its response body ends,
/// errors, or is dropped (client gone, timeout), and also when a panic unwinds through it.
/// The gauge can therefore not drift, whatever happens to a request.
///
/// Default name `http_server_active_requests{http_request_method}` (OpenTelemetry's
/// `http.server.active_requests`); with [`MetricNames::guide`] it is the guide's
/// `app_active_connections` without labels. `/metrics`, `/health` and `/ready` are left
/// out, as in [`HttpMetricsLayer`](crate::HttpMetricsLayer).
///
/// Under axum's `Router::layer` every layer that wraps the response body costs a boxed
/// future and a boxed body per request; hand the gauge to
/// [`HttpMetricsBuilder::in_flight`](crate::HttpMetricsBuilder::in_flight) instead of
/// adding this layer to have one wrapper maintain both (see `docs/benchmarks.md`).
///
/// ```
/// use axum::{Router, routing::get};
/// use prometheus_client::registry::Registry;
/// use towerscope_metrics::InFlightLayer;
/// let mut registry = Registry::default();
/// let in_flight = InFlightLayer::new(&mut registry);
/// let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(in_flight.clone());
/// assert_eq!(in_flight.current(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct InFlightLayer {
    gauges: Arc<Gauges>,
}

impl InFlightLayer {
    /// A gauge with OpenTelemetry names, registered into `registry`.
    ///
    /// ```
    /// use towerscope_metrics::{Format, InFlightLayer, MetricsService};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let _layer = InFlightLayer::new(&mut registry);
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// assert!(text.contains("# TYPE http_server_active_requests gauge"), "{text}");
    /// ```
    pub fn new(registry: &mut Registry) -> Self {
        Self::register(registry, &MetricNames::otel())
    }

    /// A gauge named by `names` (`in_flight`, `in_flight_has_method`, `method_label`).
    ///
    /// ```
    /// # let mut registry = prometheus_client::registry::Registry::default();
    /// use towerscope_metrics::{InFlightLayer, MetricNames};
    /// let layer = InFlightLayer::with_names(&mut registry, &MetricNames::guide()).unwrap();
    /// # let _ = layer;
    /// ```
    pub fn with_names(registry: &mut Registry, names: &MetricNames) -> Result<Self, ConfigError> {
        names.validate()?;
        Ok(Self::register(registry, names))
    }

    fn register(registry: &mut Registry, names: &MetricNames) -> Self {
        let gauges = Arc::new(Gauges {
            by_method: Default::default(),
            name: names.in_flight.to_string(),
            label: names
                .in_flight_has_method
                .then(|| names.method_label.to_string()),
            exclude: ExcludedPaths::default(),
        });
        registry.register_collector(Box::new(InFlightCollector(gauges.clone())));
        Self { gauges }
    }

    /// Takes one unit of the gauge for a request (unless its path is excluded); the unit is
    /// released when the guard drops.
    pub(crate) fn acquire(&self, path: &str, method: NormalizedMethod) -> Option<InFlightGuard> {
        self.take_unit(path, method).then(|| InFlightGuard {
            gauges: self.gauges.clone(),
            method: method.index(),
        })
    }

    /// Takes one unit for a request unless its path is excluded, and says whether it did:
    /// for an owner that holds this layer anyway and gives the unit back itself
    /// ([`release_unit`](Self::release_unit), with the same method), which saves the
    /// guard's reference count.
    pub(crate) fn take_unit(&self, path: &str, method: NormalizedMethod) -> bool {
        if self.gauges.exclude.contains(path) {
            return false;
        }
        self.take_unit_unchecked(method);
        true
    }

    /// [`take_unit`](Self::take_unit) for a request whose path is known not to be excluded.
    pub(crate) fn take_unit_unchecked(&self, method: NormalizedMethod) {
        if let Some(g) = self.gauges.by_method.get(method.index()) {
            g.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The paths this gauge does not count.
    pub(crate) fn excluded(&self) -> &ExcludedPaths {
        &self.gauges.exclude
    }

    /// Gives back a unit [`take_unit`](Self::take_unit) took for `method`.
    pub(crate) fn release_unit(&self, method: NormalizedMethod) {
        self.gauges.release(method.index());
    }

    /// Requests in flight now, all methods.
    ///
    /// ```
    /// use tower::{ServiceBuilder, ServiceExt as _};
    /// use towerscope_metrics::InFlightLayer;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let mut registry = prometheus_client::registry::Registry::default();
    /// let in_flight = InFlightLayer::new(&mut registry);
    /// let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    /// let handler_gate = gate.clone();
    /// let svc = ServiceBuilder::new().layer(in_flight.clone()).service_fn(move |_req: http::Request<()>| {
    ///     let gate = handler_gate.clone();
    ///     async move {
    ///         gate.notified().await;
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    ///     }
    /// });
    /// let request = tokio::spawn(svc.oneshot(http::Request::get("/slow").body(()).unwrap()));
    /// while in_flight.current() == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(in_flight.current(), 1);
    /// gate.notify_one();
    /// drop(request.await.unwrap().unwrap()); // the response and its body are done
    /// assert_eq!(in_flight.current(), 0);
    /// # });
    /// ```
    pub fn current(&self) -> i64 {
        self.gauges
            .by_method
            .iter()
            .map(|g| g.load(Ordering::Relaxed))
            .sum()
    }
}

impl<S> Layer<S> for InFlightLayer {
    type Service = InFlight<S>;
    fn layer(&self, inner: S) -> InFlight<S> {
        ObserveService::new(inner, self.clone())
    }
}

impl MakeObserver for InFlightLayer {
    type Observer = InFlightGuard;

    fn make_observer<B>(&self, req: &mut Request<B>) -> Option<InFlightGuard> {
        self.acquire(req.uri().path(), NormalizedMethod::from(req.method()))
    }
}

/// Service made by [`InFlightLayer`].
///
/// ```
/// use tower::{Layer as _, service_fn};
/// use towerscope_metrics::{InFlight, InFlightLayer};
/// let mut registry = prometheus_client::registry::Registry::default();
/// let svc = service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let svc: InFlight<_> = InFlightLayer::new(&mut registry).layer(svc);
/// # let _ = svc;
/// ```
pub type InFlight<S> = ObserveService<S, InFlightLayer>;

/// Per-request state of [`InFlight`]: holds one unit of the gauge until the exchange ends.
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt as _};
/// use towerscope_metrics::InFlightLayer;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut registry = prometheus_client::registry::Registry::default();
/// let in_flight = InFlightLayer::new(&mut registry);
/// let probe = in_flight.clone();
/// let svc = ServiceBuilder::new().layer(in_flight).service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new("streamed".to_owned()))
/// });
/// let resp = svc.oneshot(http::Request::new(String::new())).await.unwrap();
/// assert_eq!(probe.current(), 1); // held until the response body is over
/// drop(resp);
/// assert_eq!(probe.current(), 0);
/// # });
/// ```
#[derive(Debug)]
pub struct InFlightGuard {
    gauges: Arc<Gauges>,
    method: usize,
}

impl Observer for InFlightGuard {
    fn on_end(self, _end: End<'_>) {
        // Dropping `self` releases the unit.
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.gauges.release(self.method);
    }
}

#[derive(Debug)]
struct InFlightCollector(Arc<Gauges>);

impl Collector for InFlightCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let g = &self.0;
        let gauge = ConstGauge::new(0i64);
        let mut fam = encoder.encode_descriptor(
            &g.name,
            "HTTP server requests in flight.",
            None,
            gauge.metric_type(),
        )?;
        match &g.label {
            Some(label) => {
                for m in NormalizedMethod::ALL {
                    let v = g.by_method[m.index()].load(Ordering::Relaxed);
                    let labels = [(label.as_str(), m.as_str())];
                    ConstGauge::new(v).encode(fam.encode_family(&labels)?)?;
                }
            }
            None => {
                let total: i64 = g.by_method.iter().map(|a| a.load(Ordering::Relaxed)).sum();
                ConstGauge::new(total).encode(fam)?;
            }
        }
        Ok(())
    }
}

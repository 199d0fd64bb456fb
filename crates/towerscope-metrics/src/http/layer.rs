//! Configuration and the `Layer` impl.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tower_layer::Layer;
use towerscope_core::RouteClassifier;

use super::{FamilyOptions, HttpCollector, HttpFamilies, HttpMetrics};
use crate::{Buckets, ConfigError, InFlightLayer, MetricNames};
use towerscope_core::ExcludedPaths;

/// Default cap on label sets per metric family.
///
/// ```
/// use towerscope_metrics::{DEFAULT_MAX_SERIES, HttpMetricsLayer};
/// let mut registry = prometheus_client::registry::Registry::default();
/// // Routes times methods times status codes: raise the cap for a large API.
/// let layer = HttpMetricsLayer::builder()
///     .max_series(4 * DEFAULT_MAX_SERIES)
///     .build(&mut registry)
///     .expect("valid configuration");
/// # let _ = layer;
/// ```
pub const DEFAULT_MAX_SERIES: usize = 2000;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) families: Arc<HttpFamilies>,
    pub(crate) exclude: ExcludedPaths,
    pub(crate) classifier: Option<RouteClassifier>,
    pub(crate) request_size: bool,
    pub(crate) in_flight: Option<InFlightLayer>,
    /// Whether the in-flight gauge leaves out a path this layer records (else a request
    /// that gets past `exclude` needs no second check).
    pub(crate) in_flight_excludes_more: bool,
}

/// Records request count, duration, errors (and optionally body sizes) for every request
/// that passes through it, into the application's registry.
///
/// Labels are bounded: method (`_OTHER` for unknown ones), route template (axum's
/// `MatchedPath`, the gRPC method, a [`RouteClassifier`]'s answer, or `unmatched`), and
/// status. Each family holds at most [`DEFAULT_MAX_SERIES`] label sets (configurable); past
/// that, observations go to one `_overflow` series and `towerscope_series_overflow_total`
/// counts them.
///
/// The duration runs from the moment the request enters the layer (or the
/// [`RequestStart`](towerscope_core::RequestStart) an outer layer recorded) until the
/// response body ends, errors, or is dropped. A request the client abandons counts with
/// `error_type="cancelled"`; a panic caught by
/// [`CatchPanicLayer`](towerscope_core::CatchPanicLayer) counts with `error_type="panic"`.
/// For gRPC the status is read from a trailers-only response's headers or from the
/// trailers, and the call is also recorded in `rpc_server_call_duration_seconds`.
///
/// `/metrics`, `/health` and `/ready` are not recorded by default
/// ([`HttpMetricsBuilder::exclude_paths`]).
///
/// ```
/// use axum::{Router, routing::get};
/// use prometheus_client::registry::Registry;
/// use towerscope_metrics::{HttpMetricsLayer, InFlightLayer, MetricsService};
///
/// let mut registry = Registry::default();
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     .layer(HttpMetricsLayer::new(&mut registry))
///     .layer(InFlightLayer::new(&mut registry));
/// let metrics = MetricsService::new(registry);
/// let app = app.route_service("/metrics", metrics);
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct HttpMetricsLayer {
    shared: Arc<Shared>,
}

impl HttpMetricsLayer {
    /// A layer with the default configuration ([`MetricNames::otel`], OpenTelemetry's
    /// duration buckets, exemplars on, body sizes off), registered into `registry`.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/users/{id}", axum::routing::get(|| async { "user" }))
    ///     .layer(towerscope_metrics::HttpMetricsLayer::new(&mut registry));
    /// ```
    pub fn new(registry: &mut Registry) -> Self {
        HttpMetricsBuilder::default().build_unchecked(registry)
    }

    /// A builder to configure names, buckets, caps and exclusions.
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use towerscope_metrics::{HttpMetricsLayer, MetricNames};
    /// let mut registry = Registry::default();
    /// let layer = HttpMetricsLayer::builder()
    ///     .names(MetricNames::guide())
    ///     .max_series(500)
    ///     .response_body_size(true)
    ///     .build(&mut registry)
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn builder() -> HttpMetricsBuilder {
        HttpMetricsBuilder::default()
    }

    /// Number of distinct (method, route, status) label sets recorded so far.
    ///
    /// ```
    /// # let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = towerscope_metrics::HttpMetricsLayer::new(&mut registry);
    /// assert_eq!(layer.series_count(), 0);
    /// ```
    pub fn series_count(&self) -> usize {
        self.shared.families.http_series_count()
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> HttpMetrics<S> {
        towerscope_core::ObserveService::new(inner, self.clone())
    }
}

impl HttpMetricsLayer {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// Builder for [`HttpMetricsLayer`].
///
/// ```
/// use prometheus_client::registry::Registry;
/// use towerscope_metrics::{Buckets, HttpMetricsLayer};
/// let mut registry = Registry::default();
/// let layer = HttpMetricsLayer::builder()
///     .duration_buckets(Buckets::new([0.01, 0.1, 1.0]).unwrap())
///     .exclude_paths(["/metrics", "/healthz"])
///     .build(&mut registry)
///     .unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpMetricsBuilder {
    opts: FamilyOptions,
    exclude: Vec<String>,
    classifier: Option<RouteClassifier>,
    in_flight: Option<InFlightLayer>,
}

impl Default for HttpMetricsBuilder {
    fn default() -> Self {
        Self {
            opts: FamilyOptions {
                names: MetricNames::otel(),
                duration_buckets: Buckets::http_duration(),
                size_buckets: Buckets::body_size(),
                request_size: false,
                response_size: false,
                exemplars: true,
                max_series: DEFAULT_MAX_SERIES,
                perf: None,
            },
            exclude: ExcludedPaths::DEFAULT
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            classifier: None,
            in_flight: None,
        }
    }
}

impl HttpMetricsBuilder {
    /// Metric and label names; see [`MetricNames`].
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// let layer = HttpMetricsLayer::builder()
    ///     .names(towerscope_metrics::MetricNames::guide())
    ///     .build(&mut registry)
    ///     .unwrap();
    /// let text = scrape(layer, registry, &["/"]);
    /// assert!(text.contains("app_requests_total{"), "{text}");
    /// ```
    pub fn names(mut self, names: MetricNames) -> Self {
        self.opts.names = names;
        self
    }

    /// Duration histogram buckets, in seconds.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// let buckets = towerscope_metrics::Buckets::new([0.05, 0.5, 5.0]).unwrap();
    /// let layer = HttpMetricsLayer::builder().duration_buckets(buckets).build(&mut registry).unwrap();
    /// let text = scrape(layer, registry, &["/"]);
    /// assert!(text.contains("le=\"0.05\"") && !text.contains("le=\"0.025\""), "{text}");
    /// ```
    pub fn duration_buckets(mut self, buckets: Buckets) -> Self {
        self.opts.duration_buckets = buckets;
        self
    }

    /// Body size histogram buckets, in bytes.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// let buckets = towerscope_metrics::Buckets::new([1024.0, 1_048_576.0]).unwrap();
    /// let layer = HttpMetricsLayer::builder()
    ///     .response_body_size(true)
    ///     .body_size_buckets(buckets)
    ///     .build(&mut registry)
    ///     .unwrap();
    /// let text = scrape(layer, registry, &["/"]);
    /// assert!(text.contains("http_server_response_body_size_bytes_bucket{") && text.contains("le=\"1024.0\""), "{text}");
    /// ```
    pub fn body_size_buckets(mut self, buckets: Buckets) -> Self {
        self.opts.size_buckets = buckets;
        self
    }

    /// Record request body sizes (from `Content-Length`; requests without it are not
    /// recorded). Off by default.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// let layer = HttpMetricsLayer::builder().request_body_size(true).build(&mut registry).unwrap();
    /// let text = scrape(layer, registry, &["/"]);
    /// assert!(text.contains("http_server_request_body_size_bytes_count{"), "{text}");
    /// ```
    pub fn request_body_size(mut self, on: bool) -> Self {
        self.opts.request_size = on;
        self
    }

    /// Record response body sizes (bytes that passed through the body). Off by default.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// let layer = HttpMetricsLayer::builder().response_body_size(true).build(&mut registry).unwrap();
    /// let text = scrape(layer, registry, &["/"]);
    /// assert!(text.contains("http_server_response_body_size_bytes_sum{"), "{text}"); // 5 bytes: "hello"
    /// ```
    pub fn response_body_size(mut self, on: bool) -> Self {
        self.opts.response_size = on;
        self
    }

    /// Attach the request's sampled trace (from [`TraceIds`](towerscope_core::TraceIds) in
    /// the request extensions) to duration observations as OpenMetrics exemplars. On by
    /// default; costs nothing for requests without trace context.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// // Off: OpenMetrics scrapes carry no `trace_id` exemplars.
    /// let layer = towerscope_metrics::HttpMetricsLayer::builder().exemplars(false).build(&mut registry).unwrap();
    /// # let _ = layer;
    /// ```
    pub fn exemplars(mut self, on: bool) -> Self {
        self.opts.exemplars = on;
        self
    }

    /// Cap on label sets per family (default 2000). At least 1.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// use towerscope_core::{Route, RouteClassifier};
    /// // A classifier that (wrongly) makes every raw path a route: the cap contains the damage.
    /// let leaky = RouteClassifier::new(|req| Some(Route::Shared(req.uri.path().into())));
    /// let layer = HttpMetricsLayer::builder().route_classifier(leaky).max_series(1).build(&mut registry).unwrap();
    /// let text = scrape(layer, registry, &["/a", "/b", "/c"]);
    /// assert!(text.contains("http_route=\"_overflow\""), "{text}");
    /// ```
    pub fn max_series(mut self, max: usize) -> Self {
        self.opts.max_series = max;
        self
    }

    /// Exact request paths not to record (default `/metrics`, `/health`, `/ready`).
    /// Replaces the defaults; pass an empty list to record everything.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// let layer = HttpMetricsLayer::builder()
    ///     .exclude_paths(["/metrics", "/livez"])
    ///     .build(&mut registry)
    ///     .unwrap();
    /// let text = scrape(layer, registry, &["/livez"]);
    /// assert!(!text.contains("http_server_requests_total{"), "{text}");
    /// ```
    pub fn exclude_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.exclude = paths.into_iter().map(Into::into).collect();
        self
    }

    /// A classifier consulted before the built-in route rules.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_metrics::{Format, HttpMetricsLayer, MetricsService};
    /// # use prometheus_client::registry::Registry;
    /// # /// Sends one request for each path through `layer`, reads each body, and scrapes.
    /// # fn scrape(layer: HttpMetricsLayer, registry: Registry, paths: &[&str]) -> String {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         for path in paths {
    /// #             let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_r: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new("hello".to_owned()))
    /// #             });
    /// #             let req = http::Request::get(*path).header("content-length", "0").body(String::new()).unwrap();
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         }
    /// #     });
    /// #     MetricsService::new(registry).encode(Format::Prometheus)
    /// # }
    /// let mut registry = Registry::default();
    /// use towerscope_core::{Route, RouteClassifier};
    /// // Plain hyper has no `MatchedPath`: name the routes yourself (a fixed set, never the raw path).
    /// let classifier = RouteClassifier::new(|req| {
    ///     req.uri.path().starts_with("/users/").then_some(Route::Static("/users/{id}"))
    /// });
    /// let layer = HttpMetricsLayer::builder().route_classifier(classifier).build(&mut registry).unwrap();
    /// let text = scrape(layer, registry, &["/users/7", "/users/8"]);
    /// assert!(text.contains("http_route=\"/users/{id}\""), "{text}");
    /// ```
    pub fn route_classifier(mut self, classifier: RouteClassifier) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Feed request durations (seconds, tagged `route`) into a performance monitor under
    /// [`PERF_SERIES`](crate::PERF_SERIES), so the dashboard and alert rules can ask for
    /// p95 latency over the last N minutes, overall (`stats_merged`) or per route
    /// (`stats_tagged`). Each (method, route, status) series keeps its route's handle, so a
    /// request adds one record and no lookup.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_perf::PerfMonitor;
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let perf = PerfMonitor::new();
    /// let layer = towerscope_metrics::HttpMetricsLayer::builder().perf(perf.clone()).build(&mut registry).unwrap();
    /// let p95 = perf.stats_merged(towerscope_metrics::PERF_SERIES, Duration::from_secs(300)).map(|s| s.p95);
    /// # let _ = (layer, p95);
    /// ```
    pub fn perf(mut self, perf: towerscope_perf::PerfMonitor) -> Self {
        self.opts.perf = Some(perf);
        self
    }

    /// Maintain `gauge` from this layer, instead of stacking the [`InFlightLayer`] itself:
    /// same gauge, same behaviour on cancel and panic, one response wrapper instead of two.
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use towerscope_metrics::{HttpMetricsLayer, InFlightLayer};
    /// let mut registry = Registry::default();
    /// let in_flight = InFlightLayer::new(&mut registry);
    /// let layer = HttpMetricsLayer::builder().in_flight(in_flight.clone()).build(&mut registry).unwrap();
    /// let app: axum::Router = axum::Router::new().layer(layer);
    /// assert_eq!(in_flight.current(), 0);
    /// ```
    pub fn in_flight(mut self, gauge: InFlightLayer) -> Self {
        self.in_flight = Some(gauge);
        self
    }

    /// Validates the configuration and registers the families into `registry`.
    ///
    /// Register into the root registry: the families encode their own names, so a
    /// sub-registry's prefix and constant labels do not apply to them (set names through
    /// [`MetricNames`] instead).
    ///
    /// ```
    /// use towerscope_metrics::{HttpMetricsLayer, MetricNames};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let mut names = MetricNames::otel();
    /// names.route_label = "http route".into(); // not a valid label name
    /// let err = HttpMetricsLayer::builder().names(names).build(&mut registry).unwrap_err();
    /// assert!(err.to_string().contains("http route"), "{err}");
    /// ```
    pub fn build(self, registry: &mut Registry) -> Result<HttpMetricsLayer, ConfigError> {
        self.opts.names.validate()?;
        if self.opts.max_series == 0 {
            return Err(ConfigError::MaxSeries);
        }
        Ok(self.build_unchecked(registry))
    }

    fn build_unchecked(self, registry: &mut Registry) -> HttpMetricsLayer {
        towerscope_core::RequestStart::calibrate();
        let request_size = self.opts.request_size;
        let families = Arc::new(HttpFamilies::new(self.opts));
        registry.register_collector(Box::new(HttpCollector::new(families.clone())));
        let exclude = ExcludedPaths::new(self.exclude);
        let in_flight_excludes_more = self
            .in_flight
            .as_ref()
            .is_some_and(|g| !exclude.covers(g.excluded()));
        HttpMetricsLayer {
            shared: Arc::new(Shared {
                families,
                exclude,
                classifier: self.classifier,
                request_size,
                in_flight: self.in_flight,
                in_flight_excludes_more,
            }),
        }
    }
}

//! [`Observability`]: the whole stack from one builder.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use prometheus_client::registry::Registry;
use towerscope_alert::{
    Alert, Alerting, Delivery, DeliveryMetrics, Notifier, Routed, Rule, Sources, default_rules,
};
use towerscope_core::{CatchPanicLayer, RouteClassifier};
use towerscope_dashboard::{Dashboard, Stat};
use towerscope_health::{Health, HealthBuilder, Synthetics, SyntheticsBuilder, SyntheticsError};
use towerscope_log::{
    AccessLogBuilder, AccessLogLayer, LogFormat, Logging, LoggingGuard, PanicHook,
};
use towerscope_metrics::{
    AppInfo, ConnectionTracker, HttpMetricsBuilder, HttpMetricsLayer, InFlightLayer, MetricNames,
    MetricsService, ProcessCollector, SystemCollector, SystemNames,
};
use towerscope_perf::PerfMonitor;
use towerscope_request_id::{RequestIdBuilder, RequestIdLayer};
use towerscope_rum::{Rum, RumBuilder};
use towerscope_trace::{Propagators, TraceClientLayer, TraceLayer, Tracing, TracingConfig};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::stack::ObservabilityLayer;
use crate::toggle::Toggle;

/// One capability of the stack, to switch off with [`ObservabilityBuilder::disable`].
///
/// ```
/// use towerscope::{Observability, Piece};
/// let builder = Observability::builder("shop").disable(Piece::Rum).disable(Piece::Logging);
/// assert!(!builder.is_enabled(Piece::Rum));
/// assert!(builder.is_enabled(Piece::Metrics));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Piece {
    /// Request metrics (RED, in-flight gauge), connection, process and system metrics,
    /// `app_info`.
    Metrics,
    /// `RequestIdLayer`: an ID on every request, response and log line.
    RequestId,
    /// `TraceLayer`: an OpenTelemetry server span per request, OTLP export when configured.
    Tracing,
    /// `AccessLogLayer`: one log line per request.
    AccessLog,
    /// `CatchPanicLayer`: a handler panic becomes a 500 (gRPC: `INTERNAL`).
    PanicCatching,
    /// The global tracing subscriber (JSON in production, readable in development).
    Logging,
    /// `/health` and `/ready`.
    Health,
    /// Windowed latency statistics per route (p50…p99).
    Perf,
    /// Alert rules evaluated in-process, with their notifiers.
    Alerts,
    /// The live dashboard and its JSON API.
    Dashboard,
    /// Real-user monitoring: `/rum.js` and `/api/rum`.
    Rum,
}

impl Piece {
    /// Every piece, in the order the builder sets them up.
    ///
    /// ```
    /// assert_eq!(towerscope::Piece::ALL.len(), 11);
    /// ```
    pub const ALL: [Piece; 11] = [
        Piece::Metrics,
        Piece::RequestId,
        Piece::Tracing,
        Piece::AccessLog,
        Piece::PanicCatching,
        Piece::Logging,
        Piece::Health,
        Piece::Perf,
        Piece::Alerts,
        Piece::Dashboard,
        Piece::Rum,
    ];

    /// The piece's name in configuration files (`metrics`, `request_id`, …).
    ///
    /// ```
    /// assert_eq!(towerscope::Piece::AccessLog.name(), "access_log");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Piece::Metrics => "metrics",
            Piece::RequestId => "request_id",
            Piece::Tracing => "tracing",
            Piece::AccessLog => "access_log",
            Piece::PanicCatching => "panic",
            Piece::Logging => "logging",
            Piece::Health => "health",
            Piece::Perf => "perf",
            Piece::Alerts => "alerts",
            Piece::Dashboard => "dashboard",
            Piece::Rum => "rum",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// What to do about a logging error, where the facade knows.
fn logging_hint(error: &towerscope_log::LogError) -> &'static str {
    match error {
        towerscope_log::LogError::AlreadySet => "; to keep it, build with `without_logging()`",
        _ => "",
    }
}

/// Why the stack could not be built.
///
/// ```
/// // Alerts and the dashboard run tasks: outside a tokio runtime the build says so.
/// let err = towerscope::Observability::builder("shop").without_logging().build().unwrap_err();
/// assert!(matches!(err, towerscope::BuildError::NoRuntime(_)));
///
/// // With a subscriber of the application's (or a test harness's) already installed:
/// let err = towerscope::BuildError::Logging(towerscope::log::LogError::AlreadySet);
/// assert_eq!(
///     err.to_string(),
///     "logging: a global tracing subscriber is already set; to keep it, build with `without_logging()`"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A metric name, bucket list or label was refused.
    #[error("metrics: {0}")]
    Metrics(#[from] towerscope_metrics::ConfigError),
    /// An `OTEL_*` variable is invalid.
    #[error("tracing configuration: {0}")]
    TracingConfig(#[from] towerscope_trace::ConfigError),
    /// The tracer provider or its exporter could not be set up.
    #[error("tracing setup: {0}")]
    Tracing(#[from] towerscope_trace::SetupError),
    /// The log subscriber could not be set up (a global one is already set, or the filter
    /// does not parse).
    #[error("logging: {0}{hint}", hint = logging_hint(.0))]
    Logging(#[from] towerscope_log::LogError),
    /// Background pieces (alerts, dashboard, notifiers) were switched on outside a tokio
    /// runtime.
    #[error("{0} runs a background task: build inside a tokio runtime")]
    NoRuntime(&'static str),
    /// A synthetic probe's name was refused.
    #[error("synthetic probes: {0}")]
    Synthetics(#[from] SyntheticsError),
}

/// A notifier delivery, built once the registry is known.
type DeliveryFn = Box<dyn FnOnce(&DeliveryMetrics) -> Routed<Delivery> + Send>;
/// A check the configuration adds to whichever health builder the stack ends up with.
type HealthAddition = Box<dyn FnOnce(HealthBuilder) -> HealthBuilder + Send>;

/// Builder for [`Observability`]; every piece is on until [`disable`](Self::disable)d.
///
/// ```
/// use std::time::Duration;
/// use towerscope::Observability;
/// use towerscope::health::{CheckOptions, Health, MemoryCheck};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let obs = Observability::builder("shop")
///     .version("1.4.2")
///     .environment("production")
///     .health(Health::builder("1.4.2").check("memory", MemoryCheck::new(95.0), CheckOptions::default()))
///     .alert_interval(Duration::from_secs(30))
///     .ops_token("s3cret")
///     .without_logging()
///     .build()?;
/// # let _ = obs;
/// # Ok(()) }
/// ```
#[must_use]
pub struct ObservabilityBuilder {
    service: String,
    version: String,
    environment: String,
    build_date: String,
    registry: Registry,
    enabled: u16,
    names: MetricNames,
    system_names: SystemNames,
    disk_path: Option<std::path::PathBuf>,
    classifier: Option<RouteClassifier>,
    http_metrics: HttpMetricsBuilder,
    request_id: RequestIdBuilder,
    tracing: Option<TracingConfig>,
    tracer: Option<SdkTracer>,
    access_log: AccessLogBuilder,
    log_format: Option<LogFormat>,
    log_filter: Option<String>,
    log_writer: Option<BoxMakeWriter>,
    log_panic_hook: PanicHook,
    health: Option<HealthBuilder>,
    health_additions: Vec<HealthAddition>,
    synthetics: Option<SyntheticsBuilder>,
    perf: Option<PerfMonitor>,
    rules: Vec<Rule>,
    default_rules: bool,
    alert_interval: Duration,
    deliveries: Vec<DeliveryFn>,
    rum: RumBuilder,
    dashboard_history: Option<(Duration, Duration)>,
    dashboard_stats: Vec<Stat>,
    ops_token: Option<String>,
}

impl fmt::Debug for ObservabilityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<_> = Piece::ALL
            .iter()
            .filter(|p| self.is_enabled(**p))
            .map(|p| p.name())
            .collect();
        f.debug_struct("ObservabilityBuilder")
            .field("service", &self.service)
            .field("version", &self.version)
            .field("environment", &self.environment)
            .field("enabled", &on)
            .field("rules", &self.rules.len())
            .field("ops_token", &self.ops_token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ObservabilityBuilder {
    pub(crate) fn new(service: String) -> Self {
        let version = "0.0.0".to_owned();
        Self {
            service,
            health: None,
            health_additions: Vec::new(),
            synthetics: None,
            version,
            environment: "development".to_owned(),
            build_date: "unknown".to_owned(),
            registry: Registry::default(),
            enabled: Piece::ALL.iter().fold(0, |bits, p| bits | p.bit()),
            names: MetricNames::otel(),
            system_names: SystemNames::system(),
            disk_path: None,
            classifier: None,
            http_metrics: HttpMetricsLayer::builder(),
            request_id: RequestIdLayer::builder(),
            tracing: None,
            tracer: None,
            access_log: AccessLogLayer::builder(),
            log_format: None,
            log_filter: None,
            log_writer: None,
            log_panic_hook: PanicHook::default(),
            perf: None,
            rules: Vec::new(),
            default_rules: true,
            alert_interval: Duration::from_secs(15),
            deliveries: Vec::new(),
            rum: Rum::builder(),
            dashboard_history: None,
            dashboard_stats: Vec::new(),
            ops_token: None,
        }
    }

    /// Renames the service (the name given to [`Observability::builder`] otherwise). With
    /// tracing on, `OTEL_SERVICE_NAME` (or the service of a [`tracing`](Self::tracing)
    /// configuration given) wins, for `app_info` as for the spans: every signal names the
    /// service alike.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").service_name("storefront");
    /// assert_eq!(b.service(), "storefront");
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// The service name.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop");
    /// assert_eq!(b.service(), "shop");
    /// ```
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The service version given so far.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").version("2.0.1");
    /// assert_eq!(b.service_version(), "2.0.1");
    /// ```
    pub fn service_version(&self) -> &str {
        &self.version
    }

    /// The environment given so far.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").environment("staging");
    /// assert_eq!(b.service_environment(), "staging");
    /// ```
    pub fn service_environment(&self) -> &str {
        &self.environment
    }

    /// Applies a [`Config`](crate::Config) (from a file and the environment) on top of what
    /// the builder holds; see [`Config::apply`](crate::Config::apply). Call it first: the
    /// options it covers replace builders given before it (pieces switched off in code
    /// stay off in either order).
    ///
    /// ```
    /// let config = towerscope::Config::from_sources(None, |_| None)?;
    /// let b = towerscope::Observability::builder("shop").configure(&config)?;
    /// # let _ = b;
    /// # Ok::<(), towerscope::ConfigError>(())
    /// ```
    pub fn configure(self, config: &crate::Config) -> Result<Self, crate::ConfigError> {
        config.apply(self)
    }

    /// The service version (`app_info`, the `service.version` resource, `/health`).
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").version(env!("CARGO_PKG_VERSION"));
    /// # let _ = b;
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The deployment environment (`app_info`, `deployment.environment.name`). In
    /// `production` the log format defaults to JSON.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").environment("production"); // JSON logs by default
    /// # let _ = b;
    /// ```
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// The build date reported by `app_info` (default `unknown`).
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").build_date("2026-11-30");
    /// # let _ = b;
    /// ```
    pub fn build_date(mut self, date: impl Into<String>) -> Self {
        self.build_date = date.into();
        self
    }

    /// The registry every metric goes into; register your own (business) metrics into it
    /// first. Default: a new one.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let orders = prometheus_client::metrics::counter::Counter::<u64>::default();
    /// registry.register("orders", "Orders placed", orders.clone());
    /// let b = towerscope::Observability::builder("shop").registry(registry);
    /// # let _ = b;
    /// ```
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Switches `piece` on or off.
    ///
    /// ```
    /// use towerscope::Piece;
    /// let b = towerscope::Observability::builder("shop").enable_piece(Piece::Rum, false);
    /// assert!(!b.is_enabled(Piece::Rum));
    /// ```
    pub fn enable_piece(mut self, piece: Piece, on: bool) -> Self {
        if on {
            self.enabled |= piece.bit();
        } else {
            self.enabled &= !piece.bit();
        }
        self
    }

    /// Switches `piece` off.
    ///
    /// ```
    /// use towerscope::Piece;
    /// let b = towerscope::Observability::builder("shop").disable(Piece::Dashboard);
    /// assert!(!b.is_enabled(Piece::Dashboard));
    /// ```
    pub fn disable(self, piece: Piece) -> Self {
        self.enable_piece(piece, false)
    }

    /// Leaves the global tracing subscriber alone (when the application sets up its own, or
    /// in tests that build several stacks); the same as `disable(Piece::Logging)`.
    ///
    /// ```
    /// use towerscope::Piece;
    /// let b = towerscope::Observability::builder("shop").without_logging();
    /// assert!(!b.is_enabled(Piece::Logging));
    /// ```
    pub fn without_logging(self) -> Self {
        self.disable(Piece::Logging)
    }

    /// Whether `piece` is on.
    ///
    /// ```
    /// assert!(towerscope::Observability::builder("shop").is_enabled(towerscope::Piece::Tracing));
    /// ```
    pub fn is_enabled(&self, piece: Piece) -> bool {
        self.enabled & piece.bit() != 0
    }

    /// Metric names for the request metrics and the in-flight gauge: the OpenTelemetry
    /// ones (default) or [`MetricNames::guide`].
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").metric_names(towerscope::metrics::MetricNames::guide()); // app_requests_total, …
    /// # let _ = b;
    /// ```
    pub fn metric_names(mut self, names: MetricNames) -> Self {
        self.names = names;
        self
    }

    /// Names of the system metrics (CPU %, memory, disk): [`SystemNames::system`]
    /// (default) or [`SystemNames::guide`].
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").system_names(towerscope::metrics::SystemNames::guide());
    /// # let _ = b;
    /// ```
    pub fn system_names(mut self, names: SystemNames) -> Self {
        self.system_names = names;
        self
    }

    /// The filesystem whose usage the system metrics report (default `/`).
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").disk_path("/var/lib/shop");
    /// # let _ = b;
    /// ```
    pub fn disk_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.disk_path = Some(path.into());
        self
    }

    /// Route labels for requests that are not routed by axum or gRPC (plain hyper, a
    /// fallback service), for the request metrics and the access log. Answers must come from
    /// a bounded set.
    ///
    /// ```
    /// use towerscope::core::{Route, RouteClassifier};
    /// let b = towerscope::Observability::builder("shop").route_classifier(RouteClassifier::new(|req| {
    ///     req.uri.path().starts_with("/api/").then_some(Route::Static("/api/*"))
    /// }));
    /// # let _ = b;
    /// ```
    pub fn route_classifier(mut self, classifier: RouteClassifier) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Request-metric options (buckets, body sizes, cardinality cap, excluded paths, route
    /// classifier). Names come from [`metric_names`](Self::metric_names); the in-flight
    /// gauge and the performance monitor are added by the builder.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").http_metrics(towerscope::metrics::HttpMetricsLayer::builder().max_series(5000));
    /// # let _ = b;
    /// ```
    pub fn http_metrics(mut self, builder: HttpMetricsBuilder) -> Self {
        self.http_metrics = builder;
        self
    }

    /// Request-ID options (header, validation, generator).
    ///
    /// ```
    /// let header = http::HeaderName::from_static("x-correlation-id");
    /// let b = towerscope::Observability::builder("shop").request_id(towerscope::request_id::RequestIdLayer::builder().header(header));
    /// # let _ = b;
    /// ```
    pub fn request_id(mut self, builder: RequestIdBuilder) -> Self {
        self.request_id = builder;
        self
    }

    /// Tracing setup. Default: `TracingConfig::new(service)` with the version and
    /// environment, then the standard `OTEL_*` variables: with no endpoint configured,
    /// spans get IDs (for logs and exemplars) and are exported nowhere.
    ///
    /// ```
    /// let tracing = towerscope::trace::TracingConfig::new("shop").sampler(towerscope::trace::SamplerConfig::ParentBasedRatio(0.1));
    /// let b = towerscope::Observability::builder("shop").tracing(tracing);
    /// # let _ = b;
    /// ```
    pub fn tracing(mut self, config: TracingConfig) -> Self {
        self.tracing = Some(config);
        self
    }

    /// A tracer of the application's own, used instead of setting one up.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let b = towerscope::Observability::builder("shop").tracer(provider.tracer("shop"));
    /// # let _ = b;
    /// ```
    pub fn tracer(mut self, tracer: SdkTracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Access-log options (trusted proxies, excluded paths, logged headers, redaction).
    ///
    /// ```
    /// let access = towerscope::log::AccessLogLayer::builder().trusted_proxies(["10.0.0.0/8"])?;
    /// let b = towerscope::Observability::builder("shop").access_log(access);
    /// # let _ = b;
    /// # Ok::<(), towerscope::log::IpRangeError>(())
    /// ```
    pub fn access_log(mut self, builder: AccessLogBuilder) -> Self {
        self.access_log = builder;
        self
    }

    /// The log format; default: `TOWERSCOPE_LOG_FORMAT`, else JSON in `production` and
    /// readable text elsewhere.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").log_format(towerscope::log::LogFormat::Json);
    /// # let _ = b;
    /// ```
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = Some(format);
        self
    }

    /// A `RUST_LOG`-style filter; default `RUST_LOG`, else
    /// [`DEFAULT_FILTER`](towerscope_log::DEFAULT_FILTER).
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").log_filter("info,shop=debug");
    /// # let _ = b;
    /// ```
    pub fn log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = Some(filter.into());
        self
    }

    /// What the global log setup does with the process's panic hook; default
    /// [`PanicHook::Chain`]: each panic becomes one `ERROR` line (in the span of the request
    /// it happened in), then Rust's own report goes to stderr as before.
    /// [`PanicHook::Replace`] writes the line only, for a log stream that is all JSON.
    ///
    /// ```
    /// use towerscope::log::PanicHook;
    /// let b = towerscope::Observability::builder("shop").log_panic_hook(PanicHook::Replace);
    /// # let _ = b;
    /// ```
    pub fn log_panic_hook(mut self, hook: PanicHook) -> Self {
        self.log_panic_hook = hook;
        self
    }

    /// Where log lines go (default: standard output, through a bounded non-blocking
    /// buffer).
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").log_writer(std::io::stderr);
    /// # let _ = b;
    /// ```
    pub fn log_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        self.log_writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Health and readiness checks; default: no checks (`/health` and `/ready` answer 200
    /// while the process serves).
    ///
    /// ```
    /// use towerscope::health::{CheckOptions, Health, TcpCheck};
    /// let checks = Health::builder("1.0.0").check("db", TcpCheck::new("127.0.0.1:5432"), CheckOptions::default());
    /// let b = towerscope::Observability::builder("shop").health(checks);
    /// # let _ = b;
    /// ```
    pub fn health(mut self, builder: HealthBuilder) -> Self {
        self.health = Some(builder);
        self
    }

    /// A check added to the health builder when the stack is built (for `Config::apply`):
    /// to the one given in code, given before or after, or to the stack's own, made then
    /// with the service's final version.
    pub(crate) fn add_health_check(
        mut self,
        add: impl FnOnce(HealthBuilder) -> HealthBuilder + Send + 'static,
    ) -> Self {
        self.health_additions.push(Box::new(add));
        self
    }

    /// Synthetic probes of the critical paths (see [`Synthetics`]): started with the stack,
    /// exported into its registry (`synthetic_probe_success{probe}`, …), shown on the
    /// dashboard, stopped with it. The stack is usually built before the server listens:
    /// give probes of the service itself a
    /// [`first_round_after`](SyntheticsBuilder::first_round_after), so start-up does not
    /// log a failure. Pair them with a rule on `synthetic_probe_success`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope::health::{HttpCheck, Synthetics};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let probes = Synthetics::builder()
    ///     .probe("catalogue", HttpCheck::new("http://127.0.0.1:8080/products".parse()?))
    ///     .every(Duration::from_secs(30))
    ///     .first_round_after(Duration::from_secs(10));
    /// let obs = towerscope::Observability::builder("shop").without_logging().synthetics(probes).build()?;
    /// assert!(obs.synthetics().is_some());
    /// # Ok(()) }
    /// ```
    pub fn synthetics(mut self, builder: SyntheticsBuilder) -> Self {
        self.synthetics = Some(builder);
        self
    }

    /// The probes given so far, taken out (for `Config::apply`, which adds its own).
    pub(crate) fn take_synthetics(&mut self) -> Option<SyntheticsBuilder> {
        self.synthetics.take()
    }

    /// A performance monitor of the application's own (to time database queries into the
    /// same windows); default: a new one.
    ///
    /// ```
    /// let perf = towerscope::perf::PerfMonitor::new();
    /// let b = towerscope::Observability::builder("shop").perf_monitor(perf.clone()); // time your queries into the same windows
    /// # let _ = b;
    /// ```
    pub fn perf_monitor(mut self, perf: PerfMonitor) -> Self {
        self.perf = Some(perf);
        self
    }

    /// Alert rules evaluated besides the defaults.
    ///
    /// ```
    /// use towerscope::alert::{Condition, Rule, Signal};
    /// let rule = Rule::new("TooManyInFlight", Signal::InFlight, Condition::Gt, 500.0);
    /// let b = towerscope::Observability::builder("shop").alert_rules([rule]);
    /// # let _ = b;
    /// ```
    pub fn alert_rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Whether the guide's four default rules ([`default_rules`]) are evaluated (default:
    /// yes).
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").default_alert_rules(false);
    /// # let _ = b;
    /// ```
    pub fn default_alert_rules(mut self, on: bool) -> Self {
        self.default_rules = on;
        self
    }

    /// How often alert rules are evaluated (default 15 s).
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").alert_interval(std::time::Duration::from_secs(30));
    /// # let _ = b;
    /// ```
    pub fn alert_interval(mut self, every: Duration) -> Self {
        self.alert_interval = every;
        self
    }

    /// Sends alerts through `notifier` (Slack, PagerDuty, a webhook, Alertmanager, email),
    /// with a bounded queue, retries, and `towerscope_alert_notifications_total` in the
    /// registry.
    ///
    /// ```
    /// let slack = towerscope::alert::SlackNotifier::new("https://hooks.slack.example/T000/B000/XXX");
    /// let b = towerscope::Observability::builder("shop").notifier(slack);
    /// # let _ = b;
    /// ```
    pub fn notifier<N: Notifier>(self, notifier: N) -> Self {
        self.notifier_when(notifier, |_| true)
    }

    /// Sends the alerts that `accept` takes through `notifier`, as
    /// [`notifier`](Self::notifier) does: routing by severity or label (see
    /// [`Routed`](towerscope_alert::Routed)).
    ///
    /// ```
    /// use towerscope::alert::{PagerDutyNotifier, Severity, SlackNotifier};
    /// let b = towerscope::Observability::builder("shop")
    ///     .notifier_when(PagerDutyNotifier::new("R0UT1NGKEY"), |a| a.severity >= Severity::High)
    ///     .notifier_when(SlackNotifier::new("https://hooks.slack.example/T000/B000/XXX"), |a| a.severity < Severity::High);
    /// # let _ = b;
    /// ```
    pub fn notifier_when<N: Notifier>(
        mut self,
        notifier: N,
        accept: impl Fn(&Alert) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.deliveries
            .push(Box::new(move |metrics: &DeliveryMetrics| {
                Routed::when(
                    Delivery::builder(notifier).counted_in(metrics).spawn(),
                    accept,
                )
            }));
        self
    }

    /// Real-user-monitoring options (page templates, limits, allowed origins).
    ///
    /// ```
    /// use towerscope::rum::{PageTemplates, Rum};
    /// let b = towerscope::Observability::builder("shop").rum(Rum::builder().pages(PageTemplates::new(["/", "/products/{id}"])));
    /// # let _ = b;
    /// ```
    pub fn rum(mut self, builder: RumBuilder) -> Self {
        self.rum = builder;
        self
    }

    /// How often the dashboard samples its history and how much it keeps (default every
    /// 5 s for an hour).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = towerscope::Observability::builder("shop").dashboard_history(Duration::from_secs(10), Duration::from_secs(6 * 3600));
    /// # let _ = b;
    /// ```
    pub fn dashboard_history(mut self, every: Duration, keep: Duration) -> Self {
        self.dashboard_history = Some((every, keep));
        self
    }

    /// One of the application's own numbers on the dashboard's business card (orders per
    /// minute, revenue, a conversion rate), computed live from the registry; see
    /// [`Stat`](towerscope_dashboard::Stat).
    ///
    /// ```
    /// use towerscope::alert::Signal;
    /// use towerscope::dashboard::Stat;
    /// let rate = |metric: &str| Signal::CounterRate { metric: metric.into(), matchers: vec![] };
    /// let b = towerscope::Observability::builder("shop")
    ///     .dashboard_stat(Stat::new("Orders / min", rate("shop_order_value_dollars_count")).scale(60.0))
    ///     .dashboard_stat(Stat::new("Revenue / min", rate("shop_order_value_dollars_sum")).scale(60.0).unit(" $"));
    /// # let _ = b;
    /// ```
    pub fn dashboard_stat(mut self, stat: Stat) -> Self {
        self.dashboard_stats.push(stat);
        self
    }

    /// A bearer token required on `/metrics`, `/dashboard` and `/api/dashboard/*`,
    /// compared in constant time. Set it whenever the operational endpoints are reachable
    /// from outside.
    ///
    /// ```
    /// let b = towerscope::Observability::builder("shop").ops_token(std::env::var("OPS_TOKEN").unwrap_or_default());
    /// # let _ = b;
    /// ```
    pub fn ops_token(mut self, token: impl Into<String>) -> Self {
        self.ops_token = Some(token.into());
        self
    }

    /// Builds every piece that is on, registers its metrics, and starts its background
    /// tasks. Call it inside a tokio runtime when alerts, the dashboard, notifiers or OTLP
    /// over gRPC are on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// assert!(obs.health().is_some());
    /// # Ok(()) }
    /// ```
    pub fn build(mut self) -> Result<Observability, BuildError> {
        if tokio::runtime::Handle::try_current().is_err() {
            if self.is_enabled(Piece::Alerts) {
                return Err(BuildError::NoRuntime("alerting"));
            }
            if self.is_enabled(Piece::Dashboard) {
                return Err(BuildError::NoRuntime("the dashboard"));
            }
            if self.synthetics.is_some() {
                return Err(BuildError::NoRuntime("synthetic probes"));
            }
        }
        let on = |p: Piece| self.enabled & p.bit() != 0;
        let registry = &mut self.registry;

        let perf = on(Piece::Perf).then(|| self.perf.take().unwrap_or_default());

        // The tracing configuration first: `OTEL_SERVICE_NAME`, which it reads, names the
        // service in `app_info` too, so metrics and traces agree on it.
        let tracing_config = match (&self.tracer, on(Piece::Tracing)) {
            (None, true) => {
                let config = match self.tracing.take() {
                    Some(config) => config,
                    None => TracingConfig::new(&self.service)
                        .version(&self.version)
                        .environment(&self.environment)
                        .with_env()?,
                };
                self.service = config.service().to_owned();
                Some(config)
            }
            _ => None,
        };

        let mut connections = None;
        let metrics_layer = if on(Piece::Metrics) {
            AppInfo::new(&self.version, &self.environment, &self.build_date)
                .label("service", &self.service)
                .register(registry)?;
            ProcessCollector::register(registry)?;
            let mut system = SystemCollector::builder().names(self.system_names.clone());
            if let Some(path) = self.disk_path.take() {
                system = system.disk_path(path);
            }
            system.register(registry)?;
            connections = Some(ConnectionTracker::new(registry));
            let in_flight = InFlightLayer::with_names(registry, &self.names)?;
            let mut builder = self
                .http_metrics
                .names(self.names.clone())
                .in_flight(in_flight);
            if let Some(perf) = &perf {
                builder = builder.perf(perf.clone());
            }
            if let Some(classifier) = &self.classifier {
                builder = builder.route_classifier(classifier.clone());
            }
            Some(builder.build(registry)?)
        } else {
            None
        };

        let request_id = on(Piece::RequestId).then(|| self.request_id.build(registry));

        let mut tracing_handle = None;
        let tracer = match (self.tracer.take(), tracing_config) {
            (Some(tracer), _) => tracer,
            (None, Some(config)) => {
                let handle = config.init()?;
                handle.metrics(registry); // the exporter's: spans exported and lost
                let tracer = handle.tracer();
                tracing_handle = Some(handle);
                tracer
            }
            // Off: a tracer that records nothing, so the tracing bridge has one to hold.
            (None, None) => SdkTracerProvider::builder().build().tracer("towerscope"),
        };
        let propagators = match &tracing_handle {
            Some(handle) => handle.propagators(),
            // A tracer of the caller's: the standard variable still names the formats.
            None => match std::env::var("OTEL_PROPAGATORS") {
                Ok(list) if !list.trim().is_empty() => list.parse()?,
                _ => Propagators::default(),
            },
        };
        let trace = on(Piece::Tracing).then(|| {
            let layer = TraceLayer::new(tracer.clone()).propagators(propagators);
            // A provider built here: the layer knows its sampler and skips the SDK for
            // the spans it drops. A tracer given by the caller keeps the SDK's decision.
            match &tracing_handle {
                Some(handle) => layer.sampler(handle.sampler()),
                None => layer,
            }
        });

        let logging = if on(Piece::Logging) {
            let format = self.log_format.unwrap_or_else(|| {
                match std::env::var("TOWERSCOPE_LOG_FORMAT")
                    .ok()
                    .map(|v| v.parse())
                {
                    Some(Ok(format)) => format,
                    _ if self.environment == "production" => LogFormat::Json,
                    _ => LogFormat::Pretty,
                }
            });
            let mut builder = Logging::builder()
                .format(format)
                .panic_hook(self.log_panic_hook);
            if let Some(filter) = self.log_filter.take() {
                builder = builder.filter(filter);
            }
            let mut builder = match self.log_writer.take() {
                Some(writer) => builder.writer(writer).metrics(registry),
                None => builder
                    .writer(BoxMakeWriter::new(std::io::stdout))
                    .metrics(registry),
            };
            if on(Piece::Tracing) {
                builder = builder.with_layer(towerscope_trace::tracing_layer(tracer.clone()));
            }
            Some(builder.init()?)
        } else {
            None
        };

        let access_log = on(Piece::AccessLog).then(|| {
            let mut builder = self.access_log;
            if let Some(classifier) = self.classifier.take() {
                builder = builder.route_classifier(classifier);
            }
            builder.build()
        });
        let panic = on(Piece::PanicCatching).then(CatchPanicLayer::new);

        let health = on(Piece::Health).then(|| {
            let mut health = self
                .health
                .take()
                .unwrap_or_else(|| Health::builder(&self.version));
            for add in self.health_additions.drain(..) {
                health = add(health);
            }
            health.metrics(registry).build()
        });
        let synthetics = self
            .synthetics
            .take()
            .map(|probes| probes.metrics(registry).spawn())
            .transpose()?;
        let rum = on(Piece::Rum)
            .then(|| std::mem::replace(&mut self.rum, Rum::builder()).build(registry));
        let deliveries: Vec<Routed<Delivery>> = if on(Piece::Alerts) && !self.deliveries.is_empty()
        {
            // One family for every notifier: registered per notifier, it would be written
            // once for each, and Prometheus refuses such a scrape.
            let metrics = DeliveryMetrics::register(registry);
            self.deliveries
                .drain(..)
                .map(|make| make(&metrics))
                .collect()
        } else {
            Vec::new()
        };

        let mut metrics = MetricsService::builder();
        if let Some(token) = &self.ops_token {
            metrics = metrics.bearer_token(token.clone());
        }
        let metrics = metrics.build(std::mem::take(&mut self.registry));

        let alerting = on(Piece::Alerts).then(|| {
            let mut sources = Sources::new(metrics.clone());
            if let Some(perf) = &perf {
                sources = sources.perf(perf.clone());
            }
            let mut rules = if self.default_rules {
                default_rules()
            } else {
                Vec::new()
            };
            rules.append(&mut self.rules);
            let mut builder = Alerting::builder(sources)
                .rules(rules)
                .interval(self.alert_interval);
            for delivery in deliveries {
                builder = builder.notify(delivery);
            }
            builder.spawn()
        });

        let dashboard = on(Piece::Dashboard).then(|| {
            let mut builder = Dashboard::builder(metrics.clone());
            if let Some(perf) = &perf {
                builder = builder.perf(perf.clone());
            }
            if let Some(health) = &health {
                builder = builder.health(health.clone());
            }
            if let Some(synthetics) = &synthetics {
                builder = builder.synthetics(synthetics);
            }
            if let Some(alerting) = &alerting {
                builder = builder.alerting(alerting.clone());
            }
            if let Some(rum) = &rum {
                builder = builder.rum(rum.clone());
            }
            if let Some(token) = &self.ops_token {
                builder = builder.bearer_token(token.clone());
            }
            if let Some((every, keep)) = self.dashboard_history {
                builder = builder.history(every, keep);
            }
            for stat in self.dashboard_stats {
                builder = builder.stat(stat);
            }
            builder.spawn()
        });

        Ok(Observability {
            service: self.service,
            layer: ObservabilityLayer {
                request_id: Toggle::new(request_id),
                trace: Toggle::new(trace),
                metrics: Toggle::new(metrics_layer),
                access_log: Toggle::new(access_log),
                panic: Toggle::new(panic),
            },
            metrics,
            connections,
            tracer,
            propagators,
            tracing: tracing_handle,
            logging,
            health,
            synthetics,
            perf,
            alerting,
            dashboard,
            rum,
        })
    }
}

/// The running observability stack: the request-path layer, the operational endpoints,
/// and the background tasks.
///
#[cfg_attr(feature = "axum", doc = "```")]
#[cfg_attr(not(feature = "axum"), doc = "```ignore")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use towerscope::Observability;
/// let obs = Observability::builder("shop").version("1.0.0").without_logging().build()?;
/// let app: axum::Router = axum::Router::new()
///     .route("/users/{id}", axum::routing::get(|| async { "user" }))
///     // Before `.layer`: unknown paths go through the layers too (as `unmatched`).
///     .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
///     .layer(obs.layer())
///     // Merged after `.layer(...)`: scrapes and dashboard polls are not measured.
///     .merge(obs.router());
/// # let _ = app;
/// obs.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Observability {
    service: String,
    layer: ObservabilityLayer,
    metrics: MetricsService,
    connections: Option<ConnectionTracker>,
    tracer: SdkTracer,
    propagators: Propagators,
    tracing: Option<Tracing>,
    logging: Option<LoggingGuard>,
    health: Option<Health>,
    synthetics: Option<Synthetics>,
    perf: Option<PerfMonitor>,
    alerting: Option<Alerting>,
    dashboard: Option<Dashboard>,
    rum: Option<Rum>,
}

impl fmt::Debug for Observability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observability")
            .field("service", &self.service)
            .field("layer", &self.layer)
            .field(
                "exporting_spans",
                &self.tracing.as_ref().map(Tracing::exporting),
            )
            .field("logging", &self.logging.is_some())
            .field("health", &self.health.is_some())
            .field("synthetics", &self.synthetics.is_some())
            .field("alerting", &self.alerting.is_some())
            .field("dashboard", &self.dashboard.is_some())
            .field("rum", &self.rum.is_some())
            .finish_non_exhaustive()
    }
}

impl Observability {
    /// A builder for `service` (the `service.name` of its spans and the `service` label of
    /// `app_info`).
    ///
    /// ```
    /// let builder = towerscope::Observability::builder("shop");
    /// assert_eq!(builder.service(), "shop");
    /// ```
    pub fn builder(service: impl Into<String>) -> ObservabilityBuilder {
        ObservabilityBuilder::new(service.into())
    }

    /// The request-path layers in one (see [`ObservabilityLayer`] for the order). Works for
    /// axum (`Router::layer`), tonic (`Server::builder().layer`) and hyper (through
    /// `hyper_util::service::TowerToHyperService`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" })).layer(obs.layer());
    /// # let _ = app;
    /// # Ok(()) }
    /// ```
    pub fn layer(&self) -> ObservabilityLayer {
        self.layer.clone()
    }

    /// The Prometheus exposition service over the registry (`/metrics`), for tonic side
    /// ports and hyper.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let text = obs.metrics_service().encode(towerscope::metrics::Format::Prometheus);
    /// assert!(text.contains("app_info"));
    /// # Ok(()) }
    /// ```
    pub fn metrics_service(&self) -> MetricsService {
        self.metrics.clone()
    }

    /// Wraps a listener so open connections, connections total and connection durations are
    /// measured (`None` when metrics are off: use the listener as it is).
    ///
    #[cfg_attr(feature = "axum", doc = "```no_run")]
    #[cfg_attr(not(feature = "axum"), doc = "```ignore")]
    /// # async fn run(obs: towerscope::Observability, app: axum::Router) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// // Connect info (the peer's address) works with the tracked listener too.
    /// let app = app.into_make_service_with_connect_info::<towerscope::core::PeerAddr>();
    /// match obs.connections() {
    ///     Some(tracker) => axum::serve(tracker.listener(listener), app).await,
    ///     None => axum::serve(listener, app).await,
    /// }
    /// # }
    /// ```
    pub fn connections(&self) -> Option<&ConnectionTracker> {
        self.connections.as_ref()
    }

    /// The tracer of the request spans (for a [`TraceClientLayer`](towerscope_trace::TraceClientLayer)
    /// on outgoing calls, or [`tracing_layer`](towerscope_trace::tracing_layer) in a
    /// subscriber of your own).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let client = towerscope::trace::TraceClientLayer::new(obs.tracer());
    /// # let _ = client;
    /// # Ok(()) }
    /// ```
    pub fn tracer(&self) -> SdkTracer {
        self.tracer.clone()
    }

    /// The context formats the request layer reads and outgoing calls should carry
    /// (`OTEL_PROPAGATORS`, `tracing.propagators`; default `tracecontext,baggage`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// assert_eq!(obs.propagators().to_string(), "tracecontext,baggage");
    /// # Ok(()) }
    /// ```
    pub fn propagators(&self) -> Propagators {
        self.propagators
    }

    /// A client layer for outgoing calls: a client span from [`tracer`](Self::tracer), the
    /// context written in the configured [`propagators`](Self::propagators) (so a B3
    /// configuration reaches the services called too). Put it around a hyper-util
    /// `Client` or a tonic `Channel`, with
    /// [`RequestIdClientLayer`](towerscope_request_id::RequestIdClientLayer) inside it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use hyper_util::client::legacy::Client;
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let client = tower::ServiceBuilder::new()
    ///     .layer(obs.trace_client_layer())
    ///     .layer(towerscope::request_id::RequestIdClientLayer::new())
    ///     .service(Client::builder(hyper_util::rt::TokioExecutor::new())
    ///         .build_http::<http_body_util::Full<bytes::Bytes>>());
    /// # let _ = client;
    /// # Ok(()) }
    /// ```
    pub fn trace_client_layer(&self) -> TraceClientLayer<SdkTracer> {
        TraceClientLayer::new(self.tracer.clone()).propagators(self.propagators)
    }

    /// A graceful-shutdown trigger that drains first: when `signal` completes, readiness
    /// turns `unhealthy` (`/ready` answers 503 with `"draining": true`, `grpc.health.v1`
    /// says `NOT_SERVING`; [`Health::drain`]) while the server keeps serving, and `delay`
    /// later the returned future completes, which starts the server's graceful shutdown.
    /// Give `delay` a little more than the load balancer's probe interval, so it stops
    /// sending new requests before the listener closes; behind Kubernetes, a few seconds
    /// also cover the time its endpoints take to drop the pod. A second Ctrl-C or `SIGTERM`
    /// during the wait ends it at once (the graceful shutdown then begins).
    ///
    /// ```no_run
    /// # async fn run(obs: towerscope::Observability, app: axum::Router) -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(obs.drain_on(towerscope::shutdown_signal(), Duration::from_secs(5)))
    ///     .await?;
    /// obs.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn drain_on<F>(
        &self,
        signal: F,
        delay: Duration,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let health = self.health.clone();
        async move {
            signal.await;
            if let Some(health) = &health {
                health.drain();
            }
            if !delay.is_zero() {
                tracing::info!(
                    delay_secs = delay.as_secs_f64(),
                    "shutting down: serving on while load balancers notice (a second Ctrl-C \
                     or SIGTERM ends the wait)"
                );
                // Handlers installed now see only a signal that comes after the first.
                let again = crate::shutdown_signal();
                let waited_out = crate::signal::first_of(tokio::time::sleep(delay), again).await;
                if !waited_out {
                    tracing::info!("a second signal: the drain is cut short");
                }
            }
        }
    }

    /// The health checks, when on (for `grpc.health.v1` through `Health::sync_grpc`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let liveness = obs.health().expect("on").liveness();
    /// # let _ = liveness;
    /// # Ok(()) }
    /// ```
    pub fn health(&self) -> Option<&Health> {
        self.health.as_ref()
    }

    /// The synthetic probes, when given to the builder (their results, `run_now`).
    ///
    /// ```
    /// use towerscope::health::{Synthetics, check_fn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let probes = Synthetics::builder().probe("home", check_fn(|| async { Ok::<(), String>(()) }));
    /// let obs = towerscope::Observability::builder("shop").without_logging().synthetics(probes).build()?;
    /// let results = obs.synthetics().expect("given").run_now().await;
    /// assert!(results["home"].success);
    /// # Ok(()) }
    /// ```
    pub fn synthetics(&self) -> Option<&Synthetics> {
        self.synthetics.as_ref()
    }

    /// The performance monitor the request metrics feed, when on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// assert!(obs.perf().is_some());
    /// # Ok(()) }
    /// ```
    pub fn perf(&self) -> Option<&PerfMonitor> {
        self.perf.as_ref()
    }

    /// The alert evaluation, when on (active alerts, silences).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use towerscope::alert::AlertState;
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let alerting = obs.alerting().expect("on");
    /// assert!(alerting.rules().iter().any(|r| r.name == "HighErrorRate"));
    /// // Nothing fires at start-up: each default rule's condition must hold for minutes
    /// // first (a busy machine's CPU rule may already be pending).
    /// assert!(alerting.active().iter().all(|a| a.state != AlertState::Firing));
    /// # Ok(()) }
    /// ```
    pub fn alerting(&self) -> Option<&Alerting> {
        self.alerting.as_ref()
    }

    /// The dashboard, when on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// obs.dashboard().expect("on").sample_now();
    /// # Ok(()) }
    /// ```
    pub fn dashboard(&self) -> Option<&Dashboard> {
        self.dashboard.as_ref()
    }

    /// Real-user monitoring, when on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// assert_eq!(obs.rum().expect("on").active_sessions(std::time::Duration::from_secs(300)), 0);
    /// # Ok(()) }
    /// ```
    pub fn rum(&self) -> Option<&Rum> {
        self.rum.as_ref()
    }

    /// Lines the log writer dropped because its buffer was full (0 when logging is off).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// assert_eq!(obs.dropped_log_lines(), 0);
    /// # Ok(()) }
    /// ```
    pub fn dropped_log_lines(&self) -> usize {
        self.logging.as_ref().map_or(0, LoggingGuard::dropped_lines)
    }

    /// Log lines lost because the log output failed: stdout a pipe whose reader is gone, a
    /// full disk (0 when logging is off). Exported as
    /// `towerscope_log_dropped_lines_total{reason="write_failed"}`; the first failure is
    /// also reported once on stderr.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// assert_eq!(obs.failed_log_lines(), 0);
    /// # Ok(()) }
    /// ```
    pub fn failed_log_lines(&self) -> usize {
        self.logging.as_ref().map_or(0, LoggingGuard::failed_lines)
    }

    /// The operational endpoints as an axum router: `/metrics`, `/health`, `/ready`,
    /// `/dashboard`, `/api/dashboard/*`, `/rum.js`, `/api/rum` (the pieces that are on).
    /// Merge it into the application after `.layer(obs.layer())`, or serve it on an admin
    /// port. Merged, it brings axum's default fallback, which replaces the application's
    /// when that is the default too, outside the layers: give the application a fallback
    /// before `.layer(...)` (see [`Observability`]), or requests for unknown paths pass
    /// no layer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let admin: axum::Router = obs.router(); // serve on an admin port
    /// # let _ = admin;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "axum")]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let mut router = axum::Router::new().route_service("/metrics", self.metrics.clone());
        if let Some(health) = &self.health {
            router = router
                .route_service("/health", health.liveness_service())
                .route_service("/ready", health.readiness_service());
        }
        if let Some(dashboard) = &self.dashboard {
            router = router.merge(dashboard.router());
        }
        if let Some(rum) = &self.rum {
            router = router.merge(rum.router());
        }
        router
    }

    /// The operational endpoints as one tower service that routes by path (for hyper and
    /// tonic side ports); see [`OpsService`](crate::OpsService).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// let ops = hyper_util::service::TowerToHyperService::new(obs.ops_service());
    /// # let _ = ops;
    /// # Ok(()) }
    /// ```
    pub fn ops_service(&self) -> crate::OpsService {
        crate::OpsService::new(self)
    }

    pub(crate) fn parts(
        &self,
    ) -> (
        &MetricsService,
        Option<&Health>,
        Option<&Dashboard>,
        Option<&Rum>,
    ) {
        (
            &self.metrics,
            self.health.as_ref(),
            self.dashboard.as_ref(),
            self.rum.as_ref(),
        )
    }

    /// Stops alert evaluation (after its last round), exports the spans still batched, and
    /// flushes the log buffer. Call it after the server has drained.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let obs = towerscope::Observability::builder("shop").without_logging().build()?;
    /// // … serve until a shutdown signal, then:
    /// obs.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(self) {
        if let Some(alerting) = &self.alerting {
            alerting.shutdown().await;
        }
        if let Some(tracing) = self.tracing {
            // The provider's shutdown blocks until the batch is exported.
            let done = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "span export on shutdown failed"),
                Err(e) => tracing::warn!(error = %e, "span export on shutdown did not finish"),
            }
        }
        drop(self.logging);
    }
}

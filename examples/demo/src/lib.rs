//! # towerscope-demo
//!
//! An axum "shop" API with towerscope switched on: request IDs on every request, response
//! and log line, an access log, request metrics with route templates, an in-flight gauge,
//! connection tracking, panic catching, process and system metrics, an `app_info` metric,
//! the guide's business metrics (user registrations, order values) and its typed log events.
//! Everything runs in-process; no external service is needed.
//!
//! A request with `Authorization: Bearer demo-user-<n>` is treated as signed in as user
//! `<n>` (a stand-in for a real authentication layer): the access log carries `user_id`.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /users/{id}` | a user, or 404 |
//! | `POST /users` | registers a user (`{"name": ...}`), counts a registration |
//! | `GET /orders`, `POST /orders` | lists orders; places one (`{"user_id": 1, "amount": 42.5}`) |
//! | `GET /slow` | answers after 200–800 ms |
//! | `GET /error` | always 500 |
//! | `GET /panic` | panics (caught: 500) |
//! | `POST /login` | `{"user": ..., "password": ...}`; a wrong password is a security event |
//! | `GET /metrics` | Prometheus / OpenMetrics exposition |
//! | `GET /health`, `GET /ready` | liveness; readiness of the database, disk and memory |
//!
//! The shop's data lives in SQLite through sqlx (`--database`, in memory by default); every
//! query's duration goes to the performance monitor by statement kind.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let demo = towerscope_demo::Demo::new(towerscope_demo::Config::default())
//!     .await
//!     .map_err(std::io::Error::other)?;
//! demo.serve(listener, std::future::pending()).await
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use opentelemetry_sdk::trace::SdkTracer;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use towerscope::Observability;
use towerscope_alert::{
    Alerting, AlertmanagerNotifier, Condition, RouteScope, Rule, Severity, Signal, default_rules,
    slo_burn_rate_rules, web_vitals_budget_rules,
};
use towerscope_core::UserId;
use towerscope_dashboard::Stat;
use towerscope_health::{
    CheckOptions, Criticality, DiskSpaceCheck, Health, HttpCheck, MemoryCheck, SqlxCheck,
    Synthetics, SyntheticsBuilder,
};
use towerscope_metrics::{HttpMetricsLayer, MetricsService};
use towerscope_perf::PerfMonitor;
use towerscope_rum::{PageTemplates, Rum};

mod inventory;
mod store;
mod traffic;
use inventory::{InventoryClient, Reservation};
use store::{Order, Store, User};
pub use traffic::spawn_traffic;

/// The guide's order value buckets, in dollars.
///
/// ```
/// use towerscope_demo::ORDER_VALUE_BUCKETS;
/// assert_eq!((ORDER_VALUE_BUCKETS[0], ORDER_VALUE_BUCKETS[7]), (5.0, 1000.0));
/// assert!(towerscope_metrics::Buckets::new(ORDER_VALUE_BUCKETS).is_ok()); // valid histogram bounds
/// ```
pub const ORDER_VALUE_BUCKETS: [f64; 8] = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// Largest order amount accepted, in dollars.
const MAX_ORDER_AMOUNT: f64 = 1_000_000.0;

/// Longest user name accepted, in characters.
const MAX_NAME_CHARS: usize = 100;

/// Demo settings.
///
/// ```
/// let config = towerscope_demo::Config { environment: "staging".into(), ..Default::default() };
/// assert_eq!(config.environment, "staging");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Deployment environment, exported in `app_info`.
    pub environment: String,
    /// Bearer token required on `/metrics`, if any.
    pub metrics_token: Option<String>,
    /// The shop's SQLite database (`sqlite::memory:`, or `sqlite://shop.db` for a file).
    pub database: String,
    /// The shop's tracer (from `towerscope_trace::TracingConfig`); `None`: spans with IDs,
    /// exported nowhere.
    pub tracer: Option<SdkTracer>,
    /// The inventory service's tracer (its resource names the inventory service).
    pub inventory_tracer: Option<SdkTracer>,
    /// Rules evaluated besides [`alert_rules`] (from `--rules FILE`).
    pub extra_rules: Vec<Rule>,
    /// How often alert rules are evaluated.
    pub alert_interval: Duration,
    /// An Alertmanager (`http://host:9093`) that receives the demo's alerts.
    pub alertmanager: Option<String>,
    /// Whether the shop's routes go through `Observability::layer()` (default). Off only for
    /// load comparisons (`scripts/load`): the same routes, the operational endpoints still
    /// served, no request-path layer.
    pub request_layers: bool,
}

/// A tracer that records spans (so IDs, log lines and exemplars name them) and exports
/// nothing.
fn local_tracer(service: &'static str) -> SdkTracer {
    use opentelemetry::trace::TracerProvider as _;
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .build()
        .tracer(service)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environment: "development".into(),
            metrics_token: None,
            database: "sqlite::memory:".into(),
            tracer: None,
            inventory_tracer: None,
            extra_rules: Vec::new(),
            alert_interval: Duration::from_secs(15),
            alertmanager: None,
            request_layers: true,
        }
    }
}

/// Why the demo could not start.
///
/// ```
/// let err = towerscope_demo::DemoError::from(std::io::Error::other("address in use"));
/// assert_eq!(err.to_string(), "inventory service: address in use");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The observability stack could not be built.
    #[error("observability setup failed: {0}")]
    Observability(#[from] towerscope::BuildError),
    /// The database could not be opened or set up.
    #[error("database `{url}`")]
    Database {
        /// The database URL as given.
        url: String,
        /// What went wrong.
        #[source]
        source: sqlx::Error,
    },
    /// The database URL is not a SQLite one (shown with any password removed).
    #[error(
        "database `{0}`: not a SQLite URL (the demo's store is SQLite: `sqlite::memory:`, \
         `sqlite://shop.db`)"
    )]
    NotSqlite(String),
    /// The inventory service could not start.
    #[error("inventory service: {0}")]
    Inventory(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
struct AppState {
    store: Store,
    registrations: Counter,
    order_value: Histogram,
    inventory: InventoryClient,
}

/// The demo application: its router, its metrics service and its connection tracker.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower::ServiceExt as _;
/// let demo = towerscope_demo::Demo::new(towerscope_demo::Config::default()).await?;
/// let req = http::Request::get("/metrics").body(axum::body::Body::empty())?;
/// assert_eq!(demo.router().oneshot(req).await?.status(), 200); // or `demo.serve(listener, shutdown)`
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Demo {
    router: Router,
    metrics: MetricsService,
    perf: PerfMonitor,
    obs: std::sync::Arc<Observability>,
}

/// The shop's front page: buttons that call the API, with the RUM collector.
///
/// ```
/// let page = towerscope_demo::SHOP_HTML;
/// assert!(page.contains("/rum.js")); // the page reports to RUM
/// ```
pub const SHOP_HTML: &str = include_str!("../assets/shop.html");

/// The shop page's script and style, served beside it (`/shop.js`, `/shop.css`).
const SHOP_JS: &str = include_str!("../assets/shop.js");
const SHOP_CSS: &str = include_str!("../assets/shop.css");

/// The shop page's `Content-Security-Policy`: scripts and styles from the demo's own
/// origin only (the page's own files and the RUM collector; nothing inline), requests (the
/// API calls and the collector's beacons) to it alone. A site that embeds `rum.js` needs
/// these two: `script-src` allowing where `rum.js` is served from, `connect-src` allowing
/// its endpoint (`sendBeacon` and `fetch` are both `connect-src`).
///
/// ```
/// let policy = towerscope_demo::SHOP_POLICY;
/// assert!(policy.contains("script-src 'self';") && !policy.contains("unsafe"));
/// ```
pub const SHOP_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

async fn shop_page() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, SHOP_POLICY)],
        axum::response::Html(SHOP_HTML),
    )
}

/// One of the shop page's files.
fn asset(content_type: &'static str, text: &'static str) -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
}

/// The demo's synthetic probes: `(name, path, text the body must contain)` of its
/// critical read paths (user 1 is seeded; a 200 without it is a broken page).
///
/// ```
/// let (name, path, _) = towerscope_demo::SYNTHETIC_PROBES[0];
/// assert_eq!((name, path), ("orders", "/orders"));
/// ```
pub const SYNTHETIC_PROBES: [(&str, &str, Option<&str>); 2] = [
    ("orders", "/orders", None),
    ("user", "/users/1", Some(r#""id":1"#)),
];

/// The demo's synthetic monitoring: [`SYNTHETIC_PROBES`] checked through its own listener
/// at `addr` every 15 s (`towerscope-demo` runs them; [`alert_rules`] pages when one fails
/// for a minute).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let synthetics = towerscope_demo::synthetic_probes(listener.local_addr()?).spawn()?;
/// let results = synthetics.run_now().await;
/// assert!(!results["orders"].success, "nothing serves there yet");
/// # Ok(()) }
/// ```
pub fn synthetic_probes(addr: std::net::SocketAddr) -> SyntheticsBuilder {
    let mut builder = Synthetics::builder()
        .every(Duration::from_secs(15))
        .timeout(Duration::from_secs(5));
    for (probe, path, body) in SYNTHETIC_PROBES {
        let uri: http::Uri = format!("http://{addr}{path}")
            .parse()
            .expect("a socket address and an absolute path make a valid URI");
        let mut check = HttpCheck::new(uri);
        if let Some(text) = body {
            check = check.expect_body_contains(text);
        }
        builder = builder.probe(probe, check);
    }
    builder
}

/// The demo's alert rules: the guide's four defaults, the SRE workbook's burn-rate rules
/// for a 99.9 % availability objective, Core Web Vitals budgets per page, and the shop's own (slow orders per route, a
/// registration drought, and a failing synthetic probe of [`SYNTHETIC_PROBES`]).
///
/// ```
/// let rules = towerscope_demo::alert_rules();
/// assert!(rules.iter().any(|r| r.name == "HighErrorRate"));
/// assert!(rules.iter().any(|r| r.name == "OrdersProbeFailing"));
/// ```
pub fn alert_rules() -> Vec<Rule> {
    let mut rules = default_rules();
    rules.extend(slo_burn_rate_rules("Availability", 0.999));
    // Performance budgets on what the shop's real users see (its RUM beacons).
    rules.extend(web_vitals_budget_rules());
    // No `certificate_expiry_rules()`: the demo's probes are plain HTTP, so no certificate
    // expiry is ever recorded, and a rule that reads nothing is warned about. A
    // deployment that probes its public HTTPS URL adds them.
    rules.push(
        Rule::new(
            "SlowRoute",
            Signal::P95ResponseTime(RouteScope::EachRoute),
            Condition::Gt,
            1000.0,
        )
        .severity(Severity::Medium)
        .for_duration(Duration::from_secs(300))
        .message("p95 of {route} is {value} ms (threshold {threshold} ms)")
        .annotation("summary", "{route} is slow"),
    );
    for (probe, path, _) in SYNTHETIC_PROBES {
        rules.push(
            Rule::new(
                format!("{}ProbeFailing", probe[..1].to_uppercase() + &probe[1..]),
                Signal::Gauge {
                    metric: "synthetic_probe_success".into(),
                    matchers: vec![("probe".into(), probe.into())],
                },
                Condition::Lt,
                1.0,
            )
            .severity(Severity::High)
            .for_duration(Duration::from_secs(60))
            .message(format!(
                "The synthetic probe of GET {path} has failed for a minute"
            )),
        );
    }
    rules.push(
        Rule::new(
            "NoRegistrations",
            Signal::CounterRate {
                metric: "app_user_registrations".into(),
                matchers: Vec::new(),
            },
            Condition::Eq,
            0.0,
        )
        .window(Duration::from_secs(3600))
        .for_duration(Duration::from_secs(3600))
        .severity(Severity::Low)
        .message("No user registered in the last hour"),
    );
    rules
}

/// The shop's business numbers on the dashboard, each computed live from its metrics: orders
/// and revenue per minute and the mean order (the order-value histogram's count and sum),
/// registrations per hour, and the checkout conversion (orders placed per `POST /orders`,
/// from the request metrics).
///
/// ```
/// let stats = towerscope_demo::business_stats();
/// assert_eq!(stats.len(), 5);
/// ```
pub fn business_stats() -> Vec<Stat> {
    let rate = |metric: &str, matchers: &[(&str, &str)]| Signal::CounterRate {
        metric: metric.into(),
        matchers: matchers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let orders = rate("app_order_value_dollars_count", &[]);
    let revenue = rate("app_order_value_dollars_sum", &[]);
    let checkouts = rate(
        "http_server_request_duration_seconds_count",
        &[("http_request_method", "POST"), ("http_route", "/orders")],
    );
    vec![
        Stat::new("Orders / min", orders.clone()).scale(60.0),
        Stat::new("Revenue / min", revenue.clone())
            .scale(60.0)
            .unit(" $")
            .decimals(2),
        Stat::new("Average order", revenue)
            .per(orders.clone())
            .unit(" $")
            .decimals(2),
        Stat::new("Registrations / hour", rate("app_user_registrations", &[]))
            .scale(3600.0)
            .window(Duration::from_secs(3600)),
        Stat::new("Checkout conversion", orders)
            .per(checkouts)
            .scale(100.0)
            .unit("%"),
    ]
}

impl Demo {
    /// Builds the application and registers every metric into a new registry.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower::ServiceExt as _;
    /// use towerscope_demo::{Config, Demo};
    /// let demo = Demo::new(Config::default()).await?; // an in-memory database, no external service
    /// let req = http::Request::get("/users/1").body(axum::body::Body::empty())?;
    /// assert_eq!(demo.router().oneshot(req).await?.status(), 200);
    /// # Ok(()) }
    /// ```
    pub async fn new(config: Config) -> Result<Self, DemoError> {
        Self::with_registry(config, Registry::default()).await
    }

    /// Builds the application into `registry` (which may already hold metrics, such as the
    /// log writer's dropped-lines counter). The observability stack comes from one
    /// [`towerscope::Observability`] builder; the log subscriber is the caller's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use prometheus_client::metrics::counter::Counter;
    /// use towerscope_demo::{Config, Demo};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// registry.register("deploys", "Deployments of this build", Counter::<u64>::default());
    /// let demo = Demo::with_registry(Config::default(), registry).await?;
    /// let text = demo.metrics().encode(towerscope_metrics::Format::Prometheus);
    /// assert!(text.contains("deploys_total 0") && text.contains("app_user_registrations_total"));
    /// # Ok(()) }
    /// ```
    pub async fn with_registry(config: Config, mut registry: Registry) -> Result<Self, DemoError> {
        let perf = PerfMonitor::new();
        let registrations = Counter::default();
        registry.register(
            "app_user_registrations",
            "Total user registrations",
            registrations.clone(),
        );
        let order_value = Histogram::new(ORDER_VALUE_BUCKETS);
        registry.register(
            "app_order_value_dollars",
            "Order values in dollars",
            order_value.clone(),
        );

        if !config.database.starts_with("sqlite:") {
            return Err(DemoError::NotSqlite(towerscope::core::redacted_url(
                &config.database,
            )));
        }
        let store = Store::open(&config.database, &perf)
            .await
            .map_err(|source| DemoError::Database {
                url: config.database.clone(),
                source,
            })?;
        let tracer = config
            .tracer
            .unwrap_or_else(|| local_tracer("towerscope-demo"));
        let inventory_tracer = config
            .inventory_tracer
            .unwrap_or_else(|| local_tracer("towerscope-inventory"));
        let inventory_addr = inventory::start(inventory_tracer).await?;
        let state = AppState {
            store,
            registrations,
            order_value,
            inventory: InventoryClient::new(inventory_addr, tracer.clone()),
        };

        let health = Health::builder(env!("CARGO_PKG_VERSION"))
            .check(
                "database",
                SqlxCheck::new(state.store.pool().clone()),
                CheckOptions::default().cache_for(Duration::from_secs(1)),
            )
            .check(
                "disk",
                DiskSpaceCheck::new("/", 5.0),
                CheckOptions::default().criticality(Criticality::NonCritical),
            )
            .check(
                "memory",
                MemoryCheck::new(95.0),
                CheckOptions::default().criticality(Criticality::NonCritical),
            );
        // Real-user monitoring: page and API URLs reduced to the shop's routes.
        let rum = Rum::builder().pages(PageTemplates::new([
            "/",
            "/dashboard",
            "/users",
            "/users/{id}",
            "/orders",
            "/slow",
            "/error",
            "/panic",
            "/login",
        ]));
        let mut obs = Observability::builder("towerscope-demo")
            .version(env!("CARGO_PKG_VERSION"))
            .environment(config.environment)
            .build_date(env!("TOWERSCOPE_BUILD_DATE"))
            .registry(registry)
            .without_logging()
            .tracer(tracer)
            .http_metrics(HttpMetricsLayer::builder().response_body_size(true))
            .perf_monitor(perf.clone())
            .health(health)
            .rum(rum)
            .default_alert_rules(false)
            .alert_rules(alert_rules())
            .alert_rules(config.extra_rules)
            .alert_interval(config.alert_interval);
        for stat in business_stats() {
            obs = obs.dashboard_stat(stat);
        }
        if let Some(url) = config.alertmanager {
            obs = obs.notifier(
                AlertmanagerNotifier::new(url).generator_url("http://127.0.0.1:8080/metrics"),
            );
        }
        if let Some(token) = config.metrics_token {
            obs = obs.ops_token(token);
        }
        let obs = obs.build()?;

        let api = Router::new()
            .route("/users", axum::routing::post(register_user))
            .route("/users/{id}", get(get_user))
            .route("/orders", get(list_orders).post(place_order))
            .route("/slow", get(slow))
            .route("/error", get(error))
            .route("/panic", get(panic_route))
            .route("/login", axum::routing::post(login))
            // Unknown paths too go through the layers (a fallback given before `.layer`
            // survives the merge below; axum's default one would be replaced by the merged
            // router's, outside the layers): counted as `unmatched`, logged, traced.
            .fallback(|| async { StatusCode::NOT_FOUND })
            .with_state(state);
        let api = if config.request_layers {
            // Request ID → server span → metrics (+ in-flight) → access log → panic → 500.
            api.layer(obs.layer())
        } else {
            api
        };
        let router = api
            // The demo's stand-in for authentication, outside: the access log sees the user.
            .layer(axum::middleware::from_fn(demo_auth))
            // Not measured: the shop page and the operational endpoints.
            .route("/", get(shop_page))
            .route(
                "/shop.js",
                get(|| async { asset("text/javascript; charset=utf-8", SHOP_JS) }),
            )
            .route(
                "/shop.css",
                get(|| async { asset("text/css; charset=utf-8", SHOP_CSS) }),
            )
            .merge(obs.router());
        Ok(Self {
            router,
            metrics: obs.metrics_service(),
            perf,
            obs: std::sync::Arc::new(obs),
        })
    }

    /// The router (for in-process tests).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower::ServiceExt as _;
    /// let demo = towerscope_demo::Demo::new(Default::default()).await?;
    /// for (path, status) in [("/orders", 200), ("/error", 500), ("/metrics", 200), ("/ready", 200)] {
    ///     let req = http::Request::get(path).body(axum::body::Body::empty())?;
    ///     assert_eq!(demo.router().oneshot(req).await?.status(), status, "{path}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The performance monitor the request layer feeds (per-route latency windows).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tower::ServiceExt as _;
    /// let demo = towerscope_demo::Demo::new(Default::default()).await?;
    /// let route = [("route", "/users/{id}")];
    /// let series = towerscope_metrics::PERF_SERIES;
    /// assert!(demo.perf().stats_tagged(series, &route, Duration::from_secs(60)).is_none());
    /// let req = http::Request::get("/users/1").body(axum::body::Body::empty())?;
    /// let resp = demo.router().oneshot(req).await?;
    /// http_body_util::BodyExt::collect(resp.into_body()).await?; // timed to the end of the body
    /// let stats = demo.perf().stats_tagged(series, &route, Duration::from_secs(60));
    /// assert_eq!(stats.expect("the request is in the window").count, 1);
    /// // The database queries it made are there too (`DbMonitor`).
    /// assert!(demo.perf().all_stats(Duration::from_secs(60)).keys().any(|k| k.starts_with("db_query_duration")));
    /// # Ok(()) }
    /// ```
    pub fn perf(&self) -> &PerfMonitor {
        &self.perf
    }

    /// The alert evaluation running over the demo's metrics (active alerts, silences).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let demo = towerscope_demo::Demo::new(Default::default()).await?;
    /// let alerting = demo.alerting().expect("alerting is on");
    /// assert!(alerting.rules().iter().any(|r| r.name == "SlowRoute"));
    /// assert!(alerting.active().iter().all(|a| a.name != "HighErrorRate")); // nothing failed yet
    /// # Ok(()) }
    /// ```
    pub fn alerting(&self) -> Option<&Alerting> {
        self.obs.alerting()
    }

    /// Real-user monitoring (active sessions, Core Web Vitals).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let demo = towerscope_demo::Demo::new(Default::default()).await?;
    /// let rum = demo.rum().expect("RUM is on");
    /// assert_eq!(rum.active_sessions(std::time::Duration::from_secs(300)), 0);
    /// # Ok(()) }
    /// ```
    pub fn rum(&self) -> Option<&Rum> {
        self.obs.rum()
    }

    /// The observability stack (for its shutdown, which exports the spans still batched).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let demo = towerscope_demo::Demo::new(Default::default()).await?;
    /// assert!(demo.observability().connections().is_some()); // open connections are measured
    /// # Ok(()) }
    /// ```
    pub fn observability(&self) -> &Observability {
        &self.obs
    }

    /// The metrics service (to encode the registry directly).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let demo = towerscope_demo::Demo::new(Default::default()).await?;
    /// let text = demo.metrics().encode(towerscope_metrics::Format::Prometheus);
    /// assert!(text.contains("app_info{"), "{text}");
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> &MetricsService {
        &self.metrics
    }

    /// Serves on `listener` until `shutdown` completes, then drains open requests.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let demo = towerscope_demo::Demo::new(Default::default()).await?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let server = tokio::spawn(demo.serve(listener, async { stopped.await.ok(); }));
    /// let addr_answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
    ///     use std::io::{Read as _, Write as _};
    ///     let mut conn = std::net::TcpStream::connect(addr)?;
    ///     conn.write_all(b"GET /health HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n")?;
    ///     let mut answer = String::new();
    ///     conn.read_to_string(&mut answer)?;
    ///     Ok(answer)
    /// }).await??;
    /// assert!(addr_answer.starts_with("HTTP/1.1 200"), "{addr_answer}");
    /// stop.send(()).ok();
    /// server.await??; // drained and stopped
    /// # Ok(()) }
    /// ```
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // With the peer address, so the access log can write `client_addr`.
        let app = self
            .router
            .into_make_service_with_connect_info::<towerscope_core::PeerAddr>();
        match self.obs.connections() {
            Some(tracker) => {
                axum::serve(tracker.listener(listener), app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    user_id: u64,
    amount: f64,
}

type ApiError = (StatusCode, Json<serde_json::Value>);

fn api_error(status: StatusCode, message: &str) -> ApiError {
    (status, Json(serde_json::json!({ "error": message })))
}

/// A database failure: logged with its cause, answered with a 500 that does not show it.
fn db_error(err: &sqlx::Error) -> ApiError {
    towerscope_log::app_error!(err);
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "database unavailable")
}

async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<User>, ApiError> {
    let id = i64::try_from(id).map_err(|_| api_error(StatusCode::NOT_FOUND, "no such user"))?;
    state
        .store
        .user(id)
        .await
        .map_err(|e| db_error(&e))?
        .map(Json)
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, "no such user"))
}

async fn register_user(
    State(state): State<AppState>,
    Json(new): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name must be 1 to 100 characters",
        ));
    }
    let user = state.store.add_user(name).await.map_err(|e| db_error(&e))?;
    state.registrations.inc();
    towerscope_log::business_event!("user_registration", user_id = user.id, method = "email");
    Ok((StatusCode::CREATED, Json(user)))
}

async fn list_orders(State(state): State<AppState>) -> Result<Json<Vec<Order>>, ApiError> {
    state
        .store
        .recent_orders(50)
        .await
        .map(Json)
        .map_err(|e| db_error(&e))
}

async fn place_order(
    State(state): State<AppState>,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    if !new.amount.is_finite() || new.amount <= 0.0 || new.amount > MAX_ORDER_AMOUNT {
        return Err(api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount must be in (0, 1000000]",
        ));
    }
    let user_id = i64::try_from(new.user_id)
        .map_err(|_| api_error(StatusCode::UNPROCESSABLE_ENTITY, "no such user"))?;
    // The second hop: reserve stock in the inventory service.
    state
        .inventory
        .reserve(&Reservation {
            user_id: new.user_id,
            amount: new.amount,
        })
        .await
        .map_err(|e| {
            towerscope_trace::record_error(&e);
            tracing::error!(
                error = &e as &dyn std::error::Error,
                "inventory reservation failed"
            );
            api_error(StatusCode::SERVICE_UNAVAILABLE, "inventory unavailable")
        })?;
    let order = state
        .store
        .add_order(user_id, new.amount)
        .await
        .map_err(|e| db_error(&e))?
        .ok_or_else(|| api_error(StatusCode::UNPROCESSABLE_ENTITY, "no such user"))?;
    state.order_value.observe(order.amount);
    towerscope_log::business_event!(
        "order_placed",
        order_id = order.id,
        user_id = order.user_id,
        amount = order.amount
    );
    Ok((StatusCode::CREATED, Json(order)))
}

async fn slow() -> &'static str {
    // Spread over 200–800 ms from the clock's sub-second part: no RNG dependency needed.
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_millis())
            .unwrap_or(0)
            % 600,
    );
    tokio::time::sleep(Duration::from_millis(200 + jitter)).await;
    "finally"
}

/// The error the `/error` route simulates.
#[derive(Debug, thiserror::Error)]
#[error("payment provider unavailable")]
struct PaymentError(#[source] std::io::Error);

async fn error() -> ApiError {
    let err = PaymentError(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connect timed out",
    ));
    towerscope_log::app_error!(&err, route = "/error");
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "simulated failure")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
    password: String,
}

async fn login(Json(login): Json<Login>) -> Result<&'static str, ApiError> {
    // The demo's only account: ada / correct-horse. The password field is masked in logs.
    if login.user == "ada" && login.password == "correct-horse" {
        towerscope_log::security_event!("login_succeeded", user = login.user.as_str());
        Ok("welcome")
    } else {
        let user: String = login.user.chars().take(64).collect();
        towerscope_log::security_event!(
            "login_failed",
            user = user.as_str(),
            password = login.password.as_str()
        );
        Err(api_error(
            StatusCode::UNAUTHORIZED,
            "wrong user or password",
        ))
    }
}

/// A stand-in for an authentication layer: `Authorization: Bearer demo-user-<n>` signs the
/// request in as user `<n>` by putting a [`UserId`] into the extensions.
async fn demo_auth(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let user = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer demo-user-"))
        .and_then(|n| n.parse::<u64>().ok());
    if let Some(n) = user {
        req.extensions_mut().insert(UserId::new(n.to_string()));
    }
    next.run(req).await
}

async fn panic_route() -> &'static str {
    panic!("simulated panic in a handler")
}

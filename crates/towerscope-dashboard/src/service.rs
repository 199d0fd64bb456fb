//! The page, the JSON API, and the sampler that keeps the history.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::{Engine as _, prelude::BASE64_STANDARD};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use towerscope_alert::{Alerting, SeriesNews, SeriesWatch, Sources};
use towerscope_health::{Health, Synthetics, WeakSynthetics};
use towerscope_metrics::MetricsService;
use towerscope_perf::PerfMonitor;
use towerscope_rum::Rum;

use crate::data::{CurrentMetrics, History, Stat, read};

/// The dashboard page, written here and embedded (no CDN).
///
/// ```
/// // The page loads nothing from elsewhere: no CDN, no third-party script.
/// assert!(!towerscope_dashboard::DASHBOARD_HTML.contains("https://"));
/// ```
pub const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");

/// The page's `Content-Security-Policy`: its one inline script and its one inline style
/// are allowed by their SHA-256 hashes and nothing else is. No other script runs (no
/// injected `<script>`, inline handler or `javascript:` address), no `style` attribute
/// applies, the page talks to its own origin only, loads no image, plugin or font from
/// elsewhere, and no other site can frame it.
fn page_policy() -> &'static HeaderValue {
    static POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
        let script = inline_hash(DASHBOARD_HTML, "<script>", "</script>");
        let style = inline_hash(DASHBOARD_HTML, "<style>", "</style>");
        let policy = format!(
            "default-src 'none'; script-src '{script}'; style-src '{style}'; \
             connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        );
        HeaderValue::from_str(&policy).expect("the policy is ASCII text")
    });
    &POLICY
}

/// `sha256-…` of the text between the first `open` tag of `page` and its `close`: the
/// source of a CSP hash source (the exact characters between the tags).
fn inline_hash(page: &str, open: &str, close: &str) -> String {
    let start = page.find(open).expect("the page has the element") + open.len();
    let len = page[start..].find(close).expect("the element is closed");
    let digest = Sha256::digest(&page.as_bytes()[start..start + len]);
    format!("sha256-{}", BASE64_STANDARD.encode(digest))
}

struct Inner {
    sources: Mutex<Sources>,
    perf: Option<PerfMonitor>,
    health: Option<Health>,
    alerting: Option<Alerting>,
    rum: Option<Rum>,
    /// Read without keeping the probes running; may be attached after the start.
    synthetics: Mutex<Option<WeakSynthetics>>,
    stats: Vec<Stat>,
    history: Mutex<History>,
    latest: Mutex<CurrentMetrics>,
    token: Option<String>,
    refresh: Duration,
    interval: Duration,
    watch: Mutex<SeriesWatch>,
}

impl Inner {
    fn sample(&self) {
        let (current, point) = {
            let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            let sampled = read(
                &mut sources,
                self.perf.as_ref(),
                self.rum.as_ref(),
                &self.stats,
            );
            let stats = &self.stats;
            self.watch
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .check(
                    Instant::now(),
                    |i| {
                        stats[i]
                            .signals()
                            .filter_map(|(signal, _)| sources.missing_series(&signal))
                            .collect()
                    },
                    |i, news| match news {
                        SeriesNews::Missing { series, waited } => tracing::warn!(
                            stat = stats[i].label(),
                            series = series.join(", "),
                            waited = ?waited,
                            "dashboard stat reads no series: the registry has had none of this \
                             name and labels since start (a misspelt metric name or label value, \
                             or nothing has recorded one yet); until one appears it shows 0 or \
                             nothing"
                        ),
                        SeriesNews::Appeared => {
                            tracing::info!(
                                stat = stats[i].label(),
                                "dashboard stat reads its series now"
                            );
                        }
                    },
                );
            sampled
        };
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = current;
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(point);
    }
}

/// Builds a [`Dashboard`].
///
/// ```
/// use std::time::Duration;
/// use towerscope_metrics::MetricsService;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
/// let dashboard = towerscope_dashboard::Dashboard::builder(metrics)
///     .bearer_token("0p3rations")
///     .refresh(Duration::from_secs(2))
///     .history(Duration::from_secs(10), Duration::from_secs(3600)) // a point every 10 s, for an hour
///     .spawn(); // sampling runs on this runtime until the last clone is dropped
/// # drop(dashboard);
/// # });
/// ```
#[must_use]
pub struct DashboardBuilder {
    metrics: MetricsService,
    perf: Option<PerfMonitor>,
    health: Option<Health>,
    alerting: Option<Alerting>,
    rum: Option<Rum>,
    synthetics: Option<WeakSynthetics>,
    stats: Vec<Stat>,
    token: Option<String>,
    refresh: Duration,
    interval: Duration,
    keep: Duration,
    missing_after: Duration,
}

impl std::fmt::Debug for DashboardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardBuilder").finish_non_exhaustive()
    }
}

impl DashboardBuilder {
    /// Latency from the performance monitor the metrics layer feeds.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// perf.record(towerscope_metrics::PERF_SERIES, 0.040, &[("route", "/orders")]);
    /// let dashboard = Dashboard::builder(metrics).perf(perf).spawn();
    /// dashboard.sample_now();
    /// let history = get(&dashboard, "/api/dashboard/history").await;
    /// let p50 = history["points"][0]["p50_ms"].as_f64().expect("a median from the monitor");
    /// assert!((p50 - 40.0).abs() < 1.0, "{history}"); // 40 ms
    /// # });
    /// ```
    pub fn perf(mut self, perf: PerfMonitor) -> Self {
        self.perf = Some(perf);
        self
    }
    /// The health card.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let health = towerscope_health::Health::builder("1.0.0").build();
    /// let dashboard = Dashboard::builder(metrics).health(health).spawn();
    /// let card = get(&dashboard, "/api/dashboard/health").await;
    /// assert_eq!(card["status"], "healthy");
    /// # });
    /// ```
    pub fn health(mut self, health: Health) -> Self {
        self.health = Some(health);
        self
    }
    /// The alerts card.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// use towerscope_alert::{Alerting, SeriesNews, SeriesWatch, Sources};
    /// let alerting = Alerting::builder(Sources::new(metrics.clone())).spawn();
    /// let dashboard = Dashboard::builder(metrics).alerting(alerting).spawn();
    /// let alerts = get(&dashboard, "/api/dashboard/alerts").await;
    /// assert_eq!(alerts, serde_json::json!({ "alerts": [] })); // attached, nothing firing
    /// # });
    /// ```
    pub fn alerting(mut self, alerting: Alerting) -> Self {
        self.alerting = Some(alerting);
        self
    }
    /// Active users and the Core Web Vitals chart.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = towerscope_rum::Rum::builder().build(&mut registry);
    /// let dashboard = Dashboard::builder(metrics).rum(rum).spawn();
    /// dashboard.sample_now();
    /// let current = get(&dashboard, "/api/dashboard/metrics").await;
    /// assert_eq!(current["app"]["active_users"], 0); // known, and zero (not `null`)
    /// # });
    /// ```
    pub fn rum(mut self, rum: Rum) -> Self {
        self.rum = Some(rum);
        self
    }

    /// The synthetic probes card: each probe's last run (`/api/dashboard/synthetics`). The
    /// dashboard reads the results without keeping the probes running.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// use towerscope_health::{Synthetics, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let synthetics = Synthetics::builder()
    ///     .probe("checkout", check_fn(|| async { Err::<(), _>("payment page: 502") }))
    ///     .spawn()
    ///     .unwrap();
    /// synthetics.run_now().await;
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).synthetics(&synthetics).spawn();
    /// let card = get(&dashboard, "/api/dashboard/synthetics").await;
    /// assert_eq!(card["probes"]["checkout"]["success"], false);
    /// assert_eq!(card["probes"]["checkout"]["error"], "payment page: 502");
    /// # });
    /// ```
    pub fn synthetics(mut self, synthetics: &Synthetics) -> Self {
        self.synthetics = Some(synthetics.downgrade());
        self
    }

    /// Adds one of the application's own numbers to the business card (shown in the
    /// order added; `/api/dashboard/metrics` gives them under `business`).
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::Signal;
    /// use towerscope_dashboard::{Dashboard, Stat};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let carts = Gauge::<i64>::default();
    /// registry.register("shop_open_carts", "Carts with items", carts.clone());
    /// let metrics = towerscope_metrics::MetricsService::new(registry);
    /// let dashboard = Dashboard::builder(metrics)
    ///     .stat(Stat::new("Open carts", Signal::Gauge { metric: "shop_open_carts".into(), matchers: vec![] }))
    ///     .spawn();
    /// carts.set(7);
    /// dashboard.sample_now();
    /// let card = get(&dashboard, "/api/dashboard/metrics").await;
    /// assert_eq!(card["business"][0]["label"], "Open carts");
    /// assert_eq!(card["business"][0]["value"], 7.0);
    /// # });
    /// ```
    pub fn stat(mut self, stat: Stat) -> Self {
        self.stats.push(stat);
        self
    }

    /// Requires `Authorization: Bearer <token>` (or `?token=` for the page), the same
    /// token you give `/metrics`.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).bearer_token("t0ken").spawn();
    /// let page = |uri: &'static str| dashboard.service().oneshot(http::Request::get(uri).body(()).unwrap());
    /// assert_eq!(page("/dashboard").await.unwrap().status(), 401);
    /// assert_eq!(page("/dashboard?token=t0ken").await.unwrap().status(), 200);
    /// # });
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// How often the page refreshes (default 5 s).
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).refresh(std::time::Duration::from_secs(2)).spawn();
    /// let req = http::Request::get("/dashboard").body(()).unwrap();
    /// let page = dashboard.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// assert!(String::from_utf8_lossy(&page.to_bytes()).contains("data-refresh-ms=\"2000\""));
    /// # });
    /// ```
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every.max(Duration::from_millis(250));
        self
    }
    /// One history point every `every` (at least 100 ms, at most a day), kept for `keep`
    /// (defaults 5 s and 1 h; at most 100,000 points are kept).
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// use std::time::Duration;
    /// let dashboard = Dashboard::builder(metrics)
    ///     .history(Duration::from_secs(30), Duration::from_secs(24 * 3600)) // a day, 2,880 points
    ///     .spawn();
    /// # drop(dashboard);
    /// # });
    /// ```
    pub fn history(mut self, every: Duration, keep: Duration) -> Self {
        self.interval = every.clamp(Duration::from_millis(100), towerscope_core::MAX_PERIOD);
        self.keep = keep;
        self
    }

    /// How long a business [`Stat`] may read no series of the metric it names, with its
    /// matchers, before one `WARN` says so (default 5 minutes from `spawn`): a misspelt
    /// name or label value would otherwise show 0 (a rate) or nothing for ever. One `INFO`
    /// follows when the series shows up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::Signal;
    /// use towerscope_dashboard::{Dashboard, Stat};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let orders = Signal::CounterRate { metric: "shop_ordres".into(), matchers: vec![] }; // a typo
    /// let dashboard = Dashboard::builder(metrics)
    ///     .stat(Stat::new("Orders / min", orders).scale(60.0))
    ///     .missing_series_after(Duration::ZERO) // warns at the first sample
    ///     .spawn();
    /// # drop(dashboard);
    /// # });
    /// ```
    pub fn missing_series_after(mut self, after: Duration) -> Self {
        self.missing_after = after;
        self
    }

    /// Takes the first sample and starts sampling on a tokio task.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).spawn(); // inside a tokio runtime
    /// let current = get(&dashboard, "/api/dashboard/metrics").await;
    /// assert!(current["time"].as_f64().unwrap() > 0.0); // the first sample is there at once
    /// # });
    /// ```
    pub fn spawn(self) -> Dashboard {
        let capacity = (self.keep.as_secs_f64() / self.interval.as_secs_f64()).ceil() as usize;
        let stat_count = self.stats.len();
        let inner = Arc::new(Inner {
            sources: Mutex::new(self.perf.clone().map_or_else(
                || Sources::new(self.metrics.clone()),
                |p| Sources::new(self.metrics.clone()).perf(p),
            )),
            perf: self.perf,
            health: self.health,
            alerting: self.alerting,
            rum: self.rum,
            synthetics: Mutex::new(self.synthetics),
            stats: self.stats,
            history: Mutex::new(History::new(capacity.clamp(1, 100_000))),
            latest: Mutex::new(CurrentMetrics::default()),
            token: self.token,
            refresh: self.refresh,
            interval: self.interval,
            watch: Mutex::new(SeriesWatch::new(stat_count, self.missing_after)),
        });
        inner.sample();
        let weak = Arc::downgrade(&inner);
        let every = self.interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                // A panic (in a collector of the application's, encoded with the registry)
                // must not end the task: the history would stop for good.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| inner.sample())) {
                    tracing::error!(
                        panic.message = towerscope_core::panic_message(&*panic),
                        "dashboard sampling panicked; sampling again at the next tick"
                    );
                }
            }
        });
        Dashboard { inner }
    }
}

/// The running dashboard. Sampling stops when the last clone is dropped.
///
/// ```
/// use tower::ServiceExt as _;
/// use towerscope_metrics::MetricsService;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
/// let dashboard = towerscope_dashboard::Dashboard::builder(metrics).spawn();
/// dashboard.sample_now();
/// let req = http::Request::get("/api/dashboard/metrics").body(()).unwrap();
/// let resp = dashboard.service().oneshot(req).await.unwrap();
/// assert_eq!(resp.status(), 200);
/// # });
/// ```
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl Dashboard {
    /// A dashboard over the application's metrics; add the other sources on the builder.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).spawn();
    /// # drop(dashboard);
    /// # });
    /// ```
    pub fn builder(metrics: MetricsService) -> DashboardBuilder {
        DashboardBuilder {
            metrics,
            perf: None,
            health: None,
            alerting: None,
            rum: None,
            synthetics: None,
            stats: Vec::new(),
            token: None,
            refresh: Duration::from_secs(5),
            interval: Duration::from_secs(5),
            keep: Duration::from_secs(3600),
            missing_after: Duration::from_secs(300),
        }
    }

    /// Takes a sample now (outside the schedule).
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).spawn();
    /// dashboard.sample_now();
    /// let history = get(&dashboard, "/api/dashboard/history").await;
    /// assert!(!history["points"].as_array().unwrap().is_empty(), "{history}");
    /// # });
    /// ```
    pub fn sample_now(&self) {
        self.inner.sample();
    }

    /// Shows `synthetics` on the synthetic probes card from now on (replacing any shown
    /// before): for probes started after the dashboard, once the server listens. The
    /// dashboard reads the results without keeping the probes running.
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// use towerscope_health::{Synthetics, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).spawn();
    /// assert_eq!(get(&dashboard, "/api/dashboard/synthetics").await["configured"], false);
    /// let synthetics = Synthetics::builder()
    ///     .probe("home", check_fn(|| async { Ok::<(), String>(()) }))
    ///     .spawn()
    ///     .unwrap();
    /// synthetics.run_now().await;
    /// dashboard.show_synthetics(&synthetics);
    /// let card = get(&dashboard, "/api/dashboard/synthetics").await;
    /// assert_eq!(card["probes"]["home"]["success"], true);
    /// # });
    /// ```
    pub fn show_synthetics(&self, synthetics: &Synthetics) {
        *self
            .inner
            .synthetics
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(synthetics.downgrade());
    }

    /// The page and the API as one tower service (it routes by path itself).
    ///
    /// ```
    /// # use http_body_util::BodyExt as _;
    /// # use tower::ServiceExt as _;
    /// # async fn get(d: &towerscope_dashboard::Dashboard, path: &str) -> serde_json::Value {
    /// #     let req = http::Request::get(path).body(()).unwrap();
    /// #     let body = d.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
    /// #     serde_json::from_slice(&body.to_bytes()).unwrap()
    /// # }
    /// use towerscope_dashboard::Dashboard;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = Dashboard::builder(metrics).spawn();
    /// let req = http::Request::get("/api/dashboard/nothing-here").body(()).unwrap();
    /// assert_eq!(dashboard.service().oneshot(req).await.unwrap().status(), 404);
    /// # });
    /// ```
    pub fn service(&self) -> DashboardService {
        DashboardService {
            dashboard: self.clone(),
        }
    }

    /// `/dashboard` and `/api/dashboard/*` for axum.
    ///
    /// ```
    /// use tower::ServiceExt as _;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let dashboard = towerscope_dashboard::Dashboard::builder(metrics).spawn();
    /// let app: axum::Router = axum::Router::new().merge(dashboard.router());
    /// let page = app.clone().oneshot(http::Request::get("/dashboard").body(axum::body::Body::empty()).unwrap()).await.unwrap();
    /// assert_eq!(page.status(), 200);
    /// assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    /// let api = app.oneshot(http::Request::get("/api/dashboard/history").body(axum::body::Body::empty()).unwrap()).await.unwrap();
    /// assert_eq!(api.status(), 200);
    /// # });
    /// ```
    #[cfg(feature = "axum")]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let svc = self.service();
        axum::Router::new()
            .route_service("/dashboard", svc.clone())
            .route_service("/api/dashboard/{which}", svc)
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(token) = &self.inner.token else {
            return true;
        };
        let from_header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let from_query = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        [from_header, from_query]
            .into_iter()
            .flatten()
            .any(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
    }

    async fn handle<B>(self, req: Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": "GET only"}),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if !self.authorized(&req) {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "bearer token required"}),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        let inner = &self.inner;
        match req.uri().path() {
            "/dashboard" | "/dashboard/" => {
                let page = DASHBOARD_HTML.replace(
                    "data-refresh-ms=\"5000\"",
                    &format!("data-refresh-ms=\"{}\"", inner.refresh.as_millis()),
                );
                let mut r = Response::new(Full::new(Bytes::from(page)));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                h.insert(header::CONTENT_SECURITY_POLICY, page_policy().clone());
                // A token given in the address stays on this page.
                h.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                );
                h.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                r
            }
            "/api/dashboard/metrics" => {
                let latest = inner
                    .latest
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                json(StatusCode::OK, &latest)
            }
            "/api/dashboard/alerts" => match &inner.alerting {
                Some(a) => json(StatusCode::OK, &serde_json::json!({ "alerts": a.active() })),
                None => json(
                    StatusCode::OK,
                    &serde_json::json!({ "alerts": [], "configured": false }),
                ),
            },
            "/api/dashboard/health" => match &inner.health {
                Some(h) => json(StatusCode::OK, &h.readiness().await),
                None => json(
                    StatusCode::OK,
                    &serde_json::json!({ "status": null, "checks": {}, "configured": false }),
                ),
            },
            "/api/dashboard/synthetics" => {
                let view = inner
                    .synthetics
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                json(
                    StatusCode::OK,
                    &synthetics_card(view.and_then(|v| v.results())),
                )
            }
            "/api/dashboard/history" => {
                let points = inner
                    .history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .points();
                let vitals = inner
                    .rum
                    .as_ref()
                    .map(|r| r.vitals_p75(Duration::from_secs(3600)))
                    .unwrap_or_default();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "interval_seconds": inner.interval.as_secs_f64(),
                        "points": points,
                        "vitals_p75": vitals,
                    }),
                )
            }
            _ => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "no such dashboard resource"}),
            ),
        }
    }
}

/// `{"configured", "time", "probes": {name: {"success", "duration_ms", "error", "at",
/// "cert_expiry"}}}` (times in seconds since the Unix epoch, `time` now, by the server's
/// clock; `cert_expiry` null for a probe not over TLS); not configured when no probes are
/// attached or they have stopped.
fn synthetics_card(
    results: Option<std::collections::BTreeMap<String, towerscope_health::ProbeResult>>,
) -> serde_json::Value {
    let epoch = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let time = epoch(std::time::SystemTime::now());
    let Some(results) = results else {
        return serde_json::json!({ "configured": false, "time": time, "probes": {} });
    };
    let probes: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, r)| {
            let card = serde_json::json!({
                "success": r.success,
                "duration_ms": r.duration_ms,
                "error": r.error,
                "at": epoch(r.at),
                "cert_expiry": r.cert_expiry.map(epoch),
            });
            (name, card)
        })
        .collect();
    serde_json::json!({ "configured": true, "time": time, "probes": probes })
}

/// The dashboard as a tower service: see [`Dashboard`].
///
/// ```
/// use tower::ServiceExt as _;
/// use towerscope_metrics::MetricsService;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
/// let dashboard = towerscope_dashboard::Dashboard::builder(metrics).bearer_token("t0ken").spawn();
/// let page = |auth: Option<&str>| {
///     let mut req = http::Request::get("/dashboard");
///     if let Some(auth) = auth {
///         req = req.header("authorization", auth);
///     }
///     dashboard.service().oneshot(req.body(()).unwrap())
/// };
/// assert_eq!(page(None).await.unwrap().status(), 401);
/// assert_eq!(page(Some("Bearer t0ken")).await.unwrap().status(), 200);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct DashboardService {
    dashboard: Dashboard,
}

impl<B: Send + 'static> tower_service::Service<Request<B>> for DashboardService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let d = self.dashboard.clone();
        Box::pin(async move { Ok(d.handle(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_hash_is_the_csp_hash_of_the_text_between_the_tags() {
        // The example of the CSP specification (and MDN): the script `alert('Hello, world.');`.
        let page = "<p><script>alert('Hello, world.');</script><script>other()</script>";
        assert_eq!(
            inline_hash(page, "<script>", "</script>"),
            "sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng="
        );
    }

    #[test]
    fn the_policy_allows_the_page_own_script_and_style_and_nothing_inline_else() {
        let policy = page_policy().to_str().expect("ASCII");
        assert!(!policy.contains("unsafe"), "{policy}");
        let sources = |directive: &str| {
            policy
                .split(';')
                .map(str::trim)
                .find_map(|d| d.strip_prefix(directive))
                .map(|s| s.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let script = inline_hash(DASHBOARD_HTML, "<script>", "</script>");
        let style = inline_hash(DASHBOARD_HTML, "<style>", "</style>");
        assert_eq!(sources("script-src "), [format!("'{script}'")]);
        assert_eq!(sources("style-src "), [format!("'{style}'")]);
        assert_eq!(sources("default-src "), ["'none'"]);
        assert_eq!(sources("connect-src "), ["'self'"]);
        assert_eq!(sources("frame-ancestors "), ["'none'"]);
        // One script and one style: a second would be blocked.
        assert_eq!(DASHBOARD_HTML.matches("<script").count(), 1);
        assert_eq!(DASHBOARD_HTML.matches("<style").count(), 1);
    }
}

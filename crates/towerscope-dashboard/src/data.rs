//! What the dashboard shows, computed from the live sources, and its history.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use towerscope_alert::{RouteScope, Signal, Sources};
use towerscope_metrics::{MetricNames, SystemNames};

/// The system card.
///
/// ```
/// use http_body_util::BodyExt as _;
/// use tower::ServiceExt as _;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
/// let dashboard = towerscope_dashboard::Dashboard::builder(metrics).spawn();
/// dashboard.sample_now();
/// let get = |path: &'static str| {
///     let svc = dashboard.service();
///     async move {
///         let req = http::Request::get(path).body(()).unwrap();
///         let body = svc.oneshot(req).await.unwrap().into_body().collect().await.unwrap();
///         serde_json::from_slice::<serde_json::Value>(&body.to_bytes()).unwrap()
///     }
/// };
/// let system = &get("/api/dashboard/metrics").await["system"];
/// assert!(system.get("cpu_percent").is_some() && system.get("disk_percent").is_some());
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemCard {
    /// CPU in use, percent.
    pub cpu_percent: Option<f64>,
    /// Memory in use, percent.
    pub memory_percent: Option<f64>,
    /// Disk in use, percent (the fullest).
    pub disk_percent: Option<f64>,
}

/// The application card.
///
/// ```
/// use http_body_util::BodyExt as _;
/// use tower::ServiceExt as _;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
/// let dashboard = towerscope_dashboard::Dashboard::builder(metrics).spawn();
/// dashboard.sample_now();
/// let get = |path: &'static str| {
///     let svc = dashboard.service();
///     async move {
///         let req = http::Request::get(path).body(()).unwrap();
///         let body = svc.oneshot(req).await.unwrap().into_body().collect().await.unwrap();
///         serde_json::from_slice::<serde_json::Value>(&body.to_bytes()).unwrap()
///     }
/// };
/// let app = &get("/api/dashboard/metrics").await["app"];
/// // No RUM attached: the number of real users is unknown (`null`), not zero.
/// assert!(app["active_users"].is_null());
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppCard {
    /// Requests per minute over the last minute.
    pub requests_per_minute: Option<f64>,
    /// Failed requests, percent, over the last minute.
    pub error_rate_percent: Option<f64>,
    /// Mean response time over the last minute, milliseconds.
    pub avg_response_ms: Option<f64>,
    /// 95th percentile response time over the last minute, milliseconds.
    pub p95_response_ms: Option<f64>,
    /// Requests being served.
    pub in_flight: Option<f64>,
    /// Distinct real-user sessions in the last 5 minutes.
    pub active_users: Option<usize>,
}

/// One of the application's own numbers on the dashboard's business card: orders per
/// minute, revenue, a conversion rate. Computed live from the registry by the same
/// [`Signal`]s alert rules use (a counter's or a histogram's sum or count as a rate, a
/// gauge, a histogram quantile), optionally divided by a second signal, then scaled: never
/// a number written into the page. A signal with one value per route or label
/// (`RouteScope::EachRoute`, a quantile `by` a label) shows its first: select one with
/// matchers or a route.
///
/// ```
/// use std::time::Duration;
/// use towerscope_alert::Signal;
/// use towerscope_dashboard::Stat;
/// let rate = |metric: &str| Signal::CounterRate { metric: metric.into(), matchers: vec![] };
/// // Revenue per minute from an order-value histogram's sum (dollars per second × 60).
/// let revenue = Stat::new("Revenue / min", rate("shop_order_value_dollars_sum")).scale(60.0).unit(" $");
/// // A conversion rate: orders per checkout attempt, in percent, over the last 15 minutes.
/// let checkout = Stat::new("Checkout conversion", rate("shop_order_value_dollars_count"))
///     .per(rate("shop_checkouts_started"))
///     .scale(100.0)
///     .unit("%")
///     .window(Duration::from_secs(900));
/// # let _ = (revenue, checkout);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    label: String,
    signal: Signal,
    per: Option<Signal>,
    scale: f64,
    unit: String,
    decimals: Option<u8>,
    window: Duration,
}

impl Stat {
    /// The longest label kept (longer ones are cut at a character boundary).
    ///
    /// ```
    /// assert_eq!(towerscope_dashboard::Stat::MAX_LABEL, 80);
    /// ```
    pub const MAX_LABEL: usize = 80;

    /// `signal` under `label`, unscaled, over the last five minutes.
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let queue = towerscope_dashboard::Stat::new(
    ///     "Emails queued",
    ///     Signal::Gauge { metric: "shop_email_queue_depth".into(), matchers: vec![] },
    /// );
    /// # let _ = queue;
    /// ```
    pub fn new(label: impl Into<String>, signal: Signal) -> Self {
        let mut label = label.into();
        if label.len() > Self::MAX_LABEL {
            let mut end = Self::MAX_LABEL;
            while !label.is_char_boundary(end) {
                end -= 1;
            }
            label.truncate(end);
        }
        Self {
            label,
            signal,
            per: None,
            scale: 1.0,
            unit: String::new(),
            decimals: None,
            window: Duration::from_secs(300),
        }
    }

    /// Divides by `denominator` (over the same window): a ratio such as a conversion rate.
    /// Unknown (`null`, shown as `–`) while the denominator is zero or unknown.
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let logins = |outcome: &str| Signal::CounterRate {
    ///     metric: "shop_logins".into(),
    ///     matchers: vec![("outcome".into(), outcome.into())],
    /// };
    /// let stat = towerscope_dashboard::Stat::new("Failed sign-ins", logins("failure"))
    ///     .per(Signal::CounterRate { metric: "shop_logins".into(), matchers: vec![] })
    ///     .scale(100.0)
    ///     .unit("%");
    /// # let _ = stat;
    /// ```
    pub fn per(mut self, denominator: Signal) -> Self {
        self.per = Some(denominator);
        self
    }

    /// Multiplies the value: `60.0` turns a per-second rate into a per-minute one, `100.0`
    /// a fraction into percent. A factor that is not finite is ignored.
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let stat = towerscope_dashboard::Stat::new(
    ///     "Sign-ups / hour",
    ///     Signal::CounterRate { metric: "shop_signups".into(), matchers: vec![] },
    /// )
    /// .scale(3600.0);
    /// # let _ = stat;
    /// ```
    pub fn scale(mut self, factor: f64) -> Self {
        if factor.is_finite() {
            self.scale = factor;
        }
        self
    }

    /// Text shown right after the number, as written (`"%"`, `" $"`, `" / min"`).
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let stat = towerscope_dashboard::Stat::new(
    ///     "Stock value",
    ///     Signal::Gauge { metric: "shop_stock_value_dollars".into(), matchers: vec![] },
    /// )
    /// .unit(" $");
    /// # let _ = stat;
    /// ```
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Shows the value with exactly `places` decimals (at most 6): cents for money. By
    /// default the page rounds like its other cards (one decimal under 100, none above).
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let rate = |metric: &str| Signal::CounterRate { metric: metric.into(), matchers: vec![] };
    /// let mean = towerscope_dashboard::Stat::new("Average order", rate("shop_order_value_dollars_sum"))
    ///     .per(rate("shop_order_value_dollars_count"))
    ///     .unit(" $")
    ///     .decimals(2); // 19.99 $, not 20 $
    /// # let _ = mean;
    /// ```
    pub fn decimals(mut self, places: u8) -> Self {
        self.decimals = Some(places.min(6));
        self
    }

    /// The window rates and quantiles are taken over (default five minutes; 1 s to a day).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::Signal;
    /// let stat = towerscope_dashboard::Stat::new(
    ///     "Orders / min",
    ///     Signal::CounterRate { metric: "shop_orders".into(), matchers: vec![] },
    /// )
    /// .scale(60.0)
    /// .window(Duration::from_secs(60));
    /// # let _ = stat;
    /// ```
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.clamp(Duration::from_secs(1), towerscope_core::MAX_PERIOD);
        self
    }

    /// Its label.
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let stat = towerscope_dashboard::Stat::new("Open carts", Signal::Gauge { metric: "shop_open_carts".into(), matchers: vec![] });
    /// assert_eq!(stat.label(), "Open carts");
    /// ```
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its unit text and decimals, as configured.
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let stat = towerscope_dashboard::Stat::new("Stock", Signal::Gauge { metric: "shop_stock_dollars".into(), matchers: vec![] })
    ///     .unit(" $")
    ///     .decimals(2);
    /// assert_eq!(stat.display(), (" $", Some(2)));
    /// ```
    pub fn display(&self) -> (&str, Option<u8>) {
        (&self.unit, self.decimals)
    }

    /// The same number as a PromQL expression over Prometheus' copy of the metrics (for a
    /// Grafana panel: `towerscope::monitoring::grafana_dashboard_with_stats`), with
    /// `matcher` added to every selector as written ([`towerscope_alert::signal_promql`]).
    /// Unlike the card, a ratio over zero is whatever Prometheus makes of it (`NaN`, `+Inf`).
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// use towerscope_metrics::{MetricNames, SystemNames};
    /// let rate = |metric: &str| Signal::CounterRate { metric: metric.into(), matchers: vec![] };
    /// let mean = towerscope_dashboard::Stat::new("Average order", rate("shop_order_value_dollars_sum"))
    ///     .per(rate("shop_order_value_dollars_count"));
    /// assert_eq!(
    ///     mean.promql(&MetricNames::otel(), &SystemNames::system(), "").as_deref(),
    ///     Some("(sum(rate(shop_order_value_dollars_sum[5m]))) / (sum(rate(shop_order_value_dollars_count[5m]))) * 1")
    /// );
    /// ```
    pub fn promql(
        &self,
        names: &MetricNames,
        system: &SystemNames,
        matcher: &str,
    ) -> Option<String> {
        let expr =
            |signal| towerscope_alert::signal_promql(signal, self.window, names, system, matcher);
        let numerator = expr(&self.signal)?;
        Some(match &self.per {
            None => format!("({numerator}) * {}", self.scale),
            Some(per) => format!("({numerator}) / ({}) * {}", expr(per)?, self.scale),
        })
    }

    /// The signals to read, each with this stat's window.
    pub(crate) fn signals(&self) -> impl Iterator<Item = (Signal, Duration)> + '_ {
        std::iter::once(&self.signal)
            .chain(self.per.as_ref())
            .map(|s| (s.clone(), self.window))
    }

    /// The value from the signals' values, in the order [`signals`](Self::signals) gave.
    fn value(&self, values: &mut impl Iterator<Item = Option<f64>>) -> StatValue {
        let numerator = values.next().flatten();
        let value = match &self.per {
            None => numerator,
            Some(_) => match (numerator, values.next().flatten()) {
                (Some(n), Some(d)) if d != 0.0 => Some(n / d),
                _ => None,
            },
        };
        StatValue {
            label: self.label.clone(),
            value: value.map(|v| v * self.scale).filter(|v| v.is_finite()),
            unit: self.unit.clone(),
            decimals: self.decimals,
        }
    }
}

/// A [`Stat`]'s value now, as `/api/dashboard/metrics` gives it under `business`.
///
/// ```
/// let v = towerscope_dashboard::StatValue {
///     label: "Orders / min".into(),
///     value: None,
///     unit: String::new(),
///     decimals: None,
/// };
/// // Unknown is `null`, never a made-up 0.
/// assert_eq!(serde_json::to_value(&v).unwrap()["value"], serde_json::Value::Null);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatValue {
    /// The stat's label.
    pub label: String,
    /// Its value (`null` when unknown: no data yet, or a ratio over zero).
    pub value: Option<f64>,
    /// Its unit, as configured.
    pub unit: String,
    /// The decimals to show, when configured ([`Stat::decimals`]).
    pub decimals: Option<u8>,
}

/// `/api/dashboard/metrics`.
///
/// ```
/// use http_body_util::BodyExt as _;
/// use tower::ServiceExt as _;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
/// let dashboard = towerscope_dashboard::Dashboard::builder(metrics).spawn();
/// let req = http::Request::get("/api/dashboard/metrics").body(()).unwrap();
/// let body = dashboard.service().oneshot(req).await.unwrap().into_body().collect().await.unwrap();
/// let current: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
/// // A source that is not attached reads `null`: never a made-up number.
/// assert!(current["app"]["p95_response_ms"].is_null());
/// assert!(current["system"].is_object());
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CurrentMetrics {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// System.
    pub system: SystemCard,
    /// Application.
    pub app: AppCard,
    /// The application's own numbers ([`Stat`]s), in the order they were added.
    pub business: Vec<StatValue>,
}

/// One point of history.
///
/// ```
/// use towerscope_dashboard::HistoryPoint;
/// let point = HistoryPoint {
///     time: 1_764_600_000.0,
///     p50_ms: Some(12.5),
///     p95_ms: None,
///     requests_per_minute: Some(60.0),
///     error_rate_percent: Some(0.0),
/// };
/// let json = serde_json::to_value(&point).unwrap();
/// assert_eq!(json["p50_ms"], 12.5);
/// assert!(json["p95_ms"].is_null()); // unknown is `null` on the chart, never a made-up 0
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Median response time, milliseconds, over the interval's window.
    pub p50_ms: Option<f64>,
    /// 95th percentile response time, milliseconds.
    pub p95_ms: Option<f64>,
    /// Requests per minute.
    pub requests_per_minute: Option<f64>,
    /// Failed requests, percent.
    pub error_rate_percent: Option<f64>,
}

/// A fixed-size ring of points: a freshly opened page shows the recent past.
///
/// ```
/// let mut h = towerscope_dashboard::History::new(3);
/// for i in 0..5 {
///     h.push(towerscope_dashboard::HistoryPoint { time: i as f64, p50_ms: None, p95_ms: None, requests_per_minute: None, error_rate_percent: None });
/// }
/// assert_eq!(h.points().iter().map(|p| p.time).collect::<Vec<_>>(), vec![2.0, 3.0, 4.0]);
/// ```
#[derive(Debug, Clone)]
pub struct History {
    points: VecDeque<HistoryPoint>,
    capacity: usize,
}

impl History {
    /// At most `capacity` points.
    ///
    /// ```
    /// use towerscope_dashboard::{History, HistoryPoint};
    /// let point = |time| HistoryPoint { time, p50_ms: None, p95_ms: None, requests_per_minute: None, error_rate_percent: None };
    /// let mut h = History::new(0); // at least one point is kept
    /// h.push(point(1.0));
    /// h.push(point(2.0));
    /// assert_eq!(h.points().len(), 1);
    /// assert_eq!(h.points()[0].time, 2.0);
    /// ```
    pub fn new(capacity: usize) -> Self {
        Self {
            points: VecDeque::with_capacity(capacity.min(10_000)),
            capacity: capacity.max(1),
        }
    }
    /// Adds a point, dropping the oldest when full.
    ///
    /// ```
    /// use towerscope_dashboard::{History, HistoryPoint};
    /// let mut h = History::new(2);
    /// for (time, p95) in [(1.0, 40.0), (2.0, 55.0), (3.0, 61.0)] {
    ///     h.push(HistoryPoint { time, p50_ms: Some(12.0), p95_ms: Some(p95), requests_per_minute: Some(90.0), error_rate_percent: Some(0.0) });
    /// }
    /// let p95: Vec<_> = h.points().iter().map(|p| p.p95_ms.unwrap()).collect();
    /// assert_eq!(p95, [55.0, 61.0]); // the oldest went
    /// ```
    pub fn push(&mut self, p: HistoryPoint) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }
    /// The points, oldest first.
    ///
    /// ```
    /// use towerscope_dashboard::{History, HistoryPoint};
    /// let mut h = History::new(10);
    /// assert!(h.points().is_empty());
    /// h.push(HistoryPoint { time: 1.0, p50_ms: None, p95_ms: None, requests_per_minute: None, error_rate_percent: None });
    /// assert_eq!(h.points()[0].time, 1.0);
    /// ```
    pub fn points(&self) -> Vec<HistoryPoint> {
        self.points.iter().cloned().collect()
    }
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Reads every number the cards and one history point need, in one registry read.
pub(crate) fn read(
    sources: &mut Sources,
    perf: Option<&towerscope_perf::PerfMonitor>,
    rum: Option<&towerscope_rum::Rum>,
    stats: &[Stat],
) -> (CurrentMetrics, HistoryPoint) {
    let window = Duration::from_secs(60);
    let cards = [
        Signal::CpuPercent,
        Signal::MemoryPercent,
        Signal::DiskPercent,
        Signal::RequestRate(RouteScope::Overall),
        Signal::ErrorRate(RouteScope::Overall),
        Signal::AvgResponseTime(RouteScope::Overall),
        Signal::P95ResponseTime(RouteScope::Overall),
        Signal::InFlight,
    ];
    // The registry is read once for the cards and the stats.
    let card_count = cards.len();
    let signals: Vec<(Signal, Duration)> = cards
        .into_iter()
        .map(|s| (s, window))
        .chain(stats.iter().flat_map(Stat::signals))
        .collect();
    let v = sources.current_over(&signals);
    let mut rest = v[card_count..].iter().copied();
    let business = stats.iter().map(|s| s.value(&mut rest)).collect();
    let p50 = perf
        .and_then(|p| p.stats_merged(towerscope_metrics::PERF_SERIES, window))
        .filter(|s| s.count > 0)
        .map(|s| s.median * 1000.0);
    let per_minute = v[3].map(|r| r * 60.0);
    let now = unix_now();
    let current = CurrentMetrics {
        time: now,
        system: SystemCard {
            cpu_percent: v[0],
            memory_percent: v[1],
            disk_percent: v[2],
        },
        app: AppCard {
            requests_per_minute: per_minute,
            error_rate_percent: v[4].or(per_minute.map(|_| 0.0)),
            avg_response_ms: v[5],
            p95_response_ms: v[6],
            in_flight: v[7],
            active_users: rum.map(|r| r.active_sessions(Duration::from_secs(300))),
        },
        business,
    };
    let point = HistoryPoint {
        time: now,
        p50_ms: p50,
        p95_ms: v[6],
        requests_per_minute: per_minute,
        error_rate_percent: current.app.error_rate_percent,
    };
    (current, point)
}

//! Signal values from the live registry and the performance monitor.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use towerscope_metrics::{Format, MetricNames, MetricsService, SystemNames};
use towerscope_perf::PerfMonitor;

use crate::eval::Sample;
use crate::rule::{RouteScope, Rule, Signal};

/// One sample line of the text exposition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

/// Parses the sample lines of a Prometheus text exposition (comments skipped; lines that
/// do not parse skipped).
pub(crate) fn parse_exposition(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut i = 0;
        loop {
            let c = after[i..].chars().next()?;
            if c == '}' {
                i += 1;
                break;
            }
            if c == ',' || c == ' ' {
                i += 1;
                continue;
            }
            let key_len = after[i..].find('=')?;
            let key = &after[i..i + key_len];
            i += key_len + 1;
            if !after[i..].starts_with('"') {
                return None;
            }
            i += 1;
            let mut value = String::new();
            loop {
                let c = after[i..].chars().next()?;
                i += c.len_utf8();
                match c {
                    '"' => break,
                    '\\' => {
                        let e = after[i..].chars().next()?;
                        i += e.len_utf8();
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                    other => value.push(other),
                }
            }
            labels.push((key.to_owned(), value));
        }
        rest = &after[i..];
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Line {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn label<'a>(line: &'a Line, name: &str) -> Option<&'a str> {
    line.labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn matches(line: &Line, matchers: &[(String, String)]) -> bool {
    matchers
        .iter()
        .all(|(k, v)| label(line, k) == Some(v.as_str()))
}

/// A counter's samples over time, enough to compute its increase over any window from the
/// shortest one a rule asks for to the longest: a few levels of bounded rings, each
/// sparser than the one before, so a 5-minute window stays exact while a 3-day one is
/// still covered.
#[derive(Debug, Default)]
struct Ring {
    levels: Vec<Level>,
    touched: Option<Instant>,
    min_window: Option<Duration>,
    horizon: Duration,
}

#[derive(Debug)]
struct Level {
    spacing: Duration,
    samples: VecDeque<(Instant, f64)>,
}

/// Samples per level.
const LEVEL_CAPACITY: usize = 512;

impl Level {
    fn push(&mut self, now: Instant, value: f64, horizon: Duration) {
        match self.samples.back() {
            Some((last, _))
                if now.saturating_duration_since(*last) < self.spacing
                    && self.samples.len() > 1 =>
            {
                // Too soon for a new slot: the newest sample moves forward.
                if let Some(back) = self.samples.back_mut() {
                    *back = (now, value);
                }
            }
            _ => self.samples.push_back((now, value)),
        }
        while self.samples.len() > 2
            && (self.samples.len() > LEVEL_CAPACITY
                || self.samples.front().is_some_and(|(t, _)| {
                    now.saturating_duration_since(*t) > horizon.saturating_add(self.spacing)
                }))
        {
            self.samples.pop_front();
        }
    }
}

impl Ring {
    fn push(&mut self, now: Instant, value: f64, window: Duration, horizon: Duration) {
        self.touched = Some(now);
        let finer = self.min_window.is_none_or(|m| window < m);
        if finer || horizon > self.horizon {
            // Lay the levels out again for the new shortest window or longer horizon,
            // keeping what the finest level holds.
            let min_window = self.min_window.map_or(window, |m| m.min(window));
            self.min_window = Some(min_window);
            self.horizon = self.horizon.max(horizon);
            let old: Vec<(Instant, f64)> = self
                .levels
                .first()
                .map(|l| l.samples.iter().copied().collect())
                .unwrap_or_default();
            self.levels.clear();
            let mut spacing = (min_window / 64).max(Duration::from_millis(1));
            loop {
                self.levels.push(Level {
                    spacing,
                    samples: VecDeque::new(),
                });
                if spacing.saturating_mul(LEVEL_CAPACITY as u32) >= self.horizon
                    || self.levels.len() >= 8
                {
                    break;
                }
                spacing = spacing.saturating_mul(8);
            }
            for (t, v) in old {
                for level in &mut self.levels {
                    level.push(t, v, self.horizon);
                }
            }
        }
        for level in &mut self.levels {
            level.push(now, value, self.horizon);
        }
    }

    /// Increase over `window` ending now, counter resets handled (a drop starts again from
    /// zero), with the span it covers; `None` with fewer than two samples.
    fn increase(&self, now: Instant, window: Duration) -> Option<(f64, Duration)> {
        let from = now.checked_sub(window);
        // The finest level that reaches back to the window's start, else the one reaching
        // furthest.
        let level = self
            .levels
            .iter()
            .find(|l| match (from, l.samples.front()) {
                (Some(from), Some((t, _))) => *t <= from,
                _ => false,
            })
            .or_else(|| {
                self.levels
                    .iter()
                    .min_by_key(|l| l.samples.front().map(|(t, _)| *t))
            })?;
        let samples = &level.samples;
        let start = match from {
            Some(from) => samples.iter().rposition(|(t, _)| *t <= from).unwrap_or(0),
            None => 0,
        };
        let slice: Vec<&(Instant, f64)> = samples.iter().skip(start).collect();
        if slice.len() < 2 {
            return None;
        }
        let mut total = 0.0;
        for pair in slice.windows(2) {
            let (a, b) = (pair[0].1, pair[1].1);
            total += if b >= a { b - a } else { b };
        }
        let span = slice[slice.len() - 1]
            .0
            .saturating_duration_since(slice[0].0);
        Some((total, span))
    }
}

/// Where signal values come from: the application's registry (read through its
/// `MetricsService`), the performance monitor, and the metric names in use.
///
/// ```
/// use prometheus_client::registry::Registry;
/// use towerscope_metrics::MetricsService;
/// let sources = towerscope_alert::Sources::new(MetricsService::new(Registry::default()));
/// # let _ = sources;
/// ```
#[derive(Debug)]
pub struct Sources {
    metrics: MetricsService,
    perf: Option<PerfMonitor>,
    names: MetricNames,
    system: SystemNames,
    history: HashMap<String, Ring>,
    horizon: Duration,
    last_snapshot: Option<Instant>,
    /// `histogram_quantile` signals already warned about for too many groups.
    capped: std::sync::Mutex<std::collections::HashSet<String>>,
    /// For each signal that names a metric and was read: whether the last read found no
    /// series of it (keyed by its selector).
    missing: HashMap<String, bool>,
}

/// What one evaluation reads: the registry once, parsed.
#[derive(Debug)]
pub(crate) struct Snapshot {
    lines: Vec<Line>,
    now: Instant,
    /// The wall clock at `now`, Unix seconds: what [`Signal::SecondsUntil`] counts from.
    unix_now: f64,
}

/// The series a signal that names a metric reads (`counter_rate`, `gauge`,
/// `histogram_quantile`, `seconds_until`): the series name and its matchers; `None` for the
/// signals that read the request layers', the monitor's or the system metrics.
fn named_series(signal: &Signal) -> Option<(String, &[(String, String)])> {
    match signal {
        Signal::CounterRate { metric, matchers } => {
            Some((crate::rule::counter_series(metric), matchers))
        }
        Signal::Gauge { metric, matchers }
        | Signal::SecondsUntil {
            metric, matchers, ..
        } => Some((metric.clone(), matchers)),
        Signal::HistogramQuantile {
            metric, matchers, ..
        } => Some((format!("{metric}_bucket"), matchers)),
        _ => None,
    }
}

/// `name{k="v",…}`, as PromQL writes a selector.
fn selector(name: &str, matchers: &[(String, String)]) -> String {
    if matchers.is_empty() {
        return name.to_owned();
    }
    let pairs: Vec<String> = matchers.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", pairs.join(","))
}

impl Snapshot {
    /// The series `signal` reads, as a PromQL selector, when it names a metric and this
    /// snapshot has no series of that name with its matchers; `None` when it has one, and
    /// for the signals that read the request layers', the monitor's or the system metrics.
    pub(crate) fn missing_series(&self, signal: &Signal) -> Option<String> {
        let (name, matchers) = named_series(signal)?;
        let present = self
            .lines
            .iter()
            .any(|l| l.name == name && matches(l, matchers));
        (!present).then(|| selector(&name, matchers))
    }
}

impl Sources {
    /// Values from `metrics` (with the default metric names).
    ///
    /// ```
    /// use towerscope_alert::Sources;
    /// use towerscope_metrics::{MetricNames, MetricsService, SystemNames};
    /// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
    /// let sources = Sources::new(metrics)
    ///     .perf(towerscope_perf::PerfMonitor::new())
    ///     .metric_names(MetricNames::guide()) // the guide's `app_requests_total`, …
    ///     .system_names(SystemNames::guide());
    /// # let _ = sources;
    /// ```
    pub fn new(metrics: MetricsService) -> Self {
        Self {
            metrics,
            perf: None,
            names: MetricNames::default(),
            system: SystemNames::default(),
            history: HashMap::new(),
            horizon: Duration::from_secs(3600),
            last_snapshot: None,
            capped: std::sync::Mutex::default(),
            missing: HashMap::new(),
        }
    }

    /// Latency signals from `perf` (fed by `HttpMetricsLayer::builder().perf(..)`).
    ///
    /// ```
    /// use towerscope_alert::Sources;
    /// use towerscope_metrics::{MetricNames, MetricsService, SystemNames};
    /// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
    /// let sources = Sources::new(metrics)
    ///     .perf(towerscope_perf::PerfMonitor::new())
    ///     .metric_names(MetricNames::guide()) // the guide's `app_requests_total`, …
    ///     .system_names(SystemNames::guide());
    /// # let _ = sources;
    /// ```
    pub fn perf(mut self, perf: PerfMonitor) -> Self {
        self.perf = Some(perf);
        self
    }

    /// The request metric names the metrics layer uses.
    ///
    /// ```
    /// use towerscope_alert::Sources;
    /// use towerscope_metrics::{MetricNames, MetricsService, SystemNames};
    /// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
    /// let sources = Sources::new(metrics)
    ///     .perf(towerscope_perf::PerfMonitor::new())
    ///     .metric_names(MetricNames::guide()) // the guide's `app_requests_total`, …
    ///     .system_names(SystemNames::guide());
    /// # let _ = sources;
    /// ```
    pub fn metric_names(mut self, names: MetricNames) -> Self {
        self.names = names;
        self
    }

    /// The system metric names the system collector uses.
    ///
    /// ```
    /// use towerscope_alert::Sources;
    /// use towerscope_metrics::{MetricNames, MetricsService, SystemNames};
    /// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
    /// let sources = Sources::new(metrics)
    ///     .perf(towerscope_perf::PerfMonitor::new())
    ///     .metric_names(MetricNames::guide()) // the guide's `app_requests_total`, …
    ///     .system_names(SystemNames::guide());
    /// # let _ = sources;
    /// ```
    pub fn system_names(mut self, names: SystemNames) -> Self {
        self.system = names;
        self
    }

    /// Reads the registry once, and records counter values the rules need.
    pub(crate) fn snapshot(&mut self, now: Instant, rules: &[Rule]) -> Snapshot {
        let horizon = rules
            .iter()
            .map(|r| match &r.signal {
                Signal::BurnRate { long, .. } => *long,
                _ => r.window,
            })
            .max()
            .unwrap_or(self.horizon);
        self.horizon = horizon;
        let snapshot = Snapshot {
            lines: parse_exposition(&self.metrics.encode(Format::Prometheus)),
            now,
            unix_now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        let previous = self.last_snapshot.replace(now);
        for rule in rules {
            if let Some((name, matchers)) = named_series(&rule.signal) {
                let missing = snapshot.missing_series(&rule.signal).is_some();
                self.missing.insert(selector(&name, matchers), missing);
            }
        }
        for rule in rules {
            let window = match &rule.signal {
                Signal::BurnRate { short, .. } => *short,
                _ => rule.window,
            };
            for (key, value) in self.counters(&snapshot, &rule.signal) {
                let ring = self.history.entry(key).or_insert_with(|| {
                    // A series that appeared since the last look was at zero then: the
                    // metrics layer creates a series at its first increment.
                    let mut ring = Ring::default();
                    if let Some(prev) = previous {
                        ring.push(prev, 0.0, window, horizon);
                    }
                    ring
                });
                ring.push(now, value, window, horizon);
            }
        }
        // Series not seen for a whole horizon are forgotten.
        self.history.retain(|_, ring| {
            ring.touched
                .is_some_and(|t| now.saturating_duration_since(t) <= horizon)
        });
        snapshot
    }

    /// The current value of each of `signals` over `window` (overall, the first series for
    /// per-route signals), reading the registry once; `None` where there is no data yet.
    /// Rates need two reads: the first call records where counters start. This is what the
    /// dashboard shows.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::registry::Registry;
    /// use towerscope_alert::{RouteScope, Signal, Sources};
    /// let mut sources = Sources::new(towerscope_metrics::MetricsService::new(Registry::default()));
    /// let values = sources.current(&[Signal::RequestRate(RouteScope::Overall)], Duration::from_secs(60));
    /// assert_eq!(values, vec![None]); // one read: no rate yet
    /// ```
    pub fn current(&mut self, signals: &[Signal], window: Duration) -> Vec<Option<f64>> {
        let each: Vec<(Signal, Duration)> = signals.iter().map(|s| (s.clone(), window)).collect();
        self.current_over(&each)
    }

    /// Like [`current`](Self::current), each signal over its own window, still reading the
    /// registry once: a dashboard's one-minute request rate beside its business numbers
    /// over five.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::histogram::Histogram;
    /// use prometheus_client::registry::Registry;
    /// use towerscope_alert::{Signal, Sources};
    /// let mut registry = Registry::default();
    /// let order_value = Histogram::new([10.0, 100.0]);
    /// registry.register("order_value", "Order values", order_value.clone());
    /// let mut sources = Sources::new(towerscope_metrics::MetricsService::new(registry));
    /// let rate = |metric: &str| Signal::CounterRate { metric: metric.into(), matchers: vec![] };
    /// let five_minutes = Duration::from_secs(300);
    /// let signals = [(rate("order_value_sum"), five_minutes), (rate("order_value_count"), five_minutes)];
    /// sources.current_over(&signals); // the first read: where the counters start
    /// order_value.observe(20.0);
    /// order_value.observe(80.0);
    /// std::thread::sleep(Duration::from_millis(20));
    /// let v = sources.current_over(&signals);
    /// let (revenue, orders) = (v[0].expect("a rate"), v[1].expect("a rate"));
    /// assert!((revenue / orders - 50.0).abs() < 1e-6); // the mean order value
    /// ```
    pub fn current_over(&mut self, signals: &[(Signal, Duration)]) -> Vec<Option<f64>> {
        let rules: Vec<Rule> = signals
            .iter()
            .map(|(s, window)| {
                Rule::new("_", s.clone(), crate::rule::Condition::Gt, 0.0).window(*window)
            })
            .collect();
        let snapshot = self.snapshot(Instant::now(), &rules);
        rules
            .iter()
            .map(|r| self.values(&snapshot, r).first().map(|s| s.value))
            .collect()
    }

    /// The series `signal` reads, as a PromQL selector, when the last read of the registry
    /// that included `signal` found none of them (a misspelt metric name or label value,
    /// or nothing has recorded one yet); `None` when it found one, when `signal` has not
    /// been read, and for the signals that read the request, latency and system metrics.
    /// A `counter_rate` over no series is a rate of 0; the other signals have no value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use prometheus_client::registry::Registry;
    /// use towerscope_alert::{Signal, Sources};
    /// let mut registry = Registry::default();
    /// registry.register("queue_depth", "Jobs waiting", Gauge::<i64>::default());
    /// let mut sources = Sources::new(towerscope_metrics::MetricsService::new(registry));
    /// let gauge = |metric: &str| Signal::Gauge { metric: metric.into(), matchers: vec![] };
    /// sources.current(&[gauge("queue_depth"), gauge("queue_depht")], Duration::from_secs(60));
    /// assert_eq!(sources.missing_series(&gauge("queue_depth")), None);
    /// assert_eq!(sources.missing_series(&gauge("queue_depht")).as_deref(), Some("queue_depht"));
    /// ```
    pub fn missing_series(&self, signal: &Signal) -> Option<String> {
        let (name, matchers) = named_series(signal)?;
        let selector = selector(&name, matchers);
        self.missing
            .get(&selector)
            .copied()
            .unwrap_or(false)
            .then_some(selector)
    }

    fn requests_name(&self) -> String {
        match &self.names.requests {
            Some(n) => format!("{n}_total"),
            None => format!("{}_count", self.names.request_duration),
        }
    }

    fn errors_name(&self) -> Option<String> {
        self.names.errors.as_ref().map(|n| format!("{n}_total"))
    }

    /// The counter totals a signal needs, keyed for the history.
    fn counters(&self, snap: &Snapshot, signal: &Signal) -> Vec<(String, f64)> {
        let route_label = &*self.names.route_label;
        let sum_by_route = |metric: &str, filter: &dyn Fn(&Line) -> bool, scope: &RouteScope| {
            let mut sums: HashMap<String, f64> = HashMap::new();
            for line in snap.lines.iter().filter(|l| l.name == metric && filter(l)) {
                let key = match scope {
                    RouteScope::Overall => String::new(),
                    RouteScope::Route(r) => {
                        if label(line, route_label) != Some(r.as_str()) {
                            continue;
                        }
                        r.clone()
                    }
                    RouteScope::EachRoute => label(line, route_label).unwrap_or("").to_owned(),
                };
                *sums.entry(key).or_insert(0.0) += line.value;
            }
            if matches!(scope, RouteScope::Overall) && sums.is_empty() {
                sums.insert(String::new(), 0.0);
            }
            sums
        };
        let not_cancelled = |l: &Line| label(l, &self.names.error_type_label) != Some("cancelled");
        let all = |_: &Line| true;
        match signal {
            Signal::RequestRate(scope) => sum_by_route(&self.requests_name(), &all, scope)
                .into_iter()
                .map(|(route, v)| (format!("req|{route}"), v))
                .collect(),
            Signal::ErrorRate(scope) => {
                let mut out: Vec<(String, f64)> = sum_by_route(&self.requests_name(), &all, scope)
                    .into_iter()
                    .map(|(route, v)| (format!("req|{route}"), v))
                    .collect();
                if let Some(errors) = self.errors_name() {
                    let mut errs = sum_by_route(&errors, &not_cancelled, scope);
                    // A route with requests but no errors yet has zero errors.
                    for (key, _) in &out {
                        if let Some(route) = key.strip_prefix("req|") {
                            errs.entry(route.to_owned()).or_insert(0.0);
                        }
                    }
                    out.extend(
                        errs.into_iter()
                            .map(|(route, v)| (format!("err|{route}"), v)),
                    );
                }
                out
            }
            Signal::BurnRate { .. } => self.counters(snap, &Signal::ErrorRate(RouteScope::Overall)),
            Signal::CounterRate { metric, matchers } => {
                let name = crate::rule::counter_series(metric);
                let total: f64 = snap
                    .lines
                    .iter()
                    .filter(|l| l.name == name && self::matches(l, matchers))
                    .map(|l| l.value)
                    .sum();
                vec![(counter_key(&name, matchers), total)]
            }
            Signal::HistogramQuantile {
                metric,
                matchers,
                by,
                ..
            } => {
                let bucket = format!("{metric}_bucket");
                let prefix = quantile_key_prefix(metric, matchers, by.as_deref());
                let mut groups: BTreeMap<&str, HashMap<&str, f64>> = BTreeMap::new();
                for l in snap
                    .lines
                    .iter()
                    .filter(|l| l.name == bucket && self::matches(l, matchers))
                {
                    let Some(le) = label(l, "le") else { continue };
                    let group = by.as_deref().and_then(|b| label(l, b)).unwrap_or("");
                    *groups.entry(group).or_default().entry(le).or_insert(0.0) += l.value;
                }
                // The history keeps every bucket of every group: bounded, whatever the
                // label grouped by holds.
                if groups.len() > MAX_QUANTILE_GROUPS {
                    let first = self
                        .capped
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(prefix.clone());
                    if first {
                        tracing::warn!(
                            metric = metric.as_str(),
                            by = by.as_deref().unwrap_or(""),
                            groups = groups.len(),
                            kept = MAX_QUANTILE_GROUPS,
                            "histogram_quantile signal over more label values than it keeps; \
                             the first by value are evaluated, the rest left out"
                        );
                    }
                    while groups.len() > MAX_QUANTILE_GROUPS {
                        groups.pop_last();
                    }
                }
                groups
                    .into_iter()
                    .flat_map(|(group, buckets)| {
                        let prefix = &prefix;
                        buckets
                            .into_iter()
                            .map(move |(le, v)| (format!("{prefix}{group}{BUCKET_SEP}{le}"), v))
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn rate(&self, key: &str, now: Instant, window: Duration) -> Option<f64> {
        let (increase, span) = self.history.get(key)?.increase(now, window)?;
        (!span.is_zero()).then(|| increase / span.as_secs_f64())
    }

    fn increase(&self, key: &str, now: Instant, window: Duration) -> Option<f64> {
        self.history
            .get(key)?
            .increase(now, window)
            .map(|(inc, _)| inc)
    }

    /// The samples of `rule`'s signal in `snap`. An empty list means no data (an alert of
    /// the rule resolves).
    pub(crate) fn values(&self, snap: &Snapshot, rule: &Rule) -> Vec<Sample> {
        let now = snap.now;
        let window = rule.window;
        let gauge = |name: &str, matchers: &[(String, String)]| -> Vec<Sample> {
            let mut found = false;
            let mut total = 0.0;
            for l in snap
                .lines
                .iter()
                .filter(|l| l.name == name && matches(l, matchers))
            {
                found = true;
                total += l.value;
            }
            if found {
                vec![Sample::single(total)]
            } else {
                Vec::new()
            }
        };
        let route_keys = |prefix: &str, scope: &RouteScope| -> Vec<String> {
            self.history
                .keys()
                .filter_map(|k| k.strip_prefix(prefix))
                .filter(|route| match scope {
                    RouteScope::Overall => route.is_empty(),
                    RouteScope::Route(r) => route == r,
                    RouteScope::EachRoute => !route.is_empty(),
                })
                .map(str::to_owned)
                .collect()
        };
        let series = |scope: &RouteScope, route: &str| -> Vec<(String, String)> {
            match scope {
                RouteScope::EachRoute => vec![("route".to_owned(), route.to_owned())],
                _ => Vec::new(),
            }
        };
        match &rule.signal {
            Signal::RequestRate(scope) => route_keys("req|", scope)
                .into_iter()
                .filter_map(|route| {
                    let r = self.rate(&format!("req|{route}"), now, window)?;
                    Some(Sample {
                        labels: series(scope, &route),
                        value: r,
                    })
                })
                .collect(),
            Signal::ErrorRate(scope) => route_keys("req|", scope)
                .into_iter()
                .filter_map(|route| {
                    let requests = self.increase(&format!("req|{route}"), now, window)?;
                    let errors = self.increase(&format!("err|{route}"), now, window)?;
                    // No traffic in the window: no error rate (not 0 %, not NaN).
                    (requests > 0.0).then(|| Sample {
                        labels: series(scope, &route),
                        value: (errors / requests * 100.0).min(100.0),
                    })
                })
                .collect(),
            Signal::BurnRate {
                objective,
                long,
                short,
            } => {
                let budget = 1.0 - objective;
                let burn = |w: Duration| -> Option<f64> {
                    let requests = self.increase("req|", now, w)?;
                    let errors = self.increase("err|", now, w)?;
                    (requests > 0.0).then(|| (errors / requests) / budget)
                };
                match (burn(*long), burn(*short)) {
                    (Some(l), Some(s)) => vec![Sample::single(l.min(s))],
                    _ => Vec::new(),
                }
            }
            Signal::AvgResponseTime(scope)
            | Signal::P95ResponseTime(scope)
            | Signal::P99ResponseTime(scope) => {
                let Some(perf) = &self.perf else {
                    return Vec::new();
                };
                let pick = |s: &towerscope_perf::Stats| -> f64 {
                    1000.0
                        * match &rule.signal {
                            Signal::AvgResponseTime(_) => s.mean,
                            Signal::P95ResponseTime(_) => s.p95,
                            _ => s.p99,
                        }
                };
                let series_name = towerscope_metrics::PERF_SERIES;
                match scope {
                    RouteScope::Overall => perf
                        .stats_merged(series_name, window)
                        .filter(|s| s.count > 0)
                        .map(|s| vec![Sample::single(pick(&s))])
                        .unwrap_or_default(),
                    RouteScope::Route(r) => perf
                        .stats_tagged(series_name, &[("route", r)], window)
                        .filter(|s| s.count > 0)
                        .map(|s| vec![Sample::single(pick(&s))])
                        .unwrap_or_default(),
                    RouteScope::EachRoute => {
                        let prefix = format!("{series_name}{{route=");
                        perf.all_stats(window)
                            .into_iter()
                            .filter_map(|(key, s)| {
                                let route = key.strip_prefix(&prefix)?.strip_suffix('}')?;
                                (s.count > 0).then(|| Sample {
                                    labels: vec![("route".into(), route.to_owned())],
                                    value: pick(&s),
                                })
                            })
                            .collect()
                    }
                }
            }
            Signal::InFlight => gauge(&self.names.in_flight, &[]),
            Signal::MemoryPercent => gauge(&self.system.memory_percent, &[]),
            Signal::CpuPercent => gauge(&self.system.cpu, &[]),
            Signal::DiskPercent => {
                let max = snap
                    .lines
                    .iter()
                    .filter(|l| l.name == self.system.disk_percent)
                    .map(|l| l.value)
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
                max.map(|v| vec![Sample::single(v)]).unwrap_or_default()
            }
            Signal::CounterRate { metric, matchers } => {
                let name = crate::rule::counter_series(metric);
                self.rate(&counter_key(&name, matchers), now, window)
                    .map(|r| vec![Sample::single(r)])
                    .unwrap_or_default()
            }
            Signal::Gauge { metric, matchers } => gauge(metric, matchers),
            Signal::SecondsUntil {
                metric,
                matchers,
                by,
            } => {
                // The earliest time of each group (one group without `by`; a series
                // without the label is in the group of the empty value, as in PromQL).
                let mut earliest: BTreeMap<&str, f64> = BTreeMap::new();
                for l in snap
                    .lines
                    .iter()
                    .filter(|l| l.name == *metric && matches(l, matchers) && !l.value.is_nan())
                {
                    let group = by.as_deref().map_or("", |b| {
                        l.labels
                            .iter()
                            .find(|(k, _)| k == b)
                            .map_or("", |(_, v)| v.as_str())
                    });
                    let e = earliest.entry(group).or_insert(l.value);
                    *e = e.min(l.value);
                }
                earliest
                    .into_iter()
                    .map(|(group, at)| Sample {
                        labels: by.iter().map(|b| (b.clone(), group.to_owned())).collect(),
                        value: at - snap.unix_now,
                    })
                    .collect()
            }
            Signal::HistogramQuantile {
                metric,
                quantile,
                matchers,
                by,
            } => {
                let prefix = quantile_key_prefix(metric, matchers, by.as_deref());
                // Each group's buckets: (upper bound, increase over the window).
                let mut groups: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
                for (key, rest) in self
                    .history
                    .keys()
                    .filter_map(|k| Some((k, k.strip_prefix(&prefix)?)))
                {
                    let Some((group, le)) = rest.rsplit_once(BUCKET_SEP) else {
                        continue;
                    };
                    let Some(upper) = parse_le(le) else { continue };
                    if let Some(increase) = self.increase(key, now, window) {
                        groups.entry(group).or_default().push((upper, increase));
                    }
                }
                groups
                    .into_iter()
                    .filter_map(|(group, mut buckets)| {
                        let value = bucket_quantile(*quantile, &mut buckets)?;
                        let labels = by.iter().map(|b| (b.clone(), group.to_owned())).collect();
                        Some(Sample { labels, value })
                    })
                    .collect()
            }
        }
    }
}

/// The most label values a [`Signal::HistogramQuantile`] with `by` evaluates (one alert
/// each); the rest, last in order, are left out with a warning, so the evaluator's history
/// stays bounded whatever the label holds.
///
/// ```
/// assert_eq!(towerscope_alert::MAX_QUANTILE_GROUPS, 2000);
/// ```
pub const MAX_QUANTILE_GROUPS: usize = 2000;

/// Separates a histogram group's label value from the bucket bound in history keys (a
/// control character: never in a bound, and splitting at the last one is safe whatever
/// the label value holds).
const BUCKET_SEP: char = '\u{1f}';

fn quantile_key_prefix(metric: &str, matchers: &[(String, String)], by: Option<&str>) -> String {
    let mut key = counter_key(&format!("hq|{metric}"), matchers);
    key.push_str("|by=");
    key.push_str(by.unwrap_or(""));
    key.push(BUCKET_SEP);
    key
}

fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        _ => le.parse().ok().filter(|v: &f64| !v.is_nan()),
    }
}

/// The `q` quantile of cumulative `buckets` (upper bound, count), as Prometheus'
/// `histogram_quantile` computes it: linear interpolation inside the bucket the rank falls
/// in (from 0 for the first bucket), the highest finite bound when it falls in `+Inf`.
/// `None` without observations, without a `+Inf` bucket, or for `q` outside [0, 1].
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Counts of buckets read at slightly different moments can dip: keep them monotonic.
    let mut max = 0.0_f64;
    for b in buckets.iter_mut() {
        max = max.max(b.1);
        b.1 = max;
    }
    let &(last_bound, total) = buckets.last()?;
    if last_bound != f64::INFINITY || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let i = buckets.iter().position(|b| b.1 >= rank)?;
    let (upper, count) = buckets[i];
    if upper == f64::INFINITY {
        // The rank is past every finite bound: the highest one is all that is known.
        return Some(if i == 0 { 0.0 } else { buckets[i - 1].0 });
    }
    let (lower, below) = if i == 0 {
        (if upper > 0.0 { 0.0 } else { upper }, 0.0)
    } else {
        buckets[i - 1]
    };
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * ((rank - below) / in_bucket))
}

fn counter_key(name: &str, matchers: &[(String, String)]) -> String {
    let mut key = format!("ctr|{name}");
    for (k, v) in matchers {
        key.push('|');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantiles_match_prometheus() {
        let inf = f64::INFINITY;
        let b = || vec![(0.1, 10.0), (0.5, 20.0), (1.0, 30.0), (inf, 40.0)];
        let q = |q: f64| bucket_quantile(q, &mut b());
        assert_eq!(q(0.25), Some(0.1));
        assert_eq!(q(0.5), Some(0.5));
        assert!((q(0.3).expect("value") - 0.18).abs() < 1e-12);
        assert_eq!(q(0.9), Some(1.0), "in +Inf: the highest finite bound");
        assert_eq!(q(1.5), None);
        assert_eq!(q(f64::NAN), None);
        // Unsorted input and a dip between buckets read at different moments.
        let mut shuffled = [(inf, 40.0), (0.5, 19.0), (1.0, 30.0), (0.1, 20.0)];
        assert_eq!(bucket_quantile(0.5, &mut shuffled), Some(0.1));
        // No observations, or no +Inf bucket: no value (an alert resolves).
        assert_eq!(bucket_quantile(0.5, &mut [(0.1, 0.0), (inf, 0.0)]), None);
        assert_eq!(bucket_quantile(0.5, &mut [(0.1, 3.0), (1.0, 5.0)]), None);
        assert_eq!(bucket_quantile(0.5, &mut Vec::new()), None);
        // Everything in +Inf with no finite bucket below.
        assert_eq!(bucket_quantile(0.5, &mut [(inf, 4.0)]), Some(0.0));
    }

    #[test]
    fn bucket_bounds_parse() {
        assert_eq!(parse_le("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_le("2.5"), Some(2.5));
        assert_eq!(parse_le("NaN"), None);
        assert_eq!(parse_le("x"), None);
    }

    #[test]
    fn short_windows_stay_exact_beside_long_ones() {
        let mut ring = Ring::default();
        let t0 = Instant::now();
        let three_days = Duration::from_secs(3 * 86_400);
        // One sample every 15 s for four days, one count per second.
        let mut now = t0;
        for i in 0..(4 * 86_400 / 15) {
            now = t0 + Duration::from_secs(i * 15);
            ring.push(now, (i * 15) as f64, Duration::from_secs(300), three_days);
        }
        let (inc, span) = ring.increase(now, Duration::from_secs(300)).expect("5 min");
        assert_eq!((inc, span), (300.0, Duration::from_secs(300)));
        let (inc, span) = ring.increase(now, three_days).expect("3 days");
        let rate = inc / span.as_secs_f64();
        assert!(
            (rate - 1.0).abs() < 1e-9 && span >= three_days,
            "{rate} over {span:?}"
        );
        let samples: usize = ring.levels.iter().map(|l| l.samples.len()).sum();
        assert!(samples <= 8 * LEVEL_CAPACITY, "bounded: {samples}");
    }

    #[test]
    fn exposition_lines_parse_with_escapes() {
        let lines = parse_exposition(
            "# HELP x y\nhttp_server_requests_total{http_route=\"/a\\\"b\",m=\"x\\\\y\\nz\"} 12\nup 1\nbad line\nweird{a=\"1\"} +Inf\n",
        );
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0].labels[0],
            ("http_route".to_owned(), "/a\"b".to_owned())
        );
        assert_eq!(lines[0].labels[1], ("m".to_owned(), "x\\y\nz".to_owned()));
        assert_eq!(lines[0].value, 12.0);
        assert_eq!(lines[1].name, "up");
        assert!(lines[2].value.is_infinite());
    }

    #[test]
    fn increases_handle_resets_and_windows() {
        let mut ring = Ring::default();
        let t0 = Instant::now();
        let h = Duration::from_secs(600);
        for (s, v) in [(0, 10.0), (60, 20.0), (120, 5.0), (180, 15.0)] {
            ring.push(t0 + Duration::from_secs(s), v, Duration::from_secs(60), h);
        }
        let now = t0 + Duration::from_secs(180);
        // 10→20 (+10), reset to 5 (+5), 5→15 (+10)
        assert_eq!(
            ring.increase(now, Duration::from_secs(600)),
            Some((25.0, Duration::from_secs(180)))
        );
        // window of 60 s: from the sample at 120 s
        assert_eq!(
            ring.increase(now, Duration::from_secs(60)),
            Some((10.0, Duration::from_secs(60)))
        );
    }
}

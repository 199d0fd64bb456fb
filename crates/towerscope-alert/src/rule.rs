//! Alert rules: what to watch, when it is bad, and what to say.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How a signal's value is compared with the threshold.
///
/// ```
/// use towerscope_alert::Condition;
/// assert!(Condition::Gt.holds(5.1, 5.0));
/// assert!(!Condition::Gt.holds(f64::NAN, 5.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// value > threshold
    Gt,
    /// value >= threshold
    Ge,
    /// value < threshold
    Lt,
    /// value <= threshold
    Le,
    /// value == threshold
    Eq,
    /// value != threshold
    Ne,
}

impl Condition {
    /// Whether `value` meets the condition; a NaN value never does.
    ///
    /// ```
    /// use towerscope_alert::Condition;
    /// assert!(Condition::Gt.holds(5.1, 5.0));
    /// assert!(!Condition::Ne.holds(f64::NAN, 0.0)); // no data is not an alert
    /// ```
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        match self {
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Eq => value == threshold,
            Self::Ne => value != threshold,
        }
    }

    /// `gt`, `ge`, `lt`, `le`, `eq`, `ne`.
    ///
    /// ```
    /// assert_eq!(towerscope_alert::Condition::Ge.as_str(), "ge"); // as written in rule files
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Eq => "eq",
            Self::Ne => "ne",
        }
    }

    /// The PromQL comparison operator.
    ///
    /// ```
    /// assert_eq!(towerscope_alert::Condition::Ge.promql(), ">=");
    /// ```
    pub fn promql(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "gt" | ">" => Self::Gt,
            "ge" | ">=" => Self::Ge,
            "lt" | "<" => Self::Lt,
            "le" | "<=" => Self::Le,
            "eq" | "==" => Self::Eq,
            "ne" | "!=" => Self::Ne,
            _ => return None,
        })
    }
}

/// How bad it is.
///
/// ```
/// use towerscope_alert::Severity;
/// assert!(Severity::Critical > Severity::High);
/// assert_eq!(Severity::Medium.as_str(), "medium");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Worth a ticket.
    Medium,
    /// Worth a page in working hours.
    High,
    /// Worth waking someone.
    Critical,
}

impl Severity {
    /// `low`, `medium`, `high` or `critical`.
    ///
    /// ```
    /// assert_eq!(towerscope_alert::Severity::Critical.as_str(), "critical");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which routes a latency or traffic signal looks at.
///
/// ```
/// use towerscope_alert::{Condition, RouteScope, Rule, Signal};
/// // One alert per slow route, labelled with it; and one for checkout alone.
/// let each = Rule::new("SlowRoute", Signal::P95ResponseTime(RouteScope::EachRoute), Condition::Gt, 800.0);
/// let checkout = Rule::new(
///     "SlowCheckout",
///     Signal::P95ResponseTime(RouteScope::Route("/checkout".into())),
///     Condition::Gt,
///     1500.0,
/// );
/// # let _ = (each, checkout);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum RouteScope {
    /// All requests together.
    #[default]
    Overall,
    /// One route template (`/orders/{id}`).
    Route(String),
    /// Every route separately: one alert per route, labelled `route`.
    EachRoute,
}

/// What a rule watches. Rates and percentages are computed over the rule's window.
///
/// ```
/// use std::time::Duration;
/// use towerscope_alert::Signal;
/// let s = Signal::CounterRate { metric: "app_user_registrations_total".into(), matchers: vec![] };
/// assert_eq!(s.kind(), "counter_rate");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Requests per second.
    RequestRate(RouteScope),
    /// Failed requests (5xx, service errors, panics, body errors) as a percentage of all
    /// requests.
    ErrorRate(RouteScope),
    /// Mean response time, milliseconds.
    AvgResponseTime(RouteScope),
    /// 95th percentile response time, milliseconds.
    P95ResponseTime(RouteScope),
    /// 99th percentile response time, milliseconds.
    P99ResponseTime(RouteScope),
    /// Requests being served now.
    InFlight,
    /// System memory in use, percent.
    MemoryPercent,
    /// System CPU in use, percent.
    CpuPercent,
    /// Disk space in use, percent (the fullest disk).
    DiskPercent,
    /// Any registered counter, per second, summed over the series the matchers select.
    /// A name ending in `_sum` or `_count` is a histogram's (or summary's) sum or count
    /// series, read as it is: the revenue per second of an order-value histogram is
    /// `order_value_sum`, its orders per second `order_value_count`. (A counter family
    /// whose own name ends so is named with its `_total`.)
    ///
    /// ```
    /// use towerscope_alert::Signal;
    /// let revenue = Signal::CounterRate { metric: "order_value_sum".into(), matchers: vec![] };
    /// let logins = Signal::CounterRate {
    ///     metric: "logins".into(), // the series `logins_total`
    ///     matchers: vec![("outcome".into(), "success".into())],
    /// };
    /// # let _ = (revenue, logins);
    /// ```
    CounterRate {
        /// The family name (with or without `_total`), or a histogram's `_sum` or `_count`.
        metric: String,
        /// Label equality matchers.
        matchers: Vec<(String, String)>,
    },
    /// Any registered gauge, summed over the series the matchers select.
    Gauge {
        /// The family name.
        metric: String,
        /// Label equality matchers.
        matchers: Vec<(String, String)>,
    },
    /// A quantile of any registered histogram over the window, as Prometheus'
    /// `histogram_quantile` computes it (linear within a bucket), in the histogram's unit:
    /// performance budgets on Core Web Vitals (`rum_lcp_seconds`) or on any other
    /// distribution. With `by`, one alert per value of that label, labelled with it.
    ///
    /// ```
    /// use towerscope_alert::{Condition, Rule, Signal};
    /// // The guide's performance budget: p75 LCP at most 2.5 s, page by page.
    /// let lcp = Signal::HistogramQuantile {
    ///     metric: "rum_lcp_seconds".into(),
    ///     quantile: 0.75,
    ///     matchers: vec![],
    ///     by: Some("page".into()),
    /// };
    /// let rule = Rule::new("LcpBudget", lcp, Condition::Gt, 2.5);
    /// # let _ = rule;
    /// ```
    HistogramQuantile {
        /// The family name (without `_bucket`).
        metric: String,
        /// In [0, 1]: 0.75 for p75.
        quantile: f64,
        /// Label equality matchers.
        matchers: Vec<(String, String)>,
        /// A label to compute the quantile for each value of (one alert each).
        by: Option<String>,
    },
    /// Seconds from now until the Unix time a gauge holds: a certificate's expiry
    /// (`synthetic_probe_tls_cert_expiry_timestamp_seconds`), a deadline. The earliest of
    /// the series the matchers select or, with `by`, the earliest for each value of that
    /// label (one alert each, labelled with it); negative once the time has passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Condition, Rule, Signal};
    /// // Warn three weeks before any probed certificate expires, probe by probe.
    /// let expiry = Signal::SecondsUntil {
    ///     metric: "synthetic_probe_tls_cert_expiry_timestamp_seconds".into(),
    ///     matchers: vec![],
    ///     by: Some("probe".into()),
    /// };
    /// let rule = Rule::new("CertificateExpiresSoon", expiry, Condition::Lt, 21.0 * 86_400.0);
    /// # let _ = rule;
    /// ```
    SecondsUntil {
        /// The gauge family's name; its values are Unix times in seconds.
        metric: String,
        /// Label equality matchers.
        matchers: Vec<(String, String)>,
        /// A label to take the earliest time for each value of (one alert each).
        by: Option<String>,
    },
    /// The error budget burn rate against an availability `objective` (for example 0.999):
    /// the lower of the burn rates over `long` and `short` windows, so the alert fires only
    /// while both are burning (the SRE workbook's multiwindow rule).
    BurnRate {
        /// Availability objective, in (0, 1).
        objective: f64,
        /// The long window.
        long: Duration,
        /// The short window (typically long / 12).
        short: Duration,
    },
}

impl Signal {
    /// The signal's name in rule files.
    ///
    /// ```
    /// use towerscope_alert::{RouteScope, Signal};
    /// assert_eq!(Signal::P95ResponseTime(RouteScope::EachRoute).kind(), "p95_response_time");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RequestRate(_) => "request_rate",
            Self::ErrorRate(_) => "error_rate",
            Self::AvgResponseTime(_) => "avg_response_time",
            Self::P95ResponseTime(_) => "p95_response_time",
            Self::P99ResponseTime(_) => "p99_response_time",
            Self::InFlight => "in_flight",
            Self::MemoryPercent => "memory",
            Self::CpuPercent => "cpu",
            Self::DiskPercent => "disk",
            Self::CounterRate { .. } => "counter_rate",
            Self::Gauge { .. } => "gauge",
            Self::BurnRate { .. } => "burn_rate",
            Self::HistogramQuantile { .. } => "histogram_quantile",
            Self::SecondsUntil { .. } => "seconds_until",
        }
    }

    /// The route scope, for signals that have one.
    ///
    /// ```
    /// use towerscope_alert::{RouteScope, Signal};
    /// assert_eq!(Signal::ErrorRate(RouteScope::EachRoute).scope(), Some(&RouteScope::EachRoute));
    /// assert_eq!(Signal::InFlight.scope(), None);
    /// ```
    pub fn scope(&self) -> Option<&RouteScope> {
        match self {
            Self::RequestRate(s)
            | Self::ErrorRate(s)
            | Self::AvgResponseTime(s)
            | Self::P95ResponseTime(s)
            | Self::P99ResponseTime(s) => Some(s),
            _ => None,
        }
    }
}

/// An alert rule.
///
/// ```
/// use std::time::Duration;
/// use towerscope_alert::{Condition, Rule, Severity, Signal, RouteScope};
/// let rule = Rule::new("HighErrorRate", Signal::ErrorRate(RouteScope::Overall), Condition::Gt, 5.0)
///     .for_duration(Duration::from_secs(120))
///     .severity(Severity::Critical)
///     .message("Error rate {value}% is above {threshold}%")
///     .label("team", "shop")
///     .annotation("runbook_url", "https://runbooks.example/errors");
/// assert_eq!(rule.render_message(7.25, &[]), "Error rate 7.25% is above 5%");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique name (`HighErrorRate`): the alert's name.
    pub name: String,
    /// What is watched.
    pub signal: Signal,
    /// How the value is compared.
    pub condition: Condition,
    /// The threshold.
    pub threshold: f64,
    /// How long the condition must hold before the alert fires (0: at once).
    pub for_duration: Duration,
    /// The window rates and statistics are computed over.
    pub window: Duration,
    /// How bad it is.
    pub severity: Severity,
    /// Message template: `{value}`, `{threshold}`, `{name}`, `{severity}` and `{label}` for
    /// any label of the alert.
    pub message: String,
    /// Labels added to the alert (routing keys for Alertmanager).
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`, `runbook_url`).
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// A rule with no `for` delay, a 5-minute window, severity medium and a default message.
    ///
    /// ```
    /// use towerscope_alert::{Condition, Rule, Signal};
    /// let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// assert_eq!(rule.render_message(150.0, &[]), "Busy: 150 (threshold 100)");
    /// ```
    pub fn new(
        name: impl Into<String>,
        signal: Signal,
        condition: Condition,
        threshold: f64,
    ) -> Self {
        Self {
            name: name.into(),
            signal,
            condition,
            threshold,
            for_duration: Duration::ZERO,
            window: Duration::from_secs(300),
            severity: Severity::Medium,
            message: "{name}: {value} (threshold {threshold})".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// How long the condition must hold before firing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Condition, RouteScope, Rule, Severity, Signal};
    /// let rule = Rule::new("HighErrorRate", Signal::ErrorRate(RouteScope::Overall), Condition::Gt, 5.0)
    ///     .for_duration(Duration::from_secs(120)) // pending for two minutes before it fires
    ///     .window(Duration::from_secs(300))
    ///     .severity(Severity::High)
    ///     .message("{value}% of requests failed (threshold {threshold}%)")
    ///     .label("team", "payments")
    ///     .annotation("runbook_url", "https://runbooks.example/errors");
    /// assert_eq!(rule.for_duration, Duration::from_secs(120));
    /// ```
    pub fn for_duration(mut self, d: Duration) -> Self {
        self.for_duration = d;
        self
    }

    /// The window for rates and statistics.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Condition, RouteScope, Rule, Severity, Signal};
    /// let rule = Rule::new("HighErrorRate", Signal::ErrorRate(RouteScope::Overall), Condition::Gt, 5.0)
    ///     .for_duration(Duration::from_secs(120)) // pending for two minutes before it fires
    ///     .window(Duration::from_secs(300))
    ///     .severity(Severity::High)
    ///     .message("{value}% of requests failed (threshold {threshold}%)")
    ///     .label("team", "payments")
    ///     .annotation("runbook_url", "https://runbooks.example/errors");
    /// assert_eq!(rule.window, Duration::from_secs(300));
    /// ```
    pub fn window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }

    /// The severity.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Condition, RouteScope, Rule, Severity, Signal};
    /// let rule = Rule::new("HighErrorRate", Signal::ErrorRate(RouteScope::Overall), Condition::Gt, 5.0)
    ///     .for_duration(Duration::from_secs(120)) // pending for two minutes before it fires
    ///     .window(Duration::from_secs(300))
    ///     .severity(Severity::High)
    ///     .message("{value}% of requests failed (threshold {threshold}%)")
    ///     .label("team", "payments")
    ///     .annotation("runbook_url", "https://runbooks.example/errors");
    /// assert_eq!(rule.severity, Severity::High);
    /// ```
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    /// The message template.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Condition, RouteScope, Rule, Severity, Signal};
    /// let rule = Rule::new("HighErrorRate", Signal::ErrorRate(RouteScope::Overall), Condition::Gt, 5.0)
    ///     .for_duration(Duration::from_secs(120)) // pending for two minutes before it fires
    ///     .window(Duration::from_secs(300))
    ///     .severity(Severity::High)
    ///     .message("{value}% of requests failed (threshold {threshold}%)")
    ///     .label("team", "payments")
    ///     .annotation("runbook_url", "https://runbooks.example/errors");
    /// assert_eq!(rule.render_message(7.5, &[]), "7.5% of requests failed (threshold 5%)");
    /// ```
    pub fn message(mut self, m: impl Into<String>) -> Self {
        self.message = m.into();
        self
    }

    /// Adds a label.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Condition, RouteScope, Rule, Severity, Signal};
    /// let rule = Rule::new("HighErrorRate", Signal::ErrorRate(RouteScope::Overall), Condition::Gt, 5.0)
    ///     .for_duration(Duration::from_secs(120)) // pending for two minutes before it fires
    ///     .window(Duration::from_secs(300))
    ///     .severity(Severity::High)
    ///     .message("{value}% of requests failed (threshold {threshold}%)")
    ///     .label("team", "payments")
    ///     .annotation("runbook_url", "https://runbooks.example/errors");
    /// assert_eq!(rule.labels["team"], "payments");
    /// ```
    pub fn label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    /// Adds an annotation.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Condition, RouteScope, Rule, Severity, Signal};
    /// let rule = Rule::new("HighErrorRate", Signal::ErrorRate(RouteScope::Overall), Condition::Gt, 5.0)
    ///     .for_duration(Duration::from_secs(120)) // pending for two minutes before it fires
    ///     .window(Duration::from_secs(300))
    ///     .severity(Severity::High)
    ///     .message("{value}% of requests failed (threshold {threshold}%)")
    ///     .label("team", "payments")
    ///     .annotation("runbook_url", "https://runbooks.example/errors");
    /// assert_eq!(rule.annotations["runbook_url"], "https://runbooks.example/errors");
    /// ```
    pub fn annotation(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    /// The message for `value`, with `extra` labels (those of the alert's series) available
    /// as placeholders. Unknown placeholders are left as written.
    ///
    /// ```
    /// use towerscope_alert::{Condition, RouteScope, Rule, Signal};
    /// let rule = Rule::new("SlowRoute", Signal::P95ResponseTime(RouteScope::EachRoute), Condition::Gt, 800.0)
    ///     .message("{route} p95 is {value} ms ({missing} stays as written)");
    /// let route = vec![("route".to_owned(), "/orders".to_owned())];
    /// assert_eq!(rule.render_message(950.0, &route), "/orders p95 is 950 ms ({missing} stays as written)");
    /// ```
    pub fn render_message(&self, value: f64, extra: &[(String, String)]) -> String {
        self.render(&self.message, value, extra)
    }

    /// Fills `template` the way [`render_message`](Self::render_message) fills the message.
    pub(crate) fn render(&self, template: &str, value: f64, extra: &[(String, String)]) -> String {
        render(template, |key| match key {
            "value" => Some(format_value(value)),
            "threshold" => Some(format_value(self.threshold)),
            "name" => Some(self.name.clone()),
            "severity" => Some(self.severity.as_str().to_owned()),
            other => extra
                .iter()
                .find(|(k, _)| k == other)
                .map(|(_, v)| v.clone())
                .or_else(|| self.labels.get(other).cloned()),
        })
    }
}

/// A number for people: at most two decimals, no trailing zeros.
pub(crate) fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{:.2}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn render(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end)
                if after[..end]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                let key = &after[..end];
                match lookup(key) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push('{');
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The series a [`Signal::CounterRate`] on `metric` reads: `metric` itself when it ends in
/// `_total`, `_sum` or `_count`, else `metric_total`.
pub(crate) fn counter_series(metric: &str) -> String {
    if ["_total", "_sum", "_count"]
        .iter()
        .any(|suffix| metric.ends_with(suffix))
    {
        metric.to_owned()
    } else {
        format!("{metric}_total")
    }
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
        })
}

/// A Prometheus label name a rule may group by: `[a-zA-Z_][a-zA-Z0-9_]*`, not `le` (the
/// bucket label) and not reserved (`__`).
pub(crate) fn is_label_name(name: &str) -> bool {
    !name.is_empty()
        && name != "le"
        && !name.starts_with("__")
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_known_placeholders_and_keep_the_rest() {
        let rule = Rule::new("R", Signal::InFlight, Condition::Ge, 10.0)
            .label("team", "shop")
            .message("{name} {value}/{threshold} on {route} for {team}, {unknown} {not closed");
        assert_eq!(
            rule.render_message(12.0, &[("route".into(), "/orders".into())]),
            "R 12/10 on /orders for shop, {unknown} {not closed"
        );
        assert_eq!(format_value(0.333333), "0.33");
        assert_eq!(format_value(-0.001), "0");
        assert_eq!(format_value(2000.0), "2000");
    }
}

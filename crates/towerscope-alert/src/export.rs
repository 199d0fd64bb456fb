//! The same rules as a Prometheus alerting-rule file, so evaluation can move to the
//! Prometheus server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use towerscope_metrics::{MetricNames, SystemNames};

use crate::rule::{RouteScope, Rule, Signal};

#[derive(Serialize)]
struct File {
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    name: String,
    rules: Vec<PromRule>,
}

#[derive(Serialize)]
struct PromRule {
    alert: String,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A duration as PromQL writes it: `90s` → `90s`, `300s` → `5m`, `3600s` → `1h`.
pub(crate) fn promql_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [
        ("w", 604_800_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn selector(matchers: &[(String, String)]) -> String {
    if matchers.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in matchers.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape(v));
    }
    s.push('}');
    s
}

/// Translates a message template to a Prometheus annotation template: `{value}` becomes
/// `$value`, `{route}` the route label, any other `{label}` that label; literal `{{` and
/// `}}` are escaped so Go's template parser reads them as text.
fn go_template(template: &str, rule: &Rule, route_label: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("{{") {
            out.push_str("{{ \"{{\" }}");
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("}}") {
            out.push_str("{{ \"}}\" }}");
            rest = r;
            continue;
        }
        if c == '{' {
            let after = &rest[1..];
            if let Some(end) = after.find('}') {
                let key = &after[..end];
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    match key {
                        "value" => out.push_str("{{ $value | printf \"%.2f\" }}"),
                        "threshold" => out.push_str(&crate::rule::format_value(rule.threshold)),
                        "name" => out.push_str(&rule.name),
                        "severity" => out.push_str(rule.severity.as_str()),
                        "route" => {
                            let _ = write!(out, "{{{{ $labels.{route_label} }}}}");
                        }
                        label => {
                            let _ = write!(out, "{{{{ $labels.{label} }}}}");
                        }
                    }
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

struct Exprs<'a> {
    names: &'a MetricNames,
    system: &'a SystemNames,
    /// Added to every selector as written (`job=~"$job"`); empty for none.
    matcher: &'a str,
}

impl Exprs<'_> {
    /// `{matcher,k="v",…}`, or nothing when there is neither.
    fn selector(&self, matchers: &[(String, String)]) -> String {
        let equal = selector(matchers);
        match (self.matcher.is_empty(), equal.is_empty()) {
            (true, _) => equal,
            (false, true) => format!("{{{}}}", self.matcher),
            (false, false) => format!("{{{},{}", self.matcher, &equal[1..]),
        }
    }

    fn requests(&self) -> String {
        match &self.names.requests {
            Some(n) => format!("{n}_total"),
            None => format!("{}_count", self.names.request_duration),
        }
    }

    fn scoped(&self, scope: &RouteScope, extra: &[(String, String)]) -> (String, String) {
        let route = &*self.names.route_label;
        let mut matchers = extra.to_vec();
        let by = match scope {
            RouteScope::Overall => String::new(),
            RouteScope::Route(r) => {
                matchers.push((route.to_owned(), r.clone()));
                String::new()
            }
            RouteScope::EachRoute => format!(" by ({route})"),
        };
        (self.selector(&matchers), by)
    }

    fn ratio(&self, errors: &str, window: &str, scope: &RouteScope) -> String {
        let (sel, by) = self.scoped(scope, &[]);
        let err_sel = {
            let inner = sel.trim_start_matches('{').trim_end_matches('}');
            let cancel = format!("{}!=\"cancelled\"", self.names.error_type_label);
            if inner.is_empty() {
                format!("{{{cancel}}}")
            } else {
                format!("{{{inner},{cancel}}}")
            }
        };
        format!(
            "sum{by}(rate({errors}{err_sel}[{window}])) / sum{by}(rate({req}{sel}[{window}]))",
            req = self.requests()
        )
    }

    /// The signal's value over `window` as PromQL (a burn rate: over its long window).
    fn value(&self, signal: &Signal, window: Duration) -> Option<String> {
        let w = promql_duration(window);
        let dur = &self.names.request_duration;
        let errors = self.names.errors.as_ref().map(|n| format!("{n}_total"));
        let bare = self.selector(&[]);
        Some(match signal {
            Signal::RequestRate(scope) => {
                let (sel, by) = self.scoped(scope, &[]);
                format!("sum{by}(rate({}{sel}[{w}]))", self.requests())
            }
            Signal::ErrorRate(scope) => {
                format!("100 * ({})", self.ratio(errors.as_deref()?, &w, scope))
            }
            Signal::AvgResponseTime(scope) => {
                let (sel, by) = self.scoped(scope, &[]);
                format!(
                    "1000 * sum{by}(rate({dur}_sum{sel}[{w}])) / sum{by}(rate({dur}_count{sel}[{w}]))"
                )
            }
            Signal::P95ResponseTime(scope) | Signal::P99ResponseTime(scope) => {
                let q = if matches!(signal, Signal::P95ResponseTime(_)) {
                    "0.95"
                } else {
                    "0.99"
                };
                let (sel, _) = self.scoped(scope, &[]);
                let by = match scope {
                    RouteScope::EachRoute => format!("le, {}", self.names.route_label),
                    _ => "le".to_owned(),
                };
                format!(
                    "1000 * histogram_quantile({q}, sum by ({by}) (rate({dur}_bucket{sel}[{w}])))"
                )
            }
            Signal::InFlight => format!("sum({}{bare})", self.names.in_flight),
            Signal::MemoryPercent => format!("max({}{bare})", self.system.memory_percent),
            Signal::CpuPercent => format!("max({}{bare})", self.system.cpu),
            Signal::DiskPercent => format!("max({}{bare})", self.system.disk_percent),
            Signal::CounterRate { metric, matchers } => {
                let name = crate::rule::counter_series(metric);
                format!("sum(rate({name}{}[{w}]))", self.selector(matchers))
            }
            Signal::Gauge { metric, matchers } => {
                format!("sum({metric}{})", self.selector(matchers))
            }
            Signal::SecondsUntil {
                metric,
                matchers,
                by,
            } => {
                // Names go into the expression as they are: only valid ones.
                let valid = crate::rule::is_metric_name(metric)
                    && by.as_deref().is_none_or(crate::rule::is_label_name);
                if !valid {
                    return None;
                }
                let by = by
                    .as_ref()
                    .map_or_else(String::new, |b| format!(" by ({b}) "));
                format!("min{by}({metric}{}) - time()", self.selector(matchers))
            }
            Signal::HistogramQuantile {
                metric,
                quantile,
                matchers,
                by,
            } => {
                // Names go into the expression as they are: only valid ones.
                let valid = crate::rule::is_metric_name(metric)
                    && (0.0..=1.0).contains(quantile)
                    && by.as_deref().is_none_or(crate::rule::is_label_name);
                if !valid {
                    return None;
                }
                let by = by
                    .as_ref()
                    .map_or_else(|| "le".to_owned(), |b| format!("le, {b}"));
                format!(
                    "histogram_quantile({quantile}, sum by ({by}) (rate({metric}_bucket{}[{w}])))",
                    self.selector(matchers)
                )
            }
            Signal::BurnRate {
                objective, long, ..
            } => self.burn(*objective, *long)?,
        })
    }

    /// How fast the error budget of `objective` burns over `window` (1 = exactly on
    /// budget).
    fn burn(&self, objective: f64, window: Duration) -> Option<String> {
        // Rounded so 1 - 0.999 prints as 0.001, not 0.0010000000000000009.
        let budget = ((1.0 - objective) * 1e12).round() / 1e12;
        let errors = self.names.errors.as_ref().map(|n| format!("{n}_total"))?;
        Some(format!(
            "({}) / {budget}",
            self.ratio(&errors, &promql_duration(window), &RouteScope::Overall)
        ))
    }

    fn expr(&self, rule: &Rule) -> Option<String> {
        let op = rule.condition.promql();
        let t = rule.threshold;
        if let Signal::BurnRate {
            objective,
            long,
            short,
        } = &rule.signal
        {
            let (long, short) = (
                self.burn(*objective, *long)?,
                self.burn(*objective, *short)?,
            );
            return Some(format!("{long} {op} {t} and {short} {op} {t}"));
        }
        self.value(&rule.signal, rule.window)
            .map(|e| format!("{e} {op} {t}"))
    }
}

/// A signal's value over `window` as a PromQL expression, with the metric names the metrics
/// layer and the system collector use: what an alert rule compares with its threshold, for
/// a Grafana panel or an ad-hoc query (a burn rate: over its long window). `matcher` is
/// added to every selector as written (`job=~"$job"` in a Grafana panel; empty for none).
/// `None` where the signal has no PromQL equivalent with these names.
///
/// ```
/// use std::time::Duration;
/// use towerscope_alert::{Signal, signal_promql};
/// use towerscope_metrics::{MetricNames, SystemNames};
/// let revenue = Signal::CounterRate { metric: "shop_order_value_dollars_sum".into(), matchers: vec![] };
/// let five_minutes = Duration::from_secs(300);
/// let (names, system) = (MetricNames::otel(), SystemNames::system());
/// assert_eq!(
///     signal_promql(&revenue, five_minutes, &names, &system, "").as_deref(),
///     Some("sum(rate(shop_order_value_dollars_sum[5m]))")
/// );
/// assert_eq!(
///     signal_promql(&revenue, five_minutes, &names, &system, r#"job=~"$job""#).as_deref(),
///     Some(r#"sum(rate(shop_order_value_dollars_sum{job=~"$job"}[5m]))"#)
/// );
/// ```
pub fn signal_promql(
    signal: &Signal,
    window: Duration,
    names: &MetricNames,
    system: &SystemNames,
    matcher: &str,
) -> Option<String> {
    Exprs {
        names,
        system,
        matcher,
    }
    .value(signal, window)
}

/// Writes `rules` as a Prometheus alerting-rule file (one group named `group`), with PromQL
/// over the metric names the metrics layer and the system collector use. The result passes
/// `promtool check rules`. Rules whose signal has no PromQL equivalent with these names
/// (an error rate when the error counter is switched off) are left out and returned by
/// name.
///
/// ```
/// use towerscope_metrics::{MetricNames, SystemNames};
/// let (yaml, skipped) = towerscope_alert::to_prometheus_rules(
///     "towerscope", &towerscope_alert::default_rules(), &MetricNames::otel(), &SystemNames::system());
/// assert!(yaml.contains("alert: HighErrorRate"));
/// assert!(skipped.is_empty());
/// ```
pub fn to_prometheus_rules(
    group: &str,
    rules: &[Rule],
    names: &MetricNames,
    system: &SystemNames,
) -> (String, Vec<String>) {
    let exprs = Exprs {
        names,
        system,
        matcher: "",
    };
    let mut skipped = Vec::new();
    let mut out = Vec::new();
    for rule in rules {
        let Some(expr) = exprs.expr(rule) else {
            skipped.push(rule.name.clone());
            continue;
        };
        let mut labels = rule.labels.clone();
        labels.insert("severity".into(), rule.severity.as_str().into());
        let mut annotations: BTreeMap<String, String> = rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), go_template(v, rule, &names.route_label)))
            .collect();
        annotations
            .entry("description".into())
            .or_insert_with(|| go_template(&rule.message, rule, &names.route_label));
        out.push(PromRule {
            alert: rule.name.clone(),
            expr,
            for_: (!rule.for_duration.is_zero()).then(|| promql_duration(rule.for_duration)),
            labels,
            annotations,
        });
    }
    let file = File {
        groups: vec![Group {
            name: group.to_owned(),
            rules: out,
        }],
    };
    let yaml = serde_saphyr::to_string(&file).unwrap_or_default();
    (yaml, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_rates_read_totals_and_histogram_sums_and_counts() {
        let rate = |metric: &str| {
            let signal = Signal::CounterRate {
                metric: metric.into(),
                matchers: vec![],
            };
            let rules = [Rule::new("R", signal, crate::Condition::Gt, 1.0)];
            to_prometheus_rules("g", &rules, &MetricNames::otel(), &SystemNames::system()).0
        };
        assert!(rate("logins").contains("sum(rate(logins_total[5m])) > 1"));
        assert!(rate("logins_total").contains("sum(rate(logins_total[5m])) > 1"));
        assert!(rate("order_value_sum").contains("sum(rate(order_value_sum[5m])) > 1"));
        assert!(rate("order_value_count").contains("sum(rate(order_value_count[5m])) > 1"));
    }

    #[test]
    fn a_matcher_reaches_every_selector() {
        let matcher = r#"job=~"$job""#;
        let signals = [
            Signal::RequestRate(RouteScope::Overall),
            Signal::RequestRate(RouteScope::Route("/orders".into())),
            Signal::ErrorRate(RouteScope::EachRoute),
            Signal::ErrorRate(RouteScope::Route("/orders".into())),
            Signal::AvgResponseTime(RouteScope::Overall),
            Signal::P95ResponseTime(RouteScope::EachRoute),
            Signal::InFlight,
            Signal::MemoryPercent,
            Signal::CpuPercent,
            Signal::DiskPercent,
            Signal::CounterRate {
                metric: "logins".into(),
                matchers: vec![("outcome".into(), "success".into())],
            },
            Signal::Gauge {
                metric: "queue_depth".into(),
                matchers: vec![],
            },
            Signal::HistogramQuantile {
                metric: "rum_lcp_seconds".into(),
                quantile: 0.75,
                matchers: vec![],
                by: Some("page".into()),
            },
            Signal::SecondsUntil {
                metric: "synthetic_probe_tls_cert_expiry_timestamp_seconds".into(),
                matchers: vec![],
                by: Some("probe".into()),
            },
            Signal::BurnRate {
                objective: 0.999,
                long: Duration::from_secs(3600),
                short: Duration::from_secs(300),
            },
        ];
        let (names, system) = (MetricNames::otel(), SystemNames::system());
        for signal in &signals {
            let expr = signal_promql(signal, Duration::from_secs(300), &names, &system, matcher)
                .expect("promql");
            // Braces in PromQL open selectors only: each starts with the matcher.
            assert_eq!(
                expr.matches('{').count(),
                expr.matches(&format!("{{{matcher}")).count(),
                "{expr}"
            );
            assert!(expr.contains(matcher), "{expr}");
            let plain = signal_promql(signal, Duration::from_secs(300), &names, &system, "")
                .expect("promql");
            assert!(!plain.contains("job"), "{plain}");
        }
    }

    #[test]
    fn histogram_quantiles_in_promql() {
        let signal = |by: Option<&str>, quantile: f64| Signal::HistogramQuantile {
            metric: "rum_lcp_seconds".into(),
            quantile,
            matchers: vec![("device".into(), "mobile".into())],
            by: by.map(Into::into),
        };
        let rules = [
            Rule::new("Lcp", signal(Some("page"), 0.75), crate::Condition::Gt, 2.5)
                .message("p75 LCP of {page} is {value} s"),
            Rule::new("LcpAll", signal(None, 0.5), crate::Condition::Gt, 2.0),
            Rule::new(
                "BadBy",
                signal(Some("page) or vector(1"), 0.75),
                crate::Condition::Gt,
                1.0,
            ),
            Rule::new("BadQuantile", signal(None, 75.0), crate::Condition::Gt, 1.0),
        ];
        let (yaml, skipped) =
            to_prometheus_rules("g", &rules, &MetricNames::otel(), &SystemNames::system());
        // Long expressions are folded over lines: compare with the whitespace made single.
        let yaml = yaml.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            yaml.contains(
                "histogram_quantile(0.75, sum by (le, page) (rate(rum_lcp_seconds_bucket{device=\"mobile\"}[5m]))) > 2.5"
            ),
            "{yaml}"
        );
        assert!(
            yaml.contains("histogram_quantile(0.5, sum by (le) (rate(rum_lcp_seconds_bucket{device=\"mobile\"}[5m]))) > 2"),
            "{yaml}"
        );
        assert!(yaml.contains("p75 LCP of {{ $labels.page }}"), "{yaml}");
        assert_eq!(skipped, vec!["BadBy".to_owned(), "BadQuantile".to_owned()]);
    }

    #[test]
    fn durations_in_promql() {
        assert_eq!(promql_duration(Duration::from_secs(300)), "5m");
        assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
        assert_eq!(promql_duration(Duration::from_secs(259_200)), "3d");
        assert_eq!(promql_duration(Duration::from_millis(1500)), "1500ms");
    }
}

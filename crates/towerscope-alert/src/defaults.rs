//! The guide's default rules and SLO burn-rate rules.

use std::time::Duration;

use crate::rule::{Condition, RouteScope, Rule, Severity, Signal};

/// The observability guide's four rules: memory above 85 % (high), CPU above 80 % (high),
/// error rate above 5 % (critical), average response time above 2000 ms (medium). Each
/// must hold for 5 minutes (2 for the error rate) before it fires, so a spike does not page.
///
/// ```
/// let rules = towerscope_alert::default_rules();
/// assert_eq!(rules.len(), 4);
/// assert_eq!(rules[2].name, "HighErrorRate");
/// ```
pub fn default_rules() -> Vec<Rule> {
    vec![
        Rule::new(
            "HighMemoryUsage",
            Signal::MemoryPercent,
            Condition::Gt,
            85.0,
        )
        .severity(Severity::High)
        .for_duration(Duration::from_secs(300))
        .message("Memory usage is {value}% (threshold {threshold}%)")
        .annotation("summary", "Memory usage above {threshold}%"),
        Rule::new("HighCpuUsage", Signal::CpuPercent, Condition::Gt, 80.0)
            .severity(Severity::High)
            .for_duration(Duration::from_secs(300))
            .message("CPU usage is {value}% (threshold {threshold}%)")
            .annotation("summary", "CPU usage above {threshold}%"),
        Rule::new(
            "HighErrorRate",
            Signal::ErrorRate(RouteScope::Overall),
            Condition::Gt,
            5.0,
        )
        .severity(Severity::Critical)
        .for_duration(Duration::from_secs(120))
        .message("Error rate is {value}% (threshold {threshold}%)")
        .annotation("summary", "More than {threshold}% of requests fail"),
        Rule::new(
            "SlowResponseTime",
            Signal::AvgResponseTime(RouteScope::Overall),
            Condition::Gt,
            2000.0,
        )
        .severity(Severity::Medium)
        .for_duration(Duration::from_secs(300))
        .message("Average response time is {value} ms (threshold {threshold} ms)")
        .annotation("summary", "Responses slower than {threshold} ms on average"),
    ]
}

/// Multiwindow, multi-burn-rate rules for an availability `objective` (0.999 for 99.9 %),
/// as in the SRE workbook (chapter 5, "Alerting on SLOs"), over a 30-day budget:
///
/// | rule | burn rate | long / short window | budget spent when it fires | severity |
/// |---|---|---|---|---|
/// | `{prefix}FastBurn` | 14.4 | 1 h / 5 min | 2 % | critical (page) |
/// | `{prefix}SlowBurn` | 6 | 6 h / 30 min | 5 % | critical (page) |
/// | `{prefix}BudgetBurn` | 1 | 3 d / 6 h | 10 % | medium (ticket) |
///
/// Each fires only while both its windows burn faster than its rate, so it resolves soon
/// after the errors stop (the short window) and does not fire on a brief spike.
///
/// ```
/// let rules = towerscope_alert::slo_burn_rate_rules("Availability", 0.999);
/// assert_eq!(rules.len(), 3);
/// assert_eq!(rules[0].threshold, 14.4);
/// ```
pub fn slo_burn_rate_rules(prefix: &str, objective: f64) -> Vec<Rule> {
    let rule = |suffix: &str, rate: f64, long: u64, short: u64, severity: Severity| {
        let name = format!("{prefix}{suffix}");
        Rule::new(
            name,
            Signal::BurnRate {
                objective,
                long: Duration::from_secs(long),
                short: Duration::from_secs(short),
            },
            Condition::Gt,
            rate,
        )
        .severity(severity)
        .window(Duration::from_secs(long))
        .message(format!(
            "Error budget of the {}% objective burning {{value}}x (threshold {{threshold}}x)",
            crate::rule::format_value(objective * 100.0)
        ))
        .label("slo", prefix.to_owned())
    };
    vec![
        rule("FastBurn", 14.4, 3600, 300, Severity::Critical),
        rule("SlowBurn", 6.0, 6 * 3600, 1800, Severity::Critical),
        rule("BudgetBurn", 1.0, 3 * 86_400, 6 * 3600, Severity::Medium),
    ]
}

/// Performance budgets on the Core Web Vitals as real users see them (the histograms
/// towerscope-rum exports: `rum_lcp_seconds`, `rum_inp_seconds`, `rum_cls`): the 75th
/// percentile of each page over 30 minutes (the percentile and the per-page view Google
/// assesses), against the "good" thresholds, one alert per page, labelled `page`:
///
/// | rule | p75 of | budget |
/// |---|---|---|
/// | `LcpBudget` | `rum_lcp_seconds` | 2.5 s |
/// | `InpBudget` | `rum_inp_seconds` | 200 ms |
/// | `ClsBudget` | `rum_cls` | 0.1 |
///
/// Severity medium (a ticket, not a page), after 15 minutes over budget; a page with no
/// views in the window has no value, and its alert resolves.
///
/// ```
/// let rules = towerscope_alert::web_vitals_budget_rules();
/// assert_eq!(rules.len(), 3);
/// assert_eq!(rules[0].name, "LcpBudget");
/// assert_eq!(rules[1].threshold, 0.2); // INP, seconds
/// ```
pub fn web_vitals_budget_rules() -> Vec<Rule> {
    let rule = |name: &str, metric: &str, vital: &str, budget: f64, unit: &str| {
        Rule::new(
            name,
            Signal::HistogramQuantile {
                metric: metric.to_owned(),
                quantile: 0.75,
                matchers: Vec::new(),
                by: Some("page".to_owned()),
            },
            Condition::Gt,
            budget,
        )
        .window(Duration::from_secs(1800))
        .for_duration(Duration::from_secs(900))
        .severity(Severity::Medium)
        .message(format!(
            "p75 {vital} of {{page}} is {{value}}{unit} (budget {{threshold}}{unit})"
        ))
        .annotation(
            "summary",
            format!("{vital} over its performance budget for real users"),
        )
        .label("budget", "web-vitals")
    };
    vec![
        rule("LcpBudget", "rum_lcp_seconds", "LCP", 2.5, " s"),
        rule("InpBudget", "rum_inp_seconds", "INP", 0.2, " s"),
        rule("ClsBudget", "rum_cls", "CLS", 0.1, ""),
    ]
}

/// Warnings before a certificate runs out, for every synthetic probe over TLS (the gauge
/// `synthetic_probe_tls_cert_expiry_timestamp_seconds` towerscope-health's `Synthetics`
/// exports), one alert per probe, labelled `probe`:
///
/// | rule | certificate expires within | severity |
/// |---|---|---|
/// | `CertificateExpiresSoon` | 21 days | medium (a ticket) |
/// | `CertificateExpiresThisWeek` | 7 days | high (a page in working hours) |
///
/// A renewed certificate, seen at the probe's next run, resolves them. An expired one
/// fails the probe itself (the TLS handshake is refused) while these stay firing.
///
/// ```
/// let rules = towerscope_alert::certificate_expiry_rules();
/// assert_eq!(rules[0].name, "CertificateExpiresSoon");
/// assert_eq!(rules[1].threshold, 7.0 * 86_400.0); // seconds
/// ```
pub fn certificate_expiry_rules() -> Vec<Rule> {
    let rule = |name: &str, days: u32, severity: Severity| {
        Rule::new(
            name,
            Signal::SecondsUntil {
                metric: "synthetic_probe_tls_cert_expiry_timestamp_seconds".to_owned(),
                matchers: Vec::new(),
                by: Some("probe".to_owned()),
            },
            Condition::Lt,
            f64::from(days) * 86_400.0,
        )
        .for_duration(Duration::from_secs(600))
        .severity(severity)
        .message(format!(
            "The certificate probe {{probe}} was shown expires within {days} days"
        ))
        .annotation("summary", "A server certificate expires soon: renew it")
    };
    vec![
        rule("CertificateExpiresSoon", 21, Severity::Medium),
        rule("CertificateExpiresThisWeek", 7, Severity::High),
    ]
}

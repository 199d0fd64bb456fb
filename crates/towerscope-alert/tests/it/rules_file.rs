//! Rule files: YAML and TOML, and errors that name the file, the rule and the field.

use std::time::Duration;

use proptest::prelude::*;
use towerscope_alert::{Condition, RouteScope, Severity, Signal, parse_rules};

const YAML: &str = r#"
rules:
  - name: HighErrorRate
    signal: error_rate
    condition: gt
    threshold: 5
    for: 2m
    severity: critical
    message: "Error rate {value}% above {threshold}%"
    labels: { team: shop }
    annotations:
      summary: Too many failures
      runbook_url: https://runbooks.example/errors
  - name: SlowRoutes
    signal: p95_response_time
    route: "*"
    condition: ge
    threshold: 800
    window: 10m
  - name: Signups
    signal: counter_rate
    metric: app_user_registrations
    matchers: { plan: free }
    condition: lt
    threshold: 0.01
    for: 1h
    severity: low
  - name: AvailabilityFastBurn
    signal: burn_rate
    objective: 0.999
    long_window: 1h
    short_window: 5m
    condition: gt
    threshold: 14.4
  - name: LcpBudget
    signal: histogram_quantile
    metric: rum_lcp_seconds
    quantile: 0.75
    by: page
    matchers: { device: mobile }
    condition: gt
    threshold: 2.5
    window: 30m
  - name: CertificateExpiresSoon
    signal: seconds_until
    metric: synthetic_probe_tls_cert_expiry_timestamp_seconds
    by: probe
    condition: lt
    threshold: 1814400
"#;

#[test]
fn yaml_rules_read_every_field() {
    let rules = parse_rules("alerts.yaml", YAML).expect("valid");
    assert_eq!(rules.len(), 6);
    let r = &rules[0];
    assert_eq!(r.signal, Signal::ErrorRate(RouteScope::Overall));
    assert_eq!(r.condition, Condition::Gt);
    assert_eq!(r.for_duration, Duration::from_secs(120));
    assert_eq!(r.severity, Severity::Critical);
    assert_eq!(r.labels["team"], "shop");
    assert_eq!(
        r.annotations["runbook_url"],
        "https://runbooks.example/errors"
    );
    assert_eq!(
        rules[1].signal,
        Signal::P95ResponseTime(RouteScope::EachRoute)
    );
    assert_eq!(rules[1].window, Duration::from_secs(600));
    assert_eq!(
        rules[2].signal,
        Signal::CounterRate {
            metric: "app_user_registrations".into(),
            matchers: vec![("plan".into(), "free".into())]
        }
    );
    assert_eq!(
        rules[3].signal,
        Signal::BurnRate {
            objective: 0.999,
            long: Duration::from_secs(3600),
            short: Duration::from_secs(300)
        }
    );
    assert_eq!(
        rules[4].signal,
        Signal::HistogramQuantile {
            metric: "rum_lcp_seconds".into(),
            quantile: 0.75,
            matchers: vec![("device".into(), "mobile".into())],
            by: Some("page".into()),
        }
    );
    assert_eq!(
        rules[5].signal,
        Signal::SecondsUntil {
            metric: "synthetic_probe_tls_cert_expiry_timestamp_seconds".into(),
            matchers: vec![],
            by: Some("probe".into()),
        }
    );
}

#[test]
fn toml_rules_read_the_same() {
    let rules = parse_rules(
        "alerts.toml",
        r#"
[[rules]]
name = "Busy"
signal = "in_flight"
condition = "gt"
threshold = 100
for = 30

[rules.labels]
team = "shop"
"#,
    )
    .expect("valid");
    assert_eq!(rules[0].signal, Signal::InFlight);
    assert_eq!(rules[0].for_duration, Duration::from_secs(30));
    assert_eq!(rules[0].labels["team"], "shop");
}

#[test]
fn errors_name_the_file_the_rule_and_the_field() {
    let base = "  - name: R\n    signal: cpu\n    condition: gt\n    threshold: 1\n";
    for (extra_or_replacement, field, needle) in [
        ("    severity: urgent\n", Some("severity"), "urgent"),
        ("    for: soon\n", Some("for"), "soon"),
        ("    window: 0s\n", Some("window"), "positive"),
        ("    colour: red\n", None, "unknown field `colour`"),
        (
            "    labels: { alertname: x }\n",
            Some("labels"),
            "set by the rule",
        ),
        (
            "    labels: { \"bad-name\": x }\n",
            Some("labels"),
            "not a label name",
        ),
    ] {
        let text = format!("rules:\n{base}{extra_or_replacement}");
        let err = parse_rules("ops/alerts.yaml", &text).expect_err(extra_or_replacement);
        assert_eq!(err.file, "ops/alerts.yaml");
        assert_eq!(err.rule.as_deref(), Some("R"), "{err}");
        assert_eq!(err.field.as_deref(), field, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let cases = [
        (
            "rules:\n  - name: R\n    condition: gt\n    threshold: 1\n",
            "signal",
            "missing",
        ),
        (
            "rules:\n  - name: R\n    signal: vibes\n    condition: gt\n    threshold: 1\n",
            "signal",
            "vibes",
        ),
        (
            "rules:\n  - name: R\n    signal: cpu\n    condition: about\n    threshold: 1\n",
            "condition",
            "about",
        ),
        (
            "rules:\n  - name: R\n    signal: cpu\n    condition: gt\n    threshold: lots\n",
            "threshold",
            "number",
        ),
        (
            "rules:\n  - name: R\n    signal: gauge\n    metric: 9lives\n    condition: gt\n    threshold: 1\n",
            "metric",
            "metric name",
        ),
        (
            "rules:\n  - name: R\n    signal: error_rate\n    route: orders\n    condition: gt\n    threshold: 1\n",
            "route",
            "/",
        ),
        (
            "rules:\n  - name: R\n    signal: burn_rate\n    objective: 99.9\n    long_window: 1h\n    short_window: 5m\n    condition: gt\n    threshold: 1\n",
            "objective",
            "between 0 and 1",
        ),
        (
            "rules:\n  - name: R\n    signal: burn_rate\n    objective: 0.99\n    long_window: 1h\n    short_window: 2h\n    condition: gt\n    threshold: 1\n",
            "short_window",
            "shorter",
        ),
        (
            "rules:\n  - name: R\n    signal: histogram_quantile\n    metric: rum_lcp_seconds\n    quantile: 75\n    condition: gt\n    threshold: 1\n",
            "quantile",
            "between 0 and 1",
        ),
        (
            "rules:\n  - name: R\n    signal: histogram_quantile\n    metric: rum_lcp_seconds\n    condition: gt\n    threshold: 1\n",
            "quantile",
            "missing",
        ),
        (
            "rules:\n  - name: R\n    signal: histogram_quantile\n    metric: rum_lcp_seconds\n    quantile: 0.75\n    by: le\n    condition: gt\n    threshold: 1\n",
            "by",
            "not a label name",
        ),
        (
            "rules:\n  - name: R\n    signal: histogram_quantile\n    metric: rum_lcp_seconds\n    quantile: 0.75\n    by: \"page) or vector(1\"\n    condition: gt\n    threshold: 1\n",
            "by",
            "not a label name",
        ),
        (
            "rules:\n  - name: R\n    signal: seconds_until\n    metric: cert_expiry\n    by: \"probe) or vector(1\"\n    condition: lt\n    threshold: 1\n",
            "by",
            "not a label name",
        ),
        (
            "rules:\n  - name: R\n    signal: seconds_until\n    condition: lt\n    threshold: 1\n",
            "metric",
            "missing",
        ),
    ];
    for (text, field, needle) in cases {
        let err = parse_rules("a.yaml", text).expect_err(text);
        assert_eq!(err.field.as_deref(), Some(field), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // A rule without a name is named by its position; duplicates are refused.
    let err = parse_rules("a.yaml", "rules:\n  - signal: cpu\n").expect_err("no name");
    assert_eq!(err.rule.as_deref(), Some("#1"));
    let twice = format!(
        "rules:\n{0}{0}",
        "  - name: R\n    signal: cpu\n    condition: gt\n    threshold: 1\n"
    );
    let err = parse_rules("a.yaml", &twice).expect_err("duplicate");
    assert_eq!(err.field.as_deref(), Some("name"));
    // Syntax errors name the file.
    let err = parse_rules("broken.yaml", "rules: [").expect_err("syntax");
    assert!(
        err.to_string().starts_with("broken.yaml: invalid YAML"),
        "{err}"
    );
    let err = parse_rules("broken.toml", "[[rules]\n").expect_err("syntax");
    assert!(
        err.to_string().starts_with("broken.toml: invalid TOML"),
        "{err}"
    );
    let err = parse_rules("a.yaml", "alerts: []").expect_err("wrong key");
    assert!(err.to_string().contains("unknown top-level key"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn no_input_panics(text in ".{0,400}") {
        let _ = parse_rules("fuzz.yaml", &text);
        let _ = parse_rules("fuzz.toml", &text);
    }

    #[test]
    fn mutated_valid_files_never_panic(cut in 0usize..600, insert in "[ :\\-\\[\\]{}\"'#\\n0-9a-z]{0,8}") {
        let mut text = YAML.to_owned();
        let at = cut.min(text.len());
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        let _ = parse_rules("fuzz.yaml", &text);
    }
}

//! The exported Prometheus alerting rules pass `promtool check rules`.

use towerscope_metrics::{MetricNames, SystemNames};
use towerscope_tests::require_program;

fn check(yaml: &str) -> String {
    let Some(promtool) = require_program("promtool") else {
        return String::new();
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, yaml).expect("write");
    let out = std::process::Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool refused the rules:\n{text}\n{yaml}"
    );
    text
}

#[test]
fn the_demos_rules_pass_promtool() {
    let rules = towerscope_demo::alert_rules();
    for names in [MetricNames::otel(), MetricNames::guide()] {
        let system = if names == MetricNames::guide() {
            SystemNames::guide()
        } else {
            SystemNames::system()
        };
        let (yaml, skipped) =
            towerscope_alert::to_prometheus_rules("towerscope-demo", &rules, &names, &system);
        assert!(skipped.is_empty(), "{skipped:?}");
        let out = check(&yaml);
        if !out.is_empty() {
            assert!(
                out.contains(&format!("SUCCESS: {} rules found", rules.len())),
                "{out}"
            );
        }
    }
}

#[test]
fn the_kept_rule_file_passes_promtool() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/monitoring/alert-rules.yml"
    ))
    .expect("docs/monitoring/alert-rules.yml");
    let out = check(&yaml);
    if !out.is_empty() {
        assert!(out.contains("SUCCESS"), "{out}");
    }
}

#[test]
fn every_signal_and_awkward_text_pass_promtool() {
    let rules = towerscope_alert::parse_rules(
        "every.yaml",
        r#"
rules:
  - { name: Rate, signal: request_rate, route: "/orders/{id}", condition: lt, threshold: 0.5 }
  - { name: EachErr, signal: error_rate, route: "*", condition: ge, threshold: 10, for: 90s }
  - { name: Avg, signal: avg_response_time, route: "*", condition: gt, threshold: 500 }
  - { name: P99, signal: p99_response_time, condition: gt, threshold: 900, window: 1h30m }
  - { name: Busy, signal: in_flight, condition: gt, threshold: 100 }
  - { name: Disk, signal: disk, condition: gt, threshold: 90 }
  - name: Quoted
    signal: counter_rate
    metric: app_orders
    matchers: { status: "say \"hi\"\\n" }
    condition: ne
    threshold: 0
    labels: { team: "ops: \"night\"" }
    annotations: { summary: "value {value} on {route} — {unknown} {{braces}}" }
  - { name: Revenue, signal: counter_rate, metric: app_order_value_dollars_sum, condition: lt, threshold: 1 }
  - { name: Depth, signal: gauge, metric: app_queue_depth, matchers: { queue: emails }, condition: eq, threshold: 3 }
  - { name: Burn, signal: burn_rate, objective: 0.995, long_window: 6h, short_window: 30m, condition: gt, threshold: 6 }
  - name: LcpBudget
    signal: histogram_quantile
    metric: rum_lcp_seconds
    quantile: 0.75
    by: page
    matchers: { device: "mobile \"beta\"" }
    condition: gt
    threshold: 2.5
    message: "p75 LCP of {page} is {value} s"
  - { name: Median, signal: histogram_quantile, metric: http_server_request_duration_seconds, quantile: 0.5, condition: gt, threshold: 0.3, window: 10m }
  - { name: CertSoon, signal: seconds_until, metric: synthetic_probe_tls_cert_expiry_timestamp_seconds, by: probe, condition: lt, threshold: 1814400, message: "{probe}: {value} s left" }
  - { name: Deadline, signal: seconds_until, metric: app_deadline_timestamp_seconds, matchers: { job: "batch" }, condition: lt, threshold: 0 }
"#,
    )
    .expect("valid rules");
    let (yaml, skipped) = towerscope_alert::to_prometheus_rules(
        "every-signal",
        &rules,
        &MetricNames::otel(),
        &SystemNames::system(),
    );
    assert!(skipped.is_empty());
    let out = check(&yaml);
    if !out.is_empty() {
        assert!(out.contains("SUCCESS: 14 rules found"), "{out}");
    }
}

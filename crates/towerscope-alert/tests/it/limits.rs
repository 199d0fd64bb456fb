//! Durations past what a clock can hold ("for ever", `Duration::MAX`, a window of 10^19
//! seconds from a rules file) are taken at their documented limits: no panic in the caller,
//! and no background task that dies silently.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use towerscope_alert::{
    Alerting, ChannelSink, Condition, Notification, RouteScope, Rule, Signal, Sources, parse_rules,
};
use towerscope_metrics::MetricsService;

fn queue_depth() -> (Sources, Gauge) {
    let mut registry = Registry::default();
    let depth = Gauge::default();
    registry.register("queue_depth", "Jobs waiting", depth.clone());
    (Sources::new(MetricsService::new(registry)), depth)
}

fn backlog() -> Rule {
    let signal = Signal::Gauge {
        metric: "queue_depth".into(),
        matchers: vec![],
    };
    Rule::new("Backlog", signal, Condition::Gt, 100.0)
}

#[tokio::test(start_paused = true)]
async fn an_evaluation_interval_past_a_day_evaluates_daily() {
    let (sources, depth) = queue_depth();
    let (sink, mut notifications) = ChannelSink::new(8);
    let alerting = Alerting::builder(sources)
        .rules([backlog()])
        .interval(Duration::MAX)
        .notify(sink)
        .spawn();
    depth.set(250);
    // Before: the evaluation task panicked at its first tick ("overflow when adding
    // duration to instant"), and no rule was evaluated again.
    tokio::time::sleep(Duration::from_secs(24 * 3600 + 1)).await;
    let fired = tokio::time::timeout(Duration::from_secs(1), notifications.recv())
        .await
        .expect("evaluated within a day")
        .expect("a notification");
    assert!(matches!(fired, Notification::Firing(a) if a.name == "Backlog"));
    alerting.shutdown().await;
}

#[tokio::test]
async fn a_silence_for_ever_is_a_century() {
    let (sources, depth) = queue_depth();
    let alerting = Alerting::builder(sources).rules([backlog()]).spawn();
    assert!(alerting.silence("Backlog", Duration::MAX));
    depth.set(250);
    assert!(alerting.evaluate_now().is_empty(), "silenced");
    assert!(alerting.active()[0].silenced);
}

#[tokio::test]
async fn rules_with_windows_no_clock_reaches_still_evaluate() {
    let text = "rules:
  - name: Errors
    signal: error_rate
    condition: '>'
    threshold: 1
    window: 18446744073709551615s
    for: 18446744073709551615s
";
    let mut rules = parse_rules("rules.yaml", text).expect("a valid file");
    rules.push(
        Rule::new(
            "Slow",
            Signal::P95ResponseTime(RouteScope::EachRoute),
            Condition::Gt,
            1000.0,
        )
        .window(Duration::MAX),
    );
    let perf = towerscope_perf::PerfMonitor::new();
    perf.record("http_request", 2.0, &[("route", "/a")]);
    let (sources, _depth) = queue_depth();
    let alerting = Alerting::builder(sources.perf(perf)).rules(rules).spawn();
    // Before: "overflow when multiplying duration by scalar" laying out the counter history.
    alerting.evaluate_now();
    alerting.evaluate_now();
    assert_eq!(alerting.rules().len(), 2);
}

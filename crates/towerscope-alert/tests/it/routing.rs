//! Routes: each receiver gets the alerts of its severities or labels, firing and resolved.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use towerscope_alert::{
    Alerting, ChannelSink, Condition, Notification, Routed, Rule, Severity, Signal, Sources,
};
use towerscope_metrics::MetricsService;

/// Everything that is in the channel now: `(name, resolved)`.
fn drain(rx: &mut tokio::sync::mpsc::Receiver<Notification>) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Ok(n) = rx.try_recv() {
        out.push((n.alert().name.clone(), n.is_resolved()));
    }
    out.sort();
    out
}

#[tokio::test(start_paused = true)]
async fn each_route_gets_its_alerts_firing_and_resolved() {
    let mut registry = Registry::default();
    let depth = Gauge::<i64>::default();
    registry.register("queue_depth", "Jobs waiting", depth.clone());
    let signal = || Signal::Gauge {
        metric: "queue_depth".into(),
        matchers: vec![],
    };
    let (pager, mut pages) = ChannelSink::new(16);
    let (chat, mut messages) = ChannelSink::new(16);
    let (payments, mut payments_inbox) = ChannelSink::new(16);
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules([
            Rule::new("QueueStuck", signal(), Condition::Gt, 1000.0).severity(Severity::Critical),
            Rule::new("QueueBacklog", signal(), Condition::Gt, 100.0)
                .severity(Severity::Medium)
                .label("team", "payments"),
        ])
        .notify(Routed::min_severity(pager, Severity::High))
        .notify(Routed::when(chat, |a| a.severity < Severity::High))
        .notify(Routed::when(payments, |a| {
            a.labels.get("team").is_some_and(|t| t == "payments")
        }))
        .spawn();

    depth.set(5000); // both fire
    alerting.evaluate_now();
    assert_eq!(drain(&mut pages), [("QueueStuck".to_owned(), false)]);
    assert_eq!(drain(&mut messages), [("QueueBacklog".to_owned(), false)]);
    assert_eq!(
        drain(&mut payments_inbox),
        [("QueueBacklog".to_owned(), false)]
    );

    depth.set(500); // the critical one resolves; the backlog still fires
    alerting.evaluate_now();
    assert_eq!(drain(&mut pages), [("QueueStuck".to_owned(), true)]);
    assert_eq!(drain(&mut messages), []);
    assert_eq!(drain(&mut payments_inbox), []);

    depth.set(0); // and the backlog resolves, where it fired
    alerting.evaluate_now();
    assert_eq!(drain(&mut pages), []);
    assert_eq!(drain(&mut messages), [("QueueBacklog".to_owned(), true)]);
    assert_eq!(
        drain(&mut payments_inbox),
        [("QueueBacklog".to_owned(), true)]
    );
    alerting.shutdown().await;
}

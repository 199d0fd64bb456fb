//! User code that panics inside the alerting machinery (a `Notify` sink, a `Notifier`)
//! costs the notification it was handling, never the task that evaluates rules or delivers
//! the notifications after it.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use towerscope_alert::{
    Alerting, ChannelSink, Condition, Delivery, DeliveryError, Notification, Notifier, Notify,
    Rule, SendFuture, Severity, Signal, Sources,
};
use towerscope_metrics::MetricsService;

use crate::notifiers::{alert, until};

/// A sink with a bug: it panics on every notification.
struct Buggy;

impl Notify for Buggy {
    fn notify(&self, n: &Notification) {
        panic!("sink bug on {}", n.alert().name);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_sink_stops_neither_the_other_sinks_nor_the_evaluations() {
    let mut registry = Registry::default();
    let depth = Gauge::<i64>::default();
    registry.register("queue_depth", "Jobs waiting", depth.clone());
    let signal = Signal::Gauge {
        metric: "queue_depth".into(),
        matchers: vec![],
    };
    let (sink, mut notifications) = ChannelSink::new(8);
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules([Rule::new("Backlog", signal, Condition::Gt, 100.0)])
        .interval(Duration::from_secs(10))
        .notify(Buggy)
        .notify(sink)
        .spawn();
    let next = async |notifications: &mut tokio::sync::mpsc::Receiver<Notification>| {
        tokio::time::timeout(Duration::from_secs(15), notifications.recv())
            .await
            .expect("evaluated at the next tick")
            .expect("a notification")
    };
    // Both from the evaluation task's ticks: before, the first notification's panic ended
    // the task, and the alert was never resolved.
    depth.set(250);
    assert!(
        matches!(next(&mut notifications).await, Notification::Firing(a) if a.name == "Backlog")
    );
    depth.set(0);
    assert!(
        matches!(next(&mut notifications).await, Notification::Resolved { alert, .. } if alert.name == "Backlog")
    );
    // Evaluating on the caller's thread does not pass the panic on either.
    depth.set(250);
    assert_eq!(alerting.evaluate_now().len(), 1);
    alerting.shutdown().await;
}

/// A notifier with bugs: it panics for alert `Sync` before it returns a future, and for
/// `Async` while its future runs; it delivers everything else.
struct Fragile;

impl Notifier for Fragile {
    fn name(&self) -> &str {
        "fragile"
    }
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        assert_ne!(n.alert().name, "Sync", "notifier bug before the future");
        Box::pin(async move {
            tokio::task::yield_now().await;
            assert_ne!(n.alert().name, "Async", "notifier bug inside the future");
            Ok::<(), DeliveryError>(())
        })
    }
}

#[tokio::test]
async fn a_panicking_notifier_fails_one_notification_and_delivers_the_next() {
    let delivery = Delivery::builder(Fragile).spawn();
    for name in ["Sync", "Async", "Fine"] {
        delivery.notify(&Notification::Firing(alert(name, Severity::High)));
    }
    // Before, the worker ended with the first panic and `Fine` was never delivered.
    until("the last delivery", Duration::from_secs(5), || {
        delivery.delivered() == 1
    })
    .await;
    assert_eq!(
        delivery.failed(),
        2,
        "each panic fails its own notification"
    );
    assert_eq!(delivery.retries(), 0, "a bug is not retried");
    assert!(!delivery.is_finished());
}

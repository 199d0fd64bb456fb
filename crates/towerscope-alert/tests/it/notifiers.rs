//! Notifiers against local HTTP receivers: payloads field by field, the receivers' rules,
//! and delivery under faults (refused connections, 500s, a hanging receiver).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse as _;
use axum::routing::post;
use serde_json::Value;
use towerscope_alert::{
    Alert, AlertState, AlertmanagerNotifier, Delivery, Notification, Notify, PagerDutyNotifier,
    SIGNATURE_HEADER, Severity, SlackNotifier, WebhookNotifier,
};

/// What a receiver does with request number `n` (0-based).
type Behaviour = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// The status, after a while.
    Slow(Duration, u16),
    Hang,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<(http::HeaderMap, Value)>>>,
    count: Arc<AtomicUsize>,
    behaviour: Behaviour,
}

async fn receive(
    State(r): State<Receiver>,
    headers: http::HeaderMap,
    body: Bytes,
) -> http::StatusCode {
    let n = r.count.fetch_add(1, Ordering::SeqCst);
    match (r.behaviour)(n) {
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            http::StatusCode::OK
        }
        Reply::Status(code) | Reply::Slow(_, code) => {
            if let Reply::Slow(wait, _) = (r.behaviour)(n) {
                tokio::time::sleep(wait).await;
            }
            let code = http::StatusCode::from_u16(code).expect("status");
            if code.is_success() {
                let json: Value = serde_json::from_slice(&body).expect("JSON body");
                r.seen.lock().expect("lock").push((headers, json));
            }
            code
        }
    }
}

async fn receiver_on(listener: tokio::net::TcpListener, behaviour: Behaviour) -> Receiver {
    let r = Receiver {
        seen: Arc::default(),
        count: Arc::default(),
        behaviour,
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    r
}

async fn receiver(
    behaviour: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> (Receiver, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    (receiver_on(l, Arc::new(behaviour)).await, url)
}

/// A receiver on Alertmanager's path (`/api/v2/alerts`) that accepts everything, and its
/// base URL.
async fn alertmanager() -> (Receiver, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let r = Receiver {
        seen: Arc::default(),
        count: Arc::default(),
        behaviour: Arc::new(|_| Reply::Status(200)),
    };
    let app = Router::new()
        .route("/api/v2/alerts", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(l, app).await });
    (r, base)
}

pub(crate) fn alert(name: &str, severity: Severity) -> Alert {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), name.to_owned());
    labels.insert("severity".to_owned(), severity.as_str().to_owned());
    labels.insert("team".to_owned(), "shop".to_owned());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "runbook_url".to_owned(),
        "https://runbooks.example/r".to_owned(),
    );
    Alert {
        name: name.to_owned(),
        severity,
        labels,
        annotations,
        message: format!("{name} is 7.5 (threshold 5)"),
        value: 7.5,
        threshold: 5.0,
        state: AlertState::Firing,
        active_since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        firing_since: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_060)),
        silenced: false,
        fingerprint: format!("{name}|route=/orders"),
    }
}

pub(crate) async fn until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn slack_payload_and_archived_channel() {
    let (rx, url) = receiver(|_| Reply::Status(200)).await;
    let slack = Delivery::builder(SlackNotifier::new(&url)).spawn();
    slack.notify(&Notification::Firing(alert(
        "HighErrorRate",
        Severity::Critical,
    )));
    until("delivery", Duration::from_secs(5), || {
        slack.delivered() == 1
    })
    .await;
    let (_, body) = rx.seen.lock().expect("lock")[0].clone();
    assert_eq!(
        body["text"],
        "[FIRING] HighErrorRate (critical): HighErrorRate is 7.5 (threshold 5)"
    );
    let att = &body["attachments"][0];
    assert_eq!(att["color"], "#d00000");
    assert_eq!(att["title"], "[FIRING] HighErrorRate (critical)");
    assert_eq!(att["text"], "HighErrorRate is 7.5 (threshold 5)");
    let fields = att["fields"].as_array().expect("fields");
    assert!(
        fields
            .iter()
            .any(|f| f["title"] == "team" && f["value"] == "shop")
    );
    assert!(
        fields
            .iter()
            .any(|f| f["title"] == "runbook" && f["value"] == "https://runbooks.example/r")
    );
    assert!(!fields.iter().any(|f| f["title"] == "alertname"));

    // 410: the channel is archived; retrying cannot help.
    let (gone, url) = receiver(|_| Reply::Status(410)).await;
    let slack = Delivery::builder(SlackNotifier::new(&url))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .spawn();
    slack.notify(&Notification::Firing(alert("A", Severity::Low)));
    until("refusal", Duration::from_secs(5), || slack.failed() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gone.count.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(slack.retries(), 0);
}

#[tokio::test]
async fn pagerduty_trigger_and_resolve_share_a_dedup_key_and_429_is_retried() {
    // 429 first (too many requests: retried), then 202 Accepted.
    let (rx, url) = receiver(|n| Reply::Status(if n == 0 { 429 } else { 202 })).await;
    let pd = Delivery::builder(
        PagerDutyNotifier::new("R0UTING")
            .endpoint(&url)
            .source("shop-1"),
    )
    .backoff(Duration::from_millis(10), Duration::from_millis(50))
    .spawn();
    let a = alert("HighErrorRate", Severity::High);
    pd.notify(&Notification::Firing(a.clone()));
    pd.notify(&Notification::Resolved {
        alert: a,
        ended: SystemTime::now(),
    });
    until("both events", Duration::from_secs(5), || {
        pd.delivered() == 2
    })
    .await;
    assert_eq!(pd.retries(), 1);
    let seen = rx.seen.lock().expect("lock").clone();
    let (trigger, resolve) = (&seen[0].1, &seen[1].1);
    assert_eq!(trigger["routing_key"], "R0UTING");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "HighErrorRate|route=/orders");
    let p = &trigger["payload"];
    assert_eq!(
        p["summary"],
        "HighErrorRate: HighErrorRate is 7.5 (threshold 5)"
    );
    assert_eq!(p["source"], "shop-1");
    assert_eq!(p["severity"], "error");
    assert_eq!(p["timestamp"], "2023-11-14T22:14:20.000Z");
    assert_eq!(p["class"], "HighErrorRate");
    assert_eq!(p["custom_details"]["value"], 7.5);
    assert_eq!(p["custom_details"]["labels"]["team"], "shop");
    assert_eq!(trigger["links"][0]["href"], "https://runbooks.example/r");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(resolve["routing_key"], "R0UTING");
    assert!(resolve.get("payload").is_none());
}

#[tokio::test]
async fn webhook_bodies_are_signed() {
    let (rx, url) = receiver(|_| Reply::Status(204)).await;
    let hook = Delivery::builder(WebhookNotifier::new(&url).secret("s3cret")).spawn();
    hook.notify(&Notification::Firing(alert("Busy", Severity::Medium)));
    until("delivery", Duration::from_secs(5), || hook.delivered() == 1).await;
    let (headers, body) = rx.seen.lock().expect("lock")[0].clone();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alert"]["name"], "Busy");
    assert_eq!(body["alert"]["severity"], "medium");
    assert_eq!(body["alert"]["labels"]["team"], "shop");
    assert_eq!(body["alert"]["fingerprint"], "Busy|route=/orders");
    // The receiver's check: recompute the HMAC over "<t>.<raw body>".
    let sig = headers[SIGNATURE_HEADER].to_str().expect("ascii");
    let t: u64 = sig
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("timestamp");
    let raw = serde_json::to_vec(&body).expect("re-encode");
    assert_eq!(sig, WebhookNotifier::signature(b"s3cret", t, &raw));
    assert_ne!(sig, WebhookNotifier::signature(b"other", t, &raw));
    let age = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .abs_diff(t);
    assert!(age < 60, "timestamp is now");
}

#[tokio::test]
async fn a_receiver_down_for_ten_seconds_gets_everything_exactly_once() {
    // Reserve a port, then close it: connections are refused until the receiver starts.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let hook = Delivery::builder(WebhookNotifier::new(&url))
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
        .retry_horizon(Duration::from_secs(60))
        .spawn();
    for i in 0..5 {
        hook.notify(&Notification::Firing(alert(
            &format!("A{i}"),
            Severity::High,
        )));
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(hook.delivered(), 0);
    assert!(hook.retries() > 5, "kept retrying: {}", hook.retries());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("rebind the port");
    let rx = receiver_on(listener, Arc::new(|_| Reply::Status(200))).await;
    until("all five", Duration::from_secs(10), || {
        hook.delivered() == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names: Vec<String> = rx
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, b)| b["alert"]["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["A0", "A1", "A2", "A3", "A4"], "each once, in order");
    assert_eq!(hook.dropped(), 0);
}

#[tokio::test]
async fn a_500_is_retried_and_a_hanging_receiver_delays_no_one_else() {
    let (flaky, url) = receiver(|n| Reply::Status(if n < 2 { 500 } else { 200 })).await;
    let retried = Delivery::builder(WebhookNotifier::new(&url))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .spawn();
    retried.notify(&Notification::Firing(alert("Flaky", Severity::Low)));
    until("delivery after two 500s", Duration::from_secs(5), || {
        retried.delivered() == 1
    })
    .await;
    assert_eq!(flaky.count.load(Ordering::SeqCst), 3);

    let (_hanging, hang_url) = receiver(|_| Reply::Hang).await;
    let (fast, fast_url) = receiver(|_| Reply::Status(200)).await;
    let stuck = Delivery::builder(WebhookNotifier::new(&hang_url))
        .timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(50), Duration::from_millis(100))
        .retry_horizon(Duration::from_secs(2))
        .spawn();
    let quick = Delivery::builder(WebhookNotifier::new(&fast_url)).spawn();
    let start = Instant::now();
    for i in 0..3 {
        let n = Notification::Firing(alert(&format!("H{i}"), Severity::High));
        stuck.notify(&n);
        quick.notify(&n);
    }
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "notify never waits"
    );
    until("the fast receiver", Duration::from_secs(2), || {
        quick.delivered() == 3
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "not held up by the hanging one"
    );
    assert_eq!(fast.seen.lock().expect("lock").len(), 3);
    // The hanging one: each attempt timed out and was retried until the horizon.
    until("expiry", Duration::from_secs(10), || stuck.dropped() == 3).await;
    assert_eq!(stuck.delivered(), 0);
    assert!(stuck.retries() >= 3);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let (_hanging, url) = receiver(|_| Reply::Hang).await;
    let mut registry = prometheus_client::registry::Registry::default();
    let d = Delivery::builder(WebhookNotifier::new(&url))
        .queue(2)
        .metrics(&mut registry)
        .spawn();
    for i in 0..10 {
        d.notify(&Notification::Firing(alert(
            &format!("Q{i}"),
            Severity::Low,
        )));
    }
    // One in flight, two queued, the rest dropped.
    assert!(d.dropped() >= 7, "{}", d.dropped());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(&format!(
            "towerscope_alert_notifications_total{{notifier=\"webhook\",outcome=\"queue_full\"}} {}\n",
            d.dropped()
        )),
        "{text}"
    );
}

/// Several deliveries on one registry count into one family (written once: Prometheus
/// refuses a scrape that names a family twice), each notifier's outcomes at 0 from the start.
#[tokio::test]
async fn deliveries_sharing_a_registry_write_one_family() {
    use towerscope_alert::DeliveryMetrics;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = DeliveryMetrics::register(&mut registry);
    let webhook = Delivery::builder(WebhookNotifier::new("http://127.0.0.1:1/hook"))
        .backoff(Duration::from_secs(60), Duration::from_secs(60))
        .counted_in(&metrics)
        .spawn();
    let slack = Delivery::builder(SlackNotifier::new("http://127.0.0.1:1/slack"))
        .backoff(Duration::from_secs(60), Duration::from_secs(60))
        .counted_in(&metrics)
        .spawn();
    let encode = |registry: &prometheus_client::registry::Registry| {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        text
    };
    let text = encode(&registry);
    for notifier in ["webhook", "slack"] {
        for outcome in ["delivered", "retried", "failed", "expired", "queue_full"] {
            assert!(
                text.contains(&format!(
                    "towerscope_alert_notifications_total{{notifier=\"{notifier}\",outcome=\"{outcome}\"}} 0\n"
                )),
                "{notifier} {outcome}: {text}"
            );
        }
    }
    webhook.notify(&Notification::Firing(alert("A", Severity::High)));
    slack.notify(&Notification::Firing(alert("B", Severity::High)));
    until("both tried", Duration::from_secs(10), || {
        webhook.retries() >= 1 && slack.retries() >= 1
    })
    .await;
    let text = encode(&registry);
    assert_eq!(
        text.matches("# TYPE towerscope_alert_notifications counter")
            .count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn alertmanager_gets_firing_alerts_again_before_they_end_and_resolutions_with_ends_at() {
    let (r, base) = alertmanager().await;
    // Basic auth in the address, as in front of an Alertmanager with `basic_auth_users`.
    let base = base.replace("http://", "http://alerts:s3cret@");
    let am = Delivery::builder(
        AlertmanagerNotifier::new(&base)
            .generator_url("http://shop.internal/dashboard")
            .resend_every(Duration::from_millis(200)),
    )
    .spawn();
    let a = alert("Busy", Severity::High);
    am.notify(&Notification::Firing(a.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let posts = r.seen.lock().expect("lock").len();
    assert!(posts >= 3, "sent, then re-sent every 200 ms: {posts}");
    for (headers, body) in r.seen.lock().expect("lock").iter() {
        assert_eq!(headers["authorization"], "Basic YWxlcnRzOnMzY3JldA==");
        let alert = &body[0];
        assert_eq!(alert["labels"]["alertname"], "Busy");
        assert_eq!(alert["generatorURL"], "http://shop.internal/dashboard");
        assert_eq!(alert["startsAt"], "2023-11-14T22:14:20.000Z");
        assert_eq!(
            alert["annotations"]["description"],
            "Busy is 7.5 (threshold 5)"
        );
        let ends = alert["endsAt"].as_str().expect("endsAt");
        assert!(ends > "2026", "endsAt ahead of now: {ends}");
    }
    am.notify(&Notification::Resolved {
        alert: a,
        ended: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_resolve = r.seen.lock().expect("lock").len();
    let last = r
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("resolution");
    assert_eq!(last.1[0]["endsAt"], "2027-01-15T08:00:00.000Z");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        r.seen.lock().expect("lock").len(),
        after_resolve,
        "no re-sends after resolution"
    );
}

#[tokio::test]
async fn alertmanager_resend_past_a_day_is_daily_and_ends_at_four_days() {
    let (r, base) = alertmanager().await;
    // Before: `endsAt` was "now + 4 × resend", which overflowed, and the resend task
    // panicked at its first tick.
    let am =
        Delivery::builder(AlertmanagerNotifier::new(&base).resend_every(Duration::MAX)).spawn();
    am.notify(&Notification::Firing(alert("Busy", Severity::High)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.seen.lock().expect("lock").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = r.seen.lock().expect("lock").clone();
    let ends = seen.first().expect("the alert is posted").1[0]["endsAt"]
        .as_str()
        .expect("endsAt")
        .to_owned();
    let day = Duration::from_secs(24 * 3600);
    let (earliest, latest) = (
        towerscope_core::rfc3339_millis(SystemTime::now() + day * 4 - Duration::from_secs(60)),
        towerscope_core::rfc3339_millis(SystemTime::now() + day * 4),
    );
    assert!(
        earliest <= ends && ends <= latest,
        "{earliest} <= {ends} <= {latest}"
    );
}

/// A receiver that answers its first request, after a second, with 503 and a `Retry-After`
/// of `u64::MAX` seconds, then 200; it counts the requests.
async fn receiver_with_absurd_retry_after() -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Answered after a second: the notification has waited that long when
                    // the Retry-After is added to it (with less, the sum happens to fit).
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    (
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        [(http::header::RETRY_AFTER, u64::MAX.to_string())],
                    )
                        .into_response()
                } else {
                    http::StatusCode::OK.into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn a_retry_after_past_any_clock_expires_the_notification_and_the_worker_goes_on() {
    let (url, seen) = receiver_with_absurd_retry_after().await;
    let delivery = Delivery::builder(WebhookNotifier::new(&url))
        .backoff(Duration::MAX, Duration::MAX)
        .spawn();
    let busy = alert("Busy", Severity::High);
    delivery.notify(&Notification::Firing(busy.clone())); // refused with the absurd Retry-After
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivery.dropped() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Before: "overflow when adding durations" in the worker, which died with it.
    assert_eq!(delivery.dropped(), 1, "expired past the retry horizon");
    // The resolution: the worker is still there to send it.
    delivery.notify(&Notification::Resolved {
        alert: busy,
        ended: SystemTime::now(),
    });
    while delivery.delivered() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivery.delivered(), 1);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(!delivery.is_finished());
}

/// What fired just before a restart still goes out: `Alerting::shutdown` gives the
/// deliveries their grace to send what is queued (here to a receiver that takes 300 ms an
/// answer), and counts in one `WARN` what a receiver that is down never took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_what_is_queued_and_counts_what_a_dead_receiver_never_took() {
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;
    use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};

    let (logs, _guard) = crate::logs::capture();
    let (slow, slow_url) = receiver(|_| Reply::Slow(Duration::from_millis(300), 200)).await;
    let (down, down_url) = receiver(|_| Reply::Status(503)).await;

    let mut registry = Registry::default();
    let depth = Gauge::<i64>::default();
    registry.register("queue_depth", "Jobs waiting", depth.clone());
    let rules = ["Backlog", "BacklogHigh", "BacklogHuge"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let depth = Signal::Gauge {
                metric: "queue_depth".into(),
                matchers: vec![],
            };
            Rule::new(name, depth, Condition::Gt, i as f64)
        });
    let metrics = towerscope_metrics::MetricsService::new(registry);
    let alerting = Alerting::builder(Sources::new(metrics))
        .rules(rules)
        .interval(Duration::from_secs(3600))
        .shutdown_grace(Duration::from_secs(3))
        .notify(Delivery::builder(WebhookNotifier::new(slow_url)).spawn())
        .notify(
            Delivery::builder(WebhookNotifier::new(down_url))
                .backoff(Duration::from_millis(50), Duration::from_millis(100))
                .spawn(),
        )
        .spawn();
    depth.set(10);
    assert_eq!(alerting.evaluate_now().len(), 3, "three alerts fire");

    let started = Instant::now();
    alerting.shutdown().await;
    let took = started.elapsed();
    // Three answers of 300 ms one after the other fit in the grace; the dead receiver
    // kept its three, and all of the grace.
    assert_eq!(
        slow.seen.lock().expect("lock").len(),
        3,
        "all three went out"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(
        down.count.load(Ordering::SeqCst) >= 2,
        "the dead one was tried"
    );
    let text = logs.text();
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("not delivered at shutdown"))
        .collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(warned[0].contains("notifications=3"), "{}", warned[0]);
}

/// With nothing in flight, shutdown does not wait for the grace.
#[tokio::test]
async fn shutdown_with_nothing_queued_is_immediate() {
    use towerscope_alert::{Alerting, Sources};
    let (_r, url) = receiver(|_| Reply::Status(200)).await;
    let metrics =
        towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    let alerting = Alerting::builder(Sources::new(metrics))
        .shutdown_grace(Duration::from_secs(30))
        .notify(Delivery::builder(WebhookNotifier::new(url)).spawn())
        .spawn();
    let started = Instant::now();
    alerting.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

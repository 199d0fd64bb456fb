//! Signals from a live registry and performance monitor: rules fire on real traffic
//! through the metrics layer and resolve when it stops.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http_body_util::BodyExt as _;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tower::ServiceExt as _;
use towerscope_alert::{
    Alerting, ChannelSink, Condition, Notification, RouteScope, Rule, Signal, Sources,
};
use towerscope_metrics::{HttpMetricsLayer, MetricsService};
use towerscope_perf::PerfMonitor;

async fn hit(app: &Router, path: &str, n: usize) {
    for _ in 0..n {
        let resp = app
            .clone()
            .oneshot(http::Request::get(path).body(Body::empty()).expect("req"))
            .await
            .expect("resp");
        resp.into_body().collect().await.expect("body");
    }
}

fn names(sent: &[Notification]) -> Vec<(String, bool)> {
    let mut v: Vec<_> = sent
        .iter()
        .map(|n| (n.alert().name.clone(), n.is_resolved()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn rules_fire_on_live_traffic_and_resolve() {
    let mut registry = Registry::default();
    let perf = PerfMonitor::new();
    let signups = Counter::<u64>::default();
    registry.register("app_signups", "Sign-ups", signups.clone());
    let queue = Gauge::<i64>::default();
    registry.register("app_queue_depth", "Queue depth", queue.clone());
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/fail",
            get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                "slow"
            }),
        )
        .layer(
            HttpMetricsLayer::builder()
                .perf(perf.clone())
                .build(&mut registry)
                .expect("metrics"),
        );
    let metrics = MetricsService::new(registry);
    let window = Duration::from_secs(60);
    let rules = vec![
        Rule::new(
            "Errors",
            Signal::ErrorRate(RouteScope::Overall),
            Condition::Gt,
            20.0,
        )
        .window(window),
        Rule::new(
            "FailRoute",
            Signal::ErrorRate(RouteScope::EachRoute),
            Condition::Gt,
            50.0,
        )
        .window(window),
        Rule::new(
            "Traffic",
            Signal::RequestRate(RouteScope::Route("/ok".into())),
            Condition::Gt,
            0.0,
        )
        .window(window),
        Rule::new(
            "SlowP95",
            Signal::P95ResponseTime(RouteScope::Route("/slow".into())),
            Condition::Gt,
            20.0,
        )
        .window(window),
        Rule::new(
            "Signups",
            Signal::CounterRate {
                metric: "app_signups".into(),
                matchers: vec![],
            },
            Condition::Gt,
            0.0,
        )
        .window(window),
        Rule::new(
            "Queue",
            Signal::Gauge {
                metric: "app_queue_depth".into(),
                matchers: vec![],
            },
            Condition::Ge,
            10.0,
        ),
    ];
    let (sink, mut rx) = ChannelSink::new(64);
    let alerting = Alerting::builder(Sources::new(metrics).perf(perf))
        .rules(rules)
        .interval(Duration::from_secs(3600)) // evaluated by hand below
        .notify(sink)
        .spawn();

    // `spawn` evaluated once: counters are recorded, nothing to compare with yet.
    assert!(alerting.active().is_empty());
    hit(&Router::clone(&app), "/ok", 6).await;
    hit(&app, "/fail", 4).await;
    hit(&app, "/slow", 2).await;
    signups.inc_by(3);
    queue.set(12);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = alerting.evaluate_now();
    assert_eq!(
        names(&sent),
        vec![
            ("Errors".into(), false),
            ("FailRoute".into(), false),
            ("Queue".into(), false),
            ("Signups".into(), false),
            ("SlowP95".into(), false),
            ("Traffic".into(), false),
        ]
    );
    let errors = sent
        .iter()
        .find(|n| n.alert().name == "Errors")
        .expect("errors");
    // 4 failures out of 12 requests.
    assert!(
        (errors.alert().value - 100.0 * 4.0 / 12.0).abs() < 1e-9,
        "{}",
        errors.alert().value
    );
    let fail_route = sent
        .iter()
        .find(|n| n.alert().name == "FailRoute")
        .expect("route");
    assert_eq!(fail_route.alert().labels["route"], "/fail");
    let slow = sent
        .iter()
        .find(|n| n.alert().name == "SlowP95")
        .expect("slow");
    assert!(slow.alert().value >= 30.0, "{}", slow.alert().value);
    assert_eq!(
        rx.try_recv().map(|n| n.is_resolved()).ok(),
        Some(false),
        "the sink got them"
    );
    assert_eq!(alerting.active().len(), 6);

    // The queue drains: its alert resolves; the others stay quiet (already sent).
    queue.set(0);
    let sent = alerting.evaluate_now();
    assert_eq!(names(&sent), vec![("Queue".into(), true)]);
    alerting.shutdown().await;
}

#[tokio::test]
async fn a_histogram_quantile_budget_fires_per_label_value_and_resolves() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Page {
        page: String,
        device: String,
    }
    let lcp = Family::<Page, Histogram>::new_with_constructor(|| {
        Histogram::new([0.5, 1.0, 2.5, 4.0, 10.0])
    });
    let mut registry = Registry::default();
    registry.register("rum_lcp_seconds", "Largest Contentful Paint", lcp.clone());
    let page = |page: &str, device: &str| Page {
        page: page.into(),
        device: device.into(),
    };
    let window = Duration::from_millis(400);
    let budget = Rule::new(
        "LcpBudget",
        Signal::HistogramQuantile {
            metric: "rum_lcp_seconds".into(),
            quantile: 0.75,
            matchers: vec![("device".into(), "mobile".into())],
            by: Some("page".into()),
        },
        Condition::Gt,
        2.5,
    )
    .window(window)
    .message("p75 LCP of {page} is {value} s");
    let (sink, _rx) = ChannelSink::new(64);
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules(vec![budget])
        .interval(Duration::from_secs(3600))
        .notify(sink)
        .spawn();

    // `/` is fast, `/search` slow on mobile (and fast on desktop, which the matcher drops).
    for _ in 0..8 {
        lcp.get_or_create(&page("/", "mobile")).observe(0.8);
        lcp.get_or_create(&page("/search", "mobile")).observe(3.2);
        lcp.get_or_create(&page("/search", "desktop")).observe(0.3);
    }
    lcp.get_or_create(&page("/search", "mobile")).observe(0.7);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sent = alerting.evaluate_now();
    assert_eq!(names(&sent), vec![("LcpBudget".into(), false)]);
    let active = alerting.active();
    assert_eq!(active.len(), 1);
    let alert = &active[0];
    assert_eq!(alert.labels["page"], "/search");
    // 9 observations, rank 6.75: inside (2.5, 4] with 1 below → 2.5 + 1.5 × 5.75 / 8.
    let expected = 2.5 + 1.5 * (5.75 / 8.0);
    assert!((alert.value - expected).abs() < 1e-9, "{}", alert.value);
    assert!(
        alert.message.starts_with("p75 LCP of /search is 3.5"),
        "{}",
        alert.message
    );

    // No new page views for a whole window: no data, the alert resolves.
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    let sent = alerting.evaluate_now();
    assert_eq!(names(&sent), vec![("LcpBudget".into(), true)]);
    assert!(alerting.active().is_empty());
}

#[tokio::test]
async fn a_quantile_by_a_label_keeps_at_most_the_cap_of_values() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use towerscope_alert::MAX_QUANTILE_GROUPS;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Tenant {
        tenant: String,
    }
    let (logs, _guard) = crate::logs::capture();

    let family =
        Family::<Tenant, Histogram>::new_with_constructor(|| Histogram::new([0.1, 1.0, 10.0]));
    let mut registry = Registry::default();
    registry.register("job_seconds", "Job durations", family.clone());
    let rule = Rule::new(
        "SlowJobs",
        Signal::HistogramQuantile {
            metric: "job_seconds".into(),
            quantile: 0.5,
            matchers: vec![],
            by: Some("tenant".into()),
        },
        Condition::Ge,
        0.0,
    );
    let (sink, _rx) = ChannelSink::new(16);
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules(vec![rule])
        .interval(Duration::from_secs(3600))
        .notify(sink)
        .spawn();
    let tenants = MAX_QUANTILE_GROUPS + 100;
    for i in 0..tenants {
        family
            .get_or_create(&Tenant {
                tenant: format!("t{i:05}"),
            })
            .observe(0.5);
    }
    for _ in 0..2 {
        alerting.evaluate_now();
    }
    let mut active: Vec<String> = alerting
        .active()
        .into_iter()
        .map(|a| a.labels["tenant"].clone())
        .collect();
    active.sort();
    assert_eq!(active.len(), MAX_QUANTILE_GROUPS);
    assert_eq!(active.first().map(String::as_str), Some("t00000"));
    assert_eq!(
        active.last().cloned(),
        Some(format!("t{:05}", MAX_QUANTILE_GROUPS - 1)),
        "the first values in order are kept"
    );
    let text = logs.text();
    assert_eq!(
        text.matches("histogram_quantile signal over more label values")
            .count(),
        1,
        "warned once:\n{text}"
    );
}

#[tokio::test]
async fn a_histogram_sum_and_count_are_rates_too() {
    use prometheus_client::metrics::histogram::Histogram;
    let mut registry = Registry::default();
    let order_value = Histogram::new([10.0, 100.0, 1000.0]);
    registry.register("shop_order_value", "Order values", order_value.clone());
    let rate = |metric: &str| Signal::CounterRate {
        metric: metric.into(),
        matchers: vec![],
    };
    let window = Duration::from_secs(300);
    let rules = vec![
        Rule::new("Revenue", rate("shop_order_value_sum"), Condition::Gt, 0.0).window(window),
        Rule::new("Orders", rate("shop_order_value_count"), Condition::Gt, 0.0).window(window),
    ];
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules(rules)
        .interval(Duration::from_secs(3600)) // evaluated by hand below
        .spawn();
    assert!(alerting.active().is_empty());
    order_value.observe(20.0);
    order_value.observe(80.0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = alerting.evaluate_now();
    assert_eq!(
        names(&sent),
        vec![("Orders".into(), false), ("Revenue".into(), false)]
    );
    let value = |name: &str| {
        sent.iter()
            .find(|n| n.alert().name == name)
            .map(|n| n.alert().value)
            .expect("fired")
    };
    // The same span for both: their ratio is the mean order value.
    assert!((value("Revenue") / value("Orders") - 50.0).abs() < 1e-6);
}

#[tokio::test]
async fn certificate_expiry_alerts_per_probe_and_resolve_on_renewal() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Probe {
        probe: String,
    }
    // What towerscope-health's `Synthetics` registers: Unix times, seconds.
    let expiry = Family::<Probe, Gauge>::default();
    let mut registry = Registry::default();
    registry.register_with_unit(
        "synthetic_probe_tls_cert_expiry_timestamp",
        "When the certificate expires",
        prometheus_client::registry::Unit::Seconds,
        expiry.clone(),
    );
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    };
    let expires_in = |probe: &str, days: u64| {
        let at = now() + days * 86_400;
        expiry
            .get_or_create(&Probe {
                probe: probe.into(),
            })
            .set(i64::try_from(at).expect("fits"));
    };
    expires_in("shop", 10);
    expires_in("api", 90);
    expires_in("admin", 3);

    let rules: Vec<Rule> = towerscope_alert::certificate_expiry_rules()
        .into_iter()
        .map(|r| r.for_duration(Duration::ZERO))
        .collect();
    let (sink, _rx) = ChannelSink::new(64);
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules(rules)
        .interval(Duration::from_secs(3600))
        .notify(sink)
        .spawn();
    alerting.evaluate_now();
    let mut firing: Vec<(String, String, f64)> = alerting
        .active()
        .iter()
        .map(|a| (a.name.clone(), a.labels["probe"].clone(), a.value))
        .collect();
    firing.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let which: Vec<(&str, &str)> = firing
        .iter()
        .map(|(n, p, _)| (n.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        which,
        [
            ("CertificateExpiresSoon", "admin"),
            ("CertificateExpiresSoon", "shop"),
            ("CertificateExpiresThisWeek", "admin"),
        ]
    );
    // The value is the time left, in seconds (give the test a minute).
    let left = firing[1].2;
    assert!(
        (10.0 * 86_400.0 - 60.0..=10.0 * 86_400.0).contains(&left),
        "{left}"
    );
    let admin = alerting
        .active()
        .into_iter()
        .find(|a| a.name == "CertificateExpiresThisWeek")
        .expect("firing");
    assert!(
        admin
            .message
            .starts_with("The certificate probe admin was shown expires within 7 days"),
        "{}",
        admin.message
    );

    // Renewed: every alert resolves at the next evaluation.
    expires_in("shop", 90);
    expires_in("admin", 90);
    let sent = alerting.evaluate_now();
    assert_eq!(
        names(&sent),
        vec![
            ("CertificateExpiresSoon".to_owned(), true),
            ("CertificateExpiresSoon".to_owned(), true),
            ("CertificateExpiresThisWeek".to_owned(), true),
        ]
    );
    assert!(alerting.active().is_empty());
}

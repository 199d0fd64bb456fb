//! The dashboard's API over a live registry, performance monitor, health checks, alerts and
//! RUM: every number is there and comes from the sources; the token protects it all.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use prometheus_client::registry::Registry;
use tower::ServiceExt as _;
use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
use towerscope_dashboard::{DASHBOARD_HTML, Dashboard};
use towerscope_health::{CheckOptions, Health};
use towerscope_metrics::{HttpMetricsLayer, InFlightLayer, MetricsService, SystemCollector};
use towerscope_perf::PerfMonitor;
use towerscope_rum::{PageTemplates, Rum};

async fn get_json(
    app: &Router,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn every_card_has_a_number_from_the_live_sources() {
    let mut registry = Registry::default();
    let perf = PerfMonitor::new();
    SystemCollector::builder()
        .register(&mut registry)
        .expect("system collector");
    let rum = Rum::builder()
        .pages(PageTemplates::new(["/shop"]))
        .build(&mut registry);
    let health = Health::builder("1.0")
        .check(
            "always",
            towerscope_health::check_fn(|| async { Ok::<_, std::io::Error>(()) }),
            CheckOptions::default(),
        )
        .build();
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(
            HttpMetricsLayer::builder()
                .in_flight(InFlightLayer::new(&mut registry))
                .perf(perf.clone())
                .build(&mut registry)
                .expect("metrics"),
        );
    let metrics = MetricsService::new(registry);
    let alerting = Alerting::builder(Sources::new(metrics.clone()))
        .rules([Rule::new("Injected", Signal::InFlight, Condition::Ge, 0.0)
            .message("<script>alert('x')</script> {value} in flight")])
        .spawn();
    let dashboard = Dashboard::builder(metrics)
        .perf(perf)
        .health(health)
        .alerting(alerting.clone())
        .rum(rum.clone())
        .history(Duration::from_millis(100), Duration::from_secs(60))
        .bearer_token("t0k")
        .spawn();
    let rum_app: Router = rum.router();
    let beacon = r#"{"session":"abc-1","page":"/shop","events":[{"type":"vital","name":"LCP","value":2100}]}"#;
    let resp = rum_app
        .oneshot(
            Request::post("/api/rum")
                .header("content-type", "text/plain")
                .body(Body::from(beacon))
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for path in ["/ok", "/ok", "/ok", "/fail"] {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("req"))
            .await
            .expect("resp");
        resp.into_body().collect().await.expect("body");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    dashboard.sample_now();
    alerting.evaluate_now();
    let ui: Router = dashboard.router();

    let (status, _) = get_json(&ui, "/api/dashboard/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get_json(&ui, "/api/dashboard/metrics", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, m) = get_json(&ui, "/api/dashboard/metrics", Some("t0k")).await;
    assert_eq!(status, StatusCode::OK);
    for key in ["cpu_percent", "memory_percent", "disk_percent"] {
        assert!(m["system"][key].is_number(), "{key}: {m}");
    }
    assert!(
        m["app"]["requests_per_minute"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{m}"
    );
    assert_eq!(m["app"]["error_rate_percent"].as_f64(), Some(25.0), "{m}");
    assert!(
        m["app"]["avg_response_ms"].is_number() && m["app"]["p95_response_ms"].is_number(),
        "{m}"
    );
    assert_eq!(m["app"]["in_flight"].as_f64(), Some(0.0));
    assert_eq!(m["app"]["active_users"].as_u64(), Some(1));

    let (_, a) = get_json(&ui, "/api/dashboard/alerts", Some("t0k")).await;
    assert_eq!(a["alerts"][0]["name"], "Injected");
    assert_eq!(
        a["alerts"][0]["message"], "<script>alert('x')</script> 0 in flight",
        "data, as is: escaping is the page's job"
    );

    let (_, h) = get_json(&ui, "/api/dashboard/health", Some("t0k")).await;
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["checks"]["always"]["status"], "healthy");

    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, hist) = get_json(&ui, "/api/dashboard/history", Some("t0k")).await;
    let points = hist["points"].as_array().expect("points");
    assert!(points.len() >= 3, "sampled every 100 ms: {}", points.len());
    assert!(
        points
            .iter()
            .any(|p| p["p95_ms"].is_number() && p["requests_per_minute"].is_number())
    );
    assert_eq!(hist["vitals_p75"][0]["page"], "/shop");
    assert_eq!(hist["vitals_p75"][0]["p75"], 2100.0);
    assert_eq!(hist["vitals_p75"][0]["rating"], "good");

    // The page, with the token in the query (as a browser opens it).
    let resp = ui
        .clone()
        .oneshot(
            Request::get("/dashboard?token=t0k")
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let policy = resp.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII");
    assert!(
        policy.contains("script-src 'sha256-") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let page = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf8");
    assert!(page.contains("data-refresh-ms=\"5000\""));
}

#[test]
fn the_page_never_puts_data_into_html() {
    assert!(!DASHBOARD_HTML.contains("innerHTML"));
    assert!(!DASHBOARD_HTML.contains("outerHTML"));
    assert!(!DASHBOARD_HTML.contains("insertAdjacentHTML"));
    assert!(!DASHBOARD_HTML.contains("document.write"));
    // The policy allows no inline handler and no `style` attribute (only the page's own
    // script and style element, by their hashes).
    assert!(!DASHBOARD_HTML.contains(" style="));
    let markup = DASHBOARD_HTML.split("<script>").next().expect("markup");
    assert!(
        !markup
            .split_whitespace()
            .any(|word| word.starts_with("on") && word.contains('=')),
        "an inline event handler"
    );
    assert!(
        !DASHBOARD_HTML.contains("<script src"),
        "no external script: works offline"
    );
    assert!(DASHBOARD_HTML.contains("get(\"/api/dashboard/synthetics\")"));
    // Every value starts as a dash and is filled from the API.
    assert_eq!(DASHBOARD_HTML.matches("data-field=").count(), 9);
    assert_eq!(DASHBOARD_HTML.matches("\">–</div>").count(), 9);
}

#[tokio::test(start_paused = true)]
async fn a_history_interval_past_a_day_samples_daily() {
    let dashboard = Dashboard::builder(MetricsService::new(Registry::default()))
        .history(Duration::MAX, Duration::from_secs(7 * 24 * 3600))
        .spawn();
    let app = Router::new().merge(dashboard.router());
    // Before: the sampling task panicked at its first tick ("overflow when adding duration
    // to instant") and the history stayed at the first point for good.
    tokio::time::sleep(Duration::from_secs(24 * 3600 + 1)).await;
    let (status, history) = get_json(&app, "/api/dashboard/history", None).await;
    assert_eq!(status, StatusCode::OK);
    let points = history["points"].as_array().expect("points");
    assert_eq!(
        points.len(),
        2,
        "the first sample and one a day later: {history}"
    );
}

/// A collector of the application's that panics once, when armed.
#[derive(Debug, Default)]
struct PanicsOnce(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl prometheus_client::collector::Collector for PanicsOnce {
    fn encode(
        &self,
        _encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        if self.0.swap(false, std::sync::atomic::Ordering::Relaxed) {
            panic!("collector bug");
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_sampling_costs_one_point_not_the_rest() {
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PanicsOnce(armed.clone())));
    let dashboard = Dashboard::builder(MetricsService::new(registry))
        .history(Duration::from_secs(10), Duration::from_secs(3600))
        .spawn();
    let app = Router::new().merge(dashboard.router());
    armed.store(true, std::sync::atomic::Ordering::Relaxed); // the sample at 10 s panics
    // Before: the panic ended the sampling task, and the history stayed at its first point
    // for good.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let (status, history) = get_json(&app, "/api/dashboard/history", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !armed.load(std::sync::atomic::Ordering::Relaxed),
        "it panicked"
    );
    let points = history["points"].as_array().expect("points");
    assert_eq!(points.len(), 3, "at spawn, and at 20 s and 30 s: {history}");
}

#[tokio::test]
async fn the_probe_card_shows_each_probes_last_run_and_does_not_keep_them_running() {
    use towerscope_health::{Synthetics, check_fn};
    let dashboard = Dashboard::builder(MetricsService::new(Registry::default()))
        .bearer_token("t0k")
        .spawn();
    let ui = dashboard.router::<()>();
    let (status, card) = get_json(&ui, "/api/dashboard/synthetics", Some("t0k")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(card["configured"], false);
    assert_eq!(card["probes"], serde_json::json!({}));
    let (status, _) = get_json(&ui, "/api/dashboard/synthetics", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "behind the token like the rest"
    );

    /// A check over TLS whose certificate expires at a known time.
    struct Tls(std::time::SystemTime);
    impl towerscope_health::HealthCheck for Tls {
        fn check(&self) -> towerscope_health::CheckFuture<'_> {
            Box::pin(async { Ok(()) })
        }
        fn certificate_expiry(&self) -> Option<std::time::SystemTime> {
            Some(self.0)
        }
    }
    let expires = std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let synthetics = Synthetics::builder()
        .probe("home", check_fn(|| async { Ok::<(), String>(()) }))
        .probe(
            "checkout",
            check_fn(|| async { Err::<(), _>("<b>502</b> from payments") }),
        )
        .probe("shop-tls", Tls(expires))
        .every(Duration::from_secs(3600))
        .spawn()
        .expect("valid names");
    synthetics.run_now().await;
    dashboard.show_synthetics(&synthetics);
    let (_, card) = get_json(&ui, "/api/dashboard/synthetics", Some("t0k")).await;
    assert_eq!(card["configured"], true);
    let (home, checkout) = (&card["probes"]["home"], &card["probes"]["checkout"]);
    assert_eq!(home["success"], true);
    assert!(home["error"].is_null());
    assert!(home["cert_expiry"].is_null(), "not over TLS: {home}");
    assert_eq!(card["probes"]["shop-tls"]["cert_expiry"], 1_900_000_000.0);
    assert_eq!(checkout["success"], false);
    assert_eq!(checkout["error"], "<b>502</b> from payments");
    let (now, at) = (
        card["time"].as_f64().expect("time"),
        checkout["at"].as_f64().expect("at"),
    );
    assert!(at > 1.7e9 && (0.0..60.0).contains(&(now - at)), "{card}");
    assert!(checkout["duration_ms"].as_f64().expect("duration") >= 0.0);

    // The dashboard holds no handle: dropping the probes' owner stops them.
    drop(synthetics);
    let mut stopped = false;
    for _ in 0..100 {
        let (_, card) = get_json(&ui, "/api/dashboard/synthetics", Some("t0k")).await;
        if card["configured"] == false {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped, "the dashboard kept the probes alive");
}

#[tokio::test]
async fn business_stats_are_rates_ratios_and_gauges_of_the_live_registry() {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use towerscope_dashboard::Stat;

    let mut registry = Registry::default();
    let order_value = Histogram::new([10.0, 100.0, 1000.0]);
    registry.register("shop_order_value", "Order values", order_value.clone());
    let checkouts = Counter::<u64>::default();
    registry.register("shop_checkouts", "Checkouts started", checkouts.clone());
    let refunds = Counter::<u64>::default();
    registry.register("shop_refunds", "Refunds", refunds.clone());
    let carts = Gauge::<i64>::default();
    registry.register("shop_open_carts", "Open carts", carts.clone());
    let rate = |metric: &str| Signal::CounterRate {
        metric: metric.into(),
        matchers: vec![],
    };
    let dashboard = Dashboard::builder(MetricsService::new(registry))
        .stat(
            Stat::new("Revenue / min", rate("shop_order_value_sum"))
                .scale(60.0)
                .unit(" $"),
        )
        .stat(
            Stat::new("Average order", rate("shop_order_value_sum"))
                .per(rate("shop_order_value_count"))
                .unit(" $")
                .decimals(2),
        )
        .stat(
            Stat::new("Conversion", rate("shop_order_value_count"))
                .per(rate("shop_checkouts"))
                .scale(100.0)
                .unit("%"),
        )
        .stat(Stat::new("Refunds per order", rate("shop_refunds")).per(rate("shop_refunds")))
        .stat(Stat::new(
            "Open carts",
            Signal::Gauge {
                metric: "shop_open_carts".into(),
                matchers: vec![],
            },
        ))
        .stat(Stat::new("x".repeat(200), rate("shop_checkouts")))
        .spawn();
    let app: Router = dashboard.router();

    // Spawning read the counters once; the page shows every stat, unknown ones as null.
    let (_, first) = get_json(&app, "/api/dashboard/metrics", None).await;
    let labels: Vec<&str> = first["business"]
        .as_array()
        .expect("business")
        .iter()
        .map(|s| s["label"].as_str().expect("label"))
        .collect();
    assert_eq!(
        labels[..5],
        [
            "Revenue / min",
            "Average order",
            "Conversion",
            "Refunds per order",
            "Open carts"
        ]
    );
    assert_eq!(labels[5].len(), Stat::MAX_LABEL, "long labels are cut");
    assert!(
        first["business"][0]["value"].is_null(),
        "one read: no rate yet"
    );

    for amount in [20.0, 80.0, 50.0] {
        order_value.observe(amount);
    }
    checkouts.inc_by(4);
    carts.set(7);
    tokio::time::sleep(Duration::from_millis(50)).await;
    dashboard.sample_now();
    let (_, m) = get_json(&app, "/api/dashboard/metrics", None).await;
    let value = |i: usize| m["business"][i]["value"].as_f64();
    assert!(value(0).expect("revenue") > 0.0, "{m}");
    assert_eq!(m["business"][0]["unit"], " $");
    assert!((value(1).expect("mean") - 50.0).abs() < 1e-6, "{m}");
    assert_eq!(m["business"][1]["decimals"], 2, "shown with cents");
    assert!(
        m["business"][0]["decimals"].is_null(),
        "rounded like the other cards"
    );
    assert!((value(2).expect("conversion") - 75.0).abs() < 1e-6, "{m}");
    assert_eq!(
        value(3),
        None,
        "no refunds: a ratio over zero is unknown, not 0 or NaN"
    );
    assert_eq!(value(4), Some(7.0));
}

/// A stat that names a metric the registry never has (a typo) would show 0 for ever: it is
/// reported once, and again when the series shows up.
#[tokio::test]
async fn a_stat_reading_no_series_is_reported_once_and_again_when_it_reads_one() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use towerscope_dashboard::Stat;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Outcome {
        outcome: String,
    }
    let logs = towerscope_log::CaptureWriter::new();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish(),
    );
    let text = || logs.text();

    let mut registry = Registry::default();
    let orders = Counter::<u64>::default();
    registry.register("shop_orders", "Orders", orders.clone());
    let logins = Family::<Outcome, Counter>::default();
    registry.register("shop_logins", "Sign-ins", logins.clone());
    let rate = |metric: &str, matchers: Vec<(String, String)>| Signal::CounterRate {
        metric: metric.into(),
        matchers,
    };
    let failed = vec![("outcome".to_owned(), "failure".to_owned())];
    let dashboard = Dashboard::builder(MetricsService::new(registry))
        .stat(Stat::new("Orders", rate("shop_orders", vec![])))
        .stat(Stat::new("Orders typo", rate("shop_ordres", vec![])))
        .stat(Stat::new(
            "Failed sign-ins",
            rate("shop_logins", failed.clone()),
        ))
        .stat(Stat::new("Per order", rate("shop_orders", vec![])).per(rate("shop_ordrs", vec![])))
        .missing_series_after(Duration::ZERO)
        .spawn();
    for _ in 0..3 {
        dashboard.sample_now();
    }
    let warned = |text: &str, stat: &str| {
        text.lines()
            .filter(|l| l.contains(" WARN ") && l.contains(&format!("stat=\"{stat}\"")))
            .count()
    };
    let logged = text();
    assert_eq!(warned(&logged, "Orders"), 0, "{logged}");
    for (stat, series) in [
        ("Orders typo", "shop_ordres_total"),
        (
            "Failed sign-ins",
            r#"shop_logins_total{outcome=\"failure\"}"#,
        ),
        ("Per order", "shop_ordrs_total"),
    ] {
        assert_eq!(warned(&logged, stat), 1, "{stat}:\n{logged}");
        assert!(
            logged
                .lines()
                .any(|l| l.contains(&format!("stat=\"{stat}\"")) && l.contains(series)),
            "{stat} names {series}:\n{logged}"
        );
    }

    logins
        .get_or_create(&Outcome {
            outcome: "failure".into(),
        })
        .inc();
    dashboard.sample_now();
    dashboard.sample_now();
    let logged = text();
    let now_read: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("reads its series now"))
        .collect();
    assert_eq!(now_read.len(), 1, "{logged}");
    assert!(
        now_read[0].contains("stat=\"Failed sign-ins\""),
        "{}",
        now_read[0]
    );
    let _ = orders;
}

//! End-to-end behaviour of the request metrics on axum routers.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use common::{count_series, parse, value};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use tower::{Service, ServiceExt};
use towerscope_core::{CatchPanicLayer, Route, RouteClassifier, TraceIds};
use towerscope_metrics::{Format, HttpMetricsLayer, InFlightLayer, MetricNames, MetricsService};

struct Stack {
    app: Router,
    metrics: MetricsService,
    in_flight: InFlightLayer,
}

fn stack(registry: Registry, metrics_layer: HttpMetricsLayer, in_flight: InFlightLayer) -> Stack {
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/orders",
            post(|| async { (StatusCode::CREATED, "created") }),
        )
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/panic", get(panics))
        .route("/slow", get(slow))
        .route(
            "/stream",
            get(|| async {
                let stream = async_stream_body(Duration::from_millis(150));
                Body::from_stream(stream)
            }),
        )
        .layer(CatchPanicLayer::new())
        .layer(in_flight.clone())
        .layer(metrics_layer);
    Stack {
        app,
        metrics: MetricsService::new(registry),
        in_flight,
    }
}

/// Answers after 30 s: a request the test drops, or counts in flight, while it waits.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

/// Panics (the panic layer answers 500).
async fn panics() -> &'static str {
    panic!("handler bug")
}

/// Two chunks with `gap` between them.
fn async_stream_body(
    gap: Duration,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let _ = tx.send(Ok(Bytes::from_static(b"first "))).await;
        tokio::time::sleep(gap).await;
        let _ = tx.send(Ok(Bytes::from_static(b"second"))).await;
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn default_stack() -> Stack {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::new(&mut registry);
    let in_flight = InFlightLayer::new(&mut registry);
    stack(registry, layer, in_flight)
}

async fn send(app: &Router, method: &str, uri: &str) -> (StatusCode, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, body)
}

const DUR: &str = "http_server_request_duration_seconds";

fn dur_count(method: &str, route: &str, status: &str) -> String {
    format!(
        "{DUR}_count{{http_request_method=\"{method}\",http_route=\"{route}\",http_response_status_code=\"{status}\"}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_counted_exactly() {
    let s = default_stack();
    let n = 2_000;
    let mut tasks = Vec::new();
    for i in 0..n {
        let app = s.app.clone();
        tasks.push(tokio::spawn(async move {
            let uri = format!("/users/{i}");
            let (status, _) = send(&app, "GET", &uri).await;
            assert_eq!(status, 200);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let text = s.metrics.encode(Format::Prometheus);
    assert_eq!(
        value(&text, &dur_count("GET", "/users/{id}", "200")),
        f64::from(n)
    );
    assert_eq!(
        value(
            &text,
            "http_server_requests_total{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\"}"
        ),
        f64::from(n)
    );
    assert_eq!(count_series(&text, &format!("{DUR}_count")), 1, "{text}");
    assert_eq!(s.in_flight.current(), 0);
}

#[tokio::test]
async fn unmatched_paths_collapse_and_methods_are_bounded() {
    let s = default_stack();
    for path in [
        "/nope",
        "/wp-admin.php",
        "/users/1/extra",
        "/%2e%2e/etc/passwd",
    ] {
        send(&s.app, "GET", path).await;
    }
    send(&s.app, "BREW", "/users/1").await;
    let text = s.metrics.encode(Format::Prometheus);
    assert_eq!(
        value(&text, &dur_count("GET", "unmatched", "404")),
        4.0,
        "{text}"
    );
    // axum answers an unknown method on a known route with 405.
    assert_eq!(
        value(&text, &dur_count("_OTHER", "/users/{id}", "405")),
        1.0,
        "{text}"
    );
    assert!(!text.contains("wp-admin"));
    assert!(!text.contains("BREW"));
}

#[tokio::test]
async fn errors_are_counted_by_type() {
    let s = default_stack();
    send(&s.app, "GET", "/fail").await;
    let (status, _) = send(&s.app, "GET", "/panic").await;
    assert_eq!(status, 500);
    let text = s.metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_errors_total{error_type=\"5xx\",http_route=\"/fail\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "http_server_errors_total{error_type=\"panic\",http_route=\"/panic\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(value(&text, &dur_count("GET", "/panic", "500")), 1.0);
    assert_eq!(s.in_flight.current(), 0);
}

#[tokio::test]
async fn dropped_request_counts_as_cancelled_and_balances_in_flight() {
    let s = default_stack();
    let mut app = s.app.clone();
    let req = Request::get("/slow").body(Body::empty()).expect("request");
    let fut = ServiceExt::<Request<Body>>::ready(&mut app)
        .await
        .expect("ready")
        .call(req);
    let handle = tokio::spawn(fut);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.in_flight.current(), 1);
    let text = s.metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_active_requests{http_request_method=\"GET\"}"
        ),
        1.0
    );
    handle.abort();
    let _ = handle.await;
    assert_eq!(s.in_flight.current(), 0);
    let text = s.metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_errors_total{error_type=\"cancelled\",http_route=\"/slow\"}"
        ),
        1.0,
        "{text}"
    );
    // No response was produced: the status label is empty.
    assert_eq!(value(&text, &dur_count("GET", "/slow", "")), 1.0, "{text}");
}

#[tokio::test]
async fn streaming_body_is_timed_to_its_end() {
    let s = default_stack();
    let (status, body) = send(&s.app, "GET", "/stream").await;
    assert_eq!(status, 200);
    assert_eq!(body, "first second");
    let text = s.metrics.encode(Format::Prometheus);
    let sum = value(
        &text,
        &format!(
            "{DUR}_sum{{http_request_method=\"GET\",http_route=\"/stream\",http_response_status_code=\"200\"}}"
        ),
    );
    assert!(sum >= 0.15, "duration {sum} ends before the body does");
    // Dropping a streaming body half-way is a cancel.
    let resp = s
        .app
        .clone()
        .oneshot(Request::get("/stream").body(Body::empty()).expect("req"))
        .await
        .expect("ok");
    let mut body = resp.into_body();
    let _first = body.frame().await;
    drop(body);
    let text = s.metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_errors_total{error_type=\"cancelled\",http_route=\"/stream\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(s.in_flight.current(), 0);
}

#[tokio::test]
async fn cardinality_cap_bounds_series_under_random_paths() {
    use rand::Rng;
    let mut registry = Registry::default();
    // A classifier that (wrongly) turns raw paths into routes: the cap must still hold.
    let layer = HttpMetricsLayer::builder()
        .max_series(2000)
        .route_classifier(RouteClassifier::new(|req| {
            Some(Route::Shared(req.uri.path().into()))
        }))
        .build(&mut registry)
        .expect("valid");
    let in_flight = InFlightLayer::new(&mut registry);
    let s = stack(registry, layer.clone(), in_flight);
    let mut rng = rand::rng();
    let n = 100_000u32;
    for _ in 0..n {
        let path = format!("/r/{:016x}", rng.random::<u64>());
        send(&s.app, "GET", &path).await;
    }
    assert_eq!(layer.series_count(), 2000);
    let text = s.metrics.encode(Format::Prometheus);
    // The cap's 2000 series plus one overflow series.
    assert_eq!(count_series(&text, &format!("{DUR}_count")), 2001);
    assert_eq!(
        value(&text, &dur_count("_overflow", "_overflow", "_overflow")),
        f64::from(n - 2000)
    );
    assert_eq!(
        value(&text, "towerscope_series_overflow_total{family=\"http\"}"),
        f64::from(n - 2000)
    );
    // Memory is bounded by the cap: the exposition does not grow with more unique paths.
    let before = text.len();
    for _ in 0..10_000 {
        let path = format!("/r/{:016x}", rng.random::<u64>());
        send(&s.app, "GET", &path).await;
    }
    let after = s.metrics.encode(Format::Prometheus).len();
    assert!(
        after <= before + 64,
        "exposition grew from {before} to {after}"
    );
}

/// Each thread keeps its recent series in front of the shared map: a label set sent to
/// the overflow series must still count as an overflow every time, and two layers with
/// the same label sets must not share series.
#[tokio::test]
async fn recent_series_never_hide_overflow_or_cross_layers() {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::builder()
        .max_series(1)
        .build(&mut registry)
        .expect("valid");
    let in_flight = InFlightLayer::new(&mut registry);
    let capped = stack(registry, layer, in_flight);
    let other = default_stack();
    for _ in 0..3 {
        send(&capped.app, "GET", "/users/1").await;
        send(&other.app, "GET", "/users/1").await;
    }
    for _ in 0..4 {
        send(&capped.app, "POST", "/orders").await;
    }
    send(&other.app, "POST", "/orders").await;

    let text = capped.metrics.encode(Format::Prometheus);
    assert_eq!(value(&text, &dur_count("GET", "/users/{id}", "200")), 3.0);
    assert_eq!(
        value(&text, &dur_count("_overflow", "_overflow", "_overflow")),
        4.0
    );
    assert_eq!(
        value(&text, "towerscope_series_overflow_total{family=\"http\"}"),
        4.0
    );
    let text = other.metrics.encode(Format::Prometheus);
    assert_eq!(value(&text, &dur_count("GET", "/users/{id}", "200")), 3.0);
    assert_eq!(value(&text, &dur_count("POST", "/orders", "201")), 1.0);
    assert_eq!(
        value(&text, "towerscope_series_overflow_total{family=\"http\"}"),
        0.0
    );
}

#[tokio::test]
async fn exemplars_carry_the_trace_in_openmetrics_only() {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::new(&mut registry);
    let in_flight = InFlightLayer::new(&mut registry);
    let s = stack(registry, layer, in_flight);
    let ids = TraceIds {
        trace_id: [0x4b; 16],
        span_id: [0x1f; 8],
        sampled: true,
    };
    let app = s.app.clone().layer(axum::middleware::from_fn(
        move |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            req.extensions_mut().insert(ids);
            next.run(req).await
        },
    ));
    let resp = app
        .oneshot(Request::get("/users/7").body(Body::empty()).expect("req"))
        .await
        .expect("ok");
    resp.into_body().collect().await.expect("body");
    let om = s.metrics.encode(Format::OpenMetrics);
    let trace = "4b".repeat(16);
    assert!(
        om.contains(&format!(
            "# {{trace_id=\"{trace}\",span_id=\"{}\"}}",
            "1f".repeat(8)
        )),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));
    let classic = s.metrics.encode(Format::Prometheus);
    assert!(!classic.contains("trace_id"));
}

#[tokio::test]
async fn guide_preset_reproduces_the_guides_metrics() {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::builder()
        .names(MetricNames::guide())
        .build(&mut registry)
        .expect("valid");
    let in_flight = InFlightLayer::with_names(&mut registry, &MetricNames::guide()).expect("valid");
    let s = stack(registry, layer, in_flight);
    send(&s.app, "GET", "/users/1").await;
    send(&s.app, "GET", "/users/2").await;
    send(&s.app, "GET", "/fail").await;
    let text = s.metrics.encode(Format::Prometheus);
    let samples = parse(&text);
    assert_eq!(
        samples["app_requests_total{method=\"GET\",endpoint=\"/users/{id}\",status_code=\"200\"}"],
        2.0
    );
    assert_eq!(
        samples["app_request_duration_seconds_count{method=\"GET\",endpoint=\"/users/{id}\"}"],
        2.0
    );
    assert_eq!(
        samples["app_errors_total{error_type=\"5xx\",endpoint=\"/fail\"}"],
        1.0
    );
    assert_eq!(samples["app_active_connections"], 0.0);
    assert!(text.contains("# TYPE app_requests_total counter\n"));
    assert!(text.contains("# TYPE app_request_duration_seconds histogram\n"));
}

#[tokio::test]
async fn probe_and_scrape_paths_are_excluded_by_default() {
    let s = default_stack();
    let app = s.app.clone().route_service("/metrics", s.metrics.clone());
    let (status, body) = send(&app, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("towerscope_scrapes_total"));
    let text = s.metrics.encode(Format::Prometheus);
    assert!(!text.contains("http_route=\"/metrics\""), "{text}");
}

/// A metrics layer that maintains the in-flight gauge itself, and the gauge.
fn metrics_with_gauge() -> (Registry, InFlightLayer, HttpMetricsLayer) {
    let mut registry = Registry::default();
    let in_flight = InFlightLayer::new(&mut registry);
    let layer = HttpMetricsLayer::builder()
        .in_flight(in_flight.clone())
        .build(&mut registry)
        .expect("valid");
    (registry, in_flight, layer)
}

#[tokio::test]
async fn in_flight_maintained_by_the_metrics_layer_balances() {
    let (registry, in_flight, layer) = metrics_with_gauge();
    let app = Router::new()
        .route("/slow", get(slow))
        .route("/panic", get(panics))
        .layer(CatchPanicLayer::new())
        .layer(layer);
    let metrics = MetricsService::new(registry);
    let mut svc = app.clone();
    let fut = ServiceExt::<Request<Body>>::ready(&mut svc)
        .await
        .expect("ready")
        .call(Request::get("/slow").body(Body::empty()).expect("req"));
    let handle = tokio::spawn(fut);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(in_flight.current(), 1);
    handle.abort();
    let _ = handle.await;
    assert_eq!(in_flight.current(), 0);
    assert_eq!(send(&app, "GET", "/panic").await.0, 500);
    assert_eq!(in_flight.current(), 0);
    let text = metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_active_requests{http_request_method=\"GET\"}"
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "http_server_errors_total{error_type=\"cancelled\",http_route=\"/slow\"}"
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn the_gauge_keeps_its_own_exclusions_when_the_metrics_layer_records_everything() {
    let mut registry = Registry::default();
    let in_flight = InFlightLayer::new(&mut registry);
    let layer = HttpMetricsLayer::builder()
        .exclude_paths(Vec::<String>::new())
        .in_flight(in_flight.clone())
        .build(&mut registry)
        .expect("valid");
    // Each handler reports the gauge while it runs: its own request counts only when the
    // gauge counts that path.
    let seen = |gauge: InFlightLayer| move || async move { gauge.current().to_string() };
    let app = Router::new()
        .route("/metrics", get(seen(in_flight.clone())))
        .route("/users/{id}", get(seen(in_flight.clone())))
        .layer(layer);
    assert_eq!(send(&app, "GET", "/users/7").await.1, "1");
    assert_eq!(
        send(&app, "GET", "/metrics").await.1,
        "0",
        "the gauge leaves /metrics out"
    );
    assert_eq!(in_flight.current(), 0);
    let text = MetricsService::new(registry).encode(Format::Prometheus);
    assert!(
        text.contains("http_route=\"/metrics\""),
        "the layer records it: {text}"
    );
}

#[test]
fn a_panic_in_call_gives_the_in_flight_unit_back() {
    use tower::Layer as _;
    let (_registry, in_flight, layer) = metrics_with_gauge();
    // The inner service panics in `call` itself, before any future exists.
    let mut svc = layer.layer(tower::service_fn(
        |_req: Request<Body>| -> std::future::Ready<Result<http::Response<Body>, std::convert::Infallible>> {
            panic!("bug in call")
        },
    ));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(svc.call(Request::get("/x").body(Body::empty()).expect("req")));
    }));
    assert!(result.is_err());
    assert_eq!(in_flight.current(), 0);
}

#[tokio::test]
async fn body_sizes_are_recorded_when_enabled() {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::builder()
        .request_body_size(true)
        .response_body_size(true)
        .build(&mut registry)
        .expect("valid");
    let in_flight = InFlightLayer::new(&mut registry);
    let s = stack(registry, layer, in_flight);
    let req = Request::post("/orders")
        .header("content-length", "5")
        .body(Body::from("hello"))
        .expect("req");
    let resp = s.app.clone().oneshot(req).await.expect("ok");
    resp.into_body().collect().await.expect("body");
    let text = s.metrics.encode(Format::Prometheus);
    let labels =
        "{http_request_method=\"POST\",http_route=\"/orders\",http_response_status_code=\"201\"}";
    assert_eq!(
        value(
            &text,
            &format!("http_server_request_body_size_bytes_sum{labels}")
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("http_server_response_body_size_bytes_sum{labels}")
        ),
        7.0,
        "{text}"
    );
}

#[tokio::test]
async fn exposition_shape_snapshot() {
    let s = default_stack();
    send(&s.app, "GET", "/users/1").await;
    send(&s.app, "GET", "/fail").await;
    let text = s.metrics.encode(Format::Prometheus);
    // Values vary with timing; the shape (families, series, order) must not.
    let shape: Vec<String> = text
        .lines()
        .filter(|l| {
            !l.starts_with("towerscope_scrape_encode") && !l.contains("towerscope_scrape_encode")
        })
        .map(|l| {
            if l.starts_with('#') {
                l.to_owned()
            } else {
                l.rsplit_once(' ')
                    .map(|(s, _)| format!("{s} N"))
                    .unwrap_or_default()
            }
        })
        .filter(|l| l.contains("_count") || l.starts_with('#') || l.contains("_total"))
        .collect();
    let expected = [
        "# HELP http_server_active_requests HTTP server requests in flight.",
        "# TYPE http_server_active_requests gauge",
        "# HELP http_server_request_duration_seconds Duration of HTTP server requests, to the end of the response body.",
        "# TYPE http_server_request_duration_seconds histogram",
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/fail\",http_response_status_code=\"503\"} N",
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\"} N",
        "# HELP http_server_requests_total HTTP server requests.",
        "# TYPE http_server_requests_total counter",
        "http_server_requests_total{http_request_method=\"GET\",http_route=\"/fail\",http_response_status_code=\"503\"} N",
        "http_server_requests_total{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\"} N",
        "# HELP http_server_errors_total HTTP server requests that failed, by error type.",
        "# TYPE http_server_errors_total counter",
        "http_server_errors_total{error_type=\"5xx\",http_route=\"/fail\"} N",
        "# HELP towerscope_series_overflow_total Observations sent to a family's overflow series because its cardinality cap was reached.",
        "# TYPE towerscope_series_overflow_total counter",
        "towerscope_series_overflow_total{family=\"http\"} N",
        "towerscope_series_overflow_total{family=\"rpc\"} N",
        "towerscope_series_overflow_total{family=\"errors\"} N",
    ];
    assert_eq!(shape, expected, "{text}");
}

#[tokio::test]
async fn the_layer_feeds_the_performance_monitor_per_route() {
    let mut registry = Registry::default();
    let perf = towerscope_perf::PerfMonitor::new();
    let layer = HttpMetricsLayer::builder()
        .perf(perf.clone())
        .build(&mut registry)
        .expect("valid");
    let in_flight = InFlightLayer::new(&mut registry);
    let s = stack(registry, layer, in_flight);
    for i in 0..5 {
        send(&s.app, "GET", &format!("/users/{i}")).await;
    }
    send(&s.app, "GET", "/fail").await;
    send(&s.app, "GET", "/stream").await;
    let w = Duration::from_secs(60);
    let users = perf
        .stats_tagged(
            towerscope_metrics::PERF_SERIES,
            &[("route", "/users/{id}")],
            w,
        )
        .expect("per-route stats");
    assert_eq!(users.count, 5);
    let all = perf
        .stats_merged(towerscope_metrics::PERF_SERIES, w)
        .expect("merged");
    assert_eq!(all.count, 7);
    // The streaming route is timed to the end of its body here too.
    assert!(all.max >= 0.15, "{all:?}");
}

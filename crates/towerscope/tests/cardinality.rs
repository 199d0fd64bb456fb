//! A cardinality attack on the whole stack: 300,000 requests, each with a unique path,
//! method, user agent, host and request ID, sent from two tasks at once on two worker
//! threads. Every metric family stays within its cap, every request is counted once, and
//! memory stops growing once the caps are reached: the last 240,000 requests may not grow
//! resident memory by 4 MiB, so a leak of 18 bytes a request fails it (a release build
//! grew 76 KiB over 800,000 requests).

use std::collections::HashMap;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt as _;
use tower::Service as _;
use towerscope::Observability;
use towerscope::metrics::{Format, HttpMetricsLayer};

const REQUESTS: usize = 300_000;
const CAP: usize = 200;

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Series per family in a Prometheus exposition.
fn series(text: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_count", "_sum", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        if !line.contains("le=\"") || line.contains("le=\"+Inf\"") {
            *out.entry(family.to_owned()).or_default() += 1;
        }
    }
    out
}

/// Request `i` of the attack: a unique path no route matches (or a real route with a
/// unique id), a method nobody uses, a user agent, a host, and an inbound ID (every third
/// invalid).
fn unique_request(i: usize) -> Request<Body> {
    let path = if i % 2 == 0 {
        format!("/users/{i}")
    } else {
        format!("/scan/{i:x}/{}", i.wrapping_mul(2_654_435_761))
    };
    let method = if i % 5 == 0 {
        format!("M{i:X}")
    } else {
        "GET".to_owned()
    };
    let id = if i % 3 == 0 {
        format!("bad id {i}")
    } else {
        format!("id-{i}")
    };
    Request::builder()
        .method(method.as_str())
        .uri(path)
        .header("host", format!("h{i}.example"))
        .header("user-agent", format!("bot/{i}"))
        .header("x-request-id", id)
        .body(Body::empty())
        .expect("request")
}

/// Sends requests `range` through `app` from two tasks at once (one per core of the CI
/// machine), each collecting every response body.
async fn attack(app: &axum::Router, range: std::ops::Range<usize>) {
    let tasks: Vec<_> = (0..2)
        .map(|half| {
            let mut app = app.clone();
            let range = range.clone();
            tokio::spawn(async move {
                for i in range.filter(|i| i % 2 == half) {
                    let svc = tower::ServiceExt::<Request<Body>>::ready(&mut app)
                        .await
                        .expect("ready");
                    let resp = svc.call(unique_request(i)).await.expect("infallible");
                    let _ = resp.into_body().collect().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("attack task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_requests_stay_within_the_caps() {
    let obs = Observability::builder("cardinality")
        .without_logging()
        .http_metrics(HttpMetricsLayer::builder().max_series(CAP))
        .build()
        .expect("builds");
    let app: axum::Router = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "user" }))
        .fallback(|| async { (http::StatusCode::NOT_FOUND, "no") })
        .layer(obs.layer());

    attack(&app, 0..REQUESTS / 5).await;
    let warm_rss = rss();
    attack(&app, REQUESTS / 5..REQUESTS).await;
    let end_rss = rss();

    let text = obs.metrics_service().encode(Format::Prometheus);
    let counts = series(&text);
    for (family, n) in &counts {
        assert!(
            *n <= CAP + 1,
            "{family} has {n} series (cap {CAP} plus the overflow series)"
        );
    }
    let requests: u64 = text
        .lines()
        .filter(|l| l.starts_with("http_server_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(requests, REQUESTS as u64, "every request counted once");
    assert!(
        text.contains("http_route=\"unmatched\""),
        "unrouted paths share one label"
    );
    assert!(
        text.contains("http_request_method=\"_OTHER\""),
        "unknown methods share one label"
    );
    assert!(!text.contains("/scan/") && !text.contains("bot/") && !text.contains(".example"));
    let in_flight: f64 = text
        .lines()
        .filter(|l| l.starts_with("http_server_active_requests"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(in_flight, 0.0);
    // After the first fifth every cap is reached (the caps are 200 series); the rest must
    // not grow memory beyond allocator noise.
    let growth = end_rss.saturating_sub(warm_rss);
    assert!(
        growth < 4 * 1024 * 1024,
        "resident memory grew {} KiB after warm-up ({} → {} KiB)",
        growth / 1024,
        warm_rss / 1024,
        end_rss / 1024
    );
    eprintln!(
        "families: {counts:?}; rss after warm-up {} KiB, at the end {} KiB",
        warm_rss / 1024,
        end_rss / 1024
    );
    obs.shutdown().await;
}

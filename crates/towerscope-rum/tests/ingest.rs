//! The ingestion service under good and hostile input.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use prometheus_client::registry::Registry;
use proptest::prelude::*;
use tower::ServiceExt as _;
use towerscope_core::PeerAddr;
use towerscope_rum::{PageTemplates, Rum, parse_beacon};

const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36";

fn rum(registry: &mut Registry) -> Rum {
    Rum::builder()
        .pages(PageTemplates::new([
            "/",
            "/products/{id}",
            "/cart",
            "/api/orders",
            "/api/orders/{id}",
        ]))
        .allow_origins(["https://shop.example"])
        .rate_limit(60, 5, 100)
        .build(registry)
}

async fn post(
    rum: &Rum,
    body: impl Into<Body>,
    ip: [u8; 4],
    content_type: &str,
) -> (StatusCode, serde_json::Value, http::HeaderMap) {
    let mut req = Request::post("/api/rum")
        .header("content-type", content_type)
        .header("user-agent", CHROME)
        .header("origin", "https://shop.example")
        .body(body.into())
        .expect("request");
    req.extensions_mut().insert(PeerAddr((ip, 40000).into()));
    let resp = rum.ingest_service().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON error body")
    };
    (status, json, headers)
}

fn encode(registry: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, registry).expect("encode");
    s
}

/// Every beacon outcome is a series from the start, at 0: the first rejected beacon is an
/// increase `rate()` sees, and a rule on it has a series to read before anything went wrong.
#[test]
fn every_beacon_outcome_starts_at_zero() {
    let mut registry = Registry::default();
    let _rum = rum(&mut registry);
    let text = encode(&registry);
    for outcome in ["accepted", "invalid", "too_large", "rate_limited"] {
        assert!(
            text.contains(&format!("rum_beacons_total{{outcome=\"{outcome}\"}} 0\n")),
            "{outcome}: {text}"
        );
    }
}

#[tokio::test]
async fn a_full_beacon_becomes_bounded_metrics() {
    let mut registry = Registry::default();
    let rum = rum(&mut registry);
    let body = r#"{"session":"6f1c2a4e-1b2c-4d5e-8f90-123456789abc","page":"https://shop.example/products/42?ref=ad#top","events":[
        {"type":"vital","name":"LCP","value":1800.5},
        {"type":"vital","name":"INP","value":350},
        {"type":"vital","name":"CLS","value":0.31},
        {"type":"vital","name":"FCP","value":900},
        {"type":"vital","name":"TTFB","value":120},
        {"type":"navigation","dcl":700,"load":1500},
        {"type":"error","message":"TypeError: x is undefined <script>alert(1)</script>","source":"https://shop.example/app.js","line":12,"col":4,"stack":"at buy (app.js:12:4)"},
        {"type":"api","url":"/api/orders/17?x=1","method":"POST","status":201,"duration":84},
        {"type":"api","url":"https://elsewhere.example/track","status":0,"duration":12},
        {"type":"click","target":"button#buy"}
    ]}"#;
    let (status, _, headers) = post(&rum, body, [10, 0, 0, 1], "text/plain;charset=UTF-8").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    let text = encode(&registry);
    for needle in [
        r#"rum_lcp_seconds_count{page="/products/{id}",rating="good"} 1"#,
        r#"rum_inp_seconds_count{page="/products/{id}",rating="needs_improvement"} 1"#,
        r#"rum_cls_count{page="/products/{id}",rating="poor"} 1"#,
        r#"rum_fcp_seconds_count{page="/products/{id}",rating="good"} 1"#,
        r#"rum_ttfb_seconds_count{page="/products/{id}",rating="good"} 1"#,
        r#"rum_page_load_seconds_count{page="/products/{id}",phase="load"} 1"#,
        r#"rum_js_errors_total{page="/products/{id}",browser="chrome"} 1"#,
        r#"rum_api_request_duration_seconds_count{endpoint="/api/orders/{id}",status_class="2xx"} 1"#,
        r#"rum_api_request_duration_seconds_count{endpoint="other",status_class="network_error"} 1"#,
        r#"rum_clicks_total{page="/products/{id}"} 1"#,
        r#"rum_beacons_total{outcome="accepted"} 1"#,
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(
        text.contains("rum_lcp_seconds_sum{page=\"/products/{id}\",rating=\"good\"} 1.8005"),
        "{text}"
    );
    assert!(
        !text.contains("ref=ad") && !text.contains("alert(1)") && !text.contains("button#buy"),
        "no raw user text in labels"
    );
    assert_eq!(rum.active_sessions(Duration::from_secs(300)), 1);
    let p75 = rum.vitals_p75(Duration::from_secs(300));
    let lcp = p75.iter().find(|v| v.vital == "LCP").expect("LCP p75");
    assert_eq!(
        (lcp.page.as_str(), lcp.p75, lcp.rating, lcp.count),
        ("/products/{id}", 1800.5, "good", 1)
    );
}

#[tokio::test]
async fn hostile_beacons_get_clear_errors_naming_the_field() {
    let mut registry = Registry::default();
    let rum = rum(&mut registry);
    let vital = |v: &str| {
        format!(
            r#"{{"session":"s","page":"/","events":[{{"type":"vital","name":"LCP","value":{v}}}]}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "body"),
        ("[]".into(), "body"),
        (r#"{"page":"/","events":[]}"#.into(), "session"),
        (r#"{"session":"s p a c e","page":"/","events":[]}"#.into(), "session"),
        (r#"{"session":"s","page":7,"events":[]}"#.into(), "page"),
        (r#"{"session":"s","page":"/","events":{}}"#.into(), "events"),
        (r#"{"session":"s","page":"/","events":[],"extra":1}"#.into(), "extra"),
        (vital("\"fast\""), "events[0].value"),
        (vital("-1"), "events[0].value"),
        (vital("1e300"), "events[0].value"),
        (r#"{"session":"s","page":"/","events":[{"type":"vital","name":"FID","value":10}]}"#.into(), "events[0].name"),
        (r#"{"session":"s","page":"/","events":[{"type":"teleport"}]}"#.into(), "events[0].type"),
        (r#"{"session":"s","page":"/","events":[{"type":"api","url":"/x","status":200,"duration":5,"secret":1}]}"#.into(), "events[0].secret"),
    ];
    for (i, (body, field)) in cases.into_iter().enumerate() {
        let (status, json, _) = post(&rum, body.clone(), [10, 0, 1, i as u8], "text/plain").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["field"], field, "{body}: {json}");
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let many_events = format!(
        r#"{{"session":"s","page":"/","events":[{}]}}"#,
        vec![r#"{"type":"click"}"#; 201].join(",")
    );
    let (status, json, _) = post(&rum, many_events, [10, 0, 2, 1], "text/plain").await;
    assert_eq!(
        (status, json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("events"))
    );
    // Oversize: 413 before parsing.
    let huge = format!(
        r#"{{"session":"s","page":"/{}","events":[]}}"#,
        "a".repeat(70 * 1024)
    );
    let (status, json, _) = post(&rum, huge, [10, 0, 2, 2], "text/plain").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["field"], "body");
    let (status, _, _) = post(
        &rum,
        "{}",
        [10, 0, 2, 3],
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = encode(&registry);
    assert!(
        text.contains(r#"rum_beacons_total{outcome="too_large"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains("rum_lcp_seconds_count"),
        "nothing recorded from refused beacons"
    );
}

#[tokio::test]
async fn ten_thousand_urls_keep_the_labels_bounded() {
    let mut registry = Registry::default();
    let rum = Rum::builder()
        .pages(PageTemplates::new(["/", "/products/{id}"]))
        .rate_limit(1_000_000, 1_000_000, 10)
        .build(&mut registry);
    for i in 0..10_000 {
        let page = if i % 2 == 0 {
            format!("/products/{i}")
        } else {
            format!("/random/{i}/path?q={i}")
        };
        let body = format!(
            r#"{{"session":"s{i}","page":"{page}","events":[{{"type":"vital","name":"TTFB","value":100}}]}}"#
        );
        let (status, _, _) = post(&rum, body, [10, 1, 0, 1], "text/plain").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let text = encode(&registry);
    let series = text
        .lines()
        .filter(|l| l.starts_with("rum_ttfb_seconds_count"))
        .count();
    assert_eq!(series, 2, "one per template plus `other`:\n{text}");
    assert_eq!(rum.active_sessions(Duration::from_secs(300)), 10_000);
}

#[tokio::test]
async fn the_rate_limit_answers_429_per_client() {
    let mut registry = Registry::default();
    let rum = rum(&mut registry);
    let ok = r#"{"session":"s","page":"/","events":[]}"#;
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(post(&rum, ok, [192, 168, 0, 1], "text/plain").await.0);
    }
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == StatusCode::NO_CONTENT)
            .count(),
        5,
        "the burst"
    );
    let (status, _, headers) = post(&rum, ok, [192, 168, 0, 1], "text/plain").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(
        post(&rum, ok, [192, 168, 0, 2], "text/plain").await.0,
        StatusCode::NO_CONTENT,
        "another client is not affected"
    );
    assert!(
        encode(&registry).contains("rum_beacons_total{outcome=\"rate_limited\"} 4\n"),
        "{}",
        encode(&registry)
    );
}

/// A beacon from `peer` carrying `X-Forwarded-For: forwarded_for`.
async fn post_via(rum: &Rum, peer: [u8; 4], forwarded_for: &str) -> StatusCode {
    let mut req = Request::post("/api/rum")
        .header("x-forwarded-for", forwarded_for)
        .body(Body::from(r#"{"session":"s","page":"/","events":[]}"#))
        .expect("request");
    req.extensions_mut().insert(PeerAddr((peer, 40000).into()));
    rum.ingest_service()
        .oneshot(req)
        .await
        .expect("infallible")
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_browser_has_its_own_bucket() {
    let rum = Rum::builder()
        .rate_limit(60, 1, 100)
        .trusted_proxies(["10.0.0.0/8"])
        .expect("valid range")
        .build(&mut Registry::default());
    let balancer = [10, 0, 0, 1];
    assert_eq!(
        post_via(&rum, balancer, "198.51.100.7").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post_via(&rum, balancer, "198.51.100.8").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post_via(&rum, balancer, "198.51.100.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Straight from the internet, the header is the client's own word: not believed.
    let direct = [203, 0, 113, 5];
    assert_eq!(
        post_via(&rum, direct, "192.0.2.1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post_via(&rum, direct, "192.0.2.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// This thread's log lines, caught until the guard is dropped.
fn capture_logs() -> (
    towerscope_log::CaptureWriter,
    tracing::subscriber::DefaultGuard,
) {
    let out = towerscope_log::CaptureWriter::new();
    let guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .finish(),
    );
    (out, guard)
}

#[tokio::test]
async fn beacons_without_a_client_address_are_taken_and_warned_about_once() {
    let (out, _log) = capture_logs();
    let rum = Rum::builder()
        .rate_limit(60, 1, 100)
        .build(&mut Registry::default());
    for _ in 0..3 {
        let req = Request::post("/api/rum")
            .body(Body::from(r#"{"session":"s","page":"/","events":[]}"#))
            .expect("request");
        let status = rum
            .ingest_service()
            .oneshot(req)
            .await
            .expect("infallible")
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT, "no address, no bucket");
    }
    let warnings: Vec<String> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains("WARN") && l.contains("without a client address"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.text());
}

/// A browser error is logged with its message, script and stack, but the URLs in them
/// lose their queries and fragments: a page opened from a reset link that throws from an
/// inline script names its address (token and all) in the stack, a failed call its key.
#[tokio::test]
async fn browser_errors_are_logged_without_the_secrets_in_their_urls() {
    let (out, _log) = capture_logs();
    let mut registry = Registry::default();
    let rum = rum(&mut registry);
    let beacon = serde_json::json!({
        "session": "s",
        "page": "https://shop.example/cart",
        "events": [{
            "type": "error",
            "message": "Failed to load https://api.example/orders?api_key=k3y",
            "source": "https://shop.example/reset?token=s3cret",
            "line": 12,
            "stack": "Error: boom\n    at reset (https://shop.example/reset?token=s3cret#access_token=t0ken:12:5)",
        }],
    });
    let (status, _, _) = post(&rum, beacon.to_string(), [10, 0, 0, 9], "text/plain").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let text = out.text();
    assert!(
        text.contains("browser error: Failed to load https://api.example/orders"),
        "{text}"
    );
    assert!(text.contains("https://shop.example/reset:12:5"), "{text}");
    for secret in ["k3y", "s3cret", "t0ken"] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }
}

#[cfg(feature = "axum")] // `Rum::router` comes with the feature
#[tokio::test]
async fn cors_preflight_and_the_script() {
    let mut registry = Registry::default();
    let rum = rum(&mut registry);
    let app: axum::Router = rum.router();
    let pre = |origin: &'static str| {
        Request::options("/api/rum")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .expect("req")
    };
    let ok = app
        .clone()
        .oneshot(pre("https://shop.example"))
        .await
        .expect("resp");
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let other = app
        .clone()
        .oneshot(pre("https://evil.example"))
        .await
        .expect("resp");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let refused = app
        .clone()
        .oneshot(Request::post("/rum.js").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers()["allow"], "GET, HEAD");
    let js = app
        .oneshot(Request::get("/rum.js").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(js.status(), StatusCode::OK);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let body = js.into_body().collect().await.expect("body").to_bytes();
    let body = String::from_utf8(body.to_vec()).expect("utf8");
    for needle in [
        "sendBeacon",
        "visibilitychange",
        "pagehide",
        "largest-contentful-paint",
        "layout-shift",
        "interactionId",
        "unhandledrejection",
        "randomUUID",
    ] {
        assert!(body.contains(needle), "{needle}");
    }
    assert!(
        !body.contains("first-input-delay") && !body.contains("\"FID\""),
        "INP, not FID"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn no_body_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_beacon(&bytes);
    }

    /// Any text, URL-like or not, in any script: no panic, nothing added but a frame's
    /// `:line:column` kept, and text without a web URL unchanged.
    #[test]
    fn urls_lose_their_queries_without_panic(text in "(\\PC|https?://|[?#:/ ()0-9]){0,80}") {
        let out = towerscope_rum::without_queries(&text);
        prop_assert!(out.len() <= text.len());
        if !text.contains("http://") && !text.contains("https://") {
            prop_assert_eq!(out, text);
        }
    }

    #[test]
    fn mutated_beacons_never_panic(at in 0usize..200, insert in "[\\[\\]{}\":,0-9a-zA-Z.eE+-]{0,6}") {
        let mut s = r#"{"session":"abc","page":"/p","events":[{"type":"vital","name":"LCP","value":12.5},{"type":"error","message":"m","line":3}]}"#.to_owned();
        let at = at.min(s.len());
        s.insert_str(at, &insert);
        let _ = parse_beacon(s.as_bytes());
    }
}

//! The suite's protocol, played by a test: POST /test with a traceparent, and a downstream
//! server that records what arrives.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use towerscope_trace::TraceParent;

type Seen = Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>;

async fn serve(app: Router) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

/// A downstream service whose `POST /callback` records what arrives.
async fn recording_downstream() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let downstream = serve(Router::new().route(
        "/callback",
        post(move |headers: http::HeaderMap, body: Bytes| async move {
            sink.lock().expect("lock").push((headers, body));
            ""
        }),
    ))
    .await;
    (downstream, seen)
}

async fn setup() -> (std::net::SocketAddr, std::net::SocketAddr, Seen) {
    let (downstream, seen) = recording_downstream().await;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let interop = serve(towerscope_interop::app(&provider)).await;
    (interop, downstream, seen)
}

async fn post_test(interop: std::net::SocketAddr, headers: &[(&str, &str)], body: String) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::post(format!("http://{interop}/test"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("interop answers");
    let status = resp.status().as_u16();
    resp.into_body().collect().await.expect("body");
    status
}

#[tokio::test]
async fn every_listed_url_gets_the_arguments_and_the_continued_trace() {
    let (interop, downstream, seen) = setup().await;
    let url = format!("http://{downstream}/callback");
    let body = format!(
        r#"[{{"url": "{url}", "arguments": [{{"url": "{url}", "arguments": []}}]}},
            {{"url": "{url}", "arguments": []}}]"#
    );
    let status = post_test(
        interop,
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-03",
            ),
            ("tracestate", "foo=1,bar=2"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 200);
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2, "one call per entry, in order");
    let args: serde_json::Value = serde_json::from_slice(&seen[0].1).expect("json");
    assert_eq!(args[0]["url"], url, "arguments are forwarded as JSON");
    assert_eq!(&seen[1].1[..], b"[]");
    let mut parents = Vec::new();
    for (headers, _) in seen.iter() {
        let tp = TraceParent::from_headers(headers).expect("one valid traceparent");
        assert_eq!(
            tp.to_string()[3..35],
            *"12345678901234567890123456789012",
            "same trace"
        );
        assert_ne!(
            tp.parent_id,
            [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]
        );
        assert_eq!(tp.flags, 0x03, "sampled and random flags carried on");
        assert_eq!(headers["tracestate"], "foo=1,bar=2");
        parents.push(tp.parent_id);
    }
    assert_ne!(parents[0], parents[1], "each call is its own client span");
}

#[tokio::test]
async fn an_invalid_parent_starts_a_new_trace_and_bad_requests_are_refused() {
    let (interop, downstream, seen) = setup().await;
    let url = format!("http://{downstream}/callback");
    let status = post_test(
        interop,
        &[(
            "traceparent",
            "00-00000000000000000000000000000000-1234567890123456-01",
        )],
        format!(r#"[{{"url": "{url}", "arguments": []}}]"#),
    )
    .await;
    assert_eq!(status, 200);
    {
        let seen = seen.lock().expect("lock");
        let tp = TraceParent::from_headers(&seen[0].0).expect("a fresh traceparent");
        assert_ne!(tp.trace_id, [0; 16]);
        assert!(!seen[0].0.contains_key("tracestate"));
    }
    assert_eq!(post_test(interop, &[], "{not json".into()).await, 400);
    assert_eq!(
        post_test(interop, &[], r#"[{"url": "file:///etc/passwd"}]"#.into()).await,
        400
    );
    let many = format!(
        "[{}]",
        vec![format!(r#"{{"url": "{url}"}}"#); 300].join(",")
    );
    assert_eq!(post_test(interop, &[], many).await, 400);
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "nothing called for refused requests"
    );
}

#[tokio::test]
async fn a_url_that_never_answers_ends_the_request_with_504_at_the_timeout() {
    let (downstream, seen) = recording_downstream().await;
    // Accepts connections (the kernel does) and never reads or answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let interop = serve(towerscope_interop::app_with_timeout(
        &provider,
        std::time::Duration::from_millis(300),
    ))
    .await;
    let body = serde_json::json!([
        { "url": format!("http://{downstream}/callback"), "arguments": [1] },
        { "url": format!("http://{}/", silent.local_addr().expect("addr")), "arguments": [] },
        { "url": format!("http://{downstream}/callback"), "arguments": [3] },
    ]);
    let started = std::time::Instant::now();
    let status = post_test(interop, &[], body.to_string()).await;
    let took = started.elapsed();
    assert_eq!(status, 504);
    assert!(
        took >= std::time::Duration::from_millis(300) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    let seen = seen.lock().expect("lock");
    assert_eq!(
        seen.len(),
        1,
        "the entry after the silent one is not called"
    );
    assert_eq!(&seen[0].1[..], b"[1]");
}

//! RequestIdLayer on axum routers: accepting, replacing, exposing and propagating IDs.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use tower::{Layer, ServiceExt};
use towerscope_core::CatchPanicLayer;
use towerscope_request_id::{RequestId, RequestIdClientLayer, RequestIdLayer};

fn app(registry: &mut Registry) -> Router {
    Router::new()
        .route(
            "/echo",
            get(
                |Extension(id): Extension<RequestId>, req: http::HeaderMap| async move {
                    let header = req
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    format!("{id}|{header}")
                },
            ),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("bug");
                }
                ""
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                ""
            }),
        )
        .layer(CatchPanicLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(50),
        ))
        .layer(RequestIdLayer::new(registry))
}

async fn get_with(
    app: &Router,
    uri: &str,
    headers: &[(&str, HeaderValue)],
) -> (StatusCode, Option<String>, String) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, v.clone());
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, id, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_valid_inbound_id_is_kept_everywhere() {
    let mut registry = Registry::default();
    let app = app(&mut registry);
    let (status, id, body) = get_with(
        &app,
        "/echo",
        &[("x-request-id", HeaderValue::from_static("abc-123"))],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(id.as_deref(), Some("abc-123"));
    assert_eq!(body, "abc-123|abc-123");
    // x-correlation-id is accepted too, and normalised to x-request-id for handlers.
    let (_, id, body) = get_with(
        &app,
        "/echo",
        &[("x-correlation-id", HeaderValue::from_static("corr-9"))],
    )
    .await;
    assert_eq!(id.as_deref(), Some("corr-9"));
    assert_eq!(body, "corr-9|corr-9");
}

/// Inbound IDs are found among a few headers (the layer compares the names it holds) and
/// among many (it looks the accepted names up), first, last or between the others.
#[tokio::test]
async fn an_inbound_id_is_found_among_few_or_many_headers() {
    let mut registry = Registry::default();
    let app = app(&mut registry);
    for others in [0, 5, towerscope_core::HEADER_SCAN_LIMIT - 1, 30] {
        for at in [0, others / 2, others] {
            for name in ["x-request-id", "x-correlation-id"] {
                let mut headers: Vec<(String, HeaderValue)> = (0..others)
                    .map(|i| (format!("x-other-{i}"), HeaderValue::from_static("1")))
                    .collect();
                headers.insert(at, (name.to_owned(), HeaderValue::from_static("in-7")));
                let headers: Vec<(&str, HeaderValue)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                let (_, id, body) = get_with(&app, "/echo", &headers).await;
                let case = format!("{name} at {at} of {others} others");
                assert_eq!(id.as_deref(), Some("in-7"), "{case}");
                assert_eq!(body, "in-7|in-7", "{case}");
            }
        }
    }
    // Repeated among many: refused as before.
    let mut headers: Vec<(String, HeaderValue)> = (0..30)
        .map(|i| (format!("x-other-{i}"), HeaderValue::from_static("1")))
        .collect();
    headers.push(("x-request-id".to_owned(), HeaderValue::from_static("one")));
    headers.push((
        "x-correlation-id".to_owned(),
        HeaderValue::from_static("two"),
    ));
    let headers: Vec<(&str, HeaderValue)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let (_, id, _) = get_with(&app, "/echo", &headers).await;
    assert_eq!(id.map(|id| id.len()), Some(36), "a fresh UUID");
}

#[tokio::test]
async fn missing_id_gets_a_uuid_v7() {
    let mut registry = Registry::default();
    let app = app(&mut registry);
    let (_, id, body) = get_with(&app, "/echo", &[]).await;
    let id = id.expect("header");
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "7", "version nibble of {id}");
    assert_eq!(body, format!("{id}|{id}"));
}

#[tokio::test]
async fn hostile_ids_are_replaced_never_echoed_and_counted() {
    let mut registry = Registry::default();
    let app = app(&mut registry);
    let long = "a".repeat(10 * 1024);
    let cases: Vec<Vec<(&str, HeaderValue)>> = vec![
        vec![(
            "x-request-id",
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text"),
        )],
        vec![("x-request-id", HeaderValue::from_str(&long).expect("long"))],
        vec![("x-request-id", HeaderValue::from_static(""))],
        vec![("x-request-id", HeaderValue::from_static("a b\"c"))],
        vec![("x-request-id", HeaderValue::from_static("tab\there"))],
        vec![
            ("x-request-id", HeaderValue::from_static("one")),
            ("x-request-id", HeaderValue::from_static("two")),
        ],
        vec![
            ("x-request-id", HeaderValue::from_static("one")),
            ("x-correlation-id", HeaderValue::from_static("two")),
        ],
    ];
    for headers in &cases {
        let (status, id, body) = get_with(&app, "/echo", headers).await;
        assert_eq!(status, 200);
        let id = id.expect("header");
        assert_eq!(id.len(), 36, "replaced by a fresh UUID, not {id:?}");
        assert_eq!(
            body,
            format!("{id}|{id}"),
            "the handler sees only the fresh ID"
        );
        for (_, v) in headers {
            if !v.is_empty() {
                assert!(
                    !body.contains(v.to_str().unwrap_or("\u{0}")) || v.as_bytes() == id.as_bytes()
                );
            }
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for (reason, n) in [
        ("invalid_character", 3),
        ("too_long", 1),
        ("empty", 1),
        ("multiple", 2),
    ] {
        let line = format!("towerscope_request_id_rejected_total{{reason=\"{reason}\"}} {n}\n");
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn responses_made_inside_carry_the_id() {
    let mut registry = Registry::default();
    let app = app(&mut registry);
    let (status, id, _) = get_with(
        &app,
        "/panic",
        &[("x-request-id", HeaderValue::from_static("p-1"))],
    )
    .await;
    assert_eq!(
        (status, id.as_deref()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("p-1"))
    );
    let (status, id, _) = get_with(
        &app,
        "/slow",
        &[("x-request-id", HeaderValue::from_static("t-1"))],
    )
    .await;
    assert_eq!(
        (status, id.as_deref()),
        (StatusCode::REQUEST_TIMEOUT, Some("t-1"))
    );
}

#[tokio::test]
async fn client_layer_copies_the_id_of_the_request_in_extensions() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen2 = seen.clone();
    let downstream = tower::service_fn(move |req: Request<Body>| {
        let seen = seen2.clone();
        async move {
            *seen.lock().expect("lock") = req
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().expect("ascii").to_owned());
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        }
    });
    let client = RequestIdClientLayer::new().layer(downstream);
    let id = RequestId::new_v7();
    let mut req = Request::get("/downstream")
        .body(Body::empty())
        .expect("request");
    req.extensions_mut().insert(id.clone());
    client.oneshot(req).await.expect("ok");
    assert_eq!(seen.lock().expect("lock").as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn an_id_the_handler_set_on_the_response_is_kept() {
    let mut registry = Registry::default();
    let app = Router::new()
        .route(
            "/",
            get(|| async { ([("x-request-id", "set-by-handler")], "ok") }),
        )
        .layer(RequestIdLayer::new(&mut registry));
    let (status, id, _) = get_with(&app, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(id.as_deref(), Some("set-by-handler"));
}

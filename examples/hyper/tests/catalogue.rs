//! The hyper example served on real sockets: bounded route labels from the route table,
//! request IDs, panics caught, the operational endpoints on the admin port only, and a
//! graceful shutdown.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use towerscope::{Observability, Piece};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

async fn get(client: &Client, url: String) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::get(url).body(Empty::new()).expect("request");
    let resp = client.request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_behind_the_facade() {
    let obs = towerscope_hyper_example::observability(
        Observability::builder("catalogue-test")
            .without_logging()
            .disable(Piece::Tracing),
    )
    .expect("builds");
    let app = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (app_addr, admin_addr) = (
        app.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let obs = std::sync::Arc::new(obs);
    let serving = {
        let obs = obs.clone();
        tokio::spawn(async move {
            towerscope_hyper_example::serve(&obs, app, admin, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();

    let (status, headers, body) = get(&client, format!("http://{app_addr}/products/2")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("teapot"), "{body}");
    assert!(headers.contains_key("x-request-id"));
    let (status, ..) = get(&client, format!("http://{app_addr}/products/99")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ..) = get(&client, format!("http://{app_addr}/fail")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, headers, _) = get(&client, format!("http://{app_addr}/panic")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        headers.contains_key("x-request-id"),
        "the panic response has an ID too"
    );
    for i in 0..20 {
        let _ = get(&client, format!("http://{app_addr}/random/{i}/path")).await;
    }
    // Operational endpoints are on the admin port only.
    let (status, ..) = get(&client, format!("http://{app_addr}/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, text) = get(&client, format!("http://{admin_addr}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let count = |route: &str, code: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("http_server_requests_total{")
                    && l.contains(&format!("http_route=\"{route}\""))
                    && l.contains(&format!("http_response_status_code=\"{code}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        count("/products/{id}", "200").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("/products/{id}", "404").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(count("/fail", "503").as_deref(), Some("1"), "{text}");
    assert_eq!(count("/panic", "500").as_deref(), Some("1"), "{text}");
    assert_eq!(
        count("unmatched", "404").as_deref(),
        Some("20"),
        "raw paths never become labels"
    );
    assert!(!text.contains("/random/"), "{text}");
    assert!(text.contains("error_type=\"panic\""), "{text}");
    assert!(text.contains("http_server_connections_total"), "{text}");
    for path in ["/health", "/ready", "/dashboard", "/rum.js"] {
        let (status, ..) = get(&client, format!("http://{admin_addr}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    stop.send(()).expect("still serving");
    serving.await.expect("joined").expect("served");
    let obs = std::sync::Arc::into_inner(obs).expect("last handle");
    obs.shutdown().await;
}

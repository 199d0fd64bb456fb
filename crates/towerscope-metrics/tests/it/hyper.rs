//! Plain hyper 1.x through hyper-util, and axum::serve, with connection tracking.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::value;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use towerscope_core::CatchPanicLayer;
use towerscope_metrics::{
    ConnectionTracker, Format, HttpMetricsLayer, InFlightLayer, MetricsService,
};

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cond(), "condition not reached in 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_server_with_tracked_connections() {
    let mut registry = Registry::default();
    let tracker = ConnectionTracker::new(&mut registry);
    let svc = tower::ServiceBuilder::new()
        .layer(HttpMetricsLayer::new(&mut registry))
        .layer(InFlightLayer::new(&mut registry))
        .layer(CatchPanicLayer::new())
        .service_fn(|_req: http::Request<hyper::body::Incoming>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
                b"hello",
            ))))
        });
    let metrics = MetricsService::new(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut tracked = tracker.listener(listener);
    tokio::spawn(async move {
        loop {
            let Ok((io, _peer)) = tracked.try_accept().await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(io), svc)
                    .await;
            });
        }
    });

    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    for _ in 0..5 {
        let resp = client
            .get(format!("http://{addr}/anything").parse().expect("uri"))
            .await
            .expect("response");
        assert_eq!(
            resp.into_body().collect().await.expect("body").to_bytes(),
            "hello"
        );
    }
    assert!(tracker.open() >= 1);
    drop(client);
    wait_for(|| tracker.open() == 0).await;
    let text = metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"unmatched\",http_response_status_code=\"200\"}"
        ),
        5.0,
        "{text}"
    );
    assert!(
        value(&text, "http_server_connections_total") >= 1.0,
        "{text}"
    );
    assert_eq!(value(&text, "http_server_open_connections"), 0.0);
    assert!(value(&text, "http_server_connection_duration_seconds_count") >= 1.0);
}

#[cfg(feature = "axum")] // `TrackedListener` is an axum `Listener` with the feature only
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_serve_with_tracked_listener() {
    let mut registry = Registry::default();
    let tracker = ConnectionTracker::new(&mut registry);
    let app = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "u" }))
        .layer(HttpMetricsLayer::new(&mut registry));
    let metrics = MetricsService::new(registry);
    let app = app.route_service("/metrics", metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(tracker.listener(listener), app)
            .await
            .expect("serve");
    });
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let resp = client
        .get(format!("http://{addr}/users/9").parse().expect("uri"))
        .await
        .expect("resp");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.expect("body");
    let resp = client
        .get(format!("http://{addr}/metrics").parse().expect("uri"))
        .await
        .expect("resp");
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(text.contains("http_route=\"/users/{id}\""), "{text}");
    assert!(
        value(&text, "http_server_connections_total") >= 1.0,
        "{text}"
    );
}

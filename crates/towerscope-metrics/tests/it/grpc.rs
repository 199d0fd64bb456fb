//! gRPC: status read from trailers and from trailers-only heads, on a real tonic server.

use crate::common;

use std::time::Duration;

use common::value;
use http::Request;
use prometheus_client::registry::Registry;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceExt;
use towerscope_core::test_body::{StreamBody, frame_data};
use towerscope_metrics::{Format, HttpMetricsLayer, InFlightLayer, MetricsService};

async fn serve_health() -> (
    MetricsService,
    InFlightLayer,
    String,
    tokio::sync::oneshot::Sender<()>,
) {
    let mut registry = Registry::default();
    let metrics_layer = HttpMetricsLayer::new(&mut registry);
    let in_flight = InFlightLayer::new(&mut registry);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .layer(metrics_layer)
        .layer(in_flight.clone())
        .add_service(health)
        .serve_with_incoming_shutdown(tokio_stream_listener(listener), async {
            let _ = rx.await;
        });
    tokio::spawn(server);
    (
        MetricsService::new(registry),
        in_flight,
        format!("http://{addr}"),
        tx,
    )
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

const RPC: &str = "rpc_server_call_duration_seconds_count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_from_trailers_and_trailers_only() {
    let (metrics, in_flight, url, _shutdown) = serve_health().await;
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .expect("url")
        .connect()
        .await
        .expect("channel");
    let mut client = HealthClient::new(channel);

    for _ in 0..3 {
        let resp = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("check");
        assert_eq!(resp.into_inner().status, ServingStatus::Serving as i32);
    }
    let err = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // An unknown method: UNIMPLEMENTED, and its path must not become a label.
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("channel");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/attacker.Invented/Method123");
    let err = grpc
        .unary::<HealthCheckRequest, HealthCheckResponse, _>(
            tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            }),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("unimplemented");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    // The server records after the response body ends; give it a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = metrics.encode(Format::Prometheus);
    let check = "rpc_system_name=\"grpc\",rpc_service=\"grpc.health.v1.Health\",rpc_method=\"grpc.health.v1.Health/Check\"";
    assert_eq!(
        value(&text, &format!("{RPC}{{{check},rpc_status_code=\"OK\"}}")),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("{RPC}{{{check},rpc_status_code=\"NOT_FOUND\"}}")
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"/grpc.health.v1.Health/Check\",http_response_status_code=\"200\"}"
        ),
        4.0,
        "{text}"
    );
    assert!(!text.contains("attacker"), "{text}");
    assert_eq!(
        value(
            &text,
            "http_server_errors_total{error_type=\"grpc_server_error\",http_route=\"unmatched\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(in_flight.current(), 0);
}

/// Sends `method /shop.Orders/Get` with gRPC's content type through `layer` around `svc`,
/// and reads the response body to its end.
async fn send_grpc_typed<S>(layer: &HttpMetricsLayer, svc: S, method: http::Method)
where
    S: tower::Service<
            Request<()>,
            Response = http::Response<StreamBody>,
            Error = std::convert::Infallible,
        >,
{
    let req = Request::builder()
        .method(method)
        .uri("/shop.Orders/Get")
        .header("content-type", "application/grpc")
        .body(())
        .expect("request");
    let resp = tower::Layer::layer(layer, svc)
        .oneshot(req)
        .await
        .expect("ok");
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body");
}

#[tokio::test]
async fn grpc_stream_without_status_is_an_error() {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::new(&mut registry);
    let metrics = MetricsService::new(registry);
    let svc = tower::service_fn(|_req: Request<()>| async {
        let mut resp = http::Response::new(StreamBody::new(vec![frame_data("\0\0\0\0\0")]));
        resp.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        Ok::<_, std::convert::Infallible>(resp)
    });
    send_grpc_typed(&layer, svc, http::Method::POST).await;
    let text = metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_errors_total{error_type=\"grpc_missing_status\",http_route=\"/shop.Orders/Get\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(
                "{RPC}{{rpc_system_name=\"grpc\",rpc_service=\"shop.Orders\",rpc_method=\"shop.Orders/Get\",rpc_status_code=\"\"}}"
            )
        ),
        1.0,
        "{text}"
    );
}

/// gRPC is always `POST`: a `GET` with gRPC's content type is an HTTP request, its path
/// not a route label and no RPC series made for it.
#[tokio::test]
async fn a_get_with_grpc_content_type_is_not_a_grpc_call() {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::new(&mut registry);
    let metrics = MetricsService::new(registry);
    let svc = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(StreamBody::new(vec![frame_data(
            "x",
        )])))
    });
    send_grpc_typed(&layer, svc, http::Method::GET).await;
    let text = metrics.encode(Format::Prometheus);
    assert_eq!(
        value(
            &text,
            "http_server_requests_total{http_request_method=\"GET\",http_route=\"unmatched\",http_response_status_code=\"200\"}"
        ),
        1.0,
        "{text}"
    );
    assert!(!text.contains("shop.Orders"), "{text}");
    assert!(!text.contains("grpc_missing_status"), "{text}");
}

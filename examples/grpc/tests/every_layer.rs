//! The tonic example with every layer, called over real gRPC: statuses, request IDs,
//! spans, metrics, logs and health all appear.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use opentelemetry::trace::{Status as SpanStatus, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use towerscope_grpc_example::pb::orders_client::OrdersClient;
use towerscope_grpc_example::pb::{GetOrderRequest, PlaceOrderRequest};
use towerscope_grpc_example::{Example, PANIC_ORDER_ID};
use towerscope_log::{CaptureWriter, JsonLayer, Redaction};
use towerscope_trace::{TraceClientLayer, tracing_layer};
use tracing_subscriber::layer::SubscriberExt as _;

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "current_thread")]
async fn a_tonic_service_with_every_layer() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("orders");
    let lines = CaptureWriter::new();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(tracing_layer(tracer.clone()))
            .with(JsonLayer::new(lines.clone(), Redaction::default())),
    );

    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (grpc_addr, ops_addr) = (
        grpc.local_addr().expect("addr"),
        ops.local_addr().expect("addr"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(Example::new(tracer.clone()).serve(grpc, ops, async {
        let _ = stopped.await;
    }));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let channel = tower::ServiceBuilder::new()
        .layer(
            TraceClientLayer::new(tracer.clone())
                .server_address("127.0.0.1", Some(grpc_addr.port())),
        )
        .service(channel);
    let mut client = OrdersClient::new(channel);

    let mut place = tonic::Request::new(PlaceOrderRequest {
        user_id: 7,
        amount: 42.5,
    });
    place
        .metadata_mut()
        .insert("x-request-id", "order-req-1".parse().expect("ascii"));
    let placed = client.place_order(place).await.expect("placed");
    assert_eq!(
        placed
            .metadata()
            .get("x-request-id")
            .map(|v| v.to_str().ok()),
        Some(Some("order-req-1"))
    );
    let order = placed.into_inner();
    assert_eq!((order.id, order.user_id), (1, 7));

    let got = client
        .get_order(GetOrderRequest { id: 1 })
        .await
        .expect("found");
    assert!(
        got.metadata().get("x-request-id").is_some(),
        "a generated request ID is echoed"
    );
    assert_eq!(got.into_inner().amount, 42.5);
    let missing = client
        .get_order(GetOrderRequest { id: 42 })
        .await
        .expect_err("missing");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = client
        .place_order(PlaceOrderRequest {
            user_id: 7,
            amount: f64::NAN,
        })
        .await
        .expect_err("refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let panicked = client
        .get_order(GetOrderRequest { id: PANIC_ORDER_ID })
        .await
        .expect_err("panic");
    assert_eq!(panicked.code(), tonic::Code::Internal);
    client
        .get_order(GetOrderRequest { id: 1 })
        .await
        .expect("still serving after a panic");

    // grpc.health.v1 from the same checks as /ready.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "shop.orders.v1.Orders".into(),
        })
        .await
        .expect("health");
    assert_eq!(health.into_inner().status, 1, "SERVING");

    // Metrics with gRPC labels, over the operational HTTP port.
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let resp = http
        .get(format!("http://{ops_addr}/metrics").parse().expect("uri"))
        .await
        .expect("metrics");
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf8");
    for needle in [
        r#"rpc_method="shop.orders.v1.Orders/GetOrder""#,
        r#"rpc_status_code="NOT_FOUND""#,
        r#"rpc_status_code="INTERNAL""#,
        "http_server_active_requests",
        r#"health_check_up{check="memory"} 1"#,
        r#"http_server_errors_total{error_type="panic""#,
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }

    // Spans: one server span per call, errors by the server-side rule.
    let spans = exporter.get_finished_spans().expect("spans");
    let server = |code: &str| {
        spans
            .iter()
            .find(|s| {
                s.span_kind == opentelemetry::trace::SpanKind::Server
                    && s.name == "shop.orders.v1.Orders/GetOrder"
                    && attr(s, "rpc.status_code").as_deref() == Some(code)
            })
            .unwrap_or_else(|| panic!("no GetOrder server span with {code}"))
    };
    assert!(matches!(
        server("INTERNAL").status,
        SpanStatus::Error { .. }
    ));
    // A caught panic is named as such (the status code alone would hide it).
    assert_eq!(
        attr(server("INTERNAL"), "error.type").as_deref(),
        Some("panic")
    );
    assert!(!matches!(
        server("NOT_FOUND").status,
        SpanStatus::Error { .. }
    ));
    let handler = spans
        .iter()
        .find(|s| s.name == "place_order")
        .expect("#[instrument] span");
    let place_server = spans
        .iter()
        .find(|s| {
            s.name == "shop.orders.v1.Orders/PlaceOrder"
                && s.span_kind == opentelemetry::trace::SpanKind::Server
        })
        .expect("place server span");
    assert_eq!(handler.parent_span_id, place_server.span_context.span_id());

    // Logs: one access line per call, with the request ID and the trace.
    let logs = lines.json_lines().expect("one JSON object per line");
    let access: Vec<_> = logs
        .iter()
        .filter(|l| l["target"] == towerscope_log::ACCESS_TARGET && l["level"] != "DEBUG")
        .collect();
    assert_eq!(access.len(), 7, "{access:#?}");
    for l in &access {
        assert!(
            l["request_id"].is_string() && l["trace_id"].is_string(),
            "{l}"
        );
    }
    let placed_line = logs
        .iter()
        .find(|l| l["event"] == "order_placed")
        .expect("business event");
    assert_eq!(placed_line["request_id"], "order-req-1");
    assert_eq!(
        placed_line["trace_id"],
        place_server.span_context.trace_id().to_string()
    );

    let _ = stop.send(());
    running.await.expect("join").expect("clean shutdown");
}

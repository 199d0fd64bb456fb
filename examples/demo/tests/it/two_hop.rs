//! Placing an order is a two-hop trace: shop server span → shop client span → inventory
//! server span, one trace ID.

use axum::body::Body;
use http_body_util::BodyExt as _;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::ServiceExt as _;
use towerscope_demo::{Config, Demo};

fn find<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name && s.span_kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} span {name} in {spans:#?}"))
}

#[tokio::test]
async fn an_order_is_one_trace_across_shop_and_inventory() {
    let exporter = InMemorySpanExporter::default();
    let shop = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let inventory = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let demo = Demo::new(Config {
        tracer: Some(shop.tracer("shop")),
        inventory_tracer: Some(inventory.tracer("inventory")),
        ..Config::default()
    })
    .await
    .expect("demo");
    let response = demo
        .router()
        .oneshot(
            axum::http::Request::post("/orders")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"user_id":1,"amount":42.5}"#))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 201);
    response.into_body().collect().await.expect("body");

    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exporter.get_finished_spans().expect("spans");
        if spans.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let server = find(&spans, "POST /orders", SpanKind::Server);
    let client = find(&spans, "POST", SpanKind::Client);
    let remote = find(&spans, "POST /reservations", SpanKind::Server);
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(remote.parent_span_id, client.span_context.span_id());
    assert_eq!(
        remote.span_context.trace_id(),
        server.span_context.trace_id()
    );
}

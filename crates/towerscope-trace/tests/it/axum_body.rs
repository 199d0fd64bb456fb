//! `TraceLayer::for_axum`: the same spans, answered with axum's body type.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use tower::ServiceExt;
use towerscope_core::TraceIds;
use towerscope_trace::{SamplerConfig, TraceLayer};

/// What the handler saw: its `TraceIds`, and the trace ID of the current context.
async fn seen(axum::Extension(ids): axum::Extension<TraceIds>) -> String {
    let current = opentelemetry::Context::current()
        .span()
        .span_context()
        .trace_id()
        .to_string();
    format!("{} {} {current}", ids.trace_id_hex(), ids.sampled)
}

/// A body whose one chunk comes 100 ms after the head.
async fn late() -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(Ok(bytes::Bytes::from_static(b"late"))).await;
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn app(sampler: SamplerConfig) -> (Router, InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::from(sampler))
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = TraceLayer::new(provider.tracer("test"))
        .sampler(sampler)
        .for_axum();
    let app = Router::new()
        .route("/users/{id}", get(seen))
        .route("/stream", get(late))
        .layer(layer);
    (app, exporter, provider)
}

async fn get_body(app: &Router, uri: &str) -> (u16, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_recorded_span_is_the_same_and_ends_with_the_body() {
    let (app, exporter, _provider) = app(SamplerConfig::AlwaysOn);
    let (status, body) = get_body(&app, "/users/7").await;
    assert_eq!(status, 200);
    let spans = exporter.get_finished_spans().expect("spans");
    let [span] = &spans[..] else {
        panic!("one span: {spans:?}");
    };
    let trace_id = span.span_context.trace_id().to_string();
    assert_eq!(
        body,
        format!("{trace_id} true {trace_id}"),
        "ids and context"
    );
    assert_eq!(span.name, "GET /users/{id}");
    let status_code = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.response.status_code")
        .map(|kv| kv.value.to_string());
    assert_eq!(status_code.as_deref(), Some("200"));

    exporter.reset();
    let (_, body) = get_body(&app, "/stream").await;
    assert_eq!(body, "late");
    let spans = exporter.get_finished_spans().expect("spans");
    let [span] = &spans[..] else {
        panic!("one span: {spans:?}");
    };
    let lasted = span
        .end_time
        .duration_since(span.start_time)
        .expect("ends after it starts");
    assert!(
        lasted >= Duration::from_millis(90),
        "ended with the body: {lasted:?}"
    );
}

#[tokio::test]
async fn a_dropped_span_keeps_its_duties() {
    let (app, exporter, _provider) = app(SamplerConfig::AlwaysOff);
    let (status, body) = get_body(&app, "/users/7").await;
    assert_eq!(status, 200);
    let (ids, rest) = body.split_once(' ').expect("two parts");
    assert_eq!(
        rest,
        format!("false {ids}"),
        "the handler runs in the dropped span's context"
    );
    assert_ne!(ids, "00000000000000000000000000000000");
    let (_, body) = get_body(&app, "/stream").await;
    assert_eq!(body, "late", "the body passes through whole");
    assert!(exporter.get_finished_spans().expect("spans").is_empty());
}

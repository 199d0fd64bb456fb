//! The guide's function tracing in Rust: `#[instrument(err)]` spans under the server span,
//! `record_error` for handled errors, and business attributes and events.

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::Request;
use http_body_util::BodyExt as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TracerProvider as _, get_active_span};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::ServiceExt as _;
use towerscope_trace::{TraceLayer, record_error, tracing_layer};
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug, thiserror::Error)]
#[error("card declined")]
struct Declined(#[source] std::io::Error);

#[derive(Debug, thiserror::Error)]
#[error("inventory unavailable")]
struct Unavailable;

#[tracing::instrument(err, fields(order.amount = amount))]
async fn charge(amount: u32) -> Result<(), Declined> {
    Err(Declined(std::io::Error::other("issuer timeout")))
}

async fn place_order() -> &'static str {
    // A business operation adds attributes and an event to the request's span.
    get_active_span(|span| {
        span.set_attribute(KeyValue::new("order.items", 3));
        span.add_event("order.validated", vec![KeyValue::new("order.id", "o-17")]);
    });
    // An error handled here is recorded, not returned.
    let _ = Err::<(), _>(Unavailable).inspect_err(record_error);
    let _ = charge(4200).await;
    "accepted"
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "current_thread")]
async fn handler_functions_and_errors_are_recorded_on_the_right_spans() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("orders");
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(tracing_layer(tracer.clone())),
    );
    let app = Router::new()
        .route("/orders", post(place_order))
        .layer(TraceLayer::new(tracer));
    let resp = app
        .oneshot(Request::post("/orders").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    resp.into_body().collect().await.expect("body");

    let spans = exporter.get_finished_spans().expect("spans");
    let server = spans
        .iter()
        .find(|s| s.name == "POST /orders")
        .expect("server");
    let charge = spans
        .iter()
        .find(|s| s.name == "charge")
        .expect("charge span");
    assert_eq!(charge.parent_span_id, server.span_context.span_id());
    assert_eq!(attr(charge, "order.amount").as_deref(), Some("4200"));
    assert!(
        matches!(charge.status, Status::Error { .. }),
        "{:?}",
        charge.status
    );

    assert_eq!(attr(server, "order.items").as_deref(), Some("3"));
    assert!(server.events.iter().any(|e| e.name == "order.validated"));
    let exception = server
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("handled error recorded as an exception");
    let ev = |k: &str| {
        exception
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        ev("exception.message").as_deref(),
        Some("inventory unavailable")
    );
    assert!(ev("exception.type").is_some_and(|t| t.ends_with("Unavailable")));
    assert_eq!(attr(server, "error.type").as_deref(), Some("Unavailable"));
    assert_eq!(server.status, Status::error("inventory unavailable"));
}

#[test]
fn the_source_chain_is_part_of_the_message() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("t");
    use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
    let span = tracer.start("work");
    let cx = opentelemetry::Context::current_with_span(span);
    {
        let _g = cx.clone().attach();
        record_error(&Declined(std::io::Error::other("issuer timeout")));
    }
    cx.span().end();
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(
        spans[0].status,
        Status::error("card declined: issuer timeout")
    );
    // Outside any span nothing happens (and nothing panics).
    record_error(&Unavailable);
}

/// The transport crates' own spans (h2 opens one per connection at `debug`, one per poll at
/// `trace`) and events stay out of OpenTelemetry: bridged, the exporter's own connection
/// would make spans to export without end. The application's spans, whatever their
/// target's first letters, are bridged.
#[test]
fn transport_spans_are_not_bridged() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(tracing_layer(provider.tracer("jobs")));
    tracing::subscriber::with_default(subscriber, || {
        for span in [
            tracing::debug_span!(target: "h2", parent: None, "Connection"),
            tracing::info_span!(target: "hyper_util::client", "caller"),
            tracing::info_span!(target: "tonic::transport", "connect"),
            tracing::info_span!(target: "tower::buffer", "worker"),
        ] {
            span.in_scope(|| tracing::info!(target: "h2::codec", "frame"));
        }
        let job = tracing::info_span!(target: "towerscope_jobs", "nightly_export");
        job.in_scope(|| {
            tracing::info!(target: "h2", "a transport event inside the job");
            tracing::info!("the job's own event");
        });
    });
    let spans = exporter.get_finished_spans().expect("spans");
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["nightly_export"]);
    let events: Vec<&str> = spans[0].events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(events, ["the job's own event"]);
}

/// An event field whose `Debug` or `Display` fails, or an error whose `Display` does, loses
/// its text on the server span, not the request: `format!` and `to_string` would panic in
/// the user's event. (Inside a `tracing` span, tracing-opentelemetry records the fields,
/// and it formats with `format!`: see docs/tracing.md.)
#[test]
fn a_failing_display_or_debug_does_not_panic_the_bridge() {
    use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
    use std::fmt;
    struct Broken;
    impl fmt::Debug for Broken {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("half")?;
            Err(fmt::Error)
        }
    }
    impl fmt::Display for Broken {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            Err(fmt::Error)
        }
    }
    impl std::error::Error for Broken {}
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("shop");
    let subscriber = tracing_subscriber::registry().with(tracing_layer(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        // The server span, as `TraceLayer` makes it: an OpenTelemetry span, no `tracing` one.
        let cx = opentelemetry::Context::current_with_span(tracer.start("GET /orders"));
        let _attached = cx.clone().attach();
        tracing::info!(debugged = ?Broken, shown = %Broken, "inside");
        tracing::error!(
            error = &Broken as &(dyn std::error::Error + 'static),
            "failed"
        );
        record_error(&Broken);
        cx.span().end();
    });
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 1);
    let events: Vec<&str> = spans[0].events.iter().map(|e| e.name.as_ref()).collect();
    assert!(
        events.contains(&"inside") && events.contains(&"failed"),
        "{events:?}"
    );
    let inside = spans[0]
        .events
        .iter()
        .find(|e| e.name == "inside")
        .expect("inside");
    let value = |key: &str| {
        inside
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(value("debugged").as_deref(), Some("half"));
    assert_eq!(value("shown").as_deref(), Some(""));
}

//! Service A calls service B over real TCP through the client layer: one trace, the right
//! parents, handler spans and events under the server span, baggage carried, and the trace
//! ID in the JSON log lines of both services.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider, SpanData};
use tower::{ServiceBuilder, ServiceExt};
use towerscope_log::{AccessLogLayer, CaptureWriter, JsonLayer, Redaction};
use towerscope_request_id::RequestIdLayer;
use towerscope_trace::{TraceClientLayer, TraceLayer, tracing_layer};
use tracing_subscriber::layer::SubscriberExt as _;

type HttpClient = towerscope_core::ObserveService<
    Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    TraceClientLayer<SdkTracer>,
>;

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The architecture's order: request ID outermost, then the server span, then the
/// access log. The request-ID span is a `tracing` span the bridge must leave out, or it
/// would take the handler's events and children away from the server span.
fn stack(app: Router, tracer: &SdkTracer) -> Router {
    app.layer(AccessLogLayer::new())
        .layer(TraceLayer::new(tracer.clone()))
        .layer(RequestIdLayer::new(
            &mut prometheus_client::registry::Registry::default(),
        ))
}

async fn inventory(axum::extract::Path(id): axum::extract::Path<u32>) -> String {
    tracing::info!(item = id, "checking stock");
    let tenant = opentelemetry::Context::current()
        .baggage()
        .get("tenant")
        .map(|v| v.to_string())
        .unwrap_or_default();
    {
        let _db = tracing::info_span!("db.query", db.operation = "SELECT").entered();
        tracing::info!("rows read");
    }
    format!("stock for {id} (tenant {tenant})")
}

async fn checkout(State((client, b)): State<(HttpClient, std::net::SocketAddr)>) -> String {
    tracing::info!("calling inventory");
    let req = Request::get(format!("http://{b}/inventory/7"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.oneshot(req).await.expect("B answers");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

fn find<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name && s.span_kind == kind)
        .unwrap_or_else(|| {
            let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.span_kind)).collect();
            panic!("no {kind:?} span {name}: {names:?}")
        })
}

#[tokio::test(flavor = "current_thread")]
async fn a_calls_b_in_one_trace_with_ids_in_every_log_line() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("two-services");
    let lines = CaptureWriter::new();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_layer(tracer.clone()))
        .with(JsonLayer::new(lines.clone(), Redaction::default()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let b = serve(stack(
        Router::new().route("/inventory/{id}", get(inventory)),
        &tracer,
    ))
    .await;
    let client: HttpClient = ServiceBuilder::new()
        .layer(TraceClientLayer::new(tracer.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let a = serve(stack(
        Router::new()
            .route("/checkout", get(checkout))
            .with_state((client, b)),
        &tracer,
    ))
    .await;

    // The caller of A starts the trace and sends baggage.
    let caller = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let req = Request::get(format!("http://{a}/checkout"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("baggage", "tenant=acme")
        .body(Body::empty())
        .expect("request");
    let resp = caller.request(req).await.expect("A answers");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"stock for 7 (tenant acme)", "baggage reached B");

    // Spans end when their bodies end; the last one may still be closing.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exporter.get_finished_spans().expect("spans");
        if spans.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let a_server = find(&spans, "GET /checkout", SpanKind::Server);
    let a_client = find(&spans, "GET", SpanKind::Client);
    let b_server = find(&spans, "GET /inventory/{id}", SpanKind::Server);
    let b_db = find(&spans, "db.query", SpanKind::Internal);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    for s in [a_server, a_client, b_server, b_db] {
        assert_eq!(s.span_context.trace_id().to_string(), trace, "{}", s.name);
    }
    assert_eq!(a_server.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(a_client.parent_span_id, a_server.span_context.span_id());
    assert_eq!(
        b_server.parent_span_id,
        a_client.span_context.span_id(),
        "B's server span is the child of A's client span"
    );
    assert_eq!(b_db.parent_span_id, b_server.span_context.span_id());
    let attr = |s: &SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attr(a_client, "url.full"),
        Some(format!("http://{b}/inventory/7"))
    );
    assert_eq!(
        attr(a_client, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(a_client, "http.response.status_code").as_deref(),
        Some("200")
    );
    // An event logged directly in the handler lands on the server span; one inside a
    // handler span on that span.
    assert!(
        b_server.events.iter().any(|e| e.name == "checking stock"),
        "{:?}",
        b_server.events
    );
    assert!(b_db.events.iter().any(|e| e.name == "rows read"));

    // Every log line written while serving carries the trace; handler lines inside a
    // handler span carry that span's ID.
    let logs = lines.json_lines().expect("one JSON object per line");
    let line = |message: &str| {
        logs.iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no line {message:?} in {logs:#?}"))
    };
    assert_eq!(line("calling inventory")["trace_id"], trace);
    assert!(line("calling inventory")["request_id"].is_string());
    assert_eq!(
        line("calling inventory")["span_id"],
        a_server.span_context.span_id().to_string()
    );
    assert_eq!(line("checking stock")["trace_id"], trace);
    assert_eq!(
        line("checking stock")["span_id"],
        b_server.span_context.span_id().to_string()
    );
    assert_eq!(
        line("rows read")["span_id"],
        b_db.span_context.span_id().to_string()
    );
    let access: Vec<_> = logs
        .iter()
        .filter(|l| l["target"] == towerscope_log::ACCESS_TARGET && l["status"] == 200)
        .collect();
    assert_eq!(access.len(), 2, "{access:#?}");
    for l in access {
        assert_eq!(l["trace_id"], trace, "{l}");
    }
    let a_done = logs
        .iter()
        .find(|l| l["route"] == "/checkout" && l["status"] == 200)
        .expect("A's access line");
    assert_eq!(
        a_done["span_id"],
        a_server.span_context.span_id().to_string()
    );
}

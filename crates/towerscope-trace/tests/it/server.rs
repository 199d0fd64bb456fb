//! The server span: parent, name, attributes, status, and its IDs in the request.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::ServiceExt;
use towerscope_core::{CatchPanicLayer, TraceIds};
use towerscope_trace::TraceLayer;

/// A provider (default sampler: parent-based, always on) exporting to memory.
fn provider() -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (exporter, provider)
}

fn app() -> (Router, InMemorySpanExporter, SdkTracerProvider) {
    let (exporter, provider) = provider();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(
                |axum::Extension(ids): axum::Extension<TraceIds>| async move {
                    ids.trace_id_hex().to_string()
                },
            ),
        )
        .route("/fail", get(|| async { http::StatusCode::BAD_GATEWAY }))
        .route(
            "/stream",
            get(|| async {
                let (tx, rx) =
                    tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = tx.send(Ok(bytes::Bytes::from_static(b"late"))).await;
                });
                Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            }),
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
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new(provider.tracer("test")));
    (app, exporter, provider)
}

async fn send(app: &Router, uri: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = Request::get(uri)
        .header("host", "shop.example:8080")
        .header("user-agent", "probe/1");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("req"))
        .await
        .expect("ok");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn child_of_the_callers_span_with_semantic_attributes() {
    let (app, exporter, _provider) = app();
    let (status, body) = send(
        &app,
        "/users/7?q=1",
        &[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("x-request-id", "req-42"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body, "0af7651916cd43dd8448eb211c80319c",
        "the handler sees the trace in its extensions"
    );
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        span.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(span.parent_span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(
        span.span_context.trace_state().header(),
        "rojo=00f067aa0ba902b7"
    );
    for (k, v) in [
        ("http.request.method", "GET"),
        ("http.route", "/users/{id}"),
        ("url.path", "/users/7"),
        ("url.scheme", "http"),
        ("server.address", "shop.example"),
        ("network.protocol.version", "1.1"),
        ("user_agent.original", "probe/1"),
        ("request.id", "req-42"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(attr(span, k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(span.status, Status::Unset);
}

/// Hosts and user agents are shared between the spans of one thread that repeat them
/// (server.rs `RecentValues`): each span still carries its own request's.
#[tokio::test]
async fn each_span_has_its_own_host_and_user_agent() {
    let (app, exporter, _provider) = app();
    let sent = [
        ("shop.example", "probe/1"),
        ("api.example:8443", "curl/8.5.0"),
        ("shop.example", "probe/1"),
        ("a.example", "a"),
        ("b.example", "b"),
        ("c.example", "c"),
        ("d.example", "d"),
        ("api.example", "curl/8.5.0"),
    ];
    for (host, ua) in sent {
        let req = Request::get("/fail")
            .header("host", host)
            .header("user-agent", ua)
            .body(Body::empty())
            .expect("req");
        app.clone().oneshot(req).await.expect("ok");
    }
    let spans = exporter.get_finished_spans().expect("spans");
    let seen: Vec<(String, String)> = spans
        .iter()
        .map(|s| {
            (
                attr(s, "server.address").expect("host"),
                attr(s, "user_agent.original").expect("user agent"),
            )
        })
        .collect();
    let want: Vec<(String, String)> = sent
        .iter()
        .map(|(h, ua)| {
            (
                h.split(':').next().unwrap_or(h).to_owned(),
                (*ua).to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn bad_or_repeated_parents_start_a_new_trace() {
    let (app, exporter, _provider) = app();
    send(
        &app,
        "/users/1",
        &[(
            "traceparent",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )],
    )
    .await;
    send(
        &app,
        "/users/1",
        &[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (
                "traceparent",
                "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ],
    )
    .await;
    for span in exporter.get_finished_spans().expect("spans") {
        assert_ne!(
            span.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(span.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    }
}

#[tokio::test]
async fn errors_set_status_and_the_span_ends_with_the_body() {
    let (app, exporter, _provider) = app();
    send(&app, "/fail", &[]).await;
    send(&app, "/panic", &[]).await;
    send(&app, "/nowhere", &[]).await;
    let (_, body) = send(&app, "/stream", &[]).await;
    assert_eq!(body, "late");
    let spans = exporter.get_finished_spans().expect("spans");
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("no span {n}"))
    };
    let fail = by_name("GET /fail");
    assert!(matches!(fail.status, Status::Error { .. }));
    assert_eq!(attr(fail, "error.type").as_deref(), Some("502"));
    let panic = by_name("GET /panic");
    assert_eq!(attr(panic, "error.type").as_deref(), Some("panic"));
    let unmatched = by_name("GET");
    assert_eq!(attr(unmatched, "http.route"), None);
    assert_eq!(unmatched.status, Status::Unset, "404 is not a server error");
    let stream = by_name("GET /stream");
    let took = stream
        .end_time
        .duration_since(stream.start_time)
        .expect("ordered");
    assert!(
        took >= Duration::from_millis(100),
        "span ended before the body: {took:?}"
    );
}

#[tokio::test]
async fn probe_paths_get_no_span() {
    let (app, exporter, _provider) = app();
    let app = app.route("/health", get(|| async { "ok" }));
    send(&app, "/health", &[]).await;
    assert!(exporter.get_finished_spans().expect("spans").is_empty());
}

#[tokio::test]
async fn metrics_exemplars_name_the_server_span() {
    let (exporter, provider) = provider();
    let mut registry = prometheus_client::registry::Registry::default();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "u" }))
        .layer(towerscope_metrics::HttpMetricsLayer::new(&mut registry))
        .layer(TraceLayer::new(provider.tracer("test")));
    let metrics = towerscope_metrics::MetricsService::new(registry);
    send(
        &app,
        "/users/1",
        &[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )],
    )
    .await;
    let span = exporter
        .get_finished_spans()
        .expect("spans")
        .pop()
        .expect("span");
    let om = metrics.encode(towerscope_metrics::Format::OpenMetrics);
    let exemplar = format!(
        "# {{trace_id=\"{}\",span_id=\"{}\"}}",
        span.span_context.trace_id(),
        span.span_context.span_id()
    );
    assert!(om.contains(&exemplar), "no {exemplar} in\n{om}");
}

#[tokio::test]
async fn a_head_response_whose_body_is_never_sent_is_not_an_error() {
    let (app, exporter, _provider) = app();
    let req = Request::head("/users/3").body(Body::empty()).expect("req");
    let resp = app.oneshot(req).await.expect("ok");
    assert_eq!(resp.status(), 200);
    drop(resp); // as hyper does with the body of a response to HEAD
    let span = exporter
        .get_finished_spans()
        .expect("spans")
        .pop()
        .expect("span");
    assert_eq!(span.name, "HEAD /users/{id}");
    assert_eq!(span.status, Status::Unset);
    assert_eq!(attr(&span, "error.type"), None);
}

#[tokio::test]
async fn b3_parents_are_accepted_when_asked_and_w3c_wins() {
    let (exporter, provider) = provider();
    let plain = Router::new()
        .route("/x", get(|| async { "" }))
        .layer(TraceLayer::new(provider.tracer("t")));
    let b3 = Router::new()
        .route("/x", get(|| async { "" }))
        .layer(TraceLayer::new(provider.tracer("t")).accept_b3());
    let b3_header = ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    let w3c = (
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    send(&plain, "/x", &[b3_header]).await;
    send(&b3, "/x", &[b3_header]).await;
    send(&b3, "/x", &[b3_header, w3c]).await;
    let spans = exporter.get_finished_spans().expect("spans");
    let traces: Vec<String> = spans
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_ne!(
        traces[0], "80f198ee56343ba864fe8b2a57d3eff7",
        "off by default"
    );
    assert_eq!(traces[1], "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(spans[1].parent_span_id.to_string(), "e457b5a2e4d86bd1");
    assert_eq!(traces[2], "0af7651916cd43dd8448eb211c80319c");
}

#[tokio::test]
async fn the_client_layer_writes_b3_when_asked() {
    use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("t");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(http::HeaderMap::new()));
    let sink = seen.clone();
    let svc = tower::ServiceBuilder::new()
        .layer(
            towerscope_trace::TraceClientLayer::new(tracer.clone())
                .inject_b3(towerscope_trace::B3Format::Single),
        )
        .service(tower::service_fn(move |req: Request<Body>| {
            *sink.lock().expect("lock") = req.headers().clone();
            async { Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty())) }
        }));
    let parent = opentelemetry::Context::current_with_span(tracer.start("parent"));
    let trace = parent.span().span_context().trace_id().to_string();
    // A context in the request's extensions is the parent (for tasks without one).
    let mut req = Request::get("http://inventory/x")
        .body(Body::empty())
        .expect("req");
    req.extensions_mut().insert(parent.clone());
    svc.oneshot(req).await.expect("ok");
    let headers = seen.lock().expect("lock").clone();
    let b3 = headers["b3"].to_str().expect("ascii");
    assert!(b3.starts_with(&trace), "{b3}");
    assert!(
        headers["traceparent"]
            .to_str()
            .expect("ascii")
            .contains(&trace)
    );
}

/// `OTEL_PROPAGATORS` decides what the server reads and the client writes: a handler
/// reports the parent trace and baggage it was served in, then calls out through the
/// client layer with the same propagators.
#[tokio::test]
async fn propagators_choose_what_the_layers_read_and_write() {
    use opentelemetry::baggage::BaggageExt as _;
    use towerscope_trace::{Propagators, TraceClientLayer};
    let (exporter, provider) = provider();
    let app = |list: &str| {
        let p: Propagators = list.parse().expect("a list");
        let tracer = provider.tracer("t");
        Router::new()
            .route(
                "/x",
                get(move || {
                    let tracer = tracer.clone();
                    async move {
                        let cx = opentelemetry::Context::current();
                        let tenant = cx
                            .baggage()
                            .get("tenant")
                            .map(|v| v.to_string())
                            .unwrap_or_default();
                        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                        let sink = seen.clone();
                        let client = tower::ServiceBuilder::new()
                            .layer(TraceClientLayer::new(tracer).propagators(p))
                            .service(tower::service_fn(move |req: Request<Body>| {
                                let mut names: Vec<String> = req
                                    .headers()
                                    .keys()
                                    .map(|k| k.as_str().to_owned())
                                    .collect();
                                names.sort();
                                *sink.lock().expect("lock") = names;
                                async {
                                    Ok::<_, std::convert::Infallible>(http::Response::new(
                                        Body::empty(),
                                    ))
                                }
                            }));
                        let out = Request::get("http://inventory/items")
                            .body(Body::empty())
                            .expect("req");
                        client.oneshot(out).await.expect("sent");
                        let written = seen.lock().expect("lock").join(" ");
                        format!("tenant={tenant} wrote={written}")
                    }
                }),
            )
            .layer(TraceLayer::new(provider.tracer("t")).propagators(p))
    };
    let incoming = [
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ("baggage", "tenant=acme"),
    ];
    let mut answers = Vec::new();
    for list in ["tracecontext,baggage", "b3multi", "tracecontext", "none"] {
        answers.push(send(&app(list), "/x", &incoming).await.1);
    }
    assert_eq!(
        answers,
        [
            "tenant=acme wrote=baggage traceparent",
            "tenant= wrote=x-b3-sampled x-b3-spanid x-b3-traceid",
            "tenant= wrote=traceparent",
            "tenant= wrote=",
        ]
    );
    // The server spans, in the order they ended (each after its client span).
    let servers: Vec<String> = exporter
        .get_finished_spans()
        .expect("spans")
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_eq!(servers.len(), 4);
    assert_eq!(servers[0], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(servers[1], "80f198ee56343ba864fe8b2a57d3eff7", "B3 only");
    assert_eq!(servers[2], "0af7651916cd43dd8448eb211c80319c");
    assert!(
        !servers[3].starts_with("0af76519") && !servers[3].starts_with("80f198ee"),
        "none: a new trace"
    );
}

#[tokio::test]
async fn a_sampled_out_request_still_carries_and_propagates_its_ids() {
    use opentelemetry::trace::TraceContextExt as _;
    // The SDK's default sampler: the caller's decision, else record.
    let (exporter, provider) = provider();
    // The handler answers with what an outgoing call would carry, and what it sees.
    let app = Router::new()
        .route(
            "/users/{id}",
            get(
                |axum::Extension(ids): axum::Extension<TraceIds>| async move {
                    let cx = opentelemetry::Context::current();
                    let mut headers = http::HeaderMap::new();
                    towerscope_trace::inject(&cx, &mut headers);
                    format!(
                        "{} {} {} {}",
                        ids.trace_id_hex(),
                        ids.sampled,
                        cx.span().is_recording(),
                        headers["traceparent"].to_str().expect("ascii")
                    )
                },
            ),
        )
        .layer(TraceLayer::new(provider.tracer("test")));
    // Not sampled, and the trace ID marked random (W3C Level 2), which must travel on.
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02";
    let (status, body) = send(&app, "/users/7", &[("traceparent", caller)]).await;
    assert_eq!(status, 200);
    let parts: Vec<&str> = body.split(' ').collect();
    assert_eq!(parts[0], "4bf92f3577b34da6a3ce929d0e0e4736", "{body}");
    assert_eq!(parts[1], "false", "{body}");
    assert_eq!(parts[2], "false", "nothing records: {body}");
    let sent = parts[3];
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.ends_with("-02"),
        "same trace, not sampled, still random: {sent}"
    );
    let own_span = &sent[36..52];
    assert_ne!(own_span, "00f067aa0ba902b7", "a span ID of its own");
    assert_ne!(own_span, "0000000000000000");
    provider.force_flush().expect("flush");
    assert!(exporter.get_finished_spans().expect("spans").is_empty());
}

#[tokio::test]
async fn the_client_layer_passes_a_sampled_out_trace_on() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId};
    let (exporter, provider) = provider();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(http::HeaderMap::new()));
    let sink = seen.clone();
    let svc = tower::ServiceBuilder::new()
        .layer(towerscope_trace::TraceClientLayer::new(
            provider.tracer("t"),
        ))
        .service(tower::service_fn(move |req: Request<Body>| {
            *sink.lock().expect("lock") = req.headers().clone();
            async { Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty())) }
        }));
    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
    let parent = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        trace,
        SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
        TraceFlags::new(towerscope_trace::FLAG_RANDOM),
        true,
        Default::default(),
    ));
    let mut req = Request::get("http://inventory/x")
        .body(Body::empty())
        .expect("req");
    req.extensions_mut().insert(parent);
    svc.oneshot(req).await.expect("ok");
    let sent = seen.lock().expect("lock")["traceparent"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.ends_with("-02"),
        "not sampled, random kept: {sent}"
    );
    assert_ne!(
        &sent[36..52],
        "00f067aa0ba902b7",
        "the client span's own ID"
    );
    provider.force_flush().expect("flush");
    assert!(exporter.get_finished_spans().expect("spans").is_empty());
}

/// What the handler of [`sampler_app`] saw and passed on, and whether a span was exported.
#[derive(Debug, PartialEq)]
struct Seen {
    /// The request's trace ID is the caller's.
    callers_trace: bool,
    sampled: bool,
    recording: bool,
    /// The context in the handler names the same IDs as the `TraceIds` extension.
    ids_agree: bool,
    /// The flags of the `traceparent` an outgoing call would carry.
    flags_sent: String,
    tracestate_sent: Option<String>,
    exported: usize,
}

async fn sampler_seen(
    sampler: towerscope_trace::SamplerConfig,
    tell_layer: bool,
    caller: &[(&str, &str)],
) -> Seen {
    use opentelemetry::trace::TraceContextExt as _;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::from(sampler))
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = TraceLayer::new(provider.tracer("test"));
    let layer = if tell_layer {
        layer.sampler(sampler)
    } else {
        layer
    };
    let app = Router::new()
        .route(
            "/users/{id}",
            get(
                |axum::Extension(ids): axum::Extension<TraceIds>| async move {
                    let cx = opentelemetry::Context::current();
                    let span = cx.span();
                    let sc = span.span_context();
                    let mut headers = http::HeaderMap::new();
                    towerscope_trace::inject(&cx, &mut headers);
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .map(|v| v.to_str().expect("ascii").to_owned())
                    };
                    serde_json::json!({
                        "trace_id": ids.trace_id_hex().to_string(),
                        "sampled": ids.sampled,
                        "recording": span.is_recording(),
                        "ids_agree": sc.trace_id().to_bytes() == ids.trace_id
                            && sc.span_id().to_bytes() == ids.span_id
                            && sc.is_sampled() == ids.sampled,
                        "traceparent": header("traceparent"),
                        "tracestate": header("tracestate"),
                    })
                    .to_string()
                },
            ),
        )
        .layer(layer);
    let (status, body) = send(&app, "/users/7", caller).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    provider.force_flush().expect("flush");
    let traceparent = v["traceparent"]
        .as_str()
        .expect("always injected")
        .to_owned();
    let trace_id = v["trace_id"].as_str().expect("id").to_owned();
    assert_ne!(trace_id, "0".repeat(32));
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent}"
    );
    let caller_parent = caller
        .iter()
        .find(|(k, _)| *k == "traceparent")
        .map(|(_, v)| *v);
    if let Some(parent) = caller_parent {
        assert_ne!(
            &traceparent[36..52],
            &parent[36..52],
            "a span ID of its own"
        );
    }
    Seen {
        callers_trace: caller_parent.is_some_and(|p| p[3..35] == trace_id),
        sampled: v["sampled"].as_bool().expect("bool"),
        recording: v["recording"].as_bool().expect("bool"),
        ids_agree: v["ids_agree"].as_bool().expect("bool"),
        flags_sent: traceparent[53..].to_owned(),
        tracestate_sent: v["tracestate"].as_str().map(str::to_owned),
        exported: exporter.get_finished_spans().expect("spans").len(),
    }
}

/// A layer told its provider's sampler decides some requests without the SDK: for every
/// sampler the setup offers and every kind of caller, the handler must see, pass on and
/// export exactly what it does when the SDK decides.
#[tokio::test]
async fn a_layer_told_its_sampler_decides_as_the_sdk_does() {
    use towerscope_trace::SamplerConfig as C;
    let samplers = [
        C::AlwaysOn,
        C::AlwaysOff,
        C::Ratio(0.0),
        C::Ratio(0.5),
        C::Ratio(1.0),
        C::ParentBasedAlwaysOn,
        C::ParentBasedAlwaysOff,
        C::ParentBasedRatio(0.0),
        C::ParentBasedRatio(0.5),
    ];
    // Trace IDs the SDK's ratio sampler keeps at 0.5 (low right half) and drops (high).
    let low = "4bf92f3577b34da60000000000000001";
    let high = "4bf92f3577b34da6ffffffffffffff00";
    let mut callers: Vec<Vec<(&str, String)>> = vec![vec![]];
    for id in [low, high] {
        for flags in ["00", "01", "02", "03"] {
            callers.push(vec![(
                "traceparent",
                format!("00-{id}-00f067aa0ba902b7-{flags}"),
            )]);
        }
        callers.push(vec![
            ("traceparent", format!("00-{id}-00f067aa0ba902b7-00")),
            ("tracestate", "congo=t61rcWkgMzE".to_owned()),
        ]);
    }
    // An invalid parent starts a new trace on both paths.
    callers.push(vec![(
        "traceparent",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
    )]);
    let mut decided_ahead = 0;
    for sampler in samplers {
        for caller in &callers {
            let caller: Vec<(&str, &str)> = caller.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let sdk = sampler_seen(sampler, false, &caller).await;
            let ahead = sampler_seen(sampler, true, &caller).await;
            for seen in [&sdk, &ahead] {
                assert!(seen.ids_agree, "{sampler:?} {caller:?}");
                assert_eq!(seen.recording, seen.sampled, "{sampler:?} {caller:?}");
                assert_eq!(seen.exported, usize::from(seen.sampled));
            }
            // A new trace at a ratio strictly between 0 and 1 is a coin toss on a fresh
            // trace ID on either path: only its consistency can be compared.
            let zero = "0".repeat(32);
            let new_trace = !caller
                .iter()
                .any(|(k, v)| *k == "traceparent" && v[3..35] != zero);
            let coin =
                matches!(sampler, C::Ratio(r) | C::ParentBasedRatio(r) if r > 0.0 && r < 1.0);
            if new_trace && coin {
                // Both outcomes must still happen when the layer knows the sampler
                // (chance of a false failure: 2^-59).
                let mut outcomes = [false; 2];
                for _ in 0..60 {
                    let seen = sampler_seen(sampler, true, &caller).await;
                    outcomes[usize::from(seen.sampled)] = true;
                    if outcomes == [true; 2] {
                        break;
                    }
                }
                assert_eq!(outcomes, [true; 2], "{sampler:?} {caller:?}");
                continue;
            }
            assert_eq!(ahead, sdk, "{sampler:?} {caller:?}");
            decided_ahead += usize::from(!sdk.sampled);
        }
    }
    // The matrix holds both outcomes.
    assert!(decided_ahead > 20, "{decided_ahead}");
}

/// A sampler that keeps only requests under `/users`, deciding on `url.path` as the
/// semantic conventions allow, and remembers which attributes each decision saw.
#[derive(Debug, Clone, Default)]
struct ByPath(std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>);

impl opentelemetry_sdk::trace::ShouldSample for ByPath {
    fn should_sample(
        &self,
        _parent: Option<&opentelemetry::Context>,
        _trace_id: opentelemetry::trace::TraceId,
        _name: &str,
        _kind: &SpanKind,
        attributes: &[opentelemetry::KeyValue],
        _links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        use opentelemetry::trace::TraceState;
        use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult};
        let keys = attributes.iter().map(|kv| kv.key.to_string()).collect();
        self.0.lock().expect("lock").push(keys);
        let users = attributes
            .iter()
            .any(|kv| kv.key.as_str() == "url.path" && kv.value.as_str().starts_with("/users"));
        SamplingResult {
            decision: if users {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        }
    }
}

#[tokio::test]
async fn the_tracers_sampler_sees_the_sampling_attributes_at_creation() {
    let sampler = ByPath::default();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler.clone())
        .with_simple_exporter(exporter.clone())
        .build();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/orders", get(|| async { "orders" }))
        .layer(TraceLayer::new(provider.tracer("test")));
    send(&app, "/users/7", &[]).await;
    send(&app, "/orders", &[("x-request-id", "req-1")]).await;

    let seen = sampler.0.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "one decision a request: {seen:?}");
    for keys in &seen {
        for key in [
            "http.request.method",
            "http.route",
            "url.path",
            "url.scheme",
            "server.address",
            "user_agent.original",
            "network.protocol.version",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        }
    }
    assert!(seen[1].iter().any(|k| k == "request.id"), "{:?}", seen[1]);
    let spans = exporter.get_finished_spans().expect("spans");
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["GET /users/{id}"], "the sampler's choice holds");
    let user = &spans[0];
    assert_eq!(attr(user, "url.path").as_deref(), Some("/users/7"));
    assert_eq!(
        attr(user, "server.address").as_deref(),
        Some("shop.example")
    );
    assert_eq!(
        attr(user, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(user, "error.type"), None);
}

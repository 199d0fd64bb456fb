//! One `Observability`, its `layer()` around an axum router, a tonic server and a plain
//! hyper service, each served on a real socket: request IDs, spans, metrics (with
//! exemplars) and JSON log lines all appear, and what each carries proves the order of the
//! layers (request ID → span → metrics → access log → panic catching → service).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use towerscope::log::CaptureWriter;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::Value;
use towerscope::core::{Route, RouteClassifier};
use towerscope::log::LogFormat;
use towerscope::{Observability, Piece};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

async fn get(
    client: &Client,
    url: String,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// `GET url` with the request ID `id` (and `more` headers), checking that the response
/// carries the same ID back: its status and body.
async fn get_with_id(
    client: &Client,
    url: String,
    id: &str,
    more: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut headers = vec![("x-request-id", id)];
    headers.extend_from_slice(more);
    let (status, headers, body) = get(client, url.clone(), &headers).await;
    assert_eq!(headers["x-request-id"], id, "{url}");
    (status, body)
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Waits until `check` finds something, or fails after 10 s.
async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The access-log completion line of the request with this ID.
fn access_line(lines: &CaptureWriter, request_id: &str) -> Option<Value> {
    lines
        .json_lines()
        .expect("one JSON object per line")
        .into_iter()
        .find(|l| {
            l["target"] == towerscope::log::ACCESS_TARGET
                && l["request_id"] == request_id
                && l["status"] != Value::Null
        })
}

fn span_with_request_id(exporter: &InMemorySpanExporter, id: &str) -> Option<SpanData> {
    exporter
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .find(|s| attr(s, "request.id").as_deref() == Some(id))
}

/// The OpenMetrics sample lines of `family` whose labels include every `labels` pair.
fn samples<'a>(text: &'a str, family: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(family) && labels.iter().all(|p| l.contains(p)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_around_axum_tonic_and_hyper() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let lines = CaptureWriter::new();
    let hyper_route = Route::Static("/hyper/*");
    let obs = Observability::builder("facade-test")
        .version("9.9.9")
        .environment("test")
        .tracer(provider.tracer("facade-test"))
        .log_format(LogFormat::Json)
        .log_filter("info")
        .log_writer(lines.clone())
        .route_classifier(RouteClassifier::new(move |req| {
            req.uri
                .path()
                .starts_with("/hyper/")
                .then(|| hyper_route.clone())
        }))
        .build()
        .expect("builds");
    for piece in Piece::ALL {
        assert!(format!("{obs:?}").contains("Observability"), "{piece:?}");
    }

    // axum
    let app: axum::Router = axum::Router::new()
        .route(
            "/users/{id}",
            axum::routing::get(|| async {
                tracing::info!("looking the user up");
                "user"
            }),
        )
        .route(
            "/boom",
            axum::routing::get(|| async {
                if true {
                    panic!("axum handler bug");
                }
                "never"
            }),
        )
        // Given before `.layer`, the fallback is inside the layers and survives the merge.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(obs.layer())
        .merge(obs.router());
    let axum_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let axum_addr = axum_listener.local_addr().expect("addr");
    let tracker = obs.connections().expect("metrics on").clone();
    // As documented: the tracked listener, and connect info for the client's address.
    let app = app.into_make_service_with_connect_info::<towerscope::core::PeerAddr>();
    tokio::spawn(async move { axum::serve(tracker.listener(axum_listener), app).await });

    // tonic: the standard health service behind the same layer
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop.Orders", tonic_health::ServingStatus::Serving)
        .await;
    let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let grpc_addr = grpc_listener.local_addr().expect("addr");
    let grpc = tonic::transport::Server::builder()
        .layer(obs.layer())
        .add_service(health_service);
    tokio::spawn(async move {
        grpc.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
            grpc_listener,
        ))
        .await
    });

    // hyper: a service_fn, no router
    let hyper_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hyper_addr = hyper_listener.local_addr().expect("addr");
    let hyper_service = tower::ServiceBuilder::new()
        .layer(obs.layer())
        .service(tower::service_fn(
            |req: Request<hyper::body::Incoming>| async move {
                if req.uri().path() == "/hyper/panic" {
                    panic!("hyper handler bug");
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hyper"))))
            },
        ));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = hyper_listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(hyper_service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();

    // --- axum: an inbound trace context and request ID are taken up.
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, body) = get_with_id(
        &client,
        format!("http://{axum_addr}/users/7"),
        "axum-req-1",
        &[(
            "traceparent",
            &format!("00-{parent_trace}-00f067aa0ba902b7-01"),
        )],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user"));
    let span = wait_for("the axum span", || {
        span_with_request_id(&exporter, "axum-req-1")
    })
    .await;
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.span_context.trace_id().to_string(), parent_trace);
    assert_eq!(attr(&span, "http.route").as_deref(), Some("/users/{id}"));
    let trace_id = span.span_context.trace_id().to_string();
    let span_id = span.span_context.span_id().to_string();
    // The access log runs inside the request ID's span and the server span.
    let access = wait_for("the axum access line", || access_line(&lines, "axum-req-1")).await;
    assert_eq!(access["trace_id"], trace_id.as_str());
    assert_eq!(access["span_id"], span_id.as_str());
    assert_eq!(access["route"], "/users/{id}");
    assert_eq!(access["client_addr"], "127.0.0.1");
    // The handler's own event carries both IDs too.
    let handler_event = lines
        .json_lines()
        .expect("one JSON object per line")
        .into_iter()
        .find(|l| l["message"] == "looking the user up")
        .expect("handler event logged");
    assert_eq!(handler_event["request_id"], "axum-req-1");
    assert_eq!(handler_event["trace_id"], trace_id.as_str());

    // A panic: 500 with the request ID (the ID layer is outside the panic layer), counted
    // as a panic by the metrics (outside it too), logged as an error.
    let (status, _) = get_with_id(
        &client,
        format!("http://{axum_addr}/boom"),
        "axum-panic-1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let panic_line = wait_for("the panic access line", || {
        access_line(&lines, "axum-panic-1")
    })
    .await;
    assert_eq!(panic_line["level"], "ERROR");
    assert_eq!(panic_line["status"], 500);
    // The panic itself, logged once by the panic hook the facade installs (where it
    // happened, in the request's span), and not again by the panic layer.
    let panicked: Vec<Value> = lines
        .json_lines()
        .expect("one JSON object per line")
        .into_iter()
        .filter(|l| l["panic.message"] == "axum handler bug")
        .collect();
    assert_eq!(panicked.len(), 1, "{panicked:#?}");
    assert_eq!(panicked[0]["message"], "panicked");
    assert_eq!(panicked[0]["request_id"], "axum-panic-1");
    assert_eq!(panicked[0]["trace_id"], panic_line["trace_id"]);
    assert!(
        panicked[0]["panic.location"]
            .as_str()
            .is_some_and(|l| l.contains("facade.rs")),
        "{}",
        panicked[0]
    );

    // An unknown path (a scanner's): through the layers like any request, its route the
    // one fixed `unmatched` (counted in the metrics below), never the path.
    let (status, _) = get_with_id(
        &client,
        format!("http://{axum_addr}/wp-admin/setup.php"),
        "axum-404-1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unknown_line = wait_for("the 404 access line", || access_line(&lines, "axum-404-1")).await;
    assert_eq!(unknown_line["status"], 404);
    assert_eq!(unknown_line["route"], "unmatched");
    let unknown_span = wait_for("the 404 span", || {
        span_with_request_id(&exporter, "axum-404-1")
    })
    .await;
    assert_eq!(unknown_span.name, "GET");
    assert_eq!(
        unknown_line["trace_id"],
        unknown_span.span_context.trace_id().to_string().as_str()
    );

    // --- tonic: the gRPC path is the route, the status comes from the trailers.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut check = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: "shop.Orders".into(),
    });
    check
        .metadata_mut()
        .insert("x-request-id", "grpc-req-1".parse().expect("ascii"));
    let answer = health.check(check).await.expect("serving");
    assert_eq!(
        answer
            .metadata()
            .get("x-request-id")
            .map(|v| v.to_str().ok()),
        Some(Some("grpc-req-1"))
    );
    let mut unknown = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: "shop.Nothing".into(),
    });
    unknown
        .metadata_mut()
        .insert("x-request-id", "grpc-req-2".parse().expect("ascii"));
    let status = health.check(unknown).await.expect_err("unknown service");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let span = wait_for("the gRPC span", || {
        span_with_request_id(&exporter, "grpc-req-2")
    })
    .await;
    assert_eq!(
        attr(&span, "rpc.method").as_deref(),
        Some("grpc.health.v1.Health/Check")
    );
    assert_eq!(attr(&span, "rpc.status_code").as_deref(), Some("NOT_FOUND"));
    let access = wait_for("the gRPC access line", || access_line(&lines, "grpc-req-2")).await;
    assert_eq!(
        access["trace_id"],
        span.span_context.trace_id().to_string().as_str()
    );
    assert_eq!(access["route"], "/grpc.health.v1.Health/Check");
    // tonic's connect info (the facade's `tonic` feature).
    assert_eq!(access["client_addr"], "127.0.0.1");

    // --- hyper: routes from the classifier, the same IDs and spans.
    let (status, body) = get_with_id(
        &client,
        format!("http://{hyper_addr}/hyper/items/1?secret=x"),
        "hyper-req-1",
        &[],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hyper"));
    let span = wait_for("the hyper span", || {
        span_with_request_id(&exporter, "hyper-req-1")
    })
    .await;
    let access = wait_for("the hyper access line", || {
        access_line(&lines, "hyper-req-1")
    })
    .await;
    assert_eq!(
        access["trace_id"],
        span.span_context.trace_id().to_string().as_str()
    );
    assert_eq!(access["route"], "/hyper/*");
    assert!(
        !access.to_string().contains("secret=x"),
        "query strings are redacted: {access}"
    );
    let (status, _) = get_with_id(
        &client,
        format!("http://{hyper_addr}/hyper/panic"),
        "hyper-panic-1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // A generated ID when none is sent.
    let (_, headers, _) = get(&client, format!("http://{hyper_addr}/hyper/x"), &[]).await;
    assert!(headers.contains_key("x-request-id"));

    // --- metrics, scraped from the merged router (OpenMetrics, for exemplars).
    let (status, _, text) = get(
        &client,
        format!("http://{axum_addr}/metrics"),
        &[("accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let users = samples(
        &text,
        "http_server_request_duration_seconds_bucket",
        &[
            "http_route=\"/users/{id}\"",
            "http_response_status_code=\"200\"",
        ],
    );
    assert!(
        users
            .iter()
            .any(|l| l.contains(&format!("trace_id=\"{trace_id}\""))),
        "the axum request's span is the exemplar (metrics inside the span):\n{}",
        users.join("\n")
    );
    let unknown = samples(
        &text,
        "http_server_requests_total",
        &[
            "http_route=\"unmatched\"",
            "http_response_status_code=\"404\"",
        ],
    );
    assert!(
        unknown.iter().any(|l| l.ends_with(" 1")) && !text.contains("wp-admin"),
        "the unknown path is counted as unmatched, and its path is nowhere:\n{text}"
    );
    let panics = samples(&text, "http_server_errors_total", &["error_type=\"panic\""]);
    let counted: HashMap<&str, bool> = [("/boom", false), ("/hyper/*", false)]
        .into_iter()
        .map(|(route, _)| {
            (
                route,
                panics
                    .iter()
                    .any(|l| l.contains(&format!("=\"{route}\"")) && l.ends_with(" 1")),
            )
        })
        .collect();
    assert!(
        counted.values().all(|c| *c),
        "both panics are counted as panics: {counted:?}\n{}",
        panics.join("\n")
    );
    assert!(
        !samples(
            &text,
            "rpc_server_call_duration_seconds_count",
            &[
                "rpc_method=\"grpc.health.v1.Health/Check\"",
                "rpc_status_code=\"NOT_FOUND\""
            ],
        )
        .is_empty(),
        "gRPC calls are measured with their status:\n{text}"
    );
    assert!(
        samples(
            &text,
            "http_server_request_duration_seconds_count",
            &["/metrics"]
        )
        .is_empty(),
        "scrapes are not measured"
    );
    assert!(
        !samples(
            &text,
            "app_info",
            &["service=\"facade-test\"", "version=\"9.9.9\""]
        )
        .is_empty()
    );
    assert!(!samples(&text, "http_server_active_requests", &[]).is_empty());
    assert!(!samples(&text, "process_resident_memory_bytes", &[]).is_empty());
    assert!(
        !samples(&text, "http_server_open_connections", &[]).is_empty(),
        "connection metrics:\n{text}"
    );

    // --- the other operational endpoints from the router and from the plain service.
    for path in [
        "/health",
        "/ready",
        "/dashboard",
        "/api/dashboard/metrics",
        "/rum.js",
    ] {
        let (status, _, _) = get(&client, format!("http://{axum_addr}{path}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    use tower::ServiceExt as _;
    for (path, want) in [
        ("/ready", 200),
        ("/api/dashboard/alerts", 200),
        ("/nope", 404),
    ] {
        let response = obs
            .ops_service()
            .oneshot(
                Request::get(path)
                    .body(Empty::<Bytes>::new())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status().as_u16(), want, "{path}");
    }
    let alerting = obs.alerting().expect("alerts on");
    assert!(alerting.rules().iter().any(|r| r.name == "HighErrorRate"));

    obs.shutdown().await;
}

/// Sends a request to the router in-process.
async fn send(app: &axum::Router, request: http::request::Builder) -> Response<axum::body::Body> {
    use tower::ServiceExt as _;
    let request = request.body(axum::body::Body::empty()).expect("request");
    app.clone().oneshot(request).await.expect("infallible")
}

/// The whole body of a response from [`send`].
async fn body_of(response: Response<axum::body::Body>) -> Bytes {
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// Pieces that are off are passed through: no header, no families, no span, and the
/// service still answers.
#[tokio::test(flavor = "current_thread")]
async fn pieces_switched_off_are_passed_through() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let obs = Observability::builder("off-test")
        .tracer(provider.tracer("off-test"))
        .without_logging()
        .disable(Piece::RequestId)
        .disable(Piece::Tracing)
        .disable(Piece::Metrics)
        .disable(Piece::Alerts)
        .disable(Piece::Dashboard)
        .disable(Piece::Rum)
        .build()
        .expect("builds");
    assert!(obs.connections().is_none() && obs.alerting().is_none());
    assert!(obs.dashboard().is_none() && obs.rum().is_none());
    let app: axum::Router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .route(
            "/boom",
            axum::routing::get(|| async {
                if true {
                    panic!("still caught");
                }
                "never"
            }),
        )
        .layer(obs.layer())
        .merge(obs.router());
    let response = send(&app, Request::get("/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("x-request-id"));
    let response = send(&app, Request::get("/boom")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(exporter.get_finished_spans().expect("spans").is_empty());
    let text = obs
        .metrics_service()
        .encode(towerscope::metrics::Format::Prometheus);
    assert!(!text.contains("http_server_"), "{text}");
    for (path, want) in [
        ("/health", StatusCode::OK),
        ("/dashboard", StatusCode::NOT_FOUND),
        ("/rum.js", StatusCode::NOT_FOUND),
    ] {
        let response = send(&app, Request::get(path)).await;
        assert_eq!(response.status(), want, "{path}");
    }
    obs.shutdown().await;
}

/// Alerts and the dashboard run background tasks: outside a runtime the build says so.
#[test]
fn background_pieces_need_a_runtime() {
    let err = Observability::builder("no-runtime")
        .without_logging()
        .build()
        .expect_err("no runtime");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    let obs = Observability::builder("no-runtime")
        .without_logging()
        .disable(Piece::Alerts)
        .disable(Piece::Dashboard)
        .disable(Piece::Tracing)
        .build()
        .expect("the rest needs no runtime");
    assert!(obs.alerting().is_none());
    let probes = towerscope::health::Synthetics::builder().probe(
        "home",
        towerscope::health::check_fn(|| async { Ok::<(), String>(()) }),
    );
    let err = Observability::builder("no-runtime")
        .without_logging()
        .disable(Piece::Alerts)
        .disable(Piece::Dashboard)
        .disable(Piece::Tracing)
        .synthetics(probes)
        .build()
        .expect_err("probes run on a schedule");
    assert_eq!(
        err.to_string(),
        "synthetic probes runs a background task: build inside a tokio runtime"
    );
}

/// Probes given to the builder run through the service's own listener once it serves,
/// and land in its registry and on its dashboard; a bad name fails the build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_probes_are_part_of_the_stack() {
    use std::time::Duration;
    use towerscope::health::{HttpCheck, Synthetics};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let probes = Synthetics::builder()
        .probe(
            "home",
            HttpCheck::new(format!("http://{addr}/").parse().expect("uri"))
                .expect_body_contains("shop"),
        )
        .every(Duration::from_secs(3600))
        .first_round_after(Duration::from_millis(300));
    let obs = Observability::builder("probe-test")
        .without_logging()
        .disable(Piece::Tracing)
        .synthetics(probes)
        .build()
        .expect("builds");
    let app: axum::Router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the shop" }))
        .layer(obs.layer())
        .merge(obs.router());
    assert!(
        obs.synthetics().expect("given").results().is_empty(),
        "no round before the delay"
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let synthetics = obs.synthetics().expect("given").clone();
    let result = wait_for("the first scheduled round", || {
        synthetics.results().remove("home")
    })
    .await;
    assert!(result.success, "{result:?}");
    let text = obs
        .metrics_service()
        .encode(towerscope::metrics::Format::Prometheus);
    assert!(
        text.contains("synthetic_probe_success{probe=\"home\"} 1"),
        "{text}"
    );
    let dashboard = axum::Router::new().merge(obs.router());
    let response = send(&dashboard, Request::get("/api/dashboard/synthetics")).await;
    let body = body_of(response).await;
    let card: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(card["probes"]["home"]["success"], true, "{card}");
    drop(synthetics);
    obs.shutdown().await;

    let bad = Synthetics::builder().probe(
        "check out",
        towerscope::health::check_fn(|| async { Ok::<(), String>(()) }),
    );
    let err = Observability::builder("probe-test")
        .without_logging()
        .disable(Piece::Tracing)
        .synthetics(bad)
        .build()
        .expect_err("a space in a probe name");
    assert!(
        err.to_string().starts_with("synthetic probes: probe name"),
        "{err}"
    );
}

/// Serves `app` on a port of its own on 127.0.0.1 until the test ends.
async fn serve_router(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Probes from `[[synthetics.probes]]` (HTTP and TCP) run next to those given in code, on the file's
/// schedule; `enabled = false` (here from its variable) stops both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_probes_from_the_configuration() {
    use std::time::Duration;
    use towerscope::health::{Synthetics, check_fn};
    let addr = serve_router(
        axum::Router::new()
            .route("/", axum::routing::get(|| async { "the shop" }))
            .route(
                "/created",
                axum::routing::post(|| async { (StatusCode::CREATED, "made") }),
            ),
    )
    .await;
    let file = format!(
        "[synthetics]\ninterval_secs = 3600\nfirst_round_after_secs = 3600\n\
         [[synthetics.probes]]\nname = \"home\"\nurl = \"http://{addr}/\"\nbody_contains = \"shop\"\n\
         [[synthetics.probes]]\nname = \"create\"\nurl = \"http://{addr}/created\"\nmethod = \"POST\"\nexpect_status = [201]\n\
         [[synthetics.probes]]\nname = \"wrong-text\"\nurl = \"http://{addr}/\"\nbody_contains = \"checkout\"\n\
         [[synthetics.probes]]\nname = \"port\"\ntcp = \"{addr}\"\n"
    );
    let config =
        towerscope::Config::from_sources(Some(("shop.toml", &file)), |_| None).expect("valid");
    let in_code = || {
        Synthetics::builder()
            .probe("journey", check_fn(|| async { Ok::<(), String>(()) }))
            .every(Duration::from_millis(200))
    };
    let obs = Observability::builder("probe-config")
        .synthetics(in_code())
        .configure(&config)
        .expect("applies")
        .without_logging()
        .disable(Piece::Tracing)
        .build()
        .expect("builds");
    let synthetics = obs.synthetics().expect("configured").clone();
    // The file's first round is an hour away (the code's 200 ms interval was replaced).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        synthetics.results().is_empty(),
        "{:?}",
        synthetics.results()
    );
    let results = synthetics.run_now().await;
    let outcome = |name: &str| (results[name].success, results[name].error.clone());
    assert_eq!(outcome("home"), (true, None));
    assert_eq!(outcome("create"), (true, None));
    assert_eq!(outcome("journey"), (true, None));
    assert_eq!(outcome("port"), (true, None));
    let (passed, error) = outcome("wrong-text");
    assert!(!passed);
    assert!(error.expect("says why").contains("checkout"), "{results:?}");
    let text = obs
        .metrics_service()
        .encode(towerscope::metrics::Format::Prometheus);
    for (probe, value) in [
        ("home", 1),
        ("create", 1),
        ("journey", 1),
        ("port", 1),
        ("wrong-text", 0),
    ] {
        let sample = format!("synthetic_probe_success{{probe=\"{probe}\"}} {value}");
        assert!(text.contains(&sample), "{sample} in {text}");
    }
    drop(synthetics);
    obs.shutdown().await;

    let off = towerscope::Config::from_sources(Some(("shop.toml", &file)), |var| {
        (var == "TOWERSCOPE_SYNTHETICS_ENABLED").then(|| "false".to_owned())
    })
    .expect("valid");
    let obs = Observability::builder("probe-config")
        .synthetics(in_code())
        .configure(&off)
        .expect("applies")
        .without_logging()
        .disable(Piece::Tracing)
        .build()
        .expect("builds");
    assert!(obs.synthetics().is_none(), "the code's probes are off too");
    obs.shutdown().await;
}

/// `[[health.checks]]` join the checks given in code, whichever comes first, in a health
/// registry made with the service's final version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_from_the_configuration() {
    use towerscope::health::{CheckOptions, Health, Status, check_fn};
    let addr = serve_router(
        axum::Router::new().route("/status", axum::routing::get(|| async { "all green" })),
    )
    .await;
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let file = format!(
        "[[health.checks]]\nname = \"server\"\ntcp = \"{addr}\"\n\
         [[health.checks]]\nname = \"status-page\"\nurl = \"http://{addr}/status\"\nbody_contains = \"green\"\n\
         [[health.checks]]\nname = \"cache\"\ntcp = \"{closed}\"\ncritical = false\ntimeout_ms = 2000\n"
    );
    let config =
        towerscope::Config::from_sources(Some(("shop.toml", &file)), |_| None).expect("valid");
    let ok = || check_fn(|| async { Ok::<(), String>(()) });
    let readiness = |obs: &Observability| {
        let health = obs.health().expect("on").clone();
        async move { health.readiness().await }
    };

    // Configured first, code's checks and version after.
    let obs = Observability::builder("health-config")
        .configure(&config)
        .expect("applies")
        .health(Health::builder("given").check("journal", ok(), CheckOptions::default()))
        .without_logging()
        .disable(Piece::Tracing)
        .build()
        .expect("builds");
    let ready = readiness(&obs).await;
    let statuses: Vec<(&str, Status)> = ready
        .checks
        .iter()
        .map(|(name, report)| (name.as_str(), report.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("cache", Status::Degraded),
            ("journal", Status::Healthy),
            ("server", Status::Healthy),
            ("status-page", Status::Healthy),
        ],
        "{ready:?}"
    );
    assert_eq!(ready.status, Status::Degraded, "a non-critical failure");
    assert_eq!(obs.health().expect("on").liveness().version, "given");
    obs.shutdown().await;

    // No health builder in code: the stack's own, with the version set after `configure`.
    let obs = Observability::builder("health-config")
        .configure(&config)
        .expect("applies")
        .version("9.9.9")
        .without_logging()
        .disable(Piece::Tracing)
        .build()
        .expect("builds");
    assert_eq!(obs.health().expect("on").liveness().version, "9.9.9");
    assert_eq!(readiness(&obs).await.checks.len(), 3);
    obs.shutdown().await;
}

/// A `[[health.checks]]` table with `grpc` asks a real tonic server's `grpc.health.v1`.
#[cfg(feature = "grpc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_checks_from_the_configuration() {
    use towerscope::health::Status;
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let file = format!(
        "[[health.checks]]\nname = \"inventory\"\ngrpc = \"http://{addr}\"\n\
         service = \"shop.Inventory\"\ncache_secs = 0\n"
    );
    let config =
        towerscope::Config::from_sources(Some(("shop.toml", &file)), |_| None).expect("valid");
    let obs = Observability::builder("grpc-config")
        .configure(&config)
        .expect("applies")
        .without_logging()
        .disable(Piece::Tracing)
        .build()
        .expect("builds");
    let health = obs.health().expect("on").clone();
    reporter
        .set_service_status("shop.Inventory", tonic_health::ServingStatus::Serving)
        .await;
    assert_eq!(health.readiness().await.status, Status::Healthy);
    reporter
        .set_service_status("shop.Inventory", tonic_health::ServingStatus::NotServing)
        .await;
    let ready = health.readiness().await;
    assert_eq!(ready.status, Status::Unhealthy);
    let error = ready.checks["inventory"].error.clone().expect("says why");
    assert!(error.ends_with("NOT_SERVING"), "{error}");
    obs.shutdown().await;
}

/// A file and variables configure the same stack the builder does.
#[tokio::test(flavor = "current_thread")]
async fn configuration_from_a_file_and_variables() {
    let config = towerscope::Config::from_sources(
        Some((
            "shop.toml",
            "service_name = \"configured\"\nenvironment = \"staging\"\n\
             [metrics]\nnames = \"guide\"\nmax_series = 50\n\
             [log]\nenabled = false\n[alerts]\ninterval_secs = 60\ndefault_rules = false\n",
        )),
        |var| (var == "TOWERSCOPE_OPS_TOKEN").then(|| "t0ken".to_owned()),
    )
    .expect("valid");
    let obs = Observability::builder("default-name")
        .configure(&config)
        .expect("applies")
        .build()
        .expect("builds");
    let app: axum::Router = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "user" }))
        .layer(obs.layer())
        .merge(obs.router());
    let response = send(&app, Request::get("/users/1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The request ends when its body does.
    response.into_body().collect().await.expect("body");
    for path in ["/metrics", "/dashboard", "/api/dashboard/metrics"] {
        let response = send(&app, Request::get(path)).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{path} needs the token"
        );
    }
    let response = send(
        &app,
        Request::get("/metrics").header("authorization", "Bearer t0ken"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_of(response).await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(
            "app_requests_total{method=\"GET\",endpoint=\"/users/{id}\",status_code=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("service=\"configured\""), "{text}");
    assert!(text.contains("environment=\"staging\""), "{text}");
    assert!(
        obs.alerting().expect("on").rules().is_empty(),
        "default rules off"
    );
    obs.shutdown().await;
}

/// The facade for `service` from a configuration of defaults and the variable `var` set to
/// `value` (unset: `None`); logging off, since the facade test owns the process's
/// subscriber.
fn configured(service: &str, var: &str, value: Option<&str>) -> Observability {
    let config = towerscope::Config::from_sources(None, |name| {
        (name == var).then_some(value).flatten().map(str::to_owned)
    })
    .expect("valid");
    Observability::builder(service)
        .configure(&config)
        .expect("applies")
        .without_logging()
        .build()
        .expect("builds")
}

/// `tracing.propagators` (or `OTEL_PROPAGATORS`) reaches both directions: the request
/// layer reads only the formats listed, and `trace_client_layer()` writes only them.
#[tokio::test(flavor = "current_thread")]
async fn propagators_from_the_configuration_read_and_write_b3() {
    use tower::ServiceExt as _;
    let obs = configured(
        "zipkin-shop",
        "TOWERSCOPE_TRACING_PROPAGATORS",
        Some("b3multi"),
    );
    assert_eq!(obs.propagators().to_string(), "b3multi");
    let client_layer = obs.trace_client_layer();
    let app: axum::Router = axum::Router::new()
        .route(
            "/x",
            axum::routing::get(
                move |axum::Extension(ids): axum::Extension<towerscope::core::TraceIds>| {
                    let client_layer = client_layer.clone();
                    async move {
                        // An outgoing call; the "service" answers with the headers it got.
                        let client = tower::ServiceBuilder::new().layer(client_layer).service(
                            tower::service_fn(|req: Request<Empty<Bytes>>| async move {
                                let mut names: Vec<String> = req
                                    .headers()
                                    .keys()
                                    .map(|k| k.as_str().to_owned())
                                    .collect();
                                names.sort();
                                Ok::<_, Infallible>(Response::new(names.join(" ")))
                            }),
                        );
                        let out = Request::get("http://inventory/items")
                            .body(Empty::new())
                            .expect("request");
                        let written = client.oneshot(out).await.expect("sent").into_body();
                        let written = written.collect().await.expect("body").to_bytes();
                        format!(
                            "{} {}",
                            ids.trace_id_hex(),
                            String::from_utf8_lossy(&written)
                        )
                    }
                },
            ),
        )
        .layer(obs.layer());
    let response = send(
        &app,
        Request::get("/x")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
            .header("x-b3-spanid", "e457b5a2e4d86bd1")
            .header("x-b3-sampled", "1"),
    )
    .await;
    let body = body_of(response).await;
    assert_eq!(
        String::from_utf8_lossy(&body),
        "80f198ee56343ba864fe8b2a57d3eff7 x-b3-sampled x-b3-spanid x-b3-traceid",
        "the B3 parent continued, traceparent ignored; only B3 written"
    );
    obs.shutdown().await;
}

/// `drain_on`: when the signal comes, `/ready` answers 503 (draining) at once while the
/// service still answers; the shutdown trigger completes only after the delay.
#[tokio::test(flavor = "current_thread")]
async fn drain_on_turns_readiness_before_the_shutdown_starts() {
    let obs = Observability::builder("draining-shop")
        .without_logging()
        .build()
        .expect("builds");
    let app: axum::Router = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "user" }))
        .layer(obs.layer())
        .merge(obs.router());
    let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
    let delay = Duration::from_millis(300);
    let trigger = tokio::spawn(obs.drain_on(
        async {
            let _ = signalled.await;
        },
        delay,
    ));
    assert_eq!(
        send(&app, Request::get("/ready")).await.status(),
        StatusCode::OK
    );
    signal.send(()).expect("waiting");
    let signalled_at = Instant::now();
    // The drain is the first thing the trigger does.
    for _ in 0..1000 {
        if obs.health().expect("on").is_draining() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let ready = send(&app, Request::get("/ready")).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_of(ready).await;
    let ready: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(ready["draining"], true);
    assert_eq!(
        send(&app, Request::get("/health")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, Request::get("/users/1")).await.status(),
        StatusCode::OK,
        "still serving"
    );
    assert!(!trigger.is_finished(), "the shutdown waits for the delay");
    trigger.await.expect("completes");
    assert!(signalled_at.elapsed() >= delay);
    obs.shutdown().await;
}

/// A receiver that keeps the names of the alerts it was sent, firing or resolved.
#[derive(Clone, Default)]
struct Inbox(std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>);

impl Inbox {
    fn taken(&self) -> Vec<(String, bool)> {
        let mut got = std::mem::take(&mut *self.0.lock().expect("lock"));
        got.sort();
        got
    }
}

impl towerscope::alert::Notifier for Inbox {
    fn name(&self) -> &str {
        "inbox"
    }
    fn send<'a>(
        &'a self,
        n: &'a towerscope::alert::Notification,
    ) -> towerscope::alert::SendFuture<'a> {
        self.0
            .lock()
            .expect("lock")
            .push((n.alert().name.clone(), n.is_resolved()));
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn notifiers_get_the_alerts_they_are_routed() {
    use prometheus_client::metrics::gauge::Gauge;
    use towerscope::alert::{Condition, Rule, Severity, Signal};
    let mut registry = prometheus_client::registry::Registry::default();
    let depth = Gauge::<i64>::default();
    registry.register("queue_depth", "Jobs waiting", depth.clone());
    let signal = || Signal::Gauge {
        metric: "queue_depth".into(),
        matchers: vec![],
    };
    let (pager, chat) = (Inbox::default(), Inbox::default());
    let obs = Observability::builder("routes")
        .without_logging()
        .registry(registry)
        .default_alert_rules(false)
        .alert_rules([
            Rule::new("QueueStuck", signal(), Condition::Gt, 1000.0).severity(Severity::Critical),
            Rule::new("QueueBacklog", signal(), Condition::Gt, 100.0).severity(Severity::Low),
        ])
        .notifier_when(pager.clone(), |a| a.severity >= Severity::High)
        .notifier_when(chat.clone(), |a| a.severity < Severity::High)
        .build()
        .expect("builds");
    let alerting = obs.alerting().expect("alerts on").clone();
    depth.set(5000);
    alerting.evaluate_now();
    let fired = |name: &str| vec![(name.to_owned(), false)];
    // Delivered by each notifier's worker, soon after.
    assert_eq!(
        wait_for("the page", || Some(pager.taken()).filter(|g| !g.is_empty())).await,
        fired("QueueStuck")
    );
    assert_eq!(
        wait_for("the chat message", || Some(chat.taken())
            .filter(|g| !g.is_empty()))
        .await,
        fired("QueueBacklog")
    );
    obs.shutdown().await;
    assert!(
        pager.taken().is_empty() && chat.taken().is_empty(),
        "nothing else was sent"
    );
}

/// With an OTLP endpoint the exporter's own metrics are on `/metrics` (spans exported, and
/// lost), beside the request metrics; without one there is no exporter to count.
#[tokio::test(flavor = "current_thread")]
async fn the_span_exporter_reports_on_the_metrics_endpoint() {
    // `tracing.endpoint` alone means OTLP/gRPC.
    for (endpoint, shown) in [(Some("http://127.0.0.1:4317"), true), (None, false)] {
        let obs = configured("shop", "TOWERSCOPE_TRACING_ENDPOINT", endpoint);
        let text = obs
            .metrics_service()
            .encode(towerscope::metrics::Format::Prometheus);
        assert_eq!(
            text.contains(
                r#"otel_sdk_exporter_span_exported_total{otel_component_type="otlp_grpc_span_exporter"} 0"#
            ),
            shown,
            "{endpoint:?}:\n{text}"
        );
        assert_eq!(text.contains("otel_sdk_exporter_span_inflight"), shown);
    }
}

/// `access_log.client_addr` (here from `TOWERSCOPE_ACCESS_LOG_CLIENT_ADDR`) reaches the
/// access log of `obs.layer()`: the address is written truncated to its network.
#[tokio::test(flavor = "current_thread")]
async fn the_configured_client_address_form_reaches_the_access_log() {
    use tower::ServiceExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let out = CaptureWriter::new();
    let json = towerscope::log::JsonLayer::new(out.clone(), towerscope::log::Redaction::default());
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(json));
    let addr_of = |obs: Observability, peer: &'static str| {
        let out = out.clone();
        async move {
            let app: axum::Router = axum::Router::new()
                .route("/", axum::routing::get(|| async { "hi" }))
                .layer(obs.layer());
            let mut req = Request::get("/")
                .header("x-request-id", peer)
                .body(axum::body::Body::empty())
                .expect("request");
            req.extensions_mut()
                .insert(towerscope::core::PeerAddr(std::net::SocketAddr::new(
                    peer.parse().expect("ip"),
                    40000,
                )));
            let resp = app.oneshot(req).await.expect("response");
            resp.into_body().collect().await.expect("body");
            access_line(&out, peer).expect("an access line")["client_addr"].clone()
        }
    };
    let truncated = || {
        configured(
            "shop",
            "TOWERSCOPE_ACCESS_LOG_CLIENT_ADDR",
            Some("truncated"),
        )
    };
    assert_eq!(addr_of(truncated(), "203.0.113.77").await, "203.0.113.0");
    assert_eq!(
        addr_of(truncated(), "2001:db8:1:2::9").await,
        "2001:db8:1::"
    );
    let omitted = configured("shop", "TOWERSCOPE_ACCESS_LOG_CLIENT_ADDR", Some("omitted"));
    assert_eq!(addr_of(omitted, "198.51.100.8").await, Value::Null);
    let full = configured("shop", "TOWERSCOPE_ACCESS_LOG_CLIENT_ADDR", None);
    assert_eq!(addr_of(full, "198.51.100.9").await, "198.51.100.9");
}

/// `OTEL_SERVICE_NAME` (here through a tracing configuration's variables) names the service
/// in `app_info` as in the spans: metrics and traces agree on it.
#[tokio::test(flavor = "current_thread")]
async fn the_service_name_of_the_tracing_configuration_names_app_info_too() {
    let tracing = towerscope::trace::TracingConfig::new("shop")
        .with_vars(|k| (k == "OTEL_SERVICE_NAME").then(|| "storefront".to_owned()))
        .expect("valid");
    let obs = Observability::builder("shop")
        .tracing(tracing)
        .without_logging()
        .build()
        .expect("builds");
    let text = obs
        .metrics_service()
        .encode(towerscope::metrics::Format::Prometheus);
    let info = text
        .lines()
        .find(|l| l.starts_with("app_info{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(info.contains(r#"service="storefront""#), "{info}");
    // Without it, the builder's name.
    let plain = Observability::builder("shop")
        .without_logging()
        .build()
        .expect("builds");
    let text = plain
        .metrics_service()
        .encode(towerscope::metrics::Format::Prometheus);
    assert!(text.contains(r#"service="shop""#), "{text}");
}

/// Two notifiers (a page and a chat, routed by severity as the alerting guide shows) count
/// their deliveries into one family: written twice, the scrape would be refused.
#[tokio::test(flavor = "current_thread")]
async fn two_notifiers_write_one_notifications_family() {
    use towerscope::alert::{Severity, SlackNotifier, WebhookNotifier};
    let obs = Observability::builder("shop")
        .notifier_when(WebhookNotifier::new("http://127.0.0.1:1/page"), |a| {
            a.severity >= Severity::High
        })
        .notifier_when(SlackNotifier::new("http://127.0.0.1:1/chat"), |a| {
            a.severity < Severity::High
        })
        .without_logging()
        .build()
        .expect("builds");
    let text = obs
        .metrics_service()
        .encode(towerscope::metrics::Format::Prometheus);
    assert_eq!(
        text.matches("# TYPE towerscope_alert_notifications")
            .count(),
        1,
        "{text}"
    );
    for notifier in ["webhook", "slack"] {
        assert!(
            text.contains(&format!(
                "towerscope_alert_notifications_total{{notifier=\"{notifier}\",outcome=\"failed\"}} 0\n"
            )),
            "{notifier}: {text}"
        );
    }
}

//! Spans leave the process as real OTLP: an in-test collector (HTTP/protobuf and gRPC)
//! decodes them with the `opentelemetry-proto` types.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use http::Request;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use tower::{ServiceBuilder, ServiceExt};
use towerscope_trace::{OtlpProtocol, TraceClientLayer, TraceLayer, TracingConfig};

/// What the collector received: (service.name, span) pairs.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn add(&self, request: ExportTraceServiceRequest) {
        let mut all = self.0.lock().expect("lock");
        for rs in request.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    all.push((service.clone(), span));
                }
            }
        }
    }
    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().expect("lock").clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

/// An OTLP/HTTP collector: `POST /v1/traces` with a protobuf body.
async fn http_collector() -> (Received, SocketAddr) {
    let received = Received::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: http::HeaderMap, body: Bytes| async move {
            assert_eq!(headers["content-type"], "application/x-protobuf");
            let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
            sink.add(request);
            ExportTraceServiceResponse::default().encode_to_vec()
        }),
    );
    let (l, addr) = listener().await;
    tokio::spawn(async move { axum::serve(l, app).await });
    (received, addr)
}

/// An OTLP/gRPC collector.
async fn grpc_collector() -> (Received, SocketAddr) {
    let received = Received::default();
    let (l, addr) = listener().await;
    let svc = TraceServiceServer::new(received.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    (received, addr)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

/// Sends one request (`GET /users/7`, host `shop.example`) through a server span, then
/// shuts the provider down, which flushes the exporter.
async fn one_exported_span(tracing: towerscope_trace::Tracing) {
    let app = Router::new()
        .route("/users/{id}", get(|| async { "ok" }))
        .layer(TraceLayer::new(tracing.tracer()));
    let resp = app
        .oneshot(
            Request::get("/users/7")
                .header("host", "shop.example")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    resp.into_body().collect().await.expect("body");
    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .expect("join")
        .expect("flushed");
}

fn vars(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

/// Files a test names in variables, in a directory of its own that goes when it is dropped
/// (also when an assertion fails).
struct Files(std::path::PathBuf);

impl Files {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("towerscope-otlp-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// Writes `text` to `name`; its path.
    fn add(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_spans_reach_an_otlp_http_collector() {
    let (received, collector) = http_collector().await;
    let tracing = TracingConfig::new("shop")
        .version("1.2.3")
        .with_vars(vars(vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=payments".to_owned()),
        ]))
        .expect("config")
        .init()
        .expect("init");
    assert!(tracing.exporting());
    one_exported_span(tracing).await;

    let spans = received.spans();
    assert_eq!(spans.len(), 1, "one span exported on shutdown");
    let (service, span) = &spans[0];
    assert_eq!(service, "shop");
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.trace_id.len(), 16);
    for (k, v) in [
        ("http.request.method", "GET"),
        ("http.route", "/users/{id}"),
        ("url.path", "/users/7"),
        ("server.address", "shop.example"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(attr(span, k).as_deref(), Some(v), "{k}");
    }
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION` (and the traces-only variable): exports arrive
/// gzip-compressed over both protocols, and a value the exporter cannot honour is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_gzip_compressed_when_asked() {
    // Each collector notes the encoding of every export it gets.
    let encodings = Arc::new(Mutex::new(Vec::<String>::new()));
    let http_received = Received::default();
    let (sink, seen) = (http_received.clone(), encodings.clone());
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: http::HeaderMap, body: Bytes| async move {
            let encoding = headers
                .get("content-encoding")
                .map(|v| v.to_str().expect("ascii").to_owned())
                .unwrap_or_default();
            let body = if encoding == "gzip" {
                let mut plain = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&body[..]),
                    &mut plain,
                )
                .expect("valid gzip");
                Bytes::from(plain)
            } else {
                body
            };
            seen.lock().expect("lock").push(format!("http:{encoding}"));
            sink.add(ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf"));
            ExportTraceServiceResponse::default().encode_to_vec()
        }),
    );
    let (l, http_addr) = listener().await;
    tokio::spawn(async move { axum::serve(l, app).await });
    let grpc_received = Received::default();
    let seen = encodings.clone();
    let (l, grpc_addr) = listener().await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tower::util::MapRequestLayer::new(
                move |req: http::Request<tonic::body::Body>| {
                    let encoding = req
                        .headers()
                        .get("grpc-encoding")
                        .map(|v| v.to_str().expect("ascii").to_owned())
                        .unwrap_or_default();
                    seen.lock().expect("lock").push(format!("grpc:{encoding}"));
                    req
                },
            ))
            .add_service(
                TraceServiceServer::new(grpc_received.clone())
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );

    for tracing in [
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{http_addr}")),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        ],
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{grpc_addr}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none".to_owned()),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip".to_owned()),
        ],
    ] {
        let tracing = TracingConfig::new("shop")
            .with_vars(vars(tracing))
            .expect("config")
            .init()
            .expect("init");
        one_exported_span(tracing).await;
    }
    assert_eq!(http_received.spans().len(), 1);
    assert_eq!(grpc_received.spans().len(), 1);
    assert_eq!(*encodings.lock().expect("lock"), ["http:gzip", "grpc:gzip"]);

    let err = TracingConfig::new("shop")
        .with_vars(vars(vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{http_addr}")),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "br".to_owned()),
        ]))
        .expect_err("brotli is not an OTLP compression");
    assert_eq!(
        err.to_string(),
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: `br` is not supported (use gzip or none)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_and_server_spans_reach_an_otlp_grpc_collector() {
    let (received, collector) = grpc_collector().await;
    let tracing = TracingConfig::new("orders")
        .with_vars(vars(vec![
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("http://{collector}"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ]))
        .expect("config")
        .init()
        .expect("init");

    // A real tonic service (grpc.health.v1) behind the server layer.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop.Orders", tonic_health::ServingStatus::Serving)
        .await;
    let (l, addr) = listener().await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(TraceLayer::new(tracing.tracer()))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let channel = ServiceBuilder::new()
        .layer(
            TraceClientLayer::new(tracing.tracer()).server_address("127.0.0.1", Some(addr.port())),
        )
        .service(channel);
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let ok = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: "shop.Orders".into(),
        })
        .await
        .expect("serving");
    assert_eq!(ok.into_inner().status, 1);
    let missing = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: "shop.Nothing".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let t = tracing.clone();
    tokio::task::spawn_blocking(move || t.shutdown())
        .await
        .expect("join")
        .expect("flushed");
    let spans: Vec<Span> = received.spans().into_iter().map(|(_, s)| s).collect();
    let of_kind =
        |kind: SpanKind| -> Vec<&Span> { spans.iter().filter(|s| s.kind == kind as i32).collect() };
    let (servers, clients) = (of_kind(SpanKind::Server), of_kind(SpanKind::Client));
    assert_eq!((servers.len(), clients.len()), (2, 2), "{spans:#?}");
    for s in servers.iter().chain(&clients) {
        assert_eq!(s.name, "grpc.health.v1.Health/Check");
        assert_eq!(attr(s, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(
            attr(s, "rpc.method").as_deref(),
            Some("grpc.health.v1.Health/Check")
        );
        assert_eq!(attr(s, "server.address").as_deref(), Some("127.0.0.1"));
        // Each server span is the child of a client span, across real gRPC metadata.
        if s.kind == SpanKind::Server as i32 {
            let parent = clients
                .iter()
                .find(|c| c.span_id == s.parent_span_id)
                .expect("parent client span");
            assert_eq!(parent.trace_id, s.trace_id);
            assert_eq!(attr(s, "rpc.status_code"), attr(parent, "rpc.status_code"));
        }
    }
    let by_status = |list: &[&Span], code: &str| -> Span {
        (*list
            .iter()
            .find(|s| attr(s, "rpc.status_code").as_deref() == Some(code))
            .unwrap_or_else(|| panic!("no span with {code}")))
        .clone()
    };
    // NOT_FOUND is the caller's problem: an error on the client span only.
    let client_nf = by_status(&clients, "NOT_FOUND");
    assert_eq!(attr(&client_nf, "error.type").as_deref(), Some("NOT_FOUND"));
    assert_eq!(client_nf.status.as_ref().map(|s| s.code), Some(2));
    let server_nf = by_status(&servers, "NOT_FOUND");
    assert_eq!(attr(&server_nf, "error.type"), None);
    assert_ne!(server_nf.status.as_ref().map(|s| s.code), Some(2));
    let server_ok = by_status(&servers, "OK");
    assert_eq!(attr(&server_ok, "error.type"), None);
}

/// A collector that refuses the first export (`401`: the exporter does not retry it, as it
/// retries a `503`) and takes the rest, and a gRPC address where nothing listens: what the
/// exporter's metrics count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_are_counted_as_lost_spans() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let received = Received::default();
    let sink = received.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(http::StatusCode::UNAUTHORIZED);
            }
            sink.add(ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf"));
            Ok(ExportTraceServiceResponse::default().encode_to_vec())
        }),
    );
    let (l, collector) = listener().await;
    tokio::spawn(async move { axum::serve(l, app).await });
    let nowhere = {
        let (l, addr) = listener().await;
        drop(l);
        addr
    };
    for (protocol, endpoint, component, expected) in [
        (
            OtlpProtocol::HttpProtobuf,
            format!("http://{collector}/v1/traces"),
            "otlp_http_span_exporter",
            (1, 1),
        ),
        (
            OtlpProtocol::Grpc,
            format!("http://{nowhere}"),
            "otlp_grpc_span_exporter",
            (0, 2),
        ),
    ] {
        let tracing = TracingConfig::new("shop")
            .otlp(endpoint, protocol)
            .init()
            .expect("init");
        let mut registry = prometheus_client::registry::Registry::default();
        tracing.metrics(&mut registry);
        let app = Router::new()
            .route("/users/{id}", get(|| async { "ok" }))
            .layer(TraceLayer::new(tracing.tracer()));
        let tracing = Arc::new(tracing);
        for _ in 0..2 {
            let resp = app
                .clone()
                .oneshot(
                    Request::get("/users/7")
                        .body(Body::empty())
                        .expect("request"),
                )
                .await
                .expect("response");
            resp.into_body().collect().await.expect("body");
            let flushing = tracing.clone();
            // One export per span; a failed one is an error here, and counted.
            let _ = tokio::task::spawn_blocking(move || flushing.flush())
                .await
                .expect("flush");
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let value = |labels: &str| -> u64 {
            let prefix = format!("otel_sdk_exporter_span_exported_total{{{labels}}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
                .unwrap_or_else(|| panic!("{prefix} in\n{text}"))
        };
        let exported = value(&format!(r#"otel_component_type="{component}""#));
        let failed = value(&format!(
            r#"error_type="_OTHER",otel_component_type="{component}""#
        )) + value(&format!(
            r#"error_type="timeout",otel_component_type="{component}""#
        ));
        assert_eq!((exported, failed), expected, "{component}:\n{text}");
        assert!(
            text.contains(&format!(
                r#"otel_sdk_exporter_span_inflight{{otel_component_type="{component}"}} 0"#
            )),
            "{text}"
        );
    }
    assert_eq!(
        received.spans().len(),
        1,
        "the span after the refused one arrived"
    );
}

/// OTLP to `https://` collectors (the `tls` feature).
#[cfg(feature = "tls")]
mod tls {
    use super::*;

    /// A certificate for 127.0.0.1 signed by a CA made here, and a client certificate the
    /// same CA signed.
    struct TestPki {
        ca_pem: String,
        cert_der: Vec<u8>,
        key_der: Vec<u8>,
        cert_pem: String,
        key_pem: String,
        client_cert_pem: String,
        client_key_pem: String,
    }

    fn test_pki() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("signed");
        let client_key = rcgen::KeyPair::generate().expect("key");
        let mut client = rcgen::CertificateParams::new(vec!["shop".to_owned()]).expect("params");
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &issuer).expect("signed");
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// An OTLP/HTTP collector behind TLS with `cert`/`key`.
    async fn https_collector(cert: Vec<u8>, key: Vec<u8>) -> (Received, SocketAddr) {
        https_collector_asking(cert, key, None).await
    }

    /// An OTLP/HTTP collector behind TLS with `cert`/`key`, requiring a client certificate
    /// signed by `client_ca` (PEM) when one is given.
    async fn https_collector_asking(
        cert: Vec<u8>,
        key: Vec<u8>,
        client_ca: Option<&str>,
    ) -> (Received, SocketAddr) {
        let received = Received::default();
        let sink = received.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| async move {
                sink.add(ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf"));
                ExportTraceServiceResponse::default().encode_to_vec()
            }),
        );
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                use rustls::pki_types::pem::PemObject as _;
                let mut roots = rustls::RootCertStore::empty();
                let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
                    .expect("client CA");
                roots.add(der).expect("root");
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(
                vec![cert.into()],
                rustls::pki_types::PrivateKeyDer::try_from(key).expect("key"),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(app),
                        )
                        .await;
                });
            }
        });
        (received, addr)
    }

    /// An OTLP/gRPC collector behind TLS with `cert`/`key` (PEM).
    async fn grpcs_collector(cert: &str, key: &str) -> (Received, SocketAddr) {
        grpcs_collector_asking(cert, key, None).await
    }

    /// An OTLP/gRPC collector behind TLS with `cert`/`key` (PEM), requiring a client
    /// certificate signed by `client_ca` (PEM) when one is given.
    async fn grpcs_collector_asking(
        cert: &str,
        key: &str,
        client_ca: Option<&str>,
    ) -> (Received, SocketAddr) {
        let received = Received::default();
        let (l, addr) = listener().await;
        // tonic's server asks rustls for the process's provider, which rustls cannot pick
        // by itself when both of its providers are compiled in (the workspace's test build
        // has both). The exporter does not ask (tonic's and reqwest's clients pick theirs).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let identity = tonic::transport::Identity::from_pem(cert, key);
        let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(pem) = client_ca {
            tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(pem));
        }
        let server = tonic::transport::Server::builder()
            .tls_config(tls)
            .expect("tls")
            .add_service(TraceServiceServer::new(received.clone()));
        tokio::spawn(server.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)));
        (received, addr)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_reach_https_collectors_that_a_configured_ca_signed() {
        let pki = test_pki();
        let files = Files::new("ca");
        let ca_file = files.add("ca.pem", &pki.ca_pem);

        // OTLP/HTTP, the CA named by the standard variable.
        let (http_received, collector) =
            https_collector(pki.cert_der.clone(), pki.key_der.clone()).await;
        let http = TracingConfig::new("shop")
            .with_vars(vars(vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("https://{collector}"),
                ),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file),
            ]))
            .expect("config")
            .init()
            .expect("init");
        // OTLP/gRPC, the CA given in code.
        let (grpc_received, collector) = grpcs_collector(&pki.cert_pem, &pki.key_pem).await;
        let grpc = TracingConfig::new("shop")
            .otlp(format!("https://{collector}"), OtlpProtocol::Grpc)
            .otlp_certificate(pki.ca_pem.clone())
            .init()
            .expect("init");
        for (received, tracing) in [(http_received, http), (grpc_received, grpc)] {
            one_exported_span(tracing).await;
            let spans = received.spans();
            assert_eq!(spans.len(), 1, "the span crossed TLS");
            assert_eq!(spans[0].1.name, "GET /users/{id}");
        }
    }

    /// Collectors that require a client certificate (mutual TLS) get spans from a service
    /// given one, through the standard variables (HTTP) or in code (gRPC), and nothing from
    /// a service without.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collectors_requiring_a_client_certificate_get_spans_from_one_given_it() {
        let pki = test_pki();
        let files = Files::new("mtls");
        let file = |name: &str, text: &str| files.add(name, text);
        let (ca, cert, key) = (
            file("ca.pem", &pki.ca_pem),
            file("client.pem", &pki.client_cert_pem),
            file("client-key.pem", &pki.client_key_pem),
        );
        for given in [true, false] {
            let (http_received, collector) = https_collector_asking(
                pki.cert_der.clone(),
                pki.key_der.clone(),
                Some(&pki.ca_pem),
            )
            .await;
            let mut env = vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("https://{collector}"),
                ),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.clone()),
            ];
            if given {
                env.push(("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.clone()));
                env.push(("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key.clone()));
            }
            let http = TracingConfig::new("shop")
                .with_vars(vars(env))
                .expect("config")
                .init()
                .expect("init");
            let (grpc_received, collector) =
                grpcs_collector_asking(&pki.cert_pem, &pki.key_pem, Some(&pki.ca_pem)).await;
            let mut grpc = TracingConfig::new("shop")
                .otlp(format!("https://{collector}"), OtlpProtocol::Grpc)
                .otlp_certificate(pki.ca_pem.clone());
            if given {
                grpc = grpc
                    .otlp_client_identity(pki.client_cert_pem.clone(), pki.client_key_pem.clone());
            }
            let grpc = grpc.init().expect("init");
            for (protocol, received, tracing) in
                [("http", http_received, http), ("grpc", grpc_received, grpc)]
            {
                one_exported_span(tracing).await;
                let spans = received.spans().len();
                assert_eq!(
                    spans,
                    usize::from(given),
                    "{protocol}, certificate given: {given}"
                );
            }
        }
    }

    #[test]
    fn a_client_certificate_without_its_key_or_https_is_a_clear_error() {
        let pki = test_pki();
        let files = Files::new("id");
        let file = |name: &str, text: &str| files.add(name, text);
        let (cert, key) = (
            file("client.pem", &pki.client_cert_pem),
            file("client-key.pem", &pki.client_key_pem),
        );
        let config =
            |pairs: Vec<(&'static str, String)>| TracingConfig::new("shop").with_vars(vars(pairs));
        let alone = config(vec![(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            cert.clone(),
        )])
        .expect_err("a certificate alone");
        assert_eq!(alone.key(), "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
        assert!(
            alone.to_string().contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            "{alone}"
        );
        let alone = config(vec![("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key.clone())])
            .expect_err("a key alone");
        assert_eq!(alone.key(), "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY");
        // The files swapped: the key file holds no key.
        let swapped = config(vec![
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.clone()),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", cert.clone()),
        ])
        .expect_err("no key");
        assert_eq!(
            swapped.to_string(),
            format!("OTEL_EXPORTER_OTLP_CLIENT_KEY: `{cert}` holds no PEM private key")
        );
        // A key that does not parse is refused at setup, not at each export.
        let garbage = file(
            "garbage-key.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let err = config(vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://127.0.0.1:1".to_owned(),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.clone()),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", garbage),
        ])
        .expect("files read")
        .init()
        .expect_err("an unusable key");
        assert!(err.to_string().contains("unusable"), "{err}");
        // A certificate is shown over TLS only.
        let err = config(vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:1".to_owned(),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key),
        ])
        .expect("files read")
        .init()
        .expect_err("plain http");
        assert!(
            err.to_string().contains("needs an https:// endpoint"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_https_collector_whose_ca_is_not_trusted_gets_nothing() {
        let pki = test_pki();
        let (received, collector) = https_collector(pki.cert_der, pki.key_der).await;
        let tracing = TracingConfig::new("shop")
            .otlp(
                format!("https://{collector}/v1/traces"),
                OtlpProtocol::HttpProtobuf,
            )
            .init()
            .expect("init");
        one_exported_span(tracing).await;
        assert!(received.spans().is_empty(), "no handshake, no spans");
    }
}

#[test]
fn an_unreadable_or_empty_certificate_file_is_a_clear_error() {
    let missing = TracingConfig::new("shop")
        .with_vars(vars(vec![(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "/nonexistent/ca.pem".to_owned(),
        )]))
        .expect_err("missing file");
    assert_eq!(missing.key(), "OTEL_EXPORTER_OTLP_CERTIFICATE");
    assert!(
        missing.to_string().contains("/nonexistent/ca.pem"),
        "{missing}"
    );
    let files = Files::new("bad");
    let file = files.add("not-a-cert.pem", "hello");
    let empty = TracingConfig::new("shop")
        .with_vars(vars(vec![("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", file)]))
        .expect_err("no certificate");
    assert_eq!(empty.key(), "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE");
    assert!(empty.to_string().contains("no PEM certificate"), "{empty}");
    // A file that never ends is read no further than the limit.
    let endless = TracingConfig::new("shop")
        .with_vars(vars(vec![(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "/dev/zero".to_owned(),
        )]))
        .expect_err("endless");
    assert_eq!(
        endless.to_string(),
        "OTEL_EXPORTER_OTLP_CERTIFICATE: `/dev/zero` is larger than 4194304 bytes"
    );
}

/// `OTEL_BSP_*` values the SDK would take as they are (a queue of `0` drops nearly every
/// span, a huge one aborts the process allocating it, a delay of `0` spins a thread) or
/// ignore without a word are refused, naming the variable.
#[test]
fn batch_processor_variables_are_checked() {
    let err = |pairs: Vec<(&'static str, &str)>| {
        TracingConfig::new("shop")
            .with_vars(vars(
                pairs.into_iter().map(|(k, v)| (k, v.to_owned())).collect(),
            ))
            .expect_err("refused")
            .to_string()
    };
    for (pairs, message) in [
        (
            vec![("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
            "OTEL_BSP_MAX_QUEUE_SIZE: `0` is not a whole number from 1 to 65536",
        ),
        (
            vec![("OTEL_BSP_MAX_QUEUE_SIZE", "100000000000")],
            "OTEL_BSP_MAX_QUEUE_SIZE: `100000000000` is not a whole number from 1 to 65536",
        ),
        (
            vec![("OTEL_BSP_MAX_QUEUE_SIZE", "-1")],
            "OTEL_BSP_MAX_QUEUE_SIZE: `-1` is not a whole number from 1 to 65536",
        ),
        (
            vec![("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")],
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: `4096` is not a whole number from 1 to 2048 \
             (the queue size)",
        ),
        (
            vec![
                ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "101"),
            ],
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: `101` is not a whole number from 1 to 100 \
             (the queue size)",
        ),
        (
            vec![("OTEL_BSP_SCHEDULE_DELAY", "0")],
            "OTEL_BSP_SCHEDULE_DELAY: `0` is not a number of milliseconds from 1 to 86400000",
        ),
        (
            vec![("OTEL_BSP_SCHEDULE_DELAY", "5s")],
            "OTEL_BSP_SCHEDULE_DELAY: `5s` is not a number of milliseconds from 1 to 86400000",
        ),
        (
            vec![("OTEL_BSP_EXPORT_TIMEOUT", "soon")],
            "OTEL_BSP_EXPORT_TIMEOUT: `soon` is not a number of milliseconds",
        ),
    ] {
        assert_eq!(err(pairs), message);
    }
    for ok in [
        vec![("OTEL_BSP_MAX_QUEUE_SIZE", "65536")],
        vec![
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"),
        ],
        vec![("OTEL_BSP_SCHEDULE_DELAY", " 250 ")],
        vec![("OTEL_BSP_EXPORT_TIMEOUT", "30000")],
    ] {
        let pairs: Vec<(&'static str, String)> =
            ok.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        assert!(
            TracingConfig::new("shop").with_vars(vars(pairs)).is_ok(),
            "{ok:?}"
        );
    }
}

/// `OTEL_BSP_SCHEDULE_DELAY` reaches the batch processor: with 50 ms, a span arrives well
/// before the SDK's default 5 seconds, without a flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_delay_reaches_the_batch_processor() {
    let (received, collector) = http_collector().await;
    let tracing = TracingConfig::new("shop")
        .with_vars(vars(vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
        ]))
        .expect("config")
        .init()
        .expect("init");
    let app = Router::new()
        .route("/users/{id}", get(|| async { "ok" }))
        .layer(TraceLayer::new(tracing.tracer()));
    let resp = app
        .oneshot(
            Request::get("/users/7")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    resp.into_body().collect().await.expect("body");
    let started = std::time::Instant::now();
    while received.spans().is_empty() && started.elapsed() < std::time::Duration::from_secs(3) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        received.spans().len(),
        1,
        "exported within {:?}",
        started.elapsed()
    );
    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .expect("join")
        .expect("flushed");
}

/// `OTEL_EXPORTER_OTLP_HEADERS` over HTTP: the values arrive decoded once (`%20` a space,
/// `%2541` the text `%41`, not an `A`), and a header HTTP cannot carry (a CR/LF in its
/// value, a space in its name) is refused at start, not dropped without a word (the
/// collector would answer 401 and nothing would say why), its value never repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_headers_arrive_as_written_and_bad_ones_are_refused() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<http::HeaderMap>::new()));
    let sink = seen.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: http::HeaderMap| async move {
            sink.lock().expect("lock").push(headers);
            ExportTraceServiceResponse::default().encode_to_vec()
        }),
    );
    let (l, collector) = listener().await;
    tokio::spawn(async move { axum::serve(l, app).await });
    let tracing = TracingConfig::new("shop")
        .with_vars(vars(vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20s3cret,x-tenant=50%2541".to_owned(),
            ),
        ]))
        .expect("config")
        .init()
        .expect("init");
    one_exported_span(tracing).await;
    let seen = seen.lock().expect("lock");
    let headers = seen.first().expect("an export arrived");
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["x-tenant"], "50%41");

    for bad in ["x-a=one%0d%0aInjected: two", "bad name=v", "x-b=%00"] {
        let err = TracingConfig::new("shop")
            .with_vars(vars(vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
                ("OTEL_EXPORTER_OTLP_HEADERS", bad.to_owned()),
            ]))
            .expect("config")
            .init()
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("is not a valid HTTP header"), "{bad}: {text}");
        assert!(
            !text.contains("Injected") && !text.contains("one"),
            "{bad}: {text}"
        );
    }
}

/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES` (as a Kubernetes manifest sets it) names the
/// service over the name in code; `OTEL_SERVICE_NAME` wins over both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_name_from_resource_attributes_and_its_precedence() {
    for (env, expected) in [
        (
            vec![(
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=payments,service.name=storefront",
            )],
            "storefront",
        ),
        (
            vec![
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=storefront"),
                ("OTEL_SERVICE_NAME", "checkout"),
            ],
            "checkout",
        ),
        (vec![("OTEL_RESOURCE_ATTRIBUTES", "team=payments")], "shop"),
    ] {
        let (received, collector) = http_collector().await;
        let mut pairs: Vec<(&'static str, String)> =
            env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        pairs.push(("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")));
        let config = TracingConfig::new("shop")
            .with_vars(vars(pairs))
            .expect("config");
        assert_eq!(config.service(), expected, "{env:?}");
        one_exported_span(config.init().expect("init")).await;
        let spans = received.spans();
        assert_eq!(spans.len(), 1, "{env:?}");
        assert_eq!(spans[0].0, expected, "{env:?}");
    }
}

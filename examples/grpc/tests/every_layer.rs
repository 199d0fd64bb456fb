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
    let drain = std::time::Duration::from_millis(500);
    let running = tokio::spawn(Example::new(tracer.clone()).drain_for(drain).serve(
        grpc,
        ops,
        async {
            let _ = stopped.await;
        },
    ));

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
        // The gRPC port's connections (the test's two channels), through the tracked
        // incoming stream.
        "http_server_connections_total 2",
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

    // Shutting down: NOT_SERVING at once, calls still answered until the drain ends.
    let _ = stop.send(());
    let stopped_at = std::time::Instant::now();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("still accepting while draining");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "shop.orders.v1.Orders".into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        if status == 2 || stopped_at.elapsed() >= drain {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(status, 2, "NOT_SERVING while draining");
    assert!(!running.is_finished(), "serving until the drain ends");
    running.await.expect("join").expect("clean shutdown");
    assert!(stopped_at.elapsed() >= drain);
}

/// Out of file descriptors, the gRPC port neither ends nor spins: the tracked incoming
/// stream says so about once a second, and calls are answered again when descriptors are
/// free. The binary runs with a limit of 24 open files, and the test holds more
/// connections open than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_are_retried_once_a_second_and_the_server_recovers() {
    use std::io::BufRead as _;
    /// Ends the example also when an assertion fails (it would outlive the test).
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 24 && exec \"$0\" --addr 127.0.0.1:0 --ops-addr 127.0.0.1:0",
            env!("CARGO_BIN_EXE_towerscope-grpc-example"),
        ])
        .env("TOWERSCOPE_LOG_FORMAT", "json")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Running)
        .expect("start the example under sh");
    let stdout = child.0.stdout.take().expect("piped");
    let (lines, received) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let Ok(json) = serde_json::from_str(&line) else {
                continue;
            };
            if lines.send(json).is_err() {
                break;
            }
        }
    });
    let grpc: std::net::SocketAddr = loop {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the example says where it listens");
        if let Some(grpc) = line["grpc"].as_str() {
            break grpc.parse().expect("an address");
        }
    };
    // CPU time the example used so far, in clock ticks (utime + stime, /proc/PID/stat).
    let pid = child.0.id();
    let cpu_ticks = move || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    };
    // More connections than the example may hold: it accepts until `EMFILE`.
    let held: Vec<_> = (0..40)
        .map(|_| std::net::TcpStream::connect(grpc).expect("connect"))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = cpu_ticks();
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let spent = cpu_ticks() - before;
    // Spinning would take one core: about 200 ticks (at 100 a second) in 2 s.
    assert!(
        spent < 50,
        "{spent} ticks of CPU in 2 s while out of descriptors"
    );
    let failures = received
        .try_iter()
        .filter(|line| line["message"] == "accept failed; retrying in 1 s")
        .count();
    assert!(
        (1..=4).contains(&failures),
        "{failures} accept errors logged in 2.5 s"
    );
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))?
                .connect_timeout(std::time::Duration::from_secs(5))
                .connect()
                .await?;
            // A fresh store has no order 1: the answer is NOT_FOUND, from the service.
            let code = match OrdersClient::new(channel)
                .get_order(GetOrderRequest { id: 1 })
                .await
            {
                Ok(_) => tonic::Code::Ok,
                Err(status) => status.code(),
            };
            Ok::<_, Box<dyn std::error::Error>>(code)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
            Ok(Ok(tonic::Code::NotFound)) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "not serving again: {other:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The binary's ops port reports its span exporter: with `OTEL_EXPORTER_OTLP_ENDPOINT` set,
/// `/metrics` has the exporter's families beside the example's own.
#[test]
fn the_binary_reports_its_span_exporter() {
    use std::io::{BufRead as _, Read as _, Write as _};
    /// Ends the example also when an assertion fails (it would outlive the test).
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-grpc-example"))
        .args(["--addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"])
        .env("TOWERSCOPE_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Running)
        .expect("start the example");
    let ops: std::net::SocketAddr = std::io::BufReader::new(child.0.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(&line).ok()?;
            json["ops"].as_str()?.parse().ok()
        })
        .expect("the example says where it listens");
    let mut conn = std::net::TcpStream::connect(ops).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: ops\r\nconnection: close\r\n\r\n")
        .expect("send");
    let mut metrics = String::new();
    conn.read_to_string(&mut metrics).expect("read");
    assert!(
        metrics.contains(
            r#"otel_sdk_exporter_span_exported_total{otel_component_type="otlp_http_span_exporter"} 0"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE http_server_connections_total counter"),
        "{metrics}"
    );
}

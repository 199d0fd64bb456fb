//! JSON logs with request IDs, redaction, injection safety, and propagation between services.

use std::io;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tower::ServiceExt;
use towerscope_log::{AccessLogLayer, CaptureWriter, LogFormat, Logging};
use towerscope_request_id::{RequestId, RequestIdClientLayer, RequestIdLayer};
use tracing::Instrument;
use tracing_subscriber::fmt::MakeWriter;

fn json_subscriber(capture: &CaptureWriter) -> tracing::subscriber::DefaultGuard {
    let (subscriber, _guard) = Logging::builder()
        .writer(capture.clone())
        .blocking()
        .format(LogFormat::Json)
        .filter("debug,hyper=off,h2=off,tower::=off,axum=off,hyper_util=off")
        .build()
        .expect("logging");
    tracing::subscriber::set_default(subscriber)
}

/// The lines `f` logs in `format` through `filter` (the writer blocks: nothing dropped).
fn logged_lines(format: LogFormat, filter: &str, f: impl FnOnce()) -> Vec<String> {
    let capture = CaptureWriter::new();
    let (subscriber, _guard) = Logging::builder()
        .writer(capture.clone())
        .blocking()
        .format(format)
        .filter(filter)
        .build()
        .expect("logging");
    tracing::subscriber::with_default(subscriber, f);
    capture.lines()
}

async fn handler() -> Body {
    tracing::info!("in handler");
    let child = tokio::spawn(
        async {
            tokio::task::yield_now().await;
            tracing::info!("in spawned task");
        }
        .instrument(tracing::Span::current()),
    );
    let _ = child.await;
    let stream = futures_util::stream::iter([Ok::<_, io::Error>(bytes::Bytes::from_static(b"ok"))])
        .map_log();
    Body::from_stream(stream)
}

trait MapLog: Sized {
    fn map_log(self) -> futures_util::stream::Inspect<Self, fn(&Result<bytes::Bytes, io::Error>)>;
}

impl<S: futures_util::Stream<Item = Result<bytes::Bytes, io::Error>>> MapLog for S {
    fn map_log(self) -> futures_util::stream::Inspect<Self, fn(&Result<bytes::Bytes, io::Error>)> {
        use futures_util::StreamExt;
        self.inspect(|_| tracing::info!("streaming body"))
    }
}

fn app(registry: &mut Registry) -> Router {
    Router::new()
        .route("/work", get(handler))
        .layer(
            AccessLogLayer::builder()
                .log_headers(["accept", "authorization", "x-api-key", "cookie"])
                .build(),
        )
        .layer(RequestIdLayer::new(registry))
}

#[tokio::test(flavor = "current_thread")]
async fn every_line_of_a_request_carries_its_id() {
    let capture = CaptureWriter::new();
    let _default = json_subscriber(&capture);
    let mut registry = Registry::default();
    let app = app(&mut registry);
    let resp = app
        .clone()
        .oneshot(
            Request::get("/work?token=abc")
                .header("user-agent", "test-agent")
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("ok");
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    resp.into_body().collect().await.expect("body");

    let lines = capture.json_lines().expect("one JSON object per line");
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in [
        "request started",
        "in handler",
        "in spawned task",
        "streaming body",
        "GET /work 200",
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected:?} in {messages:?}"
        );
    }
    for line in &lines {
        assert_eq!(
            line["request_id"],
            id.as_str(),
            "line without the request ID: {line}"
        );
        for key in [
            "timestamp",
            "level",
            "target",
            "message",
            "module",
            "file",
            "line",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
        assert!(line["timestamp"].as_str().expect("string").ends_with('Z'));
    }
    let access = lines
        .iter()
        .find(|l| l["message"] == "GET /work 200")
        .expect("access line");
    assert_eq!(access["event_type"], "http_request");
    // The template comes from axum's `MatchedPath` (the `axum` feature); without it, a route
    // no classifier names is `unmatched`, never the raw path.
    let route = if cfg!(feature = "axum") {
        "/work"
    } else {
        "unmatched"
    };
    assert_eq!(access["route"], route);
    assert_eq!(access["path"], "/work");
    assert_eq!(access["query"], "[REDACTED]");
    assert_eq!(access["status"], 200);
    assert_eq!(access["user_agent"], "test-agent");
    assert!(access["duration_ms"].as_f64().expect("number") >= 0.0);
    assert!(
        !capture.lines().join("\n").contains("abc"),
        "query value leaked"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn ids_are_unique_across_100k_concurrent_requests() {
    let capture = CaptureWriter::new();
    let _default = json_subscriber(&capture);
    let mut registry = Registry::default();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(AccessLogLayer::new())
        .layer(RequestIdLayer::new(&mut registry));
    let n = 100_000;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let app = app.clone();
        tasks.spawn(async move {
            let resp = app
                .oneshot(Request::get("/").body(Body::empty()).expect("req"))
                .await
                .expect("ok");
            resp.headers()["x-request-id"]
                .to_str()
                .expect("ascii")
                .to_owned()
        });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(id) = tasks.join_next().await {
        assert!(ids.insert(id.expect("task")), "duplicate ID");
    }
    assert_eq!(ids.len(), n);
    let logged: std::collections::HashSet<String> = capture
        .json_lines()
        .expect("one JSON object per line")
        .into_iter()
        .filter(|l| l["message"] == "GET / 200")
        .map(|l| l["request_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        logged.len(),
        n,
        "one access line per request, each with its own ID"
    );
    assert!(
        logged == ids,
        "the logged IDs are the IDs the clients received"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_are_masked_in_headers_and_fields() {
    let capture = CaptureWriter::new();
    let _default = json_subscriber(&capture);
    let mut registry = Registry::default();
    let app = app(&mut registry);
    let req = Request::get("/work?password=p4ss")
        .header("accept", "text/plain")
        .header("authorization", "Bearer s3cr3t-t0ken")
        .header("x-api-key", "k3y-value")
        .header("cookie", "session=c00kie")
        .body(Body::empty())
        .expect("req");
    let resp = app.oneshot(req).await.expect("ok");
    resp.into_body().collect().await.expect("body");
    tracing::info!(
        password = "hunter2",
        api_token = "tok-123",
        user_id = 42,
        "signed in"
    );
    let all = capture.lines().join("\n");
    for secret in [
        "p4ss",
        "s3cr3t-t0ken",
        "k3y-value",
        "c00kie",
        "hunter2",
        "tok-123",
    ] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
    let lines = capture.json_lines().expect("one JSON object per line");
    let access = lines
        .iter()
        .find(|l| l["event_type"] == "http_request" && l["status"] == 200)
        .expect("access");
    assert_eq!(
        access["headers"],
        "accept=text/plain; authorization=[REDACTED]; x-api-key=[REDACTED]; cookie=[REDACTED]"
    );
    let signed = lines
        .iter()
        .find(|l| l["message"] == "signed in")
        .expect("event");
    assert_eq!(signed["password"], "[REDACTED]");
    assert_eq!(signed["api_token"], "[REDACTED]");
    assert_eq!(signed["user_id"], 42);
}

#[test]
fn hostile_values_stay_one_line_in_both_formats() {
    let hostile = "quote\" newline\n{\"level\":\"ERROR\",\"message\":\"forged\"}\r\u{1b}[31mred\u{0}nul\u{9b}31mc1";
    for format in [LogFormat::Json, LogFormat::Pretty] {
        let lines = logged_lines(format, "info", || {
            tracing::info!(field = hostile, "message {hostile}");
            tracing::warn!("second");
        });
        assert_eq!(lines.len(), 2, "{format:?} produced {lines:#?}");
        assert!(
            !lines.concat().chars().any(char::is_control),
            "{format:?} wrote a raw control character"
        );
        if format == LogFormat::Json {
            let first: Value = serde_json::from_str(&lines[0]).expect("json");
            assert_eq!(first["field"], hostile);
            assert_eq!(first["message"], format!("message {hostile}"));
        }
    }
}

#[test]
fn errors_carry_type_message_and_chain() {
    #[derive(Debug)]
    struct Outer(io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("saving the order failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let lines = logged_lines(LogFormat::Json, "info", || {
        let err = Outer(io::Error::other("disk full"));
        towerscope_log::app_error!(&err, order_id = 7);
        towerscope_log::business_event!("order_placed", user_id = 42, amount = 9.5);
        towerscope_log::security_event!("login_failed", user_id = "u1");
        towerscope_log::request_event!("GET", "/jobs/7", 200u16, 3.5, user_id = "u2");
    });
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines[0]["event_type"], "application_error");
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["error_type"]
            .as_str()
            .expect("type")
            .ends_with("Outer")
    );
    assert_eq!(lines[0]["error"]["message"], "saving the order failed");
    assert_eq!(lines[0]["error"]["chain"][0], "disk full");
    assert_eq!(lines[0]["order_id"], 7);
    assert_eq!(lines[1]["event_type"], "business_event");
    assert_eq!(lines[1]["event"], "order_placed");
    assert_eq!(lines[1]["amount"], 9.5);
    assert_eq!(lines[2]["event_type"], "security_event");
    assert_eq!(lines[2]["level"], "WARN");
    assert_eq!(lines[3]["event_type"], "http_request");
    assert_eq!(lines[3]["message"], "GET /jobs/7 200");
    assert_eq!(lines[3]["status"], 200);
    assert_eq!(lines[3]["duration_ms"], 3.5);
    assert_eq!(lines[3]["user_id"], "u2");
}

/// A writer that takes its time, so the buffer fills.
#[derive(Clone)]
struct Slow;

impl io::Write for Slow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(5));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Slow {
    type Writer = Slow;
    fn make_writer(&'a self) -> Slow {
        Slow
    }
}

#[test]
fn dropped_lines_are_counted_not_blocking() {
    let mut registry = Registry::default();
    let (subscriber, guard) = Logging::builder()
        .writer(Slow)
        .format(LogFormat::Json)
        .filter("info")
        .buffered_lines(4)
        .metrics(&mut registry)
        .build()
        .expect("logging");
    let start = std::time::Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..200 {
            tracing::info!(i, "line");
        }
    });
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "logging blocked on the writer"
    );
    assert!(guard.dropped_lines() > 0);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let line = text
        .lines()
        .find(|l| l.starts_with(r#"towerscope_log_dropped_lines_total{reason="buffer_full"} "#))
        .expect("metric");
    let n: usize = line
        .rsplit(' ')
        .next()
        .expect("value")
        .parse()
        .expect("number");
    assert!(n > 0, "{line}");
    assert!(
        text.contains(r#"towerscope_log_dropped_lines_total{reason="write_failed"} 0"#),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_id_crosses_from_service_a_to_service_b() {
    let capture = CaptureWriter::new();
    let _default = json_subscriber(&capture);
    let mut registry = Registry::default();

    // Service B.
    let b = Router::new()
        .route(
            "/inventory",
            get(|| async {
                tracing::info!("b: checking inventory");
                "in stock"
            }),
        )
        .layer(AccessLogLayer::new())
        .layer(RequestIdLayer::new(&mut registry));
    let b_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b_addr = b_listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(b_listener, b).await });

    // Service A calls B through a hyper-util client with the client layer.
    let client = tower::ServiceBuilder::new()
        .layer(RequestIdClientLayer::new())
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>(),
        );
    let a = Router::new()
        .route(
            "/checkout",
            get(move || {
                let client = client.clone();
                async move {
                    tracing::info!("a: checking out");
                    let req = Request::get(format!("http://{b_addr}/inventory"))
                        .body(http_body_util::Empty::new())
                        .expect("req");
                    let resp = client.oneshot(req).await.expect("call b");
                    let body = resp.into_body().collect().await.expect("body").to_bytes();
                    String::from_utf8_lossy(&body).into_owned()
                }
            }),
        )
        .layer(AccessLogLayer::new())
        .layer(RequestIdLayer::new(&mut registry));

    let resp = a
        .oneshot(
            Request::get("/checkout")
                .header("x-request-id", HeaderValue::from_static("order-flow-1"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("ok");
    assert_eq!(resp.headers()["x-request-id"], "order-flow-1");
    assert_eq!(
        resp.into_body().collect().await.expect("body").to_bytes(),
        "in stock"
    );

    let lines = capture.json_lines().expect("one JSON object per line");
    let find = |msg: &str| {
        lines
            .iter()
            .find(|l| l["message"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?}: {lines:#?}"))
    };
    assert_eq!(find("a: checking out")["request_id"], "order-flow-1");
    assert_eq!(find("b: checking inventory")["request_id"], "order-flow-1");
    assert_eq!(find("GET /inventory 200")["request_id"], "order-flow-1");
    assert_eq!(find("GET /checkout 200")["request_id"], "order-flow-1");
    // RequestId::current() sees it inside the request too.
    let _ = RequestId::current();
}

/// Writes one event with `value` as a field and in the message, and one access-log line for
/// a request whose path segment and user agent come from outside; returns the lines.
fn log_hostile(format: LogFormat, value: &str, segment: &str, agent: &[u8]) -> Vec<String> {
    let capture = CaptureWriter::new();
    let (subscriber, _guard) = Logging::builder()
        .writer(capture.clone())
        .blocking()
        .format(format)
        .filter("debug")
        .build()
        .expect("logging");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(field = value, "message {value}");
        let app = tower::ServiceBuilder::new()
            .layer(AccessLogLayer::new())
            .service(tower::service_fn(|_req: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            }));
        let mut req = Request::get(format!("/x/{segment}?q={segment}"));
        if let Ok(agent) = HeaderValue::from_bytes(agent) {
            req = req.header("user-agent", agent);
        }
        let req = req.body(Body::empty()).expect("request");
        let resp = runtime.block_on(app.oneshot(req)).expect("infallible");
        drop(runtime.block_on(resp.into_body().collect()));
    });
    capture.lines()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever a user controls (field values, messages, paths, user agents) cannot add a
    /// line or write a raw control character, in either format.
    #[test]
    fn user_strings_cannot_forge_lines(
        value in "\\PC{0,60}|[\\x00-\\x1f\\x7f\"{}\\\\]{0,20}",
        segment in "[A-Za-z0-9%._~!$&'()*+,;=:@-]{0,30}",
        agent in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60),
    ) {
        for format in [LogFormat::Json, LogFormat::Pretty] {
            let lines = log_hostile(format, &value, &segment, &agent);
            // The event, the access log's start line (debug) and its completion line.
            proptest::prop_assert_eq!(lines.len(), 3, "{:?}: {:#?}", format, lines);
            for line in &lines {
                proptest::prop_assert!(
                    !line.chars().any(|c| c.is_control()),
                    "{:?} wrote a raw control character: {:?}", format, line
                );
                if format == LogFormat::Json {
                    let parsed: Result<Value, _> = serde_json::from_str(line);
                    proptest::prop_assert!(parsed.is_ok(), "{}", line);
                }
            }
            if format == LogFormat::Json {
                let first: Value = serde_json::from_str(&lines[0]).expect("json");
                proptest::prop_assert_eq!(&first["field"], &Value::from(value.as_str()));
            }
        }
    }
}

/// Targets-and-levels filters (served by a `Targets` filter) and span filters (served by
/// `EnvFilter`) both keep exactly what `RUST_LOG` syntax says.
#[test]
fn filters_keep_what_their_directives_say() {
    let run = |filter: &str| {
        logged_lines(LogFormat::Json, filter, || {
            tracing::debug!(target: "app", "app debug");
            tracing::info!(target: "app", "app info");
            tracing::info!(target: "noisy::inner", "noisy info");
            tracing::warn!(target: "noisy::inner", "noisy warn");
            tracing::trace!(target: "app::deep", "deep trace");
            let span = tracing::info_span!(target: "app", "checkout", order = 7);
            span.in_scope(|| tracing::debug!(target: "app", "checkout debug"));
        })
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["message"].as_str().expect("message").to_owned()
        })
        .collect::<Vec<_>>()
    };
    assert_eq!(
        run("info,noisy=warn,app::deep=trace"),
        ["app info", "noisy warn", "deep trace"]
    );
    assert_eq!(run("warn"), ["noisy warn"]);
    assert_eq!(run("off"), Vec::<String>::new());
    // A span directive: debug inside `checkout` spans only.
    assert_eq!(
        run("info,noisy=warn,[checkout]=debug"),
        ["app info", "noisy warn", "checkout debug"]
    );
}

/// Completion lines (not the debug start lines) of the access log.
fn completions(capture: &CaptureWriter) -> Vec<Value> {
    capture
        .json_lines()
        .expect("one JSON object per line")
        .into_iter()
        .filter(|l| l["event_type"] == "http_request" && l["message"] != "request started")
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn sampling_drops_only_fast_successes_the_trace_id_does_not_pick() {
    use http::StatusCode;
    let capture = CaptureWriter::new();
    let _default = json_subscriber(&capture);
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                "slow"
            }),
        )
        .layer(
            AccessLogLayer::builder()
                .sample_successes(0.5)
                .always_log_slower_than(Duration::from_millis(20))
                .build(),
        )
        // What a trace layer outside the access log leaves: the trace's IDs. The test
        // chooses the trace ID's low half, which decides.
        .layer(tower::util::MapRequestLayer::new(
            |mut req: Request<Body>| {
                let low = match req.headers().get("x-test-trace").map(HeaderValue::as_bytes) {
                    Some(b"picked") => 0u8,
                    Some(_) => 0xff,
                    None => return req,
                };
                let mut trace_id = [0x11; 16];
                trace_id[8..].fill(low);
                req.extensions_mut().insert(towerscope_core::TraceIds {
                    trace_id,
                    span_id: [2; 8],
                    sampled: false,
                });
                req
            },
        ));
    let send = |path: &'static str, trace: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut req = Request::get(path);
            if let Some(t) = trace {
                req = req.header("x-test-trace", t);
            }
            let resp = app.oneshot(req.body(Body::empty()).expect("req")).await;
            resp.expect("ok").into_body().collect().await.expect("body");
        }
    };
    send("/ok", Some("picked")).await;
    send("/ok", Some("not")).await;
    send("/missing", Some("not")).await;
    send("/fail", Some("not")).await;
    send("/slow", Some("not")).await;
    let lines = completions(&capture);
    let seen: Vec<(&str, Option<f64>)> = lines
        .iter()
        .map(|l| (l["path"].as_str().expect("path"), l["sample_rate"].as_f64()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/ok", Some(2.0)),
            ("/missing", None),
            ("/fail", None),
            ("/slow", None)
        ]
    );

    // Without a trace ID the draw is random: about half of 2,000 fast successes.
    let before = completions(&capture).len();
    for _ in 0..2_000 {
        send("/ok", None).await;
    }
    let kept = completions(&capture).len() - before;
    assert!((800..=1_200).contains(&kept), "{kept} of 2000 kept");
}

/// A value whose `Debug` or `Display` fails (returns `fmt::Error`, as a formatter that
/// propagates an inner failure does) costs that field its text, never the line nor the
/// request: `format!` and `to_string` would panic on it, inside the user's span or event.
#[test]
fn a_failing_display_or_debug_loses_its_text_not_the_line() {
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
    #[derive(Debug)]
    struct Outer(Broken);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    for format in [LogFormat::Json, LogFormat::Pretty] {
        let lines = logged_lines(format, "info", || {
            let span = tracing::info_span!(
                "job",
                debugged = ?Broken,
                shown = %Broken,
                error = &Broken as &(dyn std::error::Error + 'static),
            );
            span.in_scope(|| {
                tracing::info!(debugged = ?Broken, shown = %Broken, "inside");
                let outer = Outer(Broken);
                tracing::error!(
                    error = &outer as &(dyn std::error::Error + 'static),
                    "failed"
                );
            });
        });
        assert_eq!(lines.len(), 2, "{format:?}: {lines:#?}");
        if format == LogFormat::Json {
            let inside: Value = serde_json::from_str(&lines[0]).expect("json");
            assert_eq!(inside["message"], "inside");
            let failed: Value = serde_json::from_str(&lines[1]).expect("json");
            assert_eq!(failed["message"], "failed");
            assert_eq!(failed["error"]["message"], "outer failed", "{failed}");
        }
    }
}

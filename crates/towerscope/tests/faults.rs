//! The whole stack under faults, on real sockets: thousands of clients that go away in the
//! middle of a response; panics, 500s and inner-service errors under concurrency; and
//! dependencies that hang (a readiness check, an alert receiver) while traffic flows.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use towerscope::log::CaptureWriter;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use towerscope::alert::{Condition, Rule, Signal, WebhookNotifier};
use towerscope::health::{CheckOptions, Health, check_fn};
use towerscope::log::{LogFormat, PanicHook};
use towerscope::metrics::Format;
use towerscope::{Observability, Piece};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http()
}

async fn get(client: &Client, url: String, id: Option<String>) -> StatusCode {
    let mut req = Request::get(url);
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    match client
        .request(req.body(Empty::new()).expect("request"))
        .await
    {
        Ok(resp) => {
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            status
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

/// The value of the one sample of `family` whose labels contain every `labels` pair.
fn sample(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(family) && labels.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve(app: axum::Router, obs: &Observability) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tracker = obs.connections().expect("metrics on").clone();
    tokio::spawn(async move { axum::serve(tracker.listener(listener), app).await });
    addr
}

/// A body that sends a chunk every 10 ms for a second.
fn stream_body() -> Body {
    let chunks = futures_stream(100, Duration::from_millis(10));
    Body::from_stream(chunks)
}

fn futures_stream(
    n: usize,
    every: Duration,
) -> impl futures_core::Stream<Item = Result<Bytes, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for i in 0..n {
            if tx
                .send(Ok(Bytes::from(format!("chunk {i}\n"))))
                .await
                .is_err()
            {
                return; // the client went away
            }
            tokio::time::sleep(every).await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_clients_that_disconnect_mid_response() {
    const CLIENTS: usize = 2000;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let obs = Observability::builder("disconnects")
        .without_logging()
        .tracer(provider.tracer("disconnects"))
        .disable(Piece::Alerts)
        .disable(Piece::Dashboard)
        .build()
        .expect("builds");
    let app: axum::Router = axum::Router::new()
        .route("/stream", axum::routing::get(|| async { stream_body() }))
        .layer(obs.layer());
    let addr = serve(app, &obs).await;
    let metrics = obs.metrics_service();
    let baseline_tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    let permits = Arc::new(tokio::sync::Semaphore::new(200));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        clients.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let req = format!("GET /stream HTTP/1.1\r\nhost: x\r\nx-request-id: gone-{i}\r\n\r\n");
            stream.write_all(req.as_bytes()).await.expect("write");
            // Read until the first chunk has arrived, then go away.
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !String::from_utf8_lossy(&seen).contains("chunk 0") {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed before the first chunk");
                seen.extend_from_slice(&buf[..n]);
            }
            drop(stream);
            drop(permit);
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.expect("client");
    }

    wait_until("every response to end", Duration::from_secs(30), || {
        let text = metrics.encode(Format::Prometheus);
        sample(
            &text,
            "http_server_errors_total",
            &["error_type=\"cancelled\"", "/stream"],
        ) == CLIENTS as f64
    })
    .await;
    let text = metrics.encode(Format::Prometheus);
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        0.0,
        "{text}"
    );
    wait_until("every connection to close", Duration::from_secs(10), || {
        sample(
            &metrics.encode(Format::Prometheus),
            "http_server_open_connections",
            &[],
        ) == 0.0
    })
    .await;
    // Every server span ended (the exporter sees only ended spans), one per client.
    wait_until("every span to end", Duration::from_secs(10), || {
        exporter
            .get_finished_spans()
            .map(|s| s.iter().filter(|s| s.name == "GET /stream").count())
            .unwrap_or(0)
            == CLIENTS
    })
    .await;
    let ids: HashSet<String> = exporter
        .get_finished_spans()
        .expect("spans")
        .iter()
        .flat_map(|s| s.attributes.iter())
        .filter(|kv| kv.key.as_str() == "request.id")
        .map(|kv| kv.value.to_string())
        .collect();
    assert_eq!(ids.len(), CLIENTS, "each span carries its own request ID");
    // No task left behind: the streaming tasks saw their receivers go and stopped.
    wait_until("the tasks to finish", Duration::from_secs(10), || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            <= baseline_tasks + 2
    })
    .await;
    obs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_500s_and_service_errors_under_concurrency() {
    const EACH: usize = 300;
    // The hook before ours: Rust's default, counting its calls.
    let default_hook: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        Arc::from(std::panic::take_hook());
    let before_ours = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (hook, calls) = (default_hook.clone(), before_ours.clone());
    std::panic::set_hook(Box::new(move |info| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hook(info);
    }));
    let lines = CaptureWriter::new();
    let obs = Observability::builder("faults")
        .log_format(LogFormat::Json)
        .log_filter("info")
        .log_writer(lines.clone())
        .log_panic_hook(PanicHook::Replace)
        .disable(Piece::Alerts)
        .disable(Piece::Dashboard)
        .build()
        .expect("builds");
    let app: axum::Router = axum::Router::new()
        .route(
            "/panic",
            axum::routing::get(|| async {
                if true {
                    panic!("a bug under load");
                }
                "never"
            }),
        )
        .route(
            "/fail",
            axum::routing::get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed") }),
        )
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .layer(obs.layer());
    let addr = serve(app, &obs).await;
    let client = client();

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..EACH {
        for (path, want) in [
            ("panic", StatusCode::INTERNAL_SERVER_ERROR),
            ("fail", StatusCode::INTERNAL_SERVER_ERROR),
            ("ok", StatusCode::OK),
        ] {
            let client = client.clone();
            requests.spawn(async move {
                let status = get(
                    &client,
                    format!("http://{addr}/{path}"),
                    Some(format!("{path}-{i}")),
                )
                .await;
                assert_eq!(status, want, "{path}");
            });
        }
    }
    while let Some(joined) = requests.join_next().await {
        joined.expect("request");
    }
    // `Replace`: the panics went to the log only. (The default hook back for the rest of
    // the test, so that a failing assertion below still reports on stderr.)
    let unlogged = before_ours.load(std::sync::atomic::Ordering::Relaxed);
    std::panic::set_hook(Box::new(move |info| default_hook(info)));
    assert_eq!(unlogged, 0, "the hook before ours ran");

    // Inner-service errors, on a plain tower service behind the same layer.
    use tower::{Layer as _, ServiceExt as _};
    let failing = obs
        .layer()
        .layer(tower::service_fn(|_req: Request<Body>| async {
            Err::<Response<Body>, _>(std::io::Error::other("the database connection dropped"))
        }));
    let mut errors = tokio::task::JoinSet::new();
    for i in 0..EACH {
        let failing = failing.clone();
        errors.spawn(async move {
            let req = Request::get("/inner")
                .header("x-request-id", format!("inner-{i}"))
                .body(Body::empty())
                .expect("request");
            failing
                .oneshot(req)
                .await
                .expect_err("the inner service fails")
        });
    }
    while let Some(joined) = errors.join_next().await {
        let err = joined.expect("task");
        assert!(err.to_string().contains("database"), "{err}");
    }

    let text = obs.metrics_service().encode(Format::Prometheus);
    let n = EACH as f64;
    assert_eq!(
        sample(
            &text,
            "http_server_errors_total",
            &["error_type=\"panic\"", "/panic"]
        ),
        n,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "http_server_errors_total",
            &["error_type=\"5xx\"", "/fail"]
        ),
        n,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "http_server_errors_total",
            &["error_type=\"service_error\""]
        ),
        n,
        "{text}"
    );
    assert_eq!(
        sample(&text, "http_server_requests_total", &["/ok", "\"200\""]),
        n,
        "{text}"
    );
    assert_eq!(sample(&text, "http_server_active_requests", &[]), 0.0);

    // Every failure is logged, as an error, with its own request ID.
    wait_until("the error lines", Duration::from_secs(10), || {
        let logged: HashSet<String> = lines
            .json_lines()
            .expect("one JSON object per line")
            .into_iter()
            .filter(|l| l["target"] == towerscope::log::ACCESS_TARGET && l["level"] == "ERROR")
            .filter_map(|l| l["request_id"].as_str().map(str::to_owned))
            .collect();
        (0..EACH).all(|i| {
            ["panic", "fail", "inner"]
                .iter()
                .all(|p| logged.contains(&format!("{p}-{i}")))
        })
    })
    .await;
    // Each panic is one line, in its request's span, and the panic layer did not log it
    // again.
    let logged = lines.json_lines().expect("one JSON object per line");
    let panicked: HashSet<String> = logged
        .iter()
        .filter(|l| l["message"] == "panicked" && l["panic.message"] == "a bug under load")
        .filter_map(|l| l["request_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(panicked.len(), EACH);
    assert!((0..EACH).all(|i| panicked.contains(&format!("panic-{i}"))));
    assert!(
        !logged.iter().any(|l| l["message"] == "handler panicked"),
        "logged twice"
    );
    // Still serving.
    assert_eq!(
        get(&client, format!("http://{addr}/ok"), None).await,
        StatusCode::OK
    );
    let _ = std::io::stderr().flush();
    obs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_dependencies_do_not_hold_up_requests() {
    // An alert receiver that accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hang_addr = hanging.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hanging.accept().await {
            held.push(stream);
        }
    });
    let health = Health::builder("1.0.0").check(
        "database",
        check_fn(|| async {
            std::future::pending::<()>().await;
            Ok::<(), String>(())
        }),
        CheckOptions::default().timeout(Duration::from_millis(300)),
    );
    // A rule that fires at once and keeps firing.
    let always = Rule::new("AlwaysFiring", Signal::InFlight, Condition::Ge, 0.0);
    let obs = Observability::builder("hanging")
        .without_logging()
        .health(health)
        .default_alert_rules(false)
        .alert_rules([always])
        .alert_interval(Duration::from_millis(100))
        .notifier(WebhookNotifier::new(format!("http://{hang_addr}/hook")))
        .build()
        .expect("builds");
    let app: axum::Router = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .layer(obs.layer())
        .merge(obs.router());
    let addr = serve(app, &obs).await;
    let client = client();

    // Probes hammer /ready (each waits for the hanging check's timeout) while requests flow.
    let probing = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut probes = tokio::task::JoinSet::new();
            for _ in 0..50 {
                let client = client.clone();
                probes
                    .spawn(async move { get(&client, format!("http://{addr}/ready"), None).await });
            }
            let mut statuses = Vec::new();
            while let Some(s) = probes.join_next().await {
                statuses.push(s.expect("probe"));
            }
            statuses
        })
    };
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let started = Instant::now();
        assert_eq!(
            get(&client, format!("http://{addr}/ok"), None).await,
            StatusCode::OK
        );
        slowest = slowest.max(started.elapsed());
    }
    let statuses = probing.await.expect("probes");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "a hanging check makes the service not ready: {statuses:?}"
    );
    // Not a speed target: a request waiting on the hanging check or the hanging receiver
    // would take at least the check's 300 ms timeout.
    assert!(
        slowest < Duration::from_millis(300),
        "slowest request {slowest:?}"
    );
    let alerting = obs.alerting().expect("alerts on");
    assert!(
        alerting.active().iter().any(|a| a.name == "AlwaysFiring"),
        "evaluation goes on while the receiver hangs"
    );
    obs.shutdown().await;
}

/// An HTTP/1.1 upgrade (how WebSockets start) through `obs.layer()`: the handler gets the
/// connection, bytes flow both ways after the `101`, and the request is observed as a
/// `101` that ended, while its connection stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_connection_passes_the_layers() {
    use axum::extract::Request as AxumRequest;
    let obs = Observability::builder("upgrade")
        .without_logging()
        .disable(Piece::Alerts)
        .build()
        .expect("observability");
    let echo = |mut request: AxumRequest| async move {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = io.read(&mut buf).await {
                if io.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Body::empty())
            .expect("response")
    };
    let app = axum::Router::new()
        .route("/echo", axum::routing::get(echo))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(obs.layer());
    let addr = serve(app, &obs).await;

    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(
        b"GET /echo HTTP/1.1\r\nhost: shop\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
    )
    .await
    .expect("send");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            conn.read(&mut byte).await.expect("read"),
            1,
            "closed: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");
    conn.write_all(b"hello")
        .await
        .expect("send after the upgrade");
    let mut echoed = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut echoed))
        .await
        .expect("echoed in time")
        .expect("read");
    assert_eq!(&echoed, b"hello");

    // The request ended with its 101; the upgraded connection is still open.
    let metrics = obs.metrics_service();
    let scrape = || metrics.encode(Format::Prometheus);
    wait_until("the 101 to be counted", Duration::from_secs(5), || {
        sample(
            &scrape(),
            "http_server_requests_total",
            &[
                r#"http_route="/echo""#,
                r#"http_response_status_code="101""#,
            ],
        ) == 1.0
    })
    .await;
    let text = scrape();
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        0.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "http_server_open_connections", &[]),
        1.0,
        "{text}"
    );
    drop(conn);
    wait_until("the connection to close", Duration::from_secs(5), || {
        sample(&scrape(), "http_server_open_connections", &[]) == 0.0
    })
    .await;
}

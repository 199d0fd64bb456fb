//! The hyper example served on real sockets: bounded route labels from the route table,
//! request IDs, panics caught, the operational endpoints on the admin port only, and a
//! graceful shutdown.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use towerscope::{Observability, Piece};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

async fn get(client: &Client, url: String) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::get(url).body(Empty::new()).expect("request");
    let resp = client.request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_behind_the_facade() {
    let obs = towerscope_hyper_example::observability(
        Observability::builder("catalogue-test")
            .without_logging()
            .disable(Piece::Tracing),
    )
    .expect("builds");
    let app = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (app_addr, admin_addr) = (
        app.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let obs = std::sync::Arc::new(obs);
    let serving = {
        let obs = obs.clone();
        tokio::spawn(async move {
            towerscope_hyper_example::serve(&obs, app, admin, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();

    let (status, headers, body) = get(&client, format!("http://{app_addr}/products/2")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("teapot"), "{body}");
    assert!(headers.contains_key("x-request-id"));
    let (status, ..) = get(&client, format!("http://{app_addr}/products/99")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let post = Request::post(format!("http://{app_addr}/products"))
        .body(Empty::new())
        .expect("request");
    let answer = client.request(post).await.expect("response");
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers()["allow"], "GET, HEAD");
    let (status, ..) = get(&client, format!("http://{app_addr}/fail")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, headers, _) = get(&client, format!("http://{app_addr}/panic")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        headers.contains_key("x-request-id"),
        "the panic response has an ID too"
    );
    for i in 0..20 {
        let _ = get(&client, format!("http://{app_addr}/random/{i}/path")).await;
    }
    // Operational endpoints are on the admin port only.
    let (status, ..) = get(&client, format!("http://{app_addr}/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, text) = get(&client, format!("http://{admin_addr}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let count = |route: &str, code: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("http_server_requests_total{")
                    && l.contains(&format!("http_route=\"{route}\""))
                    && l.contains(&format!("http_response_status_code=\"{code}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        count("/products/{id}", "200").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("/products/{id}", "404").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(count("/fail", "503").as_deref(), Some("1"), "{text}");
    assert_eq!(count("/products", "405").as_deref(), Some("1"), "{text}");
    assert_eq!(count("/panic", "500").as_deref(), Some("1"), "{text}");
    assert_eq!(
        count("unmatched", "404").as_deref(),
        Some("20"),
        "raw paths never become labels"
    );
    assert!(!text.contains("/random/"), "{text}");
    assert!(text.contains("error_type=\"panic\""), "{text}");
    assert!(text.contains("http_server_connections_total"), "{text}");
    for path in ["/health", "/ready", "/dashboard", "/rum.js"] {
        let (status, ..) = get(&client, format!("http://{admin_addr}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    stop.send(()).expect("still serving");
    serving.await.expect("joined").expect("served");
    let obs = std::sync::Arc::into_inner(obs).expect("last handle");
    obs.shutdown().await;
}

/// Out of file descriptors, the server neither ends nor spins: it says so about once a
/// second and serves again when descriptors are free; SIGTERM then ends it cleanly. The binary runs with a limit of 24
/// open files, and the test holds more connections open than that.
#[test]
fn accept_errors_are_retried_once_a_second_and_the_server_recovers() {
    use std::io::{BufRead as _, Read as _, Write as _};
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
            "ulimit -n 24 && exec \"$0\" --addr 127.0.0.1:0 --admin-addr 127.0.0.1:0",
            env!("CARGO_BIN_EXE_towerscope-hyper-example"),
        ])
        .env("TOWERSCOPE_LOG_FORMAT", "json")
        .env("TOWERSCOPE_SYNTHETICS_ENABLED", "false")
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
            if let Ok(json) = serde_json::from_str(&line) {
                if lines.send(json).is_err() {
                    break;
                }
            }
        }
    });
    let api: std::net::SocketAddr = loop {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the example says where it listens");
        if let Some(api) = line["api"].as_str() {
            break api.parse().expect("an address");
        }
    };
    // More connections than the example may hold: it accepts until `EMFILE`.
    let held: Vec<_> = (0..40)
        .map(|_| std::net::TcpStream::connect(api).expect("connect"))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(2500));
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
    let answer = loop {
        let attempt = std::net::TcpStream::connect(api).and_then(|mut conn| {
            conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            conn.write_all(b"GET /products/1 HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n")?;
            let mut answer = String::new();
            conn.read_to_string(&mut answer)?;
            Ok(answer)
        });
        match attempt {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") => break answer,
            other => assert!(
                std::time::Instant::now() < deadline,
                "not serving again: {other:?}"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(answer.contains("kettle"), "{answer}");
    // SIGTERM (what a container is stopped with) ends it cleanly.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

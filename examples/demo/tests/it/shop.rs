//! The demo's routes and business metrics, in-process.

use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;
use towerscope_demo::{Config, Demo};
use towerscope_metrics::Format;

async fn call(demo: &Demo, method: &str, uri: &str, body: &str) -> (u16, String) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request");
    let resp = demo.router().oneshot(req).await.expect("infallible");
    if !["/metrics", "/health", "/ready", "/api/dashboard/metrics"].contains(&uri) {
        // The operational endpoints are mounted beside the application's layers, not inside them.
        let id = resp
            .headers()
            .get("x-request-id")
            .expect("every response carries its request ID");
        assert_eq!(id.len(), 36, "{id:?}");
    }
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn shop_routes_and_business_metrics() {
    let demo = Demo::new(Config::default()).await.expect("demo");
    assert_eq!(
        call(&demo, "GET", "/users/1", "").await,
        (200, r#"{"id":1,"name":"ada"}"#.into())
    );
    assert_eq!(call(&demo, "GET", "/users/999", "").await.0, 404);
    assert_eq!(
        call(&demo, "POST", "/users", r#"{"name":"katherine"}"#)
            .await
            .0,
        201
    );
    assert_eq!(call(&demo, "POST", "/users", r#"{"name":""}"#).await.0, 422);
    assert_eq!(call(&demo, "POST", "/users", r#"{"nam"#).await.0, 400);
    assert_eq!(
        call(&demo, "POST", "/orders", r#"{"user_id":1,"amount":42.5}"#)
            .await
            .0,
        201
    );
    assert_eq!(
        call(&demo, "POST", "/orders", r#"{"user_id":1,"amount":7}"#)
            .await
            .0,
        201
    );
    assert_eq!(
        call(&demo, "POST", "/orders", r#"{"user_id":1,"amount":-1}"#)
            .await
            .0,
        422
    );
    assert_eq!(
        call(&demo, "POST", "/orders", r#"{"user_id":77,"amount":1}"#)
            .await
            .0,
        422
    );
    assert_eq!(call(&demo, "GET", "/error", "").await.0, 500);
    assert_eq!(call(&demo, "GET", "/panic", "").await.0, 500);

    let users = demo
        .perf()
        .stats_tagged(
            towerscope_metrics::PERF_SERIES,
            &[("route", "/users/{id}")],
            std::time::Duration::from_secs(60),
        )
        .expect("the request layer feeds the performance monitor");
    assert_eq!(users.count, 2);
    // Every shop query is timed by statement kind.
    let w = std::time::Duration::from_secs(60);
    let selects = demo
        .perf()
        .stats_tagged("db_query_duration", &[("query_type", "SELECT")], w)
        .expect("selects");
    assert!(selects.count >= 2, "{selects:?}");
    let inserts = demo
        .perf()
        .stats_tagged("db_rows_affected", &[("query_type", "INSERT")], w)
        .expect("rows");
    assert!(inserts.count >= 3, "{inserts:?}");
    let text = demo.metrics().encode(Format::Prometheus);
    for expected in [
        "app_user_registrations_total 1\n",
        "app_order_value_dollars_count 2\n",
        "app_order_value_dollars_sum 49.5\n",
        "app_order_value_dollars_bucket{le=\"10.0\"} 1\n",
        "app_order_value_dollars_bucket{le=\"50.0\"} 2\n",
        "http_server_requests_total{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"404\"} 1\n",
        "http_server_errors_total{error_type=\"panic\",http_route=\"/panic\"} 1\n",
        "http_server_errors_total{error_type=\"5xx\",http_route=\"/error\"} 1\n",
        "http_server_active_requests{http_request_method=\"GET\"} 0\n",
        "http_server_response_body_size_bytes_count{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\"} 1\n",
        "process_resident_memory_bytes ",
        "system_memory_used_bytes ",
        "app_info{version=\"0.1.0\",environment=\"development\",build_date=\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    // The dashboard's business card, from the same metrics: two orders (49.5 $) out of
    // four `POST /orders`.
    demo.observability()
        .dashboard()
        .expect("the demo's dashboard")
        .sample_now();
    let (status, body) = call(&demo, "GET", "/api/dashboard/metrics", "").await;
    assert_eq!(status, 200);
    let card: serde_json::Value = serde_json::from_str(&body).expect("json");
    let stat = |label: &str| {
        card["business"]
            .as_array()
            .expect("business")
            .iter()
            .find(|s| s["label"] == label)
            .unwrap_or_else(|| panic!("no {label} in {card}"))["value"]
            .as_f64()
    };
    assert!(
        (stat("Average order").expect("mean") - 24.75).abs() < 1e-9,
        "{card}"
    );
    assert!(
        (stat("Checkout conversion").expect("conversion") - 50.0).abs() < 1e-9,
        "{card}"
    );
    assert!(stat("Orders / min").expect("orders") > 0.0, "{card}");
    assert!(stat("Revenue / min").expect("revenue") > 0.0, "{card}");
    assert!(
        stat("Registrations / hour").expect("registrations") > 0.0,
        "{card}"
    );
}

#[tokio::test]
async fn the_shop_page_is_served_with_its_policy_and_its_files() {
    let demo = Demo::new(Config::default()).await.expect("demo");
    let get = |uri: &'static str| {
        let router = demo.router();
        async move {
            let req = axum::http::Request::get(uri)
                .body(Body::empty())
                .expect("request");
            router.oneshot(req).await.expect("infallible")
        }
    };
    let page = get("/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-security-policy"],
        towerscope_demo::SHOP_POLICY
    );
    // Nothing inline for the policy to block: the page's script and style are files.
    let html = towerscope_demo::SHOP_HTML;
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains(" style="));
    for (uri, content_type, text) in [
        (
            "/shop.js",
            "text/javascript; charset=utf-8",
            "addEventListener(\"click\"",
        ),
        ("/shop.css", "text/css; charset=utf-8", "#out {"),
    ] {
        assert!(html.contains(uri), "the page links {uri}");
        let resp = get(uri).await;
        assert_eq!(resp.status(), 200, "{uri}");
        assert_eq!(resp.headers()["content-type"], content_type);
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains(text), "{uri}");
    }
}

#[tokio::test]
async fn unknown_paths_are_observed_as_unmatched() {
    let demo = Demo::new(Config::default()).await.expect("demo");
    // `call` checks the response carries its request ID.
    assert_eq!(call(&demo, "GET", "/wp-login.php", "").await.0, 404);
    assert_eq!(call(&demo, "POST", "/.env", "").await.0, 404);
    let text = demo.metrics().encode(Format::Prometheus);
    for method in ["GET", "POST"] {
        assert!(
            text.contains(&format!(
                "http_server_requests_total{{http_request_method=\"{method}\",http_route=\"unmatched\",http_response_status_code=\"404\"}} 1\n"
            )),
            "{text}"
        );
    }
    assert!(
        !text.contains("wp-login") && !text.contains(".env"),
        "{text}"
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let demo = Demo::new(Config::default()).await.expect("demo");
    let (status, body) = call(&demo, "GET", "/health", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"version\":\"0.1.0\""), "{body}");
    let (status, body) = call(&demo, "GET", "/ready", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"database\":{\"status\":\"healthy\""),
        "{body}"
    );
    let text = demo.metrics().encode(Format::Prometheus);
    assert!(
        text.contains("health_check_up{check=\"database\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_token_is_enforced() {
    let demo = Demo::new(Config {
        metrics_token: Some("t0k".into()),
        ..Config::default()
    })
    .await
    .expect("demo");
    assert_eq!(call(&demo, "GET", "/metrics", "").await.0, 401);
    let req = axum::http::Request::get("/metrics")
        .header("authorization", "Bearer t0k")
        .body(Body::empty())
        .expect("request");
    let resp = demo.router().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), 200);
}

/// A database that cannot be opened is named in the error; a URL of another database
/// kind is refused up front, its password not repeated.
#[tokio::test]
async fn database_errors_name_the_database() {
    let open = |database: &str| {
        let database = database.to_owned();
        async move {
            let err = Demo::new(Config {
                database,
                ..Config::default()
            })
            .await
            .expect_err("refused");
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                text.push_str(&format!(" / {s}"));
                source = s.source();
            }
            text
        }
    };
    let missing = open("sqlite:///nonexistent-towerscope-dir/shop.db").await;
    assert!(
        missing.starts_with("database `sqlite:///nonexistent-towerscope-dir/shop.db` / ")
            && missing.contains("unable to open database file"),
        "{missing}"
    );
    let postgres = open("postgres://shop:s3cretpw@127.0.0.1:1/shop").await;
    assert!(postgres.contains("not a SQLite URL"), "{postgres}");
    assert!(!postgres.contains("s3cretpw"), "{postgres}");
}

/// A traffic rate the generator would not keep is refused, not quietly changed.
#[test]
fn a_traffic_rate_out_of_range_is_refused() {
    use std::io::Read as _;
    for rate in ["0", "nan", "1e9", "fast"] {
        let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-demo"))
            .args(["--addr", "127.0.0.1:0", "--traffic", "--traffic-rate", rate])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map(Running)
            .expect("start the demo");
        // A demo that took the rate would run on: give it a few seconds, then fail.
        let status = demo.exit_within(
            std::time::Instant::now(),
            std::time::Duration::from_secs(10),
            &format!("{rate}: the demo took it and runs"),
        );
        let mut stderr = String::new();
        demo.0
            .stderr
            .take()
            .expect("piped")
            .read_to_string(&mut stderr)
            .expect("stderr");
        assert_eq!(status.code(), Some(2), "{rate}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "`{rate}` is not a number of requests per second from 0.1 to 10000"
            )),
            "{rate}: {stderr}"
        );
    }
}

/// Runs the demo binary with one subcommand; it must succeed.
fn run_demo(subcommand: &str) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-demo"))
        .arg(subcommand)
        .output()
        .expect("run the demo binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn export_rules_prints_every_rule_as_a_prometheus_rule_file() {
    let out = run_demo("export-rules");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.starts_with("groups:"), "{text}");
    for rule in towerscope_demo::alert_rules() {
        assert!(
            text.contains(&format!("alert: {}", rule.name)),
            "{} missing",
            rule.name
        );
    }
    assert!(out.stderr.is_empty(), "no rule skipped");
}

#[test]
fn export_dashboard_prints_a_grafana_dashboard_for_the_demo() {
    let out = run_demo("export-dashboard");
    let dashboard: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(dashboard["title"], "towerscope-demo");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(
        panels.iter().any(|p| p["title"] == "Traffic by route"),
        "{dashboard}"
    );
    // The business card's numbers, as stat panels over the same PromQL.
    let conversion = panels
        .iter()
        .find(|p| p["title"] == "Checkout conversion")
        .expect("a business panel");
    assert_eq!(conversion["type"], "stat");
    assert_eq!(conversion["fieldConfig"]["defaults"]["unit"], "suffix:%");
    assert_eq!(
        conversion["targets"][0]["expr"],
        "(sum(rate(app_order_value_dollars_count{job=~\"$job\"}[5m]))) / \
         (sum(rate(http_server_request_duration_seconds_count{job=~\"$job\",\
         http_request_method=\"POST\",http_route=\"/orders\"}[5m]))) * 100"
    );
    let mean = panels
        .iter()
        .find(|p| p["title"] == "Average order")
        .expect("a business panel");
    assert_eq!(mean["fieldConfig"]["defaults"]["decimals"], 2);
}

#[test]
fn a_failed_start_says_why_in_words_and_exits_with_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = std::env::temp_dir().join(format!("towerscope-demo-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rules = dir.join("bad.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: X\n    signal: error_rate\n    op: \">\"\n    threshold: 5\n",
    )
    .expect("write rules");
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    for (args, rust_log, says) in [
        (
            vec!["--addr", addr.as_str()],
            "",
            format!("Error: cannot listen on {addr}\n\nCaused by:\n    "),
        ),
        (
            vec![
                "--addr",
                free.as_str(),
                "--rules",
                rules.to_str().expect("utf-8"),
            ],
            "",
            format!("Error: {}: rule X: unknown field `op`", rules.display()),
        ),
        (
            vec!["--addr", free.as_str()],
            "info,[[[",
            // What was written, where it came from and which directive is wrong.
            "Error: log filter \"info,[[[\" (from RUST_LOG): `[[[`: ".to_owned(),
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-demo"))
            .args(&args)
            .env("RUST_LOG", rust_log)
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .output()
            .expect("run the demo binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&says), "{args:?}: {stderr}");
        // The message, not the error's `Debug` form.
        assert!(
            !stderr.contains("Os {") && !stderr.contains("RuleFileError {"),
            "{stderr}"
        );
    }
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--help` shows where each option can come from, but not the values of those that may
/// hold a secret: the metrics token, and an Alertmanager address with a password in it.
#[test]
fn help_does_not_print_secrets_from_the_environment() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-demo"))
        .arg("--help")
        .env(
            "TOWERSCOPE_ALERTMANAGER",
            "http://alerts:hunter2@127.0.0.1:9093",
        )
        .env("TOWERSCOPE_METRICS_TOKEN", "s3cret-token")
        .env("TOWERSCOPE_ENVIRONMENT", "staging")
        .output()
        .expect("run the demo binary");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[env: TOWERSCOPE_ALERTMANAGER]"), "{help}");
    assert!(
        !help.contains("hunter2") && !help.contains("s3cret-token"),
        "{help}"
    );
    // Values that are not secrets are still shown.
    assert!(
        help.contains("[env: TOWERSCOPE_ENVIRONMENT=staging]"),
        "{help}"
    );
}

/// Ends the demo also when an assertion fails (it would outlive the test).
struct Running(std::process::Child);

impl Running {
    /// Starts the demo binary on a free port with JSON logs and `args` (no collector, no
    /// metrics token from the environment): the demo, where it listens, and the log lines
    /// after the one that says so (read them, or the demo blocks on a full pipe).
    fn start(
        args: &[&str],
    ) -> (
        Self,
        std::net::SocketAddr,
        impl Iterator<Item = String> + Send + 'static,
    ) {
        use std::io::BufRead as _;
        let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-demo"))
            .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("TOWERSCOPE_METRICS_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(Running)
            .expect("start the demo");
        let mut lines = std::io::BufReader::new(demo.0.stdout.take().expect("piped"))
            .lines()
            .map_while(Result::ok);
        let addr = listening_on(&mut lines);
        (demo, addr, lines)
    }

    /// Sends the demo `SIGTERM`.
    fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
    }

    /// Waits for the demo to exit; fails when it still runs `within` after `since`.
    fn exit_within(
        &mut self,
        since: std::time::Instant,
        within: std::time::Duration,
        what: &str,
    ) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(since.elapsed() < within, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address in the demo's JSON line that says where it listens; the lines before it
/// are read and dropped.
fn listening_on(lines: &mut impl Iterator<Item = String>) -> std::net::SocketAddr {
    lines
        .find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(&line).ok()?;
            json["addr"].as_str()?.parse().ok()
        })
        .expect("the demo says where it listens")
}

/// One `GET` on a connection of its own: the whole answer, head and body.
fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

/// `--drain-secs`: on SIGTERM the demo answers `/ready` with 503 (draining) and keeps
/// serving for that long, then shuts down cleanly.
#[test]
fn sigterm_drains_then_shuts_down() {
    let (mut demo, addr, lines) = Running::start(&["--drain-secs", "1"]);
    // Keep reading, so that the demo never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let get = |path: &str| get(addr, path);
    assert!(get("/ready").expect("ready").starts_with("HTTP/1.1 200"));
    demo.terminate();
    let signalled = std::time::Instant::now();
    let ready = loop {
        let ready = get("/ready").expect("still serving while draining");
        if ready.starts_with("HTTP/1.1 503") || signalled.elapsed().as_secs() >= 1 {
            break ready;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("\"draining\":true"), "{ready}");
    assert!(get("/users/1").expect("served").starts_with("HTTP/1.1 200"));
    let status = demo.exit_within(
        signalled,
        std::time::Duration::from_secs(20),
        "still running",
    );
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() >= std::time::Duration::from_secs(1));
}

/// A second SIGTERM during the drain ends the wait: an operator who sent one too many, or
/// an orchestrator that escalates, does not wait out `--drain-secs`.
#[test]
fn a_second_sigterm_cuts_the_drain_short() {
    let (mut demo, addr, lines) = Running::start(&["--drain-secs", "60"]);
    std::thread::spawn(move || lines.for_each(drop));
    demo.terminate();
    let first = std::time::Instant::now();
    // Draining: the first signal was taken.
    loop {
        let ready = get(addr, "/ready").expect("serving while draining");
        if ready.starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(first.elapsed().as_secs() < 10, "never drained: {ready}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    demo.terminate();
    let status = demo.exit_within(
        first,
        std::time::Duration::from_secs(20),
        "still draining after the second signal",
    );
    assert!(status.success(), "{status}");
}

/// Run as `towerscope-demo | head`: once the reader is gone the log lines have nowhere to
/// go. The demo keeps serving, counts the lines it loses, and says so once on stderr.
#[test]
fn a_closed_stdout_loses_lines_counted_and_said_once() {
    use std::io::{BufRead as _, Read as _};
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-demo"))
        .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("TOWERSCOPE_METRICS_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(Running)
        .expect("start the demo");
    let addr = listening_on(
        &mut std::io::BufReader::new(demo.0.stdout.take().expect("piped"))
            .lines()
            .map_while(Result::ok),
    );
    // The reader is dropped here: stdout is a pipe nobody reads any more.
    let lost = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"towerscope_log_dropped_lines_total{reason="write_failed"} "#)
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no write_failed series in {metrics}"))
    };
    let started = std::time::Instant::now();
    let metrics = loop {
        for _ in 0..5 {
            let answer = get(addr, "/users/1").expect("still serving");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        let metrics = get(addr, "/metrics").expect("metrics");
        if lost(&metrics) >= 5 || started.elapsed().as_secs() >= 10 {
            break metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(lost(&metrics) >= 5, "{metrics}");
    assert!(
        metrics.contains(r#"towerscope_log_dropped_lines_total{reason="buffer_full"} 0"#),
        "{metrics}"
    );
    // A clean shutdown writes more lines (to the closed pipe): still said once. Read on a
    // thread of its own, so that a shutdown that hangs fails the test instead of hanging it.
    let mut pipe = demo.0.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stderr = String::new();
        let _ = pipe.read_to_string(&mut stderr);
        let _ = tx.send(stderr);
    });
    demo.terminate();
    let stderr = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the demo exits on SIGTERM");
    assert_eq!(
        stderr
            .matches("towerscope-log: writing log lines failed")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("Broken pipe") || stderr.contains("broken pipe"),
        "{stderr}"
    );
}

/// Readable logs are coloured on a terminal (here the pseudo-terminal `script` gives the
/// demo), and plain with `NO_COLOR` or when stdout is a pipe.
#[test]
fn readable_logs_are_coloured_on_a_terminal_only() {
    use std::io::BufRead as _;
    /// Ends a process by its ID when dropped: the demo under `script` is not `script`'s to
    /// end (killed, `script` leaves it running).
    struct KillOnDrop(Option<String>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(pid) = &self.0 {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid])
                    .status();
            }
        }
    }
    let demo = env!("CARGO_BIN_EXE_towerscope-demo");
    let dir = std::env::temp_dir().join(format!("towerscope-demo-tty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (terminal, no_color, coloured) in [(true, "", true), (true, "1", false), (false, "", false)]
    {
        // The shell under `script` writes its ID, then becomes the demo.
        let pid_file = dir.join(format!("pid-{no_color}"));
        let command = format!(
            "echo $$ > '{}'; exec '{demo}' --addr 127.0.0.1:0 --log-format pretty",
            pid_file.display()
        );
        let mut cmd = if terminal {
            let mut cmd = std::process::Command::new("script");
            cmd.args(["-qec", &command, "/dev/null"]);
            cmd
        } else {
            let mut cmd = std::process::Command::new(demo);
            cmd.args(["--addr", "127.0.0.1:0", "--log-format", "pretty"]);
            cmd
        };
        let mut running = cmd
            .env("NO_COLOR", no_color)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(Running)
            .expect("start the demo (under `script`, from util-linux, for a terminal)");
        let line = std::io::BufReader::new(running.0.stdout.take().expect("piped"))
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("listening"))
            .expect("the demo says where it listens");
        // Dropped before `running` (declared after it), so the demo goes first.
        let _demo = KillOnDrop(
            terminal
                .then(|| std::fs::read_to_string(&pid_file).expect("the demo's ID"))
                .map(|pid| pid.trim().to_owned()),
        );
        assert_eq!(
            line.contains("\x1b["),
            coloured,
            "terminal {terminal}, NO_COLOR={no_color:?}: {line:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With a collector that is not there, the demo says so once and counts the spans it
/// loses on its /metrics.
#[test]
fn spans_lost_to_a_missing_collector_are_counted_and_said_once() {
    use std::io::BufRead as _;
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_towerscope-demo"))
        .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{nowhere}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "50") // export every 50 ms, not every 5 s
        .env_remove("TOWERSCOPE_METRICS_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Running)
        .expect("start the demo");
    let mut lines = std::io::BufReader::new(demo.0.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok);
    let addr = listening_on(&mut lines);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines {
            if line.contains(r#""target":"towerscope_trace::export""#) {
                let _ = tx.send(line);
            }
        }
    });
    let lost = |metrics: &str| -> u64 {
        let prefix = r#"otel_sdk_exporter_span_exported_total{error_type="_OTHER",otel_component_type="otlp_http_span_exporter"} "#;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}in {metrics}"))
    };
    let started = std::time::Instant::now();
    let metrics = loop {
        for _ in 0..3 {
            assert!(
                get(addr, "/users/1")
                    .expect("served")
                    .starts_with("HTTP/1.1 200")
            );
        }
        let metrics = get(addr, "/metrics").expect("metrics");
        if lost(&metrics) >= 3 || started.elapsed().as_secs() >= 20 {
            break metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let first = lost(&metrics);
    assert!(first >= 3, "{metrics}");
    // Later failed exports are counted, not logged again.
    let later = loop {
        assert!(
            get(addr, "/users/1")
                .expect("served")
                .starts_with("HTTP/1.1 200")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = lost(&get(addr, "/metrics").expect("metrics"));
        if now > first || started.elapsed().as_secs() >= 30 {
            break now;
        }
    };
    assert!(later > first, "no later export failed ({first} spans lost)");
    let said: Vec<String> = rx.try_iter().collect();
    assert_eq!(said.len(), 1, "{said:?}");
    let line: serde_json::Value = serde_json::from_str(&said[0]).expect("json");
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["endpoint"], format!("http://{nowhere}/v1/traces"));
}

/// Request bodies, each with when its answer was written.
type Answered = std::sync::Arc<std::sync::Mutex<Vec<(String, std::time::Instant)>>>;

/// An Alertmanager stand-in that answers each request after `delay`.
fn slow_alertmanager(delay: std::time::Duration) -> (std::net::SocketAddr, Answered) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = answered.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                std::thread::sleep(delay);
                let mut stream = reader.into_inner();
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                if stream
                    .write_all(answer)
                    .and_then(|()| stream.flush())
                    .is_ok()
                {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    record
                        .lock()
                        .expect("lock")
                        .push((body, std::time::Instant::now()));
                }
            });
        }
    });
    (addr, answered)
}

/// An alert that fired just before SIGTERM still reaches Alertmanager: the demo waits for
/// the answer (here a second in coming) before it exits.
#[test]
fn an_alert_fired_before_sigterm_still_reaches_alertmanager() {
    let (alertmanager, answered) = slow_alertmanager(std::time::Duration::from_secs(1));
    let rules =
        std::env::temp_dir().join(format!("towerscope-demo-rules-{}.yaml", std::process::id()));
    // Fires at the first evaluation, when the demo starts.
    std::fs::write(
        &rules,
        "rules:\n  - name: DemoStarted\n    signal: gauge\n    metric: process_start_time_seconds\n    condition: gt\n    threshold: 0\n",
    )
    .expect("write rules");
    let alertmanager = format!("http://{alertmanager}");
    let (mut demo, _, lines) = Running::start(&[
        "--alertmanager",
        &alertmanager,
        "--rules",
        rules.to_str().expect("utf-8"),
    ]);
    let reader = std::thread::spawn(move || lines.collect::<Vec<_>>());
    demo.terminate();
    let status = demo.exit_within(
        std::time::Instant::now(),
        std::time::Duration::from_secs(20),
        "still running",
    );
    let exited = std::time::Instant::now();
    let _ = std::fs::remove_file(&rules);
    assert!(status.success(), "{status}");
    let logged = reader.join().expect("reader").join("\n");
    let answered = answered.lock().expect("lock");
    let firing = answered
        .iter()
        .find(|(body, _)| body.contains("DemoStarted"))
        .unwrap_or_else(|| panic!("Alertmanager got no DemoStarted; the demo logged:\n{logged}"));
    assert!(
        firing.1 <= exited,
        "the demo left before Alertmanager answered"
    );
    assert!(!logged.contains("not delivered at shutdown"), "{logged}");
}

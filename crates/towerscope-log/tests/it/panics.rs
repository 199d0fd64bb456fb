//! Panics as log lines: the hook `Logging::init` installs, seen from outside the process.
//!
//! `init` sets process-wide state (the global subscriber and the panic hook), so each case
//! runs in a child process: this test binary started again with `PANIC_CASE` set, running
//! only the same test, which then plays the child's part (the parent process sets nothing
//! global, so these tests share the package's test binary). The parent reads the child's stdout
//! (the JSON log) and stderr (where Rust's default hook writes) and its exit status.

use std::io::{self, Write};
use std::process::{Command, Output};
use std::time::Duration;

use http::Request;
use serde_json::Value;
use tower::{Layer as _, ServiceExt as _};
use towerscope_core::CatchPanicLayer;
use towerscope_log::{LogFormat, Logging, PanicHook};
use towerscope_request_id::RequestIdLayer;
use tracing_subscriber::fmt::MakeWriter;

/// The environment variable that makes this binary a child, naming its case.
const CASE: &str = "PANIC_CASE";

/// Runs `test` (this module's test of that name) in a child process as `case`.
fn child(test: &str, case: &str) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    // The harness names tests by their path below the crate: `panics::<test>`.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    Command::new(exe)
        .args([
            &format!("{module}::{test}"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CASE, case)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("RUST_LOG", "info")
        .output()
        .expect("child runs")
}

/// The JSON lines of the child's stdout (the test harness writes its own lines there too).
fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // The harness's "test name ... " has no line end of its own before the first line.
        .filter_map(|l| l.find("{\"timestamp\"").map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn panicked(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["message"] == "panicked")
        .collect()
}

/// The child's part: logging set up as `mode` asks, then a handler that panics inside a
/// request (caught by `CatchPanicLayer`) and a thread that panics.
fn serve_a_panicking_request(mode: PanicHook) {
    let guard = Logging::builder()
        .format(LogFormat::Json)
        .panic_hook(mode)
        .init()
        .expect("logging");
    let svc = RequestIdLayer::new(&mut prometheus_client::registry::Registry::default()).layer(
        CatchPanicLayer::new().layer(tower::service_fn(|_req: Request<()>| async {
            panic!("card declined for order 7");
            #[allow(unreachable_code)]
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        })),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let resp = rt
        .block_on(svc.oneshot(Request::new(())))
        .expect("answered");
    assert_eq!(resp.status(), 500);
    let id = resp.headers()["x-request-id"].to_str().expect("ascii");
    tracing::info!(answered = id, "answered");
    let thread = std::thread::Builder::new()
        .name("reconciler".into())
        .spawn(|| panic!("ledger out of balance"))
        .expect("thread");
    assert!(thread.join().is_err());
    drop(guard); // writes what is buffered
}

#[test]
fn replace_logs_each_panic_once_as_json_and_nothing_else() {
    if std::env::var_os(CASE).is_some() {
        return serve_a_panicking_request(PanicHook::Replace);
    }
    let out = child(
        "replace_logs_each_panic_once_as_json_and_nothing_else",
        "replace",
    );
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out);
    let panics = panicked(&lines);
    assert_eq!(panics.len(), 2, "one line per panic: {lines:#?}");

    // The handler's panic: in its request's span, with where it happened.
    let answered = lines
        .iter()
        .find(|l| l["message"] == "answered")
        .expect("the child's own line");
    let handler = panics[0];
    assert_eq!(handler["level"], "ERROR");
    assert_eq!(handler["target"], "towerscope_log::panic");
    assert_eq!(handler["panic.message"], "card declined for order 7");
    assert_eq!(handler["request_id"], answered["answered"], "{handler}");
    let location = handler["panic.location"].as_str().expect("a location");
    assert!(
        location.starts_with("crates/towerscope-log/tests/it/panics.rs:"),
        "{location}"
    );
    assert!(
        handler.get("panic.backtrace").is_none(),
        "RUST_BACKTRACE is unset"
    );

    // CatchPanicLayer did not log the same panic again.
    let errors = lines.iter().filter(|l| l["level"] == "ERROR").count();
    assert_eq!(errors, 2, "{lines:#?}");

    // The thread's panic: no request, its thread named.
    let thread = panics[1];
    assert_eq!(thread["panic.message"], "ledger out of balance");
    assert_eq!(thread["panic.thread"], "reconciler");
    assert!(thread.get("request_id").is_none(), "{thread}");

    // Rust's default hook did not run: nothing but JSON lines.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked at"), "{stderr}");
}

#[test]
fn chain_logs_each_panic_and_runs_the_previous_hook() {
    if std::env::var_os(CASE).is_some() {
        return serve_a_panicking_request(PanicHook::Chain);
    }
    let out = child("chain_logs_each_panic_and_runs_the_previous_hook", "chain");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(panicked(&json_lines(&out)).len(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("panicked at") && stderr.contains("card declined for order 7"),
        "Rust's default hook ran after ours: {stderr}"
    );
}

#[test]
fn off_leaves_the_hook_alone() {
    if std::env::var_os(CASE).is_some() {
        return serve_a_panicking_request(PanicHook::Off);
    }
    let out = child("off_leaves_the_hook_alone", "off");
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out);
    assert!(panicked(&lines).is_empty(), "{lines:#?}");
    // CatchPanicLayer logs the handler's panic itself, as without any hook.
    assert!(
        lines.iter().any(|l| l["message"] == "handler panicked"),
        "{lines:#?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ledger out of balance"));
}

/// stdout, slowly: each write waits before it goes out.
#[derive(Clone, Copy)]
struct SlowStdout;

impl Write for SlowStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(200));
        io::stdout().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

impl<'a> MakeWriter<'a> for SlowStdout {
    type Writer = SlowStdout;
    fn make_writer(&'a self) -> SlowStdout {
        SlowStdout
    }
}

/// A process that dies with its panic (as with `panic = "abort"`) still has the panic's
/// line written: the hook waits for the background writer before it returns.
#[test]
fn a_panic_that_ends_the_process_is_written_before_it_ends() {
    if std::env::var_os(CASE).is_some() {
        let _guard = Logging::builder()
            .format(LogFormat::Json)
            .writer(SlowStdout)
            .panic_hook(PanicHook::Replace)
            .init()
            .expect("logging");
        // What `panic = "abort"` does after the hook: the process ends at once, no unwinding,
        // no guard dropped.
        let ours = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            ours(info);
            std::process::abort();
        }));
        panic!("disk full");
    }
    let out = child(
        "a_panic_that_ends_the_process_is_written_before_it_ends",
        "abort",
    );
    assert!(!out.status.success(), "the child aborted: {out:?}");
    let lines = json_lines(&out);
    let panics = panicked(&lines);
    assert_eq!(panics.len(), 1, "{out:?}");
    assert_eq!(panics[0]["panic.message"], "disk full");
}

/// After the guard is dropped the log takes no more lines: a later panic goes to the hook
/// installed before, even with `Replace`, rather than nowhere.
#[test]
fn a_panic_after_the_log_is_closed_is_not_lost() {
    if std::env::var_os(CASE).is_some() {
        let guard = Logging::builder()
            .format(LogFormat::Json)
            .panic_hook(PanicHook::Replace)
            .init()
            .expect("logging");
        drop(guard);
        let thread = std::thread::spawn(|| panic!("shutdown raced a request"));
        assert!(thread.join().is_err());
        return;
    }
    let out = child("a_panic_after_the_log_is_closed_is_not_lost", "closed");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shutdown raced a request"), "{stderr}");
}

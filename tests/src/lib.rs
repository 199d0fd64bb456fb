//! # towerscope-tests
//!
//! Support for the cross-crate tests that start real components (Prometheus, promtool,
//! Alertmanager, Redis, an SMTP server, Chromium) on 127.0.0.1, and the demo they talk to.
//!
//! A missing component fails the test when `CI=true` and is skipped with a message
//! otherwise; the README's test command (`scripts/test`) installs the components first, so
//! a normal run never skips.
//!
//! ```
//! let port = towerscope_tests::free_port();
//! assert!(port > 0);
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Finds `program` on `PATH`. `None` (with a message on stderr) when absent outside CI.
///
/// # Panics
/// When the program is absent and `CI=true`: in CI a missing component is a failure.
pub fn require_program(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!(
            "`{program}` is not installed; run scripts/test (it installs the test components)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// A TCP port free on 127.0.0.1 right now.
///
/// # Panics
/// When the OS gives no port.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A child process killed when dropped, with the processes it started (ChromeDriver's
/// Chromium), and its output kept in a temp file for failures.
#[derive(Debug)]
pub struct Component {
    child: tokio::process::Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Component {
    /// Starts `program` with `args`, output to `log`.
    ///
    /// # Panics
    /// When the program cannot be started.
    pub fn start(program: &PathBuf, args: &[String], log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true)
            // Its own process group, so that dropping it ends what it started too: a test
            // that fails before it closes its WebDriver session left Chromium running.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self { child, log }
    }

    /// The component's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        // The group's id is the child's: it leads the group it was started in.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`; `false` after
/// `timeout`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> bool {
    eventually(timeout, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .is_some()
}

/// The demo with `config`, served on an ephemeral loopback port (with peer addresses, as
/// `towerscope-demo` serves it).
///
/// # Panics
/// When the demo cannot start or bind.
pub async fn serve_demo(
    config: towerscope_demo::Config,
) -> (std::net::SocketAddr, towerscope_demo::Demo) {
    let demo = towerscope_demo::Demo::new(config).await.expect("demo");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = demo.clone();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    (addr, demo)
}

/// The user guide's code blocks (`README.md` and `docs/*.md`), compiled and run as doctests
/// so that the guide cannot drift from the API.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../README.md")]
    pub struct Readme;
    #[doc = include_str!("../../docs/alerting.md")]
    pub struct Alerting;
    #[doc = include_str!("../../docs/dashboard.md")]
    pub struct Dashboard;
    #[doc = include_str!("../../docs/getting-started.md")]
    pub struct GettingStarted;
    #[doc = include_str!("../../docs/health.md")]
    pub struct Health;
    #[doc = include_str!("../../docs/logging.md")]
    pub struct Logging;
    #[doc = include_str!("../../docs/metrics.md")]
    pub struct Metrics;
    #[doc = include_str!("../../docs/migration.md")]
    pub struct Migration;
    #[doc = include_str!("../../docs/monitoring.md")]
    pub struct Monitoring;
    #[doc = include_str!("../../docs/perf.md")]
    pub struct Perf;
    #[doc = include_str!("../../docs/rum.md")]
    pub struct Rum;
    #[doc = include_str!("../../docs/tracing.md")]
    pub struct Tracing;
}

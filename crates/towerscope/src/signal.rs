//! [`shutdown_signal`]: the signals a service is asked to stop with.

/// Completes when the process is asked to stop: Ctrl-C (`SIGINT`) or, on Unix, `SIGTERM`,
/// the signal Kubernetes, systemd and Docker send. Give it to `with_graceful_shutdown`
/// (through [`Observability::drain_on`](crate::Observability::drain_on) to drain first).
///
/// Waiting on Ctrl-C alone, as many examples do, means a container's `SIGTERM` ends the
/// process at once: open requests are cut off, and the spans and log lines still
/// buffered are lost. A signal whose handler cannot be installed is logged, and the other
/// one is still awaited.
///
/// ```no_run
/// # async fn run(obs: towerscope::Observability, app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app)
///     .with_graceful_shutdown(towerscope::shutdown_signal())
///     .await?;
/// obs.shutdown().await; // the last batch of spans exported, logs flushed
/// # Ok(()) }
/// ```
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let mut interrupt = std::pin::pin!(interrupt);
    let mut terminate = std::pin::pin!(terminate);
    let which = std::future::poll_fn(|cx| {
        use std::future::Future as _;
        if interrupt.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready("SIGINT");
        }
        if terminate.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready("SIGTERM");
        }
        std::task::Poll::Pending
    })
    .await;
    tracing::info!(signal = which, "shutting down");
}

//! [`shutdown_signal`]: the signals a service is asked to stop with.

use std::future::Future;

/// Completes when the process is asked to stop: Ctrl-C (`SIGINT`) or, on Unix, `SIGTERM`,
/// the signal Kubernetes, systemd and Docker send. Give it to `with_graceful_shutdown`
/// (through [`Observability::drain_on`](crate::Observability::drain_on) to drain first).
///
/// Waiting on Ctrl-C alone, as many examples do, means a container's `SIGTERM` ends the
/// process at once: open requests are cut off, and the spans and log lines still
/// buffered are lost. A signal whose handler cannot be installed is logged, and the other
/// one is still awaited.
///
/// The handlers are installed when this is called inside a tokio runtime, not when the
/// future is first polled: call it before the service says it is listening, and a
/// `SIGTERM` that comes at once (a rolling update stopping a pod that just started) is
/// waited for like any other, instead of ending the process with the default action.
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
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // Installed now, when called inside a runtime, not at the first poll: a signal that
    // arrives in between (after the service said it listens, before the server first
    // polls this) is then waited for, instead of ending the process at once.
    #[cfg(unix)]
    let installed = tokio::runtime::Handle::try_current()
        .is_ok()
        .then(unix::install_both);
    async move {
        #[cfg(unix)]
        let (interrupt, terminate) = installed.unwrap_or_else(unix::install_both);
        #[cfg(unix)]
        let (interrupt, terminate) = (unix::wait(interrupt), unix::wait(terminate));
        #[cfg(not(unix))]
        let interrupt = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        let which = if first_of(interrupt, terminate).await {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        tracing::info!(signal = which, "shutting down");
    }
}

/// Waits for whichever of `a` and `b` completes first: `true` for `a` (polled first when
/// both are ready).
pub(crate) async fn first_of(a: impl Future<Output = ()>, b: impl Future<Output = ()>) -> bool {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(true);
        }
        if b.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(false);
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(unix)]
mod unix {
    use tokio::signal::unix::{Signal, SignalKind, signal};

    const INTERRUPT: (SignalKind, &str) = (SignalKind::interrupt(), "SIGINT");
    const TERMINATE: (SignalKind, &str) = (SignalKind::terminate(), "SIGTERM");

    /// The handlers of both, installed now.
    pub(super) fn install_both() -> (Option<Signal>, Option<Signal>) {
        (install(INTERRUPT), install(TERMINATE))
    }

    /// The handler for `kind`, installed now; `None` (logged) when it cannot be.
    fn install((kind, name): (SignalKind, &str)) -> Option<Signal> {
        signal(kind)
            .inspect_err(|e| tracing::error!(error = %e, "cannot listen for {name}"))
            .ok()
    }

    /// Completes at the signal; never, without a handler.
    pub(super) async fn wait(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

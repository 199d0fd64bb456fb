//! What a test's code logs, caught for its assertions.

use towerscope_log::CaptureWriter;

/// Catches what is logged on this thread until the guard drops (plain text, every level).
pub fn capture() -> (CaptureWriter, tracing::subscriber::DefaultGuard) {
    let logs = CaptureWriter::new();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

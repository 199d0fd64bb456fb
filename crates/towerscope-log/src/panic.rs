//! Panics as log events.
//!
//! Rust's default panic hook writes a panic to stderr as plain text: a line or two, and a
//! multi-line backtrace with `RUST_BACKTRACE=1`. With JSON logs, that text is the one part
//! of the stream a log pipeline cannot parse, and it carries no request ID or trace ID. A
//! panic in a background task (which tokio catches, and nobody may ever look at) leaves no
//! other trace at all. [`log_panic`] writes a panic as one `ERROR` event instead, inside
//! the span that was current when it happened, so a handler's panic carries its request's
//! `request_id` and `trace_id` like any other line. [`LoggingBuilder::init`] installs it;
//! [`PanicHook`] says how.
//!
//! [`LoggingBuilder::init`]: crate::LoggingBuilder::init

use std::panic::PanicHookInfo;
use std::time::Duration;

use crate::LogError;
use crate::writer::Flusher;

/// How long a panicking thread waits for the background writer to write the panic's line,
/// so that it is out before a process that ends with the panic (`panic = "abort"`, or a
/// panic in `main` with the guard in a static) is gone. A stuck writer makes one thread wait
/// this long, not each (see `Shared::flush`).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What [`LoggingBuilder::init`](crate::LoggingBuilder::init) does with the process's panic
/// hook. [`LoggingBuilder::build`](crate::LoggingBuilder::build) installs nothing global
/// and leaves the hook alone.
///
/// ```
/// use towerscope_log::PanicHook;
/// assert_eq!(PanicHook::default(), PanicHook::Chain);
/// assert_eq!("replace".parse::<PanicHook>().unwrap(), PanicHook::Replace);
/// assert!("ignore".parse::<PanicHook>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PanicHook {
    /// Log each panic ([`log_panic`]), then run the hook installed before: Rust's default
    /// still writes the panic to stderr, and an error reporter installed earlier still
    /// sees it. The default.
    #[default]
    Chain,
    /// Log each panic, and run the hook installed before only when the log did not take
    /// the line: its [`LoggingGuard`](crate::LoggingGuard) was dropped, or its writer did
    /// not write the line within a second (a stuck output). With JSON output, panics are
    /// then JSON lines like the rest, and nothing else is written.
    Replace,
    /// Leave the panic hook as it is.
    Off,
}

impl std::str::FromStr for PanicHook {
    type Err = LogError;

    /// `chain`, `replace` or `off`, in any case.
    ///
    /// ```
    /// use towerscope_log::PanicHook;
    /// assert_eq!(" Off ".parse::<PanicHook>().unwrap(), PanicHook::Off);
    /// let err = "sometimes".parse::<PanicHook>().unwrap_err();
    /// assert!(err.to_string().contains("sometimes"), "{err}");
    /// ```
    fn from_str(s: &str) -> Result<Self, LogError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "chain" => Ok(Self::Chain),
            "replace" => Ok(Self::Replace),
            "off" => Ok(Self::Off),
            _ => Err(LogError::PanicHook(s.to_owned())),
        }
    }
}

/// Writes a panic as one `ERROR` event (target `towerscope_log::panic`, message
/// `panicked`) with `panic.message`, `panic.location` (`file:line:column`), `panic.thread`
/// and, when `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` asks for one, `panic.backtrace`.
///
/// The event is recorded in the span that was current where the panic happened, so the
/// JSON line of a handler's panic carries the request's `request_id` (and `trace_id`).
/// It then tells [`CatchPanicLayer`](towerscope_core::CatchPanicLayer) that the panic is
/// logged ([`towerscope_core::mark_panic_logged`]), so a caught panic is one `ERROR` line,
/// not two.
///
/// [`LoggingBuilder::init`](crate::LoggingBuilder::init) installs it as the panic hook; to
/// install it yourself, call it from your own hook:
///
/// ```standalone_crate
/// let out = towerscope_log::CaptureWriter::new();
/// let (subscriber, _guard) = towerscope_log::Logging::builder()
///     .writer(out.clone())
///     .blocking()
///     .build()
///     .unwrap();
/// let _default = tracing::subscriber::set_default(subscriber);
/// std::panic::set_hook(Box::new(towerscope_log::log_panic));
/// let result = std::panic::catch_unwind(|| panic!("order {} has no lines", 7));
/// let _ = std::panic::take_hook(); // back to Rust's default
/// assert!(result.is_err());
/// let lines = out.json_lines().unwrap();
/// assert_eq!(lines[0]["level"], "ERROR");
/// assert_eq!(lines[0]["panic.message"], "order 7 has no lines");
/// assert!(lines[0]["panic.location"].as_str().unwrap().contains(".rs:"), "{}", lines[0]);
/// ```
pub fn log_panic(info: &PanicHookInfo<'_>) {
    if !tracing::enabled!(tracing::Level::ERROR) {
        return;
    }
    let message = towerscope_core::panic_message(info.payload());
    let location = info.location().map(tracing::field::display);
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        tracing::error!(
            panic.message = message,
            panic.location = location,
            panic.thread = thread,
            panic.backtrace = %backtrace,
            "panicked"
        );
    } else {
        tracing::error!(
            panic.message = message,
            panic.location = location,
            panic.thread = thread,
            "panicked"
        );
    }
    towerscope_core::mark_panic_logged();
}

/// Installs the hook `mode` asks for; `flusher` is the background writer's, if any.
pub(crate) fn install(mode: PanicHook, flusher: Option<Flusher>) {
    if mode == PanicHook::Off {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log_panic(info);
        let written = flusher.as_ref().is_none_or(|f| f.flush(FLUSH_TIMEOUT));
        if mode == PanicHook::Chain || !written {
            previous(info);
        }
    }));
}

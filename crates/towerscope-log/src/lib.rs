//! # towerscope-log
//!
//! Structured logs for tower services, where every line written while serving a request
//! carries its correlation ID.
//!
//! - [`Logging`]: one call sets up `tracing` with JSON output in production or readable
//!   output in development (`TOWERSCOPE_LOG_FORMAT=json|pretty`), `RUST_LOG` filters with
//!   quiet defaults for hyper/h2/tower, secret fields masked, and a non-blocking writer whose
//!   dropped lines (a full buffer, a failed output) are counted in
//!   `towerscope_log_dropped_lines_total{reason}`.
//! - [`JsonLayer`]: the JSON format. Span fields are flattened to the top level, so the
//!   `request_id` of towerscope-request-id's span, and `trace_id`, `span_id`, `user_id` when
//!   present, are plain fields of every line.
//! - [`AccessLogLayer`]: one line per request, at the end of its body.
//! - [`request_event!`], [`business_event!`], [`security_event!`], [`app_error!`]: the
//!   guide's event kinds.
//! - [`log_panic`]: a panic as one `ERROR` line in the span where it happened (with the
//!   request's ID and trace), installed as the panic hook by [`LoggingBuilder::init`]; see
//!   [`PanicHook`].
//! - [`CaptureWriter`]: an in-memory destination, for tests that read their lines back.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use prometheus_client::registry::Registry;
//! use towerscope_log::{AccessLogLayer, Logging};
//! use towerscope_request_id::RequestIdLayer;
//!
//! let mut registry = Registry::default();
//! let _guard = Logging::builder().metrics(&mut registry).init().expect("logging");
//! let app: Router = Router::new()
//!     .route("/", get(|| async { towerscope_log::business_event!("visited"); "hi" }))
//!     .layer(AccessLogLayer::new())              // inside: logs within the request span
//!     .layer(RequestIdLayer::new(&mut registry)); // outermost: opens the span
//! ```
//!
//! A line from the demo (`TOWERSCOPE_LOG_FORMAT=json`):
//! ```text
//! {"timestamp":"2026-11-24T11:52:07.316702Z","level":"INFO","target":"towerscope_log::access","message":"GET /users/1 200","module":"towerscope_log::access","file":"crates/towerscope-log/src/access.rs","line":376,"request_id":"019ab5f2-3c1e-7d30-9a2b-6f1c2d3e4f50","event_type":"http_request","method":"GET","route":"/users/{id}","path":"/users/1","status":200,"duration_ms":0.41,"user_agent":"curl/8.5.0","client_addr":"127.0.0.1","outcome":"ok"}
//! ```
//!
//! ## Bad input
//! Values with quotes, newlines, control characters or ANSI escapes cannot forge a line:
//! JSON escapes them; the readable format writes them as `\n`, `\u{1b}`. Paths and user
//! agents are cut at 1 KiB and 256 bytes. Query strings are never written.

mod access;
mod capture;
mod events;
mod json;
mod panic;
mod pretty;
mod redact;
mod setup;
mod writer;

pub use access::{
    ACCESS_TARGET, AccessLog, AccessLogBuilder, AccessLogLayer, AccessLogObserver, ClientAddrLog,
};
pub use capture::{CaptureWriter, NotJson};
pub use events::type_name_of;
pub use json::JsonLayer;
pub use panic::{PanicHook, log_panic};
pub use pretty::RedactedFields;
pub use redact::{REDACTED, Redaction};
pub use setup::{DEFAULT_FILTER, LogError, LogFormat, Logging, LoggingBuilder, LoggingGuard};
/// Address ranges of trusted proxies (defined in towerscope-core, shared with RUM).
pub use towerscope_core::{IpRange, IpRangeError};

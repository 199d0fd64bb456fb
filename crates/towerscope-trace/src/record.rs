//! The guide's function tracing: errors recorded on the current span as exceptions.

use std::error::Error;

use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

/// Records `err` on the current OpenTelemetry span (the server span of the request, or the
/// handler span entered inside it) the way the semantic conventions record an exception:
/// an `exception` event with `exception.type` (the Rust type) and `exception.message` (the
/// error and its `source()` chain, joined by `: `), `error.type` set to the type's short
/// name, and the span's status set to `Error`. Returns `err`, so it fits in `map_err` and
/// `inspect_err`. Without a recording span it does nothing.
///
/// For a function traced with `#[tracing::instrument(err)]` the bridge
/// ([`tracing_layer`](crate::tracing_layer)) already does this from the returned error;
/// use this helper for errors handled inside a function, or in code without `tracing` spans.
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// #[error("card declined")]
/// struct Declined;
///
/// fn charge() -> Result<(), Declined> { Err(Declined) }
/// let result = charge().inspect_err(towerscope_trace::record_error);
/// assert!(result.is_err());
/// ```
pub fn record_error<E: Error + 'static>(err: &E) {
    let cx = Context::current();
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    let full = std::any::type_name::<E>();
    let short = full.rsplit("::").next().unwrap_or(full);
    let mut message = towerscope_core::display_text(err);
    let mut source = err.source();
    let mut depth = 0;
    while let Some(e) = source {
        if depth == 16 {
            break;
        }
        message.push_str(": ");
        message.push_str(&towerscope_core::display_text(e));
        source = e.source();
        depth += 1;
    }
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", full),
            KeyValue::new("exception.message", message.clone()),
        ],
    );
    span.set_attribute(KeyValue::new("error.type", short.to_owned()));
    span.set_status(Status::error(message));
}

//! The request span, and finding the current request's ID through it.

use tracing::{Level, Span};
use tracing_subscriber::registry::{LookupSpan, Registry};

use towerscope_core::SpanRequestId;

use crate::RequestId;

/// Target of the request span, for filters (`towerscope_request_id=info`).
///
/// ```
/// // Keep the request span (and so the `request_id` of every line) with warnings only elsewhere.
/// let filter = format!("warn,{}=info", towerscope_request_id::SPAN_TARGET);
/// assert_eq!(filter, "warn,towerscope_request_id=info");
/// ```
pub const SPAN_TARGET: &str = "towerscope_request_id";

/// Opens the `request` span with a `request_id` field, and remembers the ID in the span's
/// extensions ([`SpanRequestId`]) so [`RequestId::current`] can find it from inside and
/// towerscope-log's JSON layer can write it without a copy of its own.
pub(crate) fn request_span(id: &RequestId, level: Level) -> Span {
    let span = match level {
        Level::ERROR => {
            tracing::error_span!(target: SPAN_TARGET, "request", request_id = id.as_str())
        }
        Level::WARN => {
            tracing::warn_span!(target: SPAN_TARGET, "request", request_id = id.as_str())
        }
        Level::INFO => {
            tracing::info_span!(target: SPAN_TARGET, "request", request_id = id.as_str())
        }
        Level::DEBUG => {
            tracing::debug_span!(target: SPAN_TARGET, "request", request_id = id.as_str())
        }
        Level::TRACE => {
            tracing::trace_span!(target: SPAN_TARGET, "request", request_id = id.as_str())
        }
    };
    span.with_subscriber(|(span_id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<Registry>() {
            if let Some(data) = registry.span(span_id) {
                data.extensions_mut()
                    .insert(SpanRequestId(id.header_value().clone()));
            }
        }
    });
    span
}

pub(crate) fn current_request_id() -> Option<RequestId> {
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let current = dispatch.current_span();
        let span = registry.span(current.id()?)?;
        span.scope().find_map(|s| {
            s.extensions()
                .get::<SpanRequestId>()
                .map(RequestId::from_span)
        })
    })
}

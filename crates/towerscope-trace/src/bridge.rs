//! `tracing` spans and events inside a handler, recorded under the server span.

use std::fmt;

use opentelemetry::trace::{TraceContextExt as _, Tracer};
use opentelemetry::{Context, KeyValue};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

/// Whether a `tracing` span or event reaches OpenTelemetry. towerscope's own span (the
/// request-ID span that carries `request_id` into log lines) does not: the server span of
/// [`TraceLayer`](crate::TraceLayer) stands for the request. Nor do the spans and events of
/// the transport crates the exporter itself runs on: with `RUST_LOG=debug` h2 opens a root
/// span per connection, with `trace` one per poll, and bridged, the exporter's own
/// connection would make spans to export without end.
fn bridged(meta: &Metadata<'_>) -> bool {
    let request_id_span = meta.is_span() && meta.target() == REQUEST_ID_SPAN_TARGET;
    !request_id_span && !transport(meta.target())
}

/// Crates whose `tracing` spans and events are the exporter's own traffic (and every
/// other connection's), not the application's.
const TRANSPORT_CRATES: [&str; 11] = [
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "rustls",
    "tokio",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

/// Whether `target` is one of [`TRANSPORT_CRATES`] or a module of one (`tower::buffer`, but
/// not `towerscope_demo`).
fn transport(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    TRANSPORT_CRATES.contains(&krate)
}

/// The target of the request-ID span (`towerscope-request-id` does not depend on this
/// crate, so the name is repeated here; the two-services test pins it).
const REQUEST_ID_SPAN_TARGET: &str = "towerscope_request_id";

/// The `tracing` layer that makes a handler's `tracing` spans (`info_span!`,
/// `#[instrument]`) children of the request's server span, and records its events on the
/// innermost span as span events.
///
/// It is [tracing-opentelemetry]'s layer, with context activation on (an entered span is
/// the current OpenTelemetry context, so [`TraceClientLayer`](crate::TraceClientLayer) and
/// the JSON log lines see it), towerscope's request-ID span and the transport crates' spans
/// and events (`h2`, `hyper`, `tonic`, …: the exporter's own traffic) left out, and one
/// addition: an event logged directly in the handler, outside any span of its own, is
/// recorded on the server span instead of being lost.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tracing_subscriber::layer::SubscriberExt as _;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let subscriber = tracing_subscriber::registry()
///     .with(towerscope_trace::tracing_layer(provider.tracer("shop")));
/// # let _ = subscriber;
/// ```
///
/// [tracing-opentelemetry]: https://docs.rs/tracing-opentelemetry
pub fn tracing_layer<S, T>(tracer: T) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: Tracer + Send + Sync + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(FilterFn::new(bridged))
        .and_then(LooseEvents)
}

/// Records events that no bridged span owns on the current OpenTelemetry span (the server
/// span, while a request is served).
struct LooseEvents;

impl<S> Layer<S> for LooseEvents
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if !bridged(event.metadata()) {
            return;
        }
        if let Some(scope) = ctx.event_scope(event) {
            if scope.into_iter().any(|span| bridged(span.metadata())) {
                // tracing-opentelemetry records it on that span.
                return;
            }
        }
        let cx = Context::current();
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        let meta = event.metadata();
        let mut visitor = EventFields {
            message: None,
            attributes: vec![
                KeyValue::new("level", meta.level().as_str()),
                KeyValue::new("target", meta.target().to_owned()),
            ],
        };
        event.record(&mut visitor);
        let name = visitor.message.unwrap_or_else(|| meta.name().to_owned());
        span.add_event(name, visitor.attributes);
    }
}

struct EventFields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = towerscope_core::debug_text(value);
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.attributes.push(KeyValue::new(field.name(), text));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.attributes
                .push(KeyValue::new(field.name(), value.to_owned()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes.push(KeyValue::new(
            field.name(),
            i64::try_from(value).unwrap_or(i64::MAX),
        ));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.attributes.push(KeyValue::new(
            field.name(),
            towerscope_core::display_text(value),
        ));
    }
}

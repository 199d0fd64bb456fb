//! The JSON layer: one line per event, span fields flattened to the top level.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::redact::{REDACTED, Redaction};

/// A recorded field value.
#[derive(Debug, Clone)]
enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
    Error { message: String, chain: Vec<String> },
    Redacted,
}

/// Fields of one span, kept in its extensions.
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Value)>);

impl SpanFields {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

struct Collect<'a> {
    fields: &'a mut SpanFields,
    message: Option<&'a mut String>,
    redaction: &'a Redaction,
}

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                match value {
                    Value::Str(s) => *m = s,
                    other => *m = format!("{other:?}"),
                }
                return;
            }
        }
        let value = if self.redaction.is_secret(name) {
            Value::Redacted
        } else {
            value
        };
        self.fields.set(name, value);
    }
}

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Value::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Value::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut chain = Vec::new();
        let mut source = value.source();
        while let Some(e) = source {
            if chain.len() == 16 {
                break;
            }
            chain.push(e.to_string());
            source = e.source();
        }
        self.put(
            field,
            Value::Error {
                message: value.to_string(),
                chain,
            },
        );
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, Value::Str(s));
    }
}

/// Keys the layer writes itself; event or span fields with these names are written as
/// `field_<name>` so that they cannot overwrite them.
const RESERVED: [&str; 7] = [
    "timestamp",
    "level",
    "target",
    "message",
    "module",
    "file",
    "line",
];

/// Writes one JSON object per event: `timestamp` (RFC 3339, UTC), `level`, `target`,
/// `message`, `module`, `file`, `line`, then every field of the enclosing spans (outermost
/// first) and of the event, flattened, the innermost value winning. So `request_id`,
/// `trace_id`, `span_id`, `user_id` and `duration_ms` are top-level fields whenever a span
/// or the event carries them. An error recorded as `&dyn Error` is written as
/// `{"message": ..., "chain": [...]}`. Fields whose names match the [`Redaction`] are written
/// as `"[REDACTED]"`. Strings are JSON-escaped: a value with quotes, newlines or control
/// characters stays inside one line.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// use towerscope_log::{JsonLayer, Redaction};
/// let subscriber = tracing_subscriber::registry().with(JsonLayer::new(std::io::sink, Redaction::default()));
/// tracing::subscriber::with_default(subscriber, || tracing::info!(user_id = 7, "hello"));
/// ```
#[derive(Debug)]
pub struct JsonLayer<W> {
    make_writer: W,
    redaction: Redaction,
}

impl<W> JsonLayer<W> {
    /// A layer writing lines to `make_writer`.
    pub fn new(make_writer: W, redaction: Redaction) -> Self {
        Self {
            make_writer,
            redaction,
        }
    }
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json escapes quotes, backslashes and every control character.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => push_json_str(out, s),
        Value::I64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::U64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::I128(n) => {
            let _ = write!(out, "{n}");
        }
        Value::U128(n) => {
            let _ = write!(out, "{n}");
        }
        Value::F64(n) if n.is_finite() => {
            let _ = write!(out, "{n}");
        }
        Value::F64(n) => push_json_str(out, &n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Redacted => push_json_str(out, REDACTED),
        Value::Error { message, chain } => {
            out.push_str("{\"message\":");
            push_json_str(out, message);
            out.push_str(",\"chain\":[");
            for (i, c) in chain.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(out, c);
            }
            out.push_str("]}");
        }
    }
}

fn push_field(out: &mut String, name: &str, v: &Value) {
    out.push(',');
    if RESERVED.contains(&name) {
        let mut prefixed = String::from("field_");
        prefixed.push_str(name);
        push_json_str(out, &prefixed);
    } else {
        push_json_str(out, name);
    }
    out.push(':');
    push_value(out, v);
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut Collect {
            fields: &mut fields,
            message: None,
            redaction: &self.redaction,
        });
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut Collect {
                fields,
                message: None,
                redaction: &self.redaction,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut message = String::new();
        let mut fields = SpanFields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    for (name, value) in &f.0 {
                        fields.set(name, value.clone());
                    }
                }
            }
        }
        event.record(&mut Collect {
            fields: &mut fields,
            message: Some(&mut message),
            redaction: &self.redaction,
        });

        LINE.with(|line| {
            let Ok(mut out) = line.try_borrow_mut() else {
                return;
            };
            out.clear();
            out.push_str("{\"timestamp\":\"");
            let _ = SystemTime.format_time(&mut Writer::new(&mut *out));
            out.push_str("\",\"level\":\"");
            out.push_str(meta.level().as_str());
            out.push_str("\",\"target\":");
            push_json_str(&mut out, meta.target());
            out.push_str(",\"message\":");
            push_json_str(&mut out, &message);
            if let Some(module) = meta.module_path() {
                out.push_str(",\"module\":");
                push_json_str(&mut out, module);
            }
            if let Some(file) = meta.file() {
                out.push_str(",\"file\":");
                push_json_str(&mut out, file);
            }
            if let Some(line_no) = meta.line() {
                let _ = write!(out, ",\"line\":{line_no}");
            }
            for (name, value) in &fields.0 {
                push_field(&mut out, name, value);
            }
            out.push_str("}\n");
            let mut writer = self.make_writer.make_writer_for(meta);
            let _ = writer.write_all(out.as_bytes());
            // Do not let one huge line keep its buffer forever.
            if out.capacity() > 64 * 1024 {
                *out = String::new();
            }
        });
    }
}

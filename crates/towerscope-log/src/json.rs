//! The JSON layer: one line per event, span fields flattened to the top level.
//!
//! The line is written straight into one reused buffer per thread: strings are escaped as
//! they are copied, `Debug` values are escaped as they are formatted, and event fields are
//! not collected first. An event therefore allocates nothing of its own once the buffer has
//! grown to the size of a line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use towerscope_core::SpanRequestId;

use crate::redact::{REDACTED, Redaction, SecretFields};
use crate::setup::REQUEST_SPAN_TARGET;

/// A span field value, owned (spans outlive the calls that record them).
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

/// Keys the layer writes itself; fields with these names are written as `field_<name>` so
/// that they cannot overwrite them.
const RESERVED: [&str; 7] = [
    "timestamp",
    "level",
    "target",
    "message",
    "module",
    "file",
    "line",
];

/// Most distinct field names tracked for de-duplication; past this, duplicates may appear.
const MAX_NAMES: usize = 64;

/// Whether one byte needs escaping (the short-string form of [`any_needs_escape`]).
#[inline]
fn needs_escape(b: u8) -> bool {
    // 0xC2 starts the UTF-8 form of U+0080..U+00BF, which holds the C1 controls
    // (U+0080..U+009F; U+009B is a terminal's CSI): checked more closely below.
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f || b == 0xc2
}

/// Whether any byte of `bytes` needs escaping, eight bytes at a time: a control
/// character (below 0x20, or 0x7F), `"`, a backslash, or 0xC2, which starts the UTF-8
/// form of U+0080..U+00BF, the range that holds the C1 controls (U+0080..U+009F; U+009B is
/// a terminal's CSI), checked more closely by [`escape_into`].
///
/// Each word is tested with the exact "has a byte below / equal to" bit tricks (no false
/// answers: a borrow can only spoil the bytes above a byte that already matched). The
/// byte-by-byte scan this replaces was most of the cost of writing a JSON line.
#[inline]
fn any_needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    #[inline]
    fn has_zero(v: u64) -> u64 {
        v.wrapping_sub(ONES) & !v & HIGH
    }
    #[inline]
    fn has_below_0x20(v: u64) -> u64 {
        v.wrapping_sub(ONES * 0x20) & !v & HIGH
    }
    #[inline]
    fn word(v: u64) -> bool {
        (has_below_0x20(v)
            | has_zero(v ^ (ONES * u64::from(b'"')))
            | has_zero(v ^ (ONES * u64::from(b'\\')))
            | has_zero(v ^ (ONES * 0x7f))
            | has_zero(v ^ (ONES * 0xc2)))
            != 0
    }
    #[inline]
    fn load(w: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        u64::from_ne_bytes(b)
    }
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| needs_escape(b));
    }
    let mut words = bytes.chunks_exact(8);
    if words.any(|w| word(load(w))) {
        return true;
    }
    // The tail as the last eight bytes, overlapping the last word: copying a short tail
    // into a padded buffer instead stalled every call on the load after the copy.
    !words.remainder().is_empty() && word(load(&bytes[bytes.len() - 8..]))
}

/// Appends `s` to `out` as the inside of a JSON string. Control characters (C0, DEL and
/// C1) are written as `\uXXXX`, so a value cannot start a new line or drive a terminal.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most values need no escaping: copy them in one go.
    if !any_needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                i += 1;
                start = i;
                continue;
            }
            // A C1 control: 0xC2 then 0x80..=0x9F (`s` is UTF-8, so a byte follows 0xC2).
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{:04x}", bytes[i + 1]);
                i += 2;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// A `fmt::Write` that escapes what is written into a JSON string.
struct Escaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

thread_local! {
    /// The last second rendered, and its text.
    static SECOND: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
}

/// Appends the current UTC time as RFC 3339 with microseconds (`2026-11-24T11:52:07.316702Z`).
fn push_timestamp(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let text = SECOND.with(|cell| {
        let (cached, text) = cell.get();
        if cached == secs {
            text
        } else {
            let text = towerscope_core::utc_second(secs);
            cell.set((secs, text));
            text
        }
    });
    out.extend_from_slice(&text);
    let micros = now.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut v = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push(b'.');
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

fn push_key(out: &mut Vec<u8>, name: &str) {
    out.push(b',');
    out.push(b'"');
    if RESERVED.contains(&name) {
        out.extend_from_slice(b"field_");
    }
    escape_into(out, name);
    out.extend_from_slice(b"\":");
}

fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        // ryu's shortest round-trip form (`0.017`, `1e-7`): valid JSON, and a fraction of
        // the cost of `Display` for floats.
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        let _ = write!(out, "\"{v}\"");
    }
}

fn push_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => push_str(out, s),
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
        Value::F64(n) => push_f64(out, *n),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Redacted => push_str(out, REDACTED),
        Value::Error { message, chain } => {
            out.extend_from_slice(b"{\"message\":");
            push_str(out, message);
            out.extend_from_slice(b",\"chain\":[");
            for (i, c) in chain.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, c);
            }
            out.extend_from_slice(b"]}");
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        if chain.len() == 16 {
            break;
        }
        chain.push(towerscope_core::display_text(s));
        source = s.source();
    }
    chain
}

/// Records span fields into owned values.
struct SpanCollect<'a> {
    fields: &'a mut SpanFields,
    secret: SecretFields<'a>,
}

impl SpanCollect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let value = if self.secret.contains(field) {
            Value::Redacted
        } else {
            value
        };
        match self.fields.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.0.push((name, value)),
        }
    }
}

impl Visit for SpanCollect<'_> {
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
        self.put(
            field,
            Value::Error {
                message: towerscope_core::display_text(value),
                chain: error_chain(value),
            },
        );
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::Str(towerscope_core::debug_text(value)));
    }
}

/// Writes an event's `message` field only.
struct MessageWriter<'a>(&'a mut Vec<u8>);

impl Visit for MessageWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            escape_into(self.0, value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(Escaping(self.0), "{value:?}");
        }
    }
}

/// Writes an event's fields other than `message`, as `,"name":value`.
struct FieldWriter<'a> {
    out: &'a mut Vec<u8>,
    secret: SecretFields<'a>,
}

impl FieldWriter<'_> {
    /// Writes the key; returns false (and writes `"[REDACTED]"`) for secret names.
    fn key(&mut self, field: &Field) -> bool {
        push_key(self.out, field.name());
        if self.secret.contains(field) {
            push_str(self.out, REDACTED);
            return false;
        }
        true
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "message" && self.key(field) {
            push_str(self.out, value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            let _ = write!(self.out, "{value}");
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            let _ = write!(self.out, "{value}");
        }
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        if self.key(field) {
            let _ = write!(self.out, "{value}");
        }
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        if self.key(field) {
            let _ = write!(self.out, "{value}");
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            push_f64(self.out, value);
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.out
                .extend_from_slice(if value { b"true" } else { b"false" });
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            push_value(
                self.out,
                &Value::Error {
                    message: towerscope_core::display_text(value),
                    chain: error_chain(value),
                },
            );
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" && self.key(field) {
            self.out.push(b'"');
            let _ = write!(Escaping(self.out), "{value:?}");
            self.out.push(b'"');
        }
    }
}

/// `trace_id` and `span_id` of the current OpenTelemetry span (the server span of the
/// request being served, or the handler span entered inside it), if there is one.
#[cfg(feature = "opentelemetry")]
fn push_otel_ids(out: &mut Vec<u8>) {
    use opentelemetry::trace::TraceContextExt as _;
    opentelemetry::Context::map_current(|cx| {
        if !cx.has_active_span() {
            return;
        }
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let _ = write!(
                out,
                ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                sc.trace_id(),
                sc.span_id()
            );
        }
    });
}

/// Field names already written, on the stack.
struct Names {
    names: [&'static str; MAX_NAMES],
    len: usize,
}

impl Names {
    fn new() -> Self {
        Self {
            names: [""; MAX_NAMES],
            len: 0,
        }
    }
    fn contains(&self, name: &str) -> bool {
        self.names[..self.len].contains(&name)
    }
    fn add(&mut self, name: &'static str) {
        if self.len < MAX_NAMES {
            self.names[self.len] = name;
            self.len += 1;
        }
    }
}

/// Writes one JSON object per event: `timestamp` (RFC 3339, UTC), `level`, `target`,
/// `message`, `module`, `file`, `line`, then the event's fields and every field of the
/// enclosing spans, flattened (a name is written once: the event's value, else the
/// innermost span's). So `request_id`, `trace_id`, `span_id`, `user_id` and `duration_ms`
/// are top-level fields whenever a span or the event carries them. An error recorded as
/// `&dyn Error` is written as `{"message": ..., "chain": [...]}`. Fields whose names match
/// the [`Redaction`] are written as `"[REDACTED]"`. Strings are JSON-escaped: a value with
/// quotes, newlines or control characters stays inside one line.
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
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use towerscope_log::{CaptureWriter, JsonLayer, Redaction};
    /// let out = CaptureWriter::new();
    /// let subscriber = tracing_subscriber::registry().with(JsonLayer::new(out.clone(), Redaction::only(["pin"])));
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let span = tracing::info_span!("checkout", request_id = "req-1");
    ///     span.in_scope(|| tracing::info!(pin = "1234", note = "line one\nline two", "paid"));
    /// });
    /// let lines = out.json_lines().unwrap();
    /// assert_eq!(lines.len(), 1); // one line, the newline escaped
    /// assert_eq!(lines[0]["pin"], "[REDACTED]");
    /// assert_eq!(lines[0]["request_id"], "req-1"); // span fields are top-level
    /// ```
    pub fn new(make_writer: W, redaction: Redaction) -> Self {
        Self {
            make_writer,
            redaction,
        }
    }
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if meta.target() == REQUEST_SPAN_TARGET && meta.name() == "request" {
            // towerscope-request-id's span: its ID is read from the `SpanRequestId` the
            // layer puts into the span's extensions, not copied here.
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields(Vec::with_capacity(attrs.fields().len()));
        attrs.record(&mut SpanCollect {
            fields: &mut fields,
            secret: self.redaction.secret_fields(attrs.metadata()),
        });
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut SpanCollect {
                fields,
                secret: self.redaction.secret_fields(span.metadata()),
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        LINE.with(|line| {
            let Ok(mut out) = line.try_borrow_mut() else {
                return;
            };
            let out = &mut *out;
            out.clear();
            out.extend_from_slice(b"{\"timestamp\":\"");
            push_timestamp(out);
            out.extend_from_slice(b"\",\"level\":\"");
            out.extend_from_slice(meta.level().as_str().as_bytes());
            out.extend_from_slice(b"\",\"target\":");
            push_str(out, meta.target());
            out.extend_from_slice(b",\"message\":\"");
            event.record(&mut MessageWriter(out));
            out.push(b'"');
            if let Some(module) = meta.module_path() {
                out.extend_from_slice(b",\"module\":");
                push_str(out, module);
            }
            if let Some(file) = meta.file() {
                out.extend_from_slice(b",\"file\":");
                push_str(out, file);
            }
            if let Some(line_no) = meta.line() {
                let _ = write!(out, ",\"line\":{line_no}");
            }
            // The event's fields win over span fields of the same name; inner spans win
            // over outer ones.
            let mut written = Names::new();
            for f in meta.fields().iter() {
                written.add(f.name());
            }
            event.record(&mut FieldWriter {
                out,
                secret: self.redaction.secret_fields(meta),
            });
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope {
                    let ext = span.extensions();
                    if let Some(id) = ext.get::<SpanRequestId>() {
                        if !written.contains("request_id") {
                            written.add("request_id");
                            push_key(out, "request_id");
                            push_str(out, id.as_str());
                        }
                    }
                    let Some(fields) = ext.get::<SpanFields>() else {
                        continue;
                    };
                    for (name, value) in &fields.0 {
                        if !written.contains(name) {
                            written.add(name);
                            push_key(out, name);
                            push_value(out, value);
                        }
                    }
                }
            }
            #[cfg(feature = "opentelemetry")]
            if !written.contains("trace_id") {
                push_otel_ids(out);
            }
            out.extend_from_slice(b"}\n");
            let mut writer = self.make_writer.make_writer_for(meta);
            let _ = writer.write_all(out);
            // Do not let one huge line keep its buffer forever.
            if out.capacity() > 64 * 1024 {
                *out = Vec::new();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_scan_agrees_with_the_byte_check() {
        // Every byte value, at every position of strings from 1 to 24 bytes, among bytes
        // that need nothing and among bytes next to the thresholds.
        for len in 1..=24 {
            for pos in 0..len {
                for fill in [b'a', 0x21, 0x80, 0xff, 0x7e, 0xc3] {
                    for b in 0..=255u8 {
                        let mut v = vec![fill; len];
                        v[pos] = b;
                        let naive = v.iter().any(|&x| needs_escape(x));
                        assert_eq!(any_needs_escape(&v), naive, "{v:?}");
                    }
                }
            }
        }
        assert!(!any_needs_escape(b""));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(&towerscope_core::utc_second(0), b"1970-01-01T00:00:00");
        assert_eq!(
            &towerscope_core::utc_second(951_782_400),
            b"2000-02-29T00:00:00"
        );
        assert_eq!(
            &towerscope_core::utc_second(1_700_000_000),
            b"2023-11-14T22:13:20"
        );
        assert_eq!(
            &towerscope_core::utc_second(4_102_444_799),
            b"2099-12-31T23:59:59"
        );
        let mut out = Vec::new();
        push_timestamp(&mut out);
        let text = String::from_utf8(out).expect("ascii");
        assert_eq!(text.len(), 27, "{text}");
        assert!(text.ends_with('Z') && &text[19..20] == ".");
    }

    #[test]
    fn escaping_matches_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "nl\ncr\rtab\t",
            "\u{0}\u{1b}\u{7f}",
            "é ü 漢字",
            "\u{2028}",
            "c1 \u{80}\u{9b}[31m\u{9f} and \u{a0}\u{bf}é",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            let text = String::from_utf8(out).expect("utf8");
            let back: String =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, s);
            assert!(!text.chars().any(char::is_control), "{text}");
        }
    }
}

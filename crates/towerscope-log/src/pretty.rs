//! Human-readable output for development: tracing-subscriber's format with secrets masked
//! and control characters escaped.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use crate::redact::{REDACTED, Redaction};

/// Formats fields as `name=value`, the message first, masking secret names and escaping
/// control characters (so a value with a newline or an ANSI escape cannot forge a line).
///
/// ```
/// use tracing_subscriber::fmt;
/// use towerscope_log::{RedactedFields, Redaction};
/// let layer = fmt::layer::<tracing_subscriber::Registry>()
///     .fmt_fields(RedactedFields::new(Redaction::default()));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct RedactedFields {
    redaction: Redaction,
}

impl RedactedFields {
    /// Fields formatted with `redaction` applied.
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use towerscope_log::{CaptureWriter, RedactedFields, Redaction};
    /// let out = CaptureWriter::new();
    /// let fmt = tracing_subscriber::fmt::layer()
    ///     .with_writer(out.clone())
    ///     .with_ansi(false)
    ///     .fmt_fields(RedactedFields::new(Redaction::default()));
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(fmt), || {
    ///     tracing::info!(password = "hunter2", user = "a\nFAKE LINE", "login");
    /// });
    /// let text = out.text();
    /// assert!(text.contains("password=[REDACTED]") && !text.contains("hunter2"), "{text}");
    /// assert_eq!(out.lines().len(), 1, "{text}"); // the newline is written as \\n
    /// ```
    pub fn new(redaction: Redaction) -> Self {
        Self { redaction }
    }
}

/// Writes `s` with control characters escaped.
pub(crate) fn push_escaped(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    for c in s.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

struct Visitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    redaction: &'a Redaction,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_, '_> {
    fn sep(&mut self) -> fmt::Result {
        if self.first {
            self.first = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }
}

impl Visit for Visitor<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        // A value whose `Debug` fails loses its own text, not the line: an error returned
        // from here makes tracing-subscriber print the whole record with `eprintln!`, which
        // panics on the same value.
        self.result = (|| {
            self.sep()?;
            if field.name() == "message" {
                return push_escaped(self.writer, &towerscope_core::debug_text(value));
            }
            write!(self.writer, "{}=", field.name())?;
            if self.redaction.is_secret(field.name()) {
                return self.writer.write_str(REDACTED);
            }
            push_escaped(self.writer, &towerscope_core::debug_text(value))
        })();
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if self.result.is_ok() {
                self.result = self.sep().and_then(|()| push_escaped(self.writer, value));
            }
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl<'w> FormatFields<'w> for RedactedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer: &mut writer,
            redaction: &self.redaction,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

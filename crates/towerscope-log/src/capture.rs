//! An in-memory log destination, for tests that read back the lines they caused.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// Keeps everything written to it in memory; clones share one buffer. Give it to
/// [`LoggingBuilder::writer`](crate::LoggingBuilder::writer) or [`JsonLayer::new`](crate::JsonLayer::new)
/// in a test, then read the lines back. It never discards anything: for tests, not for
/// production.
///
/// ```
/// use towerscope_log::{CaptureWriter, LogFormat, Logging};
/// let out = CaptureWriter::new();
/// let (subscriber, _guard) = Logging::builder()
///     .writer(out.clone())
///     .blocking()
///     .format(LogFormat::Json)
///     .build()
///     .unwrap();
/// tracing::subscriber::with_default(subscriber, || tracing::info!(order_id = 7, "placed"));
/// let lines = out.json_lines().unwrap();
/// assert_eq!(lines[0]["message"], "placed");
/// assert_eq!(lines[0]["order_id"], 7);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

/// A captured line that is not one JSON value, from [`CaptureWriter::json_lines`].
///
/// ```
/// use std::io::Write as _;
/// let mut out = towerscope_log::CaptureWriter::new();
/// out.write_all(b"{\"ok\":1}\nnot json\n").unwrap();
/// let err = out.json_lines().unwrap_err();
/// assert_eq!(err.line, "not json");
/// assert!(err.to_string().starts_with("line 2 is not JSON"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("line {number} is not JSON ({source}): {line:?}")]
pub struct NotJson {
    /// The line's number, from 1.
    pub number: usize,
    /// The line.
    pub line: String,
    /// What the JSON parser said.
    #[source]
    pub source: serde_json::Error,
}

impl CaptureWriter {
    /// An empty buffer.
    ///
    /// ```
    /// assert!(towerscope_log::CaptureWriter::new().text().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far (invalid UTF-8 replaced).
    ///
    /// ```
    /// use std::io::Write as _;
    /// let mut out = towerscope_log::CaptureWriter::new();
    /// write!(out, "one\ntwo, unfinished").unwrap();
    /// assert_eq!(out.text(), "one\ntwo, unfinished");
    /// ```
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer()).into_owned()
    }

    /// The complete lines so far, without their newlines. A line still being written (a
    /// writer may hand over a line in more than one write) is left for a later call.
    ///
    /// ```
    /// use std::io::Write as _;
    /// let mut out = towerscope_log::CaptureWriter::new();
    /// write!(out, "one\ntwo, unfinished").unwrap();
    /// assert_eq!(out.lines(), ["one"]);
    /// writeln!(out).unwrap();
    /// assert_eq!(out.lines(), ["one", "two, unfinished"]);
    /// ```
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.buffer();
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        String::from_utf8_lossy(&bytes[..end])
            .split('\n')
            .map(str::to_owned)
            .collect()
    }

    /// The complete lines, each parsed as one JSON value (what the JSON format writes).
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use towerscope_log::{CaptureWriter, JsonLayer, Redaction};
    /// let out = CaptureWriter::new();
    /// let subscriber = tracing_subscriber::registry().with(JsonLayer::new(out.clone(), Redaction::default()));
    /// tracing::subscriber::with_default(subscriber, || tracing::warn!(password = "hunter2", "login failed"));
    /// let line = &out.json_lines().unwrap()[0];
    /// assert_eq!(line["level"], "WARN");
    /// assert_eq!(line["password"], "[REDACTED]");
    /// ```
    pub fn json_lines(&self) -> Result<Vec<serde_json::Value>, NotJson> {
        self.lines()
            .into_iter()
            .enumerate()
            .map(|(i, line)| match serde_json::from_str(&line) {
                Ok(value) => Ok(value),
                Err(source) => Err(NotJson {
                    number: i + 1,
                    line,
                    source,
                }),
            })
            .collect()
    }

    /// Empties the buffer (for clones too).
    ///
    /// ```
    /// use std::io::Write as _;
    /// let mut out = towerscope_log::CaptureWriter::new();
    /// writeln!(out.clone(), "before").unwrap();
    /// out.clear();
    /// assert!(out.lines().is_empty());
    /// ```
    pub fn clear(&self) {
        self.locked().clear();
    }

    fn buffer(&self) -> Vec<u8> {
        self.locked().clone()
    }

    /// The buffer; a writer that panicked mid-write leaves it readable.
    fn locked(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.locked().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CaptureWriter {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> CaptureWriter {
        self.clone()
    }
}

//! One call to set up logging.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::writer::{Flusher, Lost, WriterGuard, background};
use crate::{JsonLayer, PanicHook, RedactedFields, Redaction};

/// Filter used when neither the builder nor `RUST_LOG` gives one.
///
/// `EnvFilter` matches targets by string prefix, so tower is named `tower::` here: a bare
/// `tower=warn` would also silence every `towerscope_*` target. Keep that in mind in your
/// own `RUST_LOG`.
///
/// ```
/// // Your own filter can start from it: RUST_LOG="$(default),my_app=debug".
/// let filter = format!("{},my_app=debug", towerscope_log::DEFAULT_FILTER);
/// assert!(filter.starts_with("info,hyper=warn"));
/// ```
pub const DEFAULT_FILTER: &str =
    "info,hyper=warn,hyper_util=warn,h2=warn,tower::=warn,reqwest=warn,rustls=warn";

/// Target of towerscope-request-id's `request` span.
pub(crate) const REQUEST_SPAN_TARGET: &str = "towerscope_request_id";

/// Output format.
///
/// ```
/// use towerscope_log::LogFormat;
/// assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
/// assert!("xml".parse::<LogFormat>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (development).
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, LogError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" | "human" => Ok(Self::Pretty),
            _ => Err(LogError::Format(s.to_owned())),
        }
    }
}

/// A logging setup that cannot be used.
///
/// ```
/// use towerscope_log::{LogError, Logging};
/// let Err(err) = Logging::builder().filter("info,my_app=loud").build() else {
///     panic!("\"loud\" is not a level");
/// };
/// assert!(matches!(err, LogError::Filter { .. }), "{err}");
/// // The directive that is wrong, and where the filter came from.
/// assert!(
///     err.to_string().starts_with("log filter \"info,my_app=loud\" (from the builder): `my_app=loud`: "),
///     "{err}"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The format given (or `TOWERSCOPE_LOG_FORMAT`) is not `json` or `pretty`.
    #[error("TOWERSCOPE_LOG_FORMAT: unknown log format {0:?} (expected json or pretty)")]
    Format(String),
    /// The filter does not parse.
    #[error("log filter {filter:?} (from {from}): {reason}")]
    Filter {
        /// The filter text, as given.
        filter: String,
        /// Where it came from: `RUST_LOG`, `the builder` (`Logging::filter`, which the
        /// facade's `log.filter` and `TOWERSCOPE_LOG_FILTER` set) or `the default`.
        from: &'static str,
        /// The directive that is wrong, and why.
        reason: String,
    },
    /// A global subscriber is already set.
    #[error("a global tracing subscriber is already set")]
    AlreadySet,
    /// The log writer's thread could not be started.
    #[error("starting the log writer thread: {0}")]
    Thread(#[source] io::Error),
    /// The panic hook setting is not `chain`, `replace` or `off`.
    #[error("unknown panic hook setting {0:?} (expected chain, replace or off)")]
    PanicHook(String),
}

/// Keeps the background writer running; dropping it flushes the lines still buffered.
///
/// ```
/// let (subscriber, guard) = towerscope_log::Logging::builder()
///     .writer(std::io::sink)
///     .buffered_lines(1_000)
///     .build()
///     .expect("valid setup");
/// tracing::subscriber::with_default(subscriber, || tracing::info!("through the buffer"));
/// assert_eq!(guard.dropped_lines(), 0); // the writer keeps up
/// drop(guard); // flushes what is still buffered
/// ```
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LoggingGuard {
    _worker: Option<WriterGuard>,
    lost: Arc<Lost>,
}

impl LoggingGuard {
    /// Lines dropped because the buffer was full (0 without a non-blocking writer).
    ///
    /// ```
    /// let (_subscriber, guard) = towerscope_log::Logging::builder().writer(std::io::sink).build().unwrap();
    /// assert_eq!(guard.dropped_lines(), 0);
    /// ```
    pub fn dropped_lines(&self) -> usize {
        count(&self.lost.full)
    }

    /// Lines lost because the output failed: a closed pipe, a full disk (0 without a
    /// non-blocking writer, whose writes fail unseen in `tracing-subscriber`). The first
    /// failure is also reported once on stderr.
    ///
    /// ```
    /// /// An output that is gone, as stdout is when the reading end of its pipe closed.
    /// struct Gone;
    /// impl std::io::Write for Gone {
    ///     fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
    ///         Err(std::io::ErrorKind::BrokenPipe.into())
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    /// let (subscriber, guard) = towerscope_log::Logging::builder().writer(|| Gone).build().unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("nowhere to go"));
    /// for _ in 0..5_000 {
    ///     if guard.failed_lines() > 0 {
    ///         break;
    ///     }
    ///     std::thread::sleep(std::time::Duration::from_millis(1)); // the writer thread's turn
    /// }
    /// assert_eq!(guard.failed_lines(), 1);
    /// assert_eq!(guard.dropped_lines(), 0); // the buffer had room
    /// ```
    pub fn failed_lines(&self) -> usize {
        count(&self.lost.failed)
    }

    fn flusher(&self) -> Option<Flusher> {
        self._worker.as_ref().map(WriterGuard::flusher)
    }
}

fn count(n: &AtomicU64) -> usize {
    usize::try_from(n.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
}

/// `towerscope_log_dropped_lines_total{reason}`, read from the writer's counters at scrape
/// time.
#[derive(Debug)]
struct DroppedLines(Arc<Lost>);

impl Collector for DroppedLines {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "towerscope_log_dropped_lines",
            "Log lines lost: dropped because the log buffer was full (buffer_full), or not \
             written because the output failed (write_failed).",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [
            ("buffer_full", &self.0.full),
            ("write_failed", &self.0.failed),
        ] {
            ConstCounter::new(n.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("reason", reason)])?)?;
        }
        Ok(())
    }
}

/// Sets up `tracing`: JSON or readable output, `RUST_LOG`-style filtering with quiet
/// defaults for hyper, h2 and tower, secrets masked, and a non-blocking writer with a
/// bounded buffer whose dropped lines are counted.
///
/// The format comes from [`LoggingBuilder::format`], else `TOWERSCOPE_LOG_FORMAT`
/// (`json` or `pretty`), else JSON. The filter comes from [`LoggingBuilder::filter`], else
/// `RUST_LOG`, else [`DEFAULT_FILTER`]; `towerscope_request_id=info` is added unless the
/// filter names that target, so the request span (and its `request_id`) is on even when
/// only warnings are logged elsewhere.
///
/// ```no_run
/// let mut registry = prometheus_client::registry::Registry::default();
/// let _guard = towerscope_log::Logging::builder()
///     .redact(["card_number"])
///     .metrics(&mut registry)
///     .init()
///     .expect("logging");
/// tracing::info!(user_id = 42, password = "hunter2", "signed in"); // password: "[REDACTED]"
/// ```
#[derive(Debug)]
pub struct Logging;

impl Logging {
    /// A builder writing to stdout.
    ///
    /// ```
    /// let builder = towerscope_log::Logging::builder(); // then `.init()` once, in `main`
    /// # let _ = builder;
    /// ```
    pub fn builder() -> LoggingBuilder<fn() -> io::Stdout> {
        LoggingBuilder {
            writer: io::stdout,
            format: None,
            filter: None,
            redaction: Redaction::default(),
            buffered_lines: 128_000,
            non_blocking: true,
            ansi: None,
            to_stdout: true,
            lost: Arc::default(),
            extra: None,
            panic_hook: PanicHook::default(),
        }
    }
}

/// Builder for the logging setup; see [`Logging`].
///
/// ```
/// use towerscope_log::{LogFormat, Logging};
/// // Without installing it globally: a subscriber to use where you choose.
/// let (subscriber, _guard) = Logging::builder()
///     .format(LogFormat::Pretty)
///     .filter("info,my_app=debug")
///     .redact(["card_number"])
///     .writer(std::io::sink)
///     .blocking()
///     .build()
///     .expect("valid setup");
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(card_number = "4111 1111 1111 1111", "charged"); // written "[REDACTED]"
/// });
/// ```
#[must_use]
pub struct LoggingBuilder<W> {
    writer: W,
    format: Option<LogFormat>,
    filter: Option<String>,
    redaction: Redaction,
    buffered_lines: usize,
    non_blocking: bool,
    ansi: Option<bool>,
    /// The writer is still the default, stdout.
    to_stdout: bool,
    lost: Arc<Lost>,
    extra: Option<ExtraLayer>,
    panic_hook: PanicHook,
}

/// A layer of the user's, beside the log output (see [`LoggingBuilder::with_layer`]).
type ExtraLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

impl<W> std::fmt::Debug for LoggingBuilder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggingBuilder")
            .field("format", &self.format)
            .field("filter", &self.filter)
            .field("buffered_lines", &self.buffered_lines)
            .field("non_blocking", &self.non_blocking)
            .field("panic_hook", &self.panic_hook)
            .finish_non_exhaustive()
    }
}

impl<W> LoggingBuilder<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    /// The output format (overrides `TOWERSCOPE_LOG_FORMAT`).
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .format(LogFormat::Json)
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::info!(order_id = 7, "placed"));
    /// let line = &out.json_lines().unwrap()[0];
    /// assert_eq!((line["message"].as_str(), line["order_id"].as_i64()), (Some("placed"), Some(7)));
    /// ```
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// The filter, in `RUST_LOG` syntax (overrides `RUST_LOG`).
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .filter("warn")
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("not written"));
    /// assert!(out.text().is_empty());
    /// ```
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// More secret field names (added to the defaults).
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .redact(["card_number"])
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::info!(card_number = "4111 1111 1111 1111", password = "hunter2", "charged"));
    /// let text = out.text();
    /// assert!(!text.contains("4111") && !text.contains("hunter2"), "{text}");
    /// ```
    pub fn redact<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.redaction = self.redaction.with(names);
        self
    }

    /// Replaces the redaction list.
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .redaction(towerscope_log::Redaction::only(["pin"]))
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::info!(pin = "1234", token = "visible-now", "only pin is masked"));
    /// let text = out.text();
    /// assert!(!text.contains("1234") && text.contains("visible-now"), "{text}");
    /// ```
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Lines buffered for the writer thread before new lines are dropped (default 128,000).
    ///
    /// ```
    /// let (_subscriber, guard) = towerscope_log::Logging::builder()
    ///     .buffered_lines(10_000) // a smaller bound on memory; more lines dropped (and counted) in a burst
    ///     .writer(std::io::sink)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(guard.dropped_lines(), 0);
    /// ```
    pub fn buffered_lines(mut self, lines: usize) -> Self {
        self.buffered_lines = lines;
        self
    }

    /// Write on the calling thread instead of a background thread (tests).
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::warn!("written before this call returns"));
    /// assert!(out.text().contains("written before this call returns"));
    /// ```
    pub fn blocking(mut self) -> Self {
        self.non_blocking = false;
        self
    }

    /// Colours in the readable format (levels, span names; never in JSON). By default they
    /// are on when lines go to stdout and stdout is a terminal, unless `NO_COLOR` is set
    /// (<https://no-color.org>): a file or a pipe gets plain text. Field values are
    /// escaped either way, so a value cannot bring escape sequences of its own.
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .format(LogFormat::Pretty)
    ///     .ansi(true)
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::warn!(note = "\x1b[2J", "coloured"));
    /// let text = out.text();
    /// assert!(text.contains("\x1b[33m WARN"), "{text:?}"); // the level, in yellow
    /// assert!(text.contains(r#"note="\u{1b}[2J""#), "{text:?}"); // the value's escape, written out
    /// ```
    pub fn ansi(mut self, on: bool) -> Self {
        self.ansi = Some(on);
        self
    }

    /// What [`init`](Self::init) does with the process's panic hook; default
    /// [`PanicHook::Chain`]: each panic is logged as one `ERROR` event ([`log_panic`],
    /// inside the span where it happened), then the hook installed before runs (Rust's
    /// default writes to stderr). [`PanicHook::Replace`] logs only, for a log stream that
    /// is all JSON; [`PanicHook::Off`] leaves the hook alone.
    ///
    /// ```no_run
    /// use towerscope_log::{Logging, PanicHook};
    /// let _guard = Logging::builder().panic_hook(PanicHook::Replace).init().expect("logging");
    /// std::thread::spawn(|| panic!("a bug")).join().unwrap_err(); // one JSON line, nothing on stderr
    /// ```
    ///
    /// [`log_panic`]: crate::log_panic
    pub fn panic_hook(mut self, mode: PanicHook) -> Self {
        self.panic_hook = mode;
        self
    }

    /// Where lines go (default stdout).
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .format(LogFormat::Pretty)
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("to the capture"));
    /// assert!(out.text().contains("to the capture"));
    /// ```
    pub fn writer<W2>(self, writer: W2) -> LoggingBuilder<W2>
    where
        W2: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        LoggingBuilder {
            writer,
            format: self.format,
            filter: self.filter,
            redaction: self.redaction,
            buffered_lines: self.buffered_lines,
            non_blocking: self.non_blocking,
            ansi: self.ansi,
            to_stdout: false,
            lost: self.lost,
            extra: self.extra,
            panic_hook: self.panic_hook,
        }
    }

    /// Adds a layer of your own beside the log output, under the same filter: typically
    /// `towerscope_trace::tracing_layer(tracer)`, so handler spans become OpenTelemetry
    /// spans and JSON lines name the span they were written in.
    ///
    /// ```
    /// let builder = towerscope_log::Logging::builder()
    ///     .with_layer(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    /// # let _ = builder;
    /// ```
    pub fn with_layer<L>(mut self, layer: L) -> Self
    where
        L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        self.extra = Some(Box::new(layer));
        self
    }

    /// Registers `towerscope_log_dropped_lines_total` into `registry`: lines lost, with
    /// `reason="buffer_full"` (the output could not keep up) or `reason="write_failed"`
    /// (the output failed).
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let (_subscriber, _guard) = towerscope_log::Logging::builder()
    ///     .writer(std::io::sink)
    ///     .metrics(&mut registry)
    ///     .build()
    ///     .unwrap();
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains(r#"towerscope_log_dropped_lines_total{reason="buffer_full"} 0"#), "{text}");
    /// assert!(text.contains(r#"towerscope_log_dropped_lines_total{reason="write_failed"} 0"#), "{text}");
    /// ```
    pub fn metrics(self, registry: &mut Registry) -> Self {
        registry.register_collector(Box::new(DroppedLines(self.lost.clone())));
        self
    }

    /// Builds the subscriber without installing it (for `tracing::subscriber::with_default`
    /// in tests, or to add layers of your own).
    ///
    /// ```
    /// use towerscope_log::{LogFormat, Logging};
    /// let out = towerscope_log::CaptureWriter::new();
    /// let (subscriber, _guard) = Logging::builder()
    ///     .writer(out.clone())
    ///     .blocking()
    ///     .build()
    ///     .unwrap();
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("scoped to this closure"));
    /// assert!(out.text().contains("scoped to this closure"));
    /// ```
    pub fn build(self) -> Result<(Box<dyn Subscriber + Send + Sync>, LoggingGuard), LogError> {
        let format = match self.format {
            Some(f) => f,
            None => match std::env::var("TOWERSCOPE_LOG_FORMAT") {
                Ok(v) => v.parse()?,
                Err(_) => LogFormat::Json,
            },
        };
        let (filter_text, from) = match self.filter.clone() {
            Some(text) => (text, "the builder"),
            None => match std::env::var("RUST_LOG") {
                Ok(text) if !text.trim().is_empty() => (text, "RUST_LOG"),
                _ => (DEFAULT_FILTER.to_owned(), "the default"),
            },
        };
        // Checked as given, so that an error names what the user wrote.
        check_filter(&filter_text, from)?;
        let filter_text = if filter_text.contains(REQUEST_SPAN_TARGET) {
            filter_text
        } else {
            format!("{filter_text},{REQUEST_SPAN_TARGET}=info")
        };
        let filter = Filter::parse(&filter_text)?;
        let redaction = self.redaction;
        let ansi = format == LogFormat::Pretty
            && self.ansi.unwrap_or_else(|| {
                use std::io::IsTerminal as _;
                self.to_stdout
                    && io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            });
        if self.non_blocking {
            // Unbuffered: the writer thread writes whole batches, and counts what a failed
            // write lost (a buffer in between would hide it).
            let (writer, worker) = background(
                MakeWriterIo(self.writer),
                self.buffered_lines,
                self.lost.clone(),
            )
            .map_err(LogError::Thread)?;
            let subscriber = subscriber(format, ansi, filter, redaction, self.extra, writer);
            Ok((
                subscriber,
                LoggingGuard {
                    _worker: Some(worker),
                    lost: self.lost,
                },
            ))
        } else {
            let subscriber = subscriber(format, ansi, filter, redaction, self.extra, self.writer);
            Ok((
                subscriber,
                LoggingGuard {
                    _worker: None,
                    lost: self.lost,
                },
            ))
        }
    }

    /// Builds the subscriber and installs it as the global default.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), towerscope_log::LogError> {
    /// let _guard = towerscope_log::Logging::builder().init()?; // keep the guard until exit
    /// tracing::info!("logging is set up");
    /// # Ok(())
    /// # }
    /// ```
    pub fn init(self) -> Result<LoggingGuard, LogError> {
        let panic_hook = self.panic_hook;
        let (subscriber, guard) = self.build()?;
        tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadySet)?;
        crate::panic::install(panic_hook, guard.flusher());
        Ok(guard)
    }
}

/// Checks `text` directive by directive, so that an error names the one that is wrong
/// (`EnvFilter` says only "invalid filter directive" for the whole text).
fn check_filter(text: &str, from: &'static str) -> Result<(), LogError> {
    let error = |reason: String| LogError::Filter {
        filter: text.to_owned(),
        from,
        reason,
    };
    for directive in text.split(',').filter(|d| !d.trim().is_empty()) {
        if let Err(e) = EnvFilter::builder().with_regex(false).parse(directive) {
            let shown: String = directive.trim().chars().take(100).collect();
            return Err(error(format!("`{shown}`: {e}")));
        }
    }
    Ok(())
}

/// The filter, as cheap as its directives allow.
///
/// `EnvFilter` takes a read lock on its table of spans every time any span is entered or
/// exited, which it needs only for span and field directives (`target[span{field=1}]=debug`).
/// A filter of targets and levels alone (`info,hyper=warn`, the usual case) is the same
/// filter as a `Targets`, which decides once per callsite and does nothing on enter and
/// exit. The text is always checked by `EnvFilter`'s parser, so errors read the same.
/// Exactly one of the two is set.
#[derive(Debug)]
struct Filter {
    targets: Option<Targets>,
    env: Option<EnvFilter>,
}

impl Filter {
    fn parse(text: &str) -> Result<Self, LogError> {
        let env = EnvFilter::builder()
            .with_regex(false)
            .parse(text)
            .map_err(|e| LogError::Filter {
                filter: text.to_owned(),
                from: "the builder",
                reason: e.to_string(),
            })?;
        let targets = if text.contains(['[', '{']) {
            None
        } else {
            text.parse::<Targets>().ok()
        };
        Ok(match targets {
            Some(targets) => Self {
                targets: Some(targets),
                env: None,
            },
            None => Self {
                targets: None,
                env: Some(env),
            },
        })
    }
}

fn subscriber<W>(
    format: LogFormat,
    ansi: bool,
    filter: Filter,
    redaction: Redaction,
    extra: Option<ExtraLayer>,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry()
        .with(extra)
        .with(filter.targets)
        .with(filter.env);
    match format {
        LogFormat::Json => Box::new(registry.with(JsonLayer::new(writer, redaction))),
        LogFormat::Pretty => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(ansi)
                    .fmt_fields(RedactedFields::new(redaction)),
            ),
        ),
    }
}

/// Adapts a `MakeWriter` to the `io::Write` the background writer owns.
struct MakeWriterIo<W>(W);

impl<W> io::Write for MakeWriterIo<W>
where
    W: for<'a> MakeWriter<'a>,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.make_writer().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.make_writer().flush()
    }
}

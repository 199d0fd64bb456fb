//! What the exporter did with the spans it was given: the OpenTelemetry SDK's own metrics
//! (`otel.sdk.exporter.span.exported`, `otel.sdk.exporter.span.inflight`; semantic
//! conventions for SDK metrics, in development), and one log line when exports start to
//! fail and one when they succeed again. Without them a collector that is down, refuses
//! the service's credentials or is misnamed loses every span and nothing says so: the
//! SDK reports export errors only through its internal log, which is not built here.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Spans by how their export ended, and spans being exported.
#[derive(Debug)]
pub(crate) struct ExportStats {
    /// `otel.component.type`: `otlp_http_span_exporter` or `otlp_grpc_span_exporter`.
    component: &'static str,
    exported: AtomicU64,
    /// Failed exports: timed out, and any other failure (`_OTHER`, with its message logged).
    timeout: AtomicU64,
    other: AtomicU64,
    inflight: AtomicI64,
}

impl ExportStats {
    pub(crate) fn new(component: &'static str) -> Arc<Self> {
        Arc::new(Self {
            component,
            exported: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            other: AtomicU64::new(0),
            inflight: AtomicI64::new(0),
        })
    }

    /// Spans exported, and spans whose export failed.
    #[cfg(test)]
    fn counts(&self) -> (u64, u64) {
        let failed = self.timeout.load(Ordering::Relaxed) + self.other.load(Ordering::Relaxed);
        (self.exported.load(Ordering::Relaxed), failed)
    }
}

/// Encodes the two families for the registry.
#[derive(Debug)]
pub(crate) struct ExportMetrics(pub(crate) Arc<ExportStats>);

impl Collector for ExportMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let stats = &self.0;
        let component = ("otel_component_type", stats.component);
        let mut family = encoder.encode_descriptor(
            "otel_sdk_exporter_span_exported",
            "Spans whose export finished: without error_type exported, with it failed (and lost).",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.exported.load(Ordering::Relaxed))
            .encode(family.encode_family(&[component])?)?;
        for (error, n) in [("timeout", &stats.timeout), ("_OTHER", &stats.other)] {
            ConstCounter::new(n.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("error_type", error), component])?)?;
        }
        let gauge = ConstGauge::new(stats.inflight.load(Ordering::Relaxed));
        gauge.encode(
            encoder
                .encode_descriptor(
                    "otel_sdk_exporter_span_inflight",
                    "Spans handed to the exporter whose export has not finished.",
                    None,
                    gauge.metric_type(),
                )?
                .encode_family(&[component])?,
        )
    }
}

/// Failed exports since the last one that succeeded.
#[derive(Debug, Default)]
struct Streak {
    exports: u64,
    spans: u64,
}

/// An exporter that counts what `inner` does with each batch and logs when exports start
/// and stop failing.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    stats: Arc<ExportStats>,
    /// The collector's address as logged (no user information, no query).
    endpoint: String,
    streak: Mutex<Streak>,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, stats: Arc<ExportStats>, endpoint: &str) -> Self {
        Self {
            inner,
            stats,
            endpoint: towerscope_core::redacted_url(endpoint),
            streak: Mutex::new(Streak::default()),
        }
    }

    fn finished(&self, spans: u64, result: &OTelSdkResult) {
        self.stats
            .inflight
            .fetch_sub(i64::try_from(spans).unwrap_or(i64::MAX), Ordering::Relaxed);
        let mut streak = self.streak.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                self.stats.exported.fetch_add(spans, Ordering::Relaxed);
                let ended = std::mem::take(&mut *streak);
                if ended.exports > 0 {
                    tracing::info!(
                        endpoint = %self.endpoint,
                        failed_exports = ended.exports,
                        lost_spans = ended.spans,
                        "exporting spans again"
                    );
                }
            }
            Err(error) => {
                let counter = match error {
                    OTelSdkError::Timeout(_) => &self.stats.timeout,
                    _ => &self.stats.other,
                };
                counter.fetch_add(spans, Ordering::Relaxed);
                streak.exports += 1;
                streak.spans += spans;
                if streak.exports == 1 {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        error = %without_userinfo(&error.to_string()),
                        spans,
                        "exporting spans failed: they are lost until an export succeeds \
                         (counted in otel_sdk_exporter_span_exported_total{{error_type}})"
                    );
                }
            }
        }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        self.stats
            .inflight
            .fetch_add(i64::try_from(spans).unwrap_or(i64::MAX), Ordering::Relaxed);
        let result = self.inner.export(batch).await;
        self.finished(spans, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// `text` with the user information of any URL in it (`scheme://user:password@host`)
/// replaced: an exporter's error names the address it could not reach.
fn without_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(['/', '?', '#', ' ', ')', ',', '"', '\''])
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("[REDACTED]");
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers each export with the next result of its script.
    #[derive(Debug)]
    struct Scripted(Mutex<VecDeque<OTelSdkResult>>);

    impl SpanExporter for Scripted {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            self.0
                .lock()
                .expect("script")
                .pop_front()
                .expect("a result for each export")
        }
    }

    fn spans(n: usize) -> Vec<SpanData> {
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..n {
            drop(tracer.start("span"));
        }
        exporter.get_finished_spans().expect("spans")
    }

    #[test]
    fn exports_are_counted_and_a_failing_streak_is_logged_twice() {
        let script = [
            Ok(()),
            Err(OTelSdkError::InternalFailure(
                "error sending request for url (http://collector:s3cret@127.0.0.1:1/v1/traces)"
                    .into(),
            )),
            Err(OTelSdkError::Timeout(std::time::Duration::from_secs(10))),
            Err(OTelSdkError::InternalFailure("connection refused".into())),
            Ok(()),
        ];
        let stats = ExportStats::new("otlp_http_span_exporter");
        let exporter = CountingExporter::new(
            Scripted(Mutex::new(script.into())),
            stats.clone(),
            "http://collector:s3cret@127.0.0.1:1/v1/traces",
        );
        let out = towerscope_log::CaptureWriter::new();
        let (subscriber, _guard) = towerscope_log::Logging::builder()
            .writer(out.clone())
            .blocking()
            .format(towerscope_log::LogFormat::Json)
            .filter("info")
            .build()
            .expect("logging");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        tracing::subscriber::with_default(subscriber, || {
            for n in [3, 2, 4, 1, 5] {
                let _ = runtime.block_on(exporter.export(spans(n)));
            }
        });
        assert_eq!(stats.counts(), (8, 7));
        assert_eq!(stats.timeout.load(Ordering::Relaxed), 4);
        assert_eq!(stats.inflight.load(Ordering::Relaxed), 0);
        let lines = out.json_lines().expect("json");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["spans"], 2);
        assert_eq!(
            lines[0]["endpoint"],
            "http://[REDACTED]@127.0.0.1:1/v1/traces"
        );
        assert_eq!(
            lines[0]["error"],
            "Operation failed: error sending request for url (http://[REDACTED]@127.0.0.1:1/v1/traces)"
        );
        assert!(!out.text().contains("s3cret"));
        assert_eq!(lines[1]["level"], "INFO");
        assert_eq!(lines[1]["message"], "exporting spans again");
        assert_eq!(
            (&lines[1]["failed_exports"], &lines[1]["lost_spans"]),
            (&3.into(), &7.into())
        );

        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ExportMetrics(stats)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            r#"otel_sdk_exporter_span_exported_total{otel_component_type="otlp_http_span_exporter"} 8"#,
            r#"otel_sdk_exporter_span_exported_total{error_type="timeout",otel_component_type="otlp_http_span_exporter"} 4"#,
            r#"otel_sdk_exporter_span_exported_total{error_type="_OTHER",otel_component_type="otlp_http_span_exporter"} 3"#,
            r#"otel_sdk_exporter_span_inflight{otel_component_type="otlp_http_span_exporter"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn user_information_is_removed_from_every_url_in_a_message() {
        for (text, shown) in [
            ("no url here", "no url here"),
            ("http://host/path", "http://host/path"),
            (
                "a http://u:p@host:1/x and https://t@h?q=1",
                "a http://[REDACTED]@host:1/x and https://[REDACTED]@h?q=1",
            ),
            ("(http://u@h)", "(http://[REDACTED]@h)"),
            (
                "mailto-like a@b and http://h/@x",
                "mailto-like a@b and http://h/@x",
            ),
            ("ends with ://", "ends with ://"),
        ] {
            assert_eq!(without_userinfo(text), shown, "{text}");
        }
    }
}

//! [`NoopExporter`]: spans recorded and batched, then dropped.

use std::future::Future;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// A span exporter that drops every batch it is given.
///
/// Behind the SDK's batch span processor it measures what recording and batching spans costs
/// a service, without the cost of sending them anywhere: the benchmarks and the loopback
/// load runs use it. It is not a way to turn tracing off (an unsampled or absent tracer is).
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
///     .with_simple_exporter(towerscope_trace::NoopExporter)
///     .build();
/// let _layer = towerscope_trace::TraceLayer::new(provider.tracer("bench"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopExporter;

impl SpanExporter for NoopExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        drop(batch);
        std::future::ready(Ok(()))
    }
}

//! The two OpenTelemetry costs every sampled-out server span pays, apart from any layer:
//! the SDK starting a span its sampler drops, and a context holding the span's IDs
//! attached twice (around the inner `call` and once while the response future is polled).
//!
//! What it measures: one of each per iteration, criterion. What it leaves out: the layer
//! around them (see the `server_span` bench, which has the layers and the pass-through
//! floor).
//!
//! Run: `cargo bench -p towerscope-trace --bench dropped_span`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

fn bench(c: &mut Criterion) {
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .build();
    let tracer = provider.tracer("bench");
    let parent = Context::new();
    let ids = SpanContext::new(
        TraceId::from_bytes([7; 16]),
        SpanId::from_bytes([9; 8]),
        TraceFlags::default(),
        false,
        TraceState::default(),
    );
    let mut g = c.benchmark_group("sampled_out");
    g.bench_function("sdk_start_dropped_span", |b| {
        b.iter(|| {
            tracer
                .span_builder("GET /users/{id}")
                .with_kind(SpanKind::Server)
                .with_attributes(vec![KeyValue::new("http.request.method", "GET")])
                .start_with_context(&tracer, black_box(&parent))
        })
    });
    g.bench_function("context_with_ids_attached_twice", |b| {
        b.iter(|| {
            let cx = black_box(&parent).with_remote_span_context(black_box(&ids).clone());
            drop(black_box(cx.clone().attach()));
            drop(black_box(cx.attach()));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

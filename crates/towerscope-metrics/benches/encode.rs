//! `/metrics` encoding of 10,000 (or `ENCODE_SERIES`) histogram series (15 buckets each, three labels), in one
//! criterion run:
//! - `towerscope/prometheus-text` and `towerscope/openmetrics`: `MetricsService::encode`
//!   over a registry holding an `HttpMetricsLayer` with 10,000 label sets (plus its request
//!   and error counters, which also encode);
//! - `prometheus-client/openmetrics`: prometheus-client's own text encoder over a
//!   `Family<Labels, Histogram>` with the same label sets and buckets;
//! - `prometheus/text`: the `prometheus` crate's `TextEncoder` over a `HistogramVec`.
//!
//! It also prints, once, the output size and the bytes allocated by one encode of each
//! (`stats_alloc`, after one warm-up encode), as the memory bound while encoding.
//!
//! Run: `cargo bench -p towerscope-metrics --bench encode`
//! (`ENCODE_SERIES=100000 cargo bench …` for 100,000 series)

use std::hint::black_box;

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower::{Layer, ServiceExt};
use towerscope_core::{Route, RouteClassifier};
use towerscope_metrics::{Buckets, Format, HttpMetricsLayer, MetricsService};

/// Label sets: `ENCODE_SERIES` (default 10,000; the docs also give 100,000).
fn series() -> usize {
    std::env::var("ENCODE_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn value(i: usize) -> f64 {
    // Spread observations over the buckets.
    (i % 97) as f64 / 9.7
}

fn towerscope_registry() -> MetricsService {
    let mut registry = Registry::default();
    let layer = HttpMetricsLayer::builder()
        .max_series(series() * 2)
        .route_classifier(RouteClassifier::new(|req| {
            Some(Route::Shared(req.uri.path().into()))
        }))
        .build(&mut registry)
        .expect("valid");
    let svc = layer.layer(tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for i in 0..series() {
            let req = Request::get(format!("/route/{i}"))
                .body(Body::empty())
                .expect("request");
            let resp = svc.clone().oneshot(req).await.expect("response");
            drop(resp);
        }
    });
    MetricsService::new(registry)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    http_request_method: &'static str,
    http_route: String,
    http_response_status_code: u16,
}

fn prometheus_client_registry() -> Registry {
    let mut registry = Registry::default();
    let family: Family<Labels, Histogram, fn() -> Histogram> =
        Family::new_with_constructor(|| Histogram::new(Buckets::HTTP_DURATION_SECONDS));
    registry.register(
        "http_server_request_duration_seconds",
        "Duration",
        family.clone(),
    );
    for i in 0..series() {
        let labels = Labels {
            http_request_method: "GET",
            http_route: format!("/route/{i}"),
            http_response_status_code: 200,
        };
        family.get_or_create(&labels).observe(value(i));
    }
    registry
}

fn prometheus_crate_registry() -> prometheus::Registry {
    let registry = prometheus::Registry::new();
    let hist = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("http_server_request_duration_seconds", "Duration")
            .buckets(Buckets::HTTP_DURATION_SECONDS.to_vec()),
        &[
            "http_request_method",
            "http_route",
            "http_response_status_code",
        ],
    )
    .expect("valid");
    registry.register(Box::new(hist.clone())).expect("register");
    for i in 0..series() {
        hist.with_label_values(&["GET", &format!("/route/{i}"), "200"])
            .observe(value(i));
    }
    registry
}

fn encode_prometheus_crate(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("encode");
    String::from_utf8(buf).expect("utf8")
}

fn encode_prometheus_client(registry: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, registry).expect("encode");
    s
}

fn report_memory(name: &str, f: impl FnOnce() -> String) {
    let (out, bytes, count) = towerscope_bench::allocations(f);
    println!(
        "{name}: output {} KiB, allocated during encode {} KiB in {count} allocations",
        out.len() / 1024,
        bytes / 1024,
    );
}

fn bench(c: &mut Criterion) {
    let ours = towerscope_registry();
    let pc = prometheus_client_registry();
    let pcrate = prometheus_crate_registry();

    // One encode each first: MetricsService sizes its buffer from the previous scrape, so
    // the report shows the steady state a scraped service runs in.
    ours.encode(Format::Prometheus);
    ours.encode(Format::OpenMetrics);
    report_memory("towerscope/prometheus-text", || {
        ours.encode(Format::Prometheus)
    });
    report_memory("towerscope/openmetrics", || {
        ours.encode(Format::OpenMetrics)
    });
    report_memory("prometheus-client/openmetrics", || {
        encode_prometheus_client(&pc)
    });
    report_memory("prometheus/text", || encode_prometheus_crate(&pcrate));

    let mut g = c.benchmark_group(format!("encode_{}_histogram_series", series()));
    g.sample_size(30);
    g.bench_function("towerscope/prometheus-text", |b| {
        b.iter(|| black_box(ours.encode(Format::Prometheus)))
    });
    g.bench_function("towerscope/openmetrics", |b| {
        b.iter(|| black_box(ours.encode(Format::OpenMetrics)))
    });
    g.bench_function("prometheus-client/openmetrics", |b| {
        b.iter(|| black_box(encode_prometheus_client(&pc)))
    });
    g.bench_function("prometheus/text", |b| {
        b.iter(|| black_box(encode_prometheus_crate(&pcrate)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

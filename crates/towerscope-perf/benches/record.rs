//! `PerfMonitor::record` against a plain `Mutex<hdrhistogram::Histogram>`, in one criterion
//! run: one thread, and two threads recording into the same series at once.
//!
//! What it measures: the time for a batch of 10,000 records per thread (the series exists;
//! values spread over three decades), by name and tags (`record`) and through a `Series`
//! handle. What it leaves out: `stats` (scrape-time work).
//!
//! Run: `cargo bench -p towerscope-perf --bench record`

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use towerscope_perf::PerfMonitor;

const BATCH: u64 = 10_000;

fn value(i: u64) -> f64 {
    0.0001 * (1 + (i * 7919) % 1000) as f64
}

fn ours(perf: &PerfMonitor, offset: u64) {
    for i in 0..BATCH {
        perf.record("latency", value(i + offset), &[("route", "/users/{id}")]);
    }
}

fn ours_handle(series: &towerscope_perf::Series, offset: u64) {
    for i in 0..BATCH {
        series.record(value(i + offset));
    }
}

fn baseline(h: &Mutex<Histogram<u64>>, offset: u64) {
    for i in 0..BATCH {
        let v = (value(i + offset) * 1e6) as u64;
        let mut h = h.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = h.record(v);
    }
}

fn two_threads<T: Sync>(target: &T, f: fn(&T, u64)) {
    std::thread::scope(|s| {
        s.spawn(|| f(target, 0));
        s.spawn(|| f(target, 1));
    });
}

fn bench(c: &mut Criterion) {
    let perf = PerfMonitor::new();
    perf.record("latency", 0.001, &[("route", "/users/{id}")]);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(2).expect("histogram")));
    let handle = perf
        .series("latency", &[("route", "/users/{id}")])
        .expect("series");

    let mut g = c.benchmark_group("record_10k");
    g.bench_function("perf_monitor/1_thread", |b| {
        b.iter(|| ours(black_box(&perf), 0))
    });
    g.bench_function("mutex_hdrhistogram/1_thread", |b| {
        b.iter(|| baseline(black_box(&hist), 0))
    });
    g.bench_function("perf_monitor_handle/1_thread", |b| {
        b.iter(|| ours_handle(black_box(&handle), 0))
    });
    g.bench_function("perf_monitor/2_threads", |b| {
        b.iter(|| two_threads(&perf, ours))
    });
    g.bench_function("perf_monitor_handle/2_threads", |b| {
        b.iter(|| two_threads(&handle, ours_handle))
    });
    g.bench_function("mutex_hdrhistogram/2_threads", |b| {
        b.iter(|| two_threads(&*hist, baseline))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

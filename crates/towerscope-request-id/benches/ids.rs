//! Making request IDs: `RequestId::new_v7` (a per-thread v7 context) against uuid's
//! `Uuid::now_v7` (one process-wide context behind a mutex), each formatted into a
//! `RequestId`, in one criterion run: one thread, and two threads making IDs at once.
//!
//! What it measures: a batch of 10,000 IDs per thread, from the clock reading to the
//! finished header value. What it leaves out: everything the layer does with the ID (see the
//! `request_id` bench).
//!
//! Run: `cargo bench -p towerscope-request-id --bench ids`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use towerscope_request_id::{RequestId, request_id_from};

const BATCH: usize = 10_000;

fn ours() {
    for _ in 0..BATCH {
        black_box(RequestId::new_v7());
    }
}

fn shared_context() {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for _ in 0..BATCH {
        let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        black_box(request_id_from(text));
    }
}

fn two_threads(f: fn()) {
    std::thread::scope(|s| {
        s.spawn(f);
        s.spawn(f);
    });
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("uuid_v7_10k");
    g.bench_function("towerscope_new_v7/1_thread", |b| b.iter(ours));
    g.bench_function("uuid_now_v7_shared/1_thread", |b| b.iter(shared_context));
    g.bench_function("towerscope_new_v7/2_threads", |b| {
        b.iter(|| two_threads(ours))
    });
    g.bench_function("uuid_now_v7_shared/2_threads", |b| {
        b.iter(|| two_threads(shared_context))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

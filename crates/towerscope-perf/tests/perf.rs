//! Accuracy, windows, bounds, concurrency and the timing helpers.

use std::time::Duration;

use rand::Rng;
use towerscope_perf::{DbMonitor, ManualClock, PerfMonitor, timed};

/// Nearest-rank percentile of sorted data.
fn exact(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

#[test]
fn percentiles_are_within_one_percent_of_exact() {
    let mut rng = rand::rng();
    for _round in 0..5 {
        let perf = PerfMonitor::new();
        // Log-uniform over six decades, 0.1 ms to 100 s, like latencies with a long tail.
        let mut values: Vec<f64> = (0..50_000)
            .map(|_| 10f64.powf(rng.random_range(-4.0..2.0)))
            .collect();
        for v in &values {
            perf.record("latency", *v, &[]);
        }
        values.sort_by(f64::total_cmp);
        let s = perf
            .stats("latency", Duration::from_secs(60))
            .expect("stats");
        assert_eq!(s.count, 50_000);
        for (q, got) in [(0.5, s.median), (0.95, s.p95), (0.99, s.p99)] {
            let want = exact(&values, q);
            assert!(rel(got, want) <= 0.01, "q{q}: got {got}, exact {want}");
        }
        assert!(
            rel(s.min, values[0]) <= 0.01,
            "min {} vs {}",
            s.min,
            values[0]
        );
        assert!(rel(s.max, values[values.len() - 1]) <= 0.01);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(rel(s.mean, mean) <= 0.01, "mean {} vs {mean}", s.mean);
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(
            rel(s.std_dev, var.sqrt()) <= 0.02,
            "stddev {} vs {}",
            s.std_dev,
            var.sqrt()
        );
    }
}

#[test]
fn windows_expire_with_the_clock() {
    let clock = ManualClock::new();
    let perf = PerfMonitor::builder()
        .slot(Duration::from_secs(10))
        .horizon(Duration::from_secs(300))
        .clock(clock.clone())
        .build();
    perf.record("op", 1.0, &[]);
    clock.advance(Duration::from_secs(180));
    perf.record("op", 2.0, &[]);
    perf.record("op", 2.0, &[]);
    let five = perf.stats("op", Duration::from_secs(300)).expect("both");
    assert_eq!(five.count, 3);
    let one = perf.stats("op", Duration::from_secs(60)).expect("recent");
    assert_eq!(one.count, 2);
    assert!((one.mean - 2.0).abs() < 0.02);
    clock.advance(Duration::from_secs(400));
    assert!(
        perf.stats("op", Duration::from_secs(300)).is_none(),
        "everything expired"
    );
    // A slot reused after a full turn of the ring starts empty.
    perf.record("op", 5.0, &[]);
    let s = perf.stats("op", Duration::from_secs(300)).expect("fresh");
    assert_eq!(s.count, 1);
}

#[test]
fn series_are_capped_and_bad_values_ignored() {
    let perf = PerfMonitor::builder().max_series(10).build();
    for i in 0..1_000 {
        let name = format!("series-{i}");
        perf.record(&name, 1.0, &[]);
    }
    let all = perf.all_stats(Duration::from_secs(60));
    assert_eq!(all.len(), 11, "10 series and _overflow");
    assert_eq!(all["_overflow"].count, 990);
    assert_eq!(perf.overflowed(), 990);
    for bad in [f64::NAN, f64::INFINITY, -1.0] {
        perf.record("series-0", bad, &[]);
    }
    perf.record("series-0", 1e12, &[]); // huge, but finite: saturates, no panic
    assert_eq!(
        perf.stats("series-0", Duration::from_secs(60))
            .expect("s")
            .count,
        2
    );
}

#[test]
fn concurrent_records_are_all_counted() {
    let perf = PerfMonitor::new();
    std::thread::scope(|s| {
        for t in 0..4 {
            let perf = perf.clone();
            s.spawn(move || {
                for i in 0..25_000 {
                    perf.record("shared", f64::from(i % 100 + t), &[("kind", "a")]);
                }
            });
        }
    });
    let s = perf
        .stats_tagged("shared", &[("kind", "a")], Duration::from_secs(60))
        .expect("stats");
    assert_eq!(s.count, 100_000);
    assert!(
        perf.stats_merged("shared", Duration::from_secs(60))
            .is_some()
    );
}

/// The process-wide monitor `#[timed]` records into: set once, by whichever test gets
/// there first (tests run in parallel in one process).
fn process_monitor() -> &'static PerfMonitor {
    let _ = towerscope_perf::set_global(PerfMonitor::new());
    towerscope_perf::global().expect("set")
}

#[timed("sync_op")]
fn sync_op(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    x * 2
}

#[timed]
async fn async_op() -> &'static str {
    tokio::time::sleep(Duration::from_millis(20)).await;
    "done"
}

#[tokio::test]
async fn timers_futures_and_the_attribute_record() {
    let perf = process_monitor();
    {
        let _t = perf.timer("guarded");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = perf
        .time("future", async {
            tokio::time::sleep(Duration::from_millis(15)).await;
            7
        })
        .await;
    assert_eq!(out, 7);
    assert_eq!(sync_op(21), 42);
    assert_eq!(async_op().await, "done");
    let w = Duration::from_secs(60);
    assert!(perf.stats("guarded", w).expect("guard").min >= 0.009);
    assert!(perf.stats("future", w).expect("future").min >= 0.014);
    assert!(perf.stats("sync_op", w).expect("sync").min >= 0.0045);
    let name = "perf::async_op";
    assert!(
        perf.stats(name, w)
            .unwrap_or_else(|| panic!("{:?}", perf.all_stats(w).keys()))
            .min
            >= 0.019
    );
}

#[test]
fn db_monitor_tags_by_statement_kind() {
    let perf = PerfMonitor::new();
    let db = DbMonitor::new(perf.clone());
    db.log_query("SELECT 1", Duration::from_millis(2), None);
    db.log_query(
        "  update users set name = $1",
        Duration::from_millis(4),
        Some(3),
    );
    db.log_query("VACUUM", Duration::from_millis(1), None);
    let w = Duration::from_secs(60);
    assert_eq!(
        perf.stats_tagged("db_query_duration", &[("query_type", "SELECT")], w)
            .expect("select")
            .count,
        1
    );
    let rows = perf
        .stats_tagged("db_rows_affected", &[("query_type", "UPDATE")], w)
        .expect("rows");
    assert!((rows.max - 3.0).abs() < 0.03);
    assert!(
        perf.stats_tagged("db_query_duration", &[("query_type", "OTHER")], w)
            .is_some()
    );
}

#[derive(Debug, PartialEq)]
struct Missing;

impl From<std::num::ParseIntError> for Missing {
    fn from(_: std::num::ParseIntError) -> Self {
        Missing
    }
}

struct Store {
    base: u64,
}

impl Store {
    /// `?` converting the error, a `&self` method, an early `return`.
    #[timed("store.find")]
    async fn find(&self, id: &str) -> Result<u64, Missing> {
        if id.is_empty() {
            return Err(Missing);
        }
        let n: u64 = id.parse()?;
        tokio::task::yield_now().await;
        Ok(self.base + n)
    }

    /// Generic with a where clause, `impl Trait` argument, early return in a sync fn.
    #[timed]
    fn total<I>(&self, items: I, extra: impl Into<u64>) -> u64
    where
        I: IntoIterator<Item = u64>,
    {
        let extra = extra.into();
        if extra == u64::MAX {
            return 0;
        }
        items.into_iter().sum::<u64>() + extra + self.base
    }
}

/// The shapes real code has: the attribute keeps them compiling, the future `Send` (so
/// `tokio::spawn` takes it), and every way out of the function is timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attribute_keeps_methods_errors_and_generics_working() {
    let perf = process_monitor();
    let store = std::sync::Arc::new(Store { base: 10 });
    let spawned = tokio::spawn({
        let store = store.clone();
        async move { store.find("5").await }
    });
    assert_eq!(spawned.await.expect("joined"), Ok(15));
    assert_eq!(store.find("").await, Err(Missing));
    assert_eq!(store.find("x").await, Err(Missing));
    assert_eq!(store.total([1, 2], 3u8), 16);
    assert_eq!(store.total(Vec::new(), u64::MAX), 0);
    let w = Duration::from_secs(60);
    assert_eq!(perf.stats("store.find", w).expect("find").count, 3);
    assert_eq!(perf.stats("perf::total", w).expect("total").count, 2);
}

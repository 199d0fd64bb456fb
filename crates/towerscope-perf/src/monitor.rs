//! [`PerfMonitor`]: named series of values over a sliding time window.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hashbrown::{Equivalent, HashMap};
use serde::Serialize;

use crate::clock::{Clock, MonotonicClock};
use crate::window::{SCALE, Window, new_histogram};

/// A series key: the name and its tags, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    name: Box<str>,
    tags: Box<[(Box<str>, Box<str>)]>,
}

struct KeyRef<'a> {
    name: &'a str,
    tags: &'a [(&'a str, &'a str)],
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.tags.len().hash(state);
        for (k, v) in self.tags {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl Hash for Key {
    // Must hash exactly as `KeyRef` does, for borrowed lookups.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.tags.len().hash(state);
        for (k, v) in self.tags.iter() {
            (**k).hash(state);
            (**v).hash(state);
        }
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self.name == *key.name
            && self.tags.len() == key.tags.len()
            && self
                .tags
                .iter()
                .zip(key.tags.iter())
                .all(|((a, b), (c, d))| **a == **c && **b == **d)
    }
}

/// Statistics of one series over a window. Percentiles, `min`, `max` and `mean` are within
/// 1% of the exact values (HDR histograms with two significant digits).
///
/// ```
/// let perf = towerscope_perf::PerfMonitor::new();
/// for v in [1.0, 2.0, 3.0, 4.0] { perf.record("op", v, &[]); }
/// let s = perf.stats("op", std::time::Duration::from_secs(60)).unwrap();
/// assert_eq!(s.count, 4);
/// assert!((s.mean - 2.5).abs() < 0.03);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Values recorded in the window.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Standard deviation.
    pub std_dev: f64,
}

/// Settings of a [`PerfMonitor`].
///
/// ```
/// use std::time::Duration;
/// let perf = towerscope_perf::PerfMonitor::builder()
///     .slot(Duration::from_secs(5))
///     .horizon(Duration::from_secs(600))
///     .max_series(500)
///     .build();
/// # let _ = perf;
/// ```
#[must_use]
pub struct PerfMonitorBuilder {
    slot: Duration,
    horizon: Duration,
    max_series: usize,
    shards: usize,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PerfMonitorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfMonitorBuilder")
            .field("slot", &self.slot)
            .field("horizon", &self.horizon)
            .field("max_series", &self.max_series)
            .finish_non_exhaustive()
    }
}

impl PerfMonitorBuilder {
    /// Time resolution of windows (default 10 s): a window covers whole slots.
    ///
    /// ```
    /// use std::time::Duration;
    /// // Finer windows for a short, busy horizon: 1-second slots over 2 minutes, 64 series at most.
    /// let perf = towerscope_perf::PerfMonitor::builder()
    ///     .slot(Duration::from_secs(1))
    ///     .horizon(Duration::from_secs(120))
    ///     .max_series(64)
    ///     .shards(4)
    ///     .build();
    /// # let _ = perf;
    /// ```
    pub fn slot(mut self, slot: Duration) -> Self {
        self.slot = slot.max(Duration::from_millis(1));
        self
    }

    /// Longest window that can be asked for (default 5 minutes). Memory per series is
    /// `shards × horizon / slot` histograms.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::builder().horizon(Duration::from_secs(900)).build();
    /// perf.record("export", 2.5, &[]);
    /// assert!(perf.stats("export", Duration::from_secs(900)).is_some()); // a 15-minute window
    /// ```
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon;
        self
    }

    /// Most series (name and tags); past it, values go to a series named `_overflow`
    /// (default 256).
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::builder().max_series(1).build();
    /// perf.record("a", 0.1, &[]);
    /// perf.record("b", 0.2, &[]); // no room: counted in `_overflow`
    /// assert_eq!(perf.overflowed(), 1);
    /// assert!(perf.stats("b", Duration::from_secs(60)).is_none());
    /// ```
    pub fn max_series(mut self, max: usize) -> Self {
        self.max_series = max.max(1);
        self
    }

    /// Shards per series (default: twice the available parallelism, at most 16).
    ///
    /// ```
    /// // One shard: least memory, for a monitor written from one thread.
    /// let perf = towerscope_perf::PerfMonitor::builder().shards(1).build();
    /// # let _ = perf;
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.clamp(1, 64);
        self
    }

    /// The time source (default the monotonic clock).
    ///
    /// ```
    /// let clock = towerscope_perf::ManualClock::new();
    /// let perf = towerscope_perf::PerfMonitor::builder().clock(clock.clone()).build();
    /// # let _ = perf;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the monitor.
    ///
    /// ```
    /// let perf = towerscope_perf::PerfMonitor::builder().build();
    /// perf.record("startup", 0.8, &[]);
    /// ```
    pub fn build(self) -> PerfMonitor {
        let slot_nanos = u64::try_from(self.slot.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let horizon_nanos = u64::try_from(self.horizon.as_nanos()).unwrap_or(u64::MAX);
        let slots = usize::try_from(horizon_nanos.div_ceil(slot_nanos))
            .unwrap_or(usize::MAX)
            .clamp(1, 100_000)
            + 1;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        PerfMonitor {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                series: RwLock::new(HashMap::new()),
                overflow: Window::new(self.shards, slots),
                overflowed: AtomicU64::new(0),
                warned: AtomicBool::new(false),
                slot_nanos,
                slots,
                shards: self.shards,
                max_series: self.max_series,
                clock: self.clock,
            }),
        }
    }
}

struct Inner {
    series: RwLock<HashMap<Key, Arc<Window>>>,
    /// Identifies this monitor in the per-thread caches.
    id: u64,
    overflow: Window,
    overflowed: AtomicU64,
    warned: AtomicBool,
    slot_nanos: u64,
    slots: usize,
    shards: usize,
    max_series: usize,
    clock: Arc<dyn Clock>,
}

/// In-process performance statistics: record values under a name (and tags), ask for
/// count, min, max, mean, median, p95, p99 and standard deviation over the last N minutes.
///
/// Memory is bounded whatever the traffic: each series is a ring of `horizon / slot` HDR
/// histograms per shard (two significant digits, so every statistic is within 1% of the
/// exact value), and there are at most `max_series` series. Recording takes a read lock on
/// the series table and one of the series' shard locks, chosen by thread, so threads
/// recording at once rarely wait for each other and never for a global lock.
///
/// Tags are part of the series' identity in the order given: pass them in a fixed order.
///
/// ```
/// use std::time::Duration;
/// use towerscope_perf::PerfMonitor;
/// let perf = PerfMonitor::new();
/// perf.record("db_query_duration", 0.012, &[("table", "users")]);
/// {
///     let _t = perf.timer("user_service.get_profile");
///     // work...
/// }
/// let all = perf.all_stats(Duration::from_secs(300));
/// assert!(all.contains_key("db_query_duration{table=users}"));
/// ```
#[derive(Clone)]
pub struct PerfMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PerfMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfMonitor")
            .field("slots", &self.inner.slots)
            .finish_non_exhaustive()
    }
}

impl Default for PerfMonitor {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-thread map from (monitor, series key) to the series, so that recording touches no
/// state shared with other threads but its shard's lock. Cleared when it grows past
/// [`THREAD_CACHE_LIMIT`] entries, so monitors that were dropped cannot keep memory alive
/// for long.
struct ThreadCache {
    series: HashMap<(u64, Key), Arc<Window>>,
    /// This thread's shard index.
    shard: usize,
}

struct CacheKeyRef<'a>(u64, KeyRef<'a>);

impl Hash for CacheKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<(u64, Key)> for CacheKeyRef<'_> {
    fn equivalent(&self, key: &(u64, Key)) -> bool {
        self.0 == key.0 && self.1.equivalent(&key.1)
    }
}

const THREAD_CACHE_LIMIT: usize = 4096;

thread_local! {
    static CACHE: std::cell::RefCell<ThreadCache> = std::cell::RefCell::new(ThreadCache {
        series: HashMap::new(),
        shard: {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            NEXT.fetch_add(1, Ordering::Relaxed) as usize
        },
    });
}

fn this_shard() -> usize {
    CACHE.with(|c| c.try_borrow().map_or(0, |c| c.shard))
}

fn render_key(name: &str, tags: &[(Box<str>, Box<str>)]) -> String {
    if tags.is_empty() {
        return name.to_owned();
    }
    let mut s = String::from(name);
    s.push('{');
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s.push('}');
    s
}

impl PerfMonitor {
    /// A monitor with 10-second slots and a 5-minute horizon.
    ///
    /// ```
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// perf.record("checkout", 0.120, &[]);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::builder().slot(Duration::from_secs(5)).build();
    /// # let _ = perf;
    /// ```
    pub fn builder() -> PerfMonitorBuilder {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PerfMonitorBuilder {
            slot: Duration::from_secs(10),
            horizon: Duration::from_secs(300),
            max_series: 256,
            shards: (cores * 2).min(16),
            clock: Arc::new(MonotonicClock::new()),
        }
    }

    fn epoch(&self) -> u64 {
        self.inner.clock.now_nanos() / self.inner.slot_nanos
    }

    /// Records `value` (finite, non-negative; others are ignored) under `name` and `tags`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// perf.record("db_query", 0.004, &[("table", "orders")]);
    /// perf.record("db_query", f64::NAN, &[("table", "orders")]); // ignored
    /// let stats = perf.stats_tagged("db_query", &[("table", "orders")], Duration::from_secs(60)).unwrap();
    /// assert_eq!(stats.count, 1);
    /// ```
    pub fn record(&self, name: &str, value: f64, tags: &[(&str, &str)]) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        let scaled = (value * SCALE).round() as u64;
        let epoch = self.epoch();
        let inner = &self.inner;
        let key = KeyRef { name, tags };
        let recorded = CACHE.with(|cache| {
            let Ok(cache) = cache.try_borrow() else {
                return None;
            };
            match cache
                .series
                .get(&CacheKeyRef(inner.id, KeyRef { name, tags }))
            {
                Some(w) => {
                    w.record(cache.shard, epoch, scaled);
                    None
                }
                None => Some(cache.shard),
            }
        });
        let Some(shard) = recorded else { return };
        let window = self.series_for(&key);
        match window {
            Some(w) => {
                w.record(shard, epoch, scaled);
                CACHE.with(|cache| {
                    if let Ok(mut cache) = cache.try_borrow_mut() {
                        if cache.series.len() >= THREAD_CACHE_LIMIT {
                            cache.series.clear();
                        }
                        let owned = Key {
                            name: name.into(),
                            tags: tags
                                .iter()
                                .map(|(k, v)| (Box::from(*k), Box::from(*v)))
                                .collect(),
                        };
                        cache.series.insert((inner.id, owned), w);
                    }
                });
            }
            None => {
                inner.overflowed.fetch_add(1, Ordering::Relaxed);
                if !inner.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max_series = inner.max_series,
                        "performance monitor full; new series go to _overflow"
                    );
                }
                inner.overflow.record(shard, epoch, scaled);
            }
        }
    }

    /// A handle on one series, for hot paths that record the same series often: recording
    /// through it skips the lookup by name and tags. `None` when the series cap is reached.
    ///
    /// ```
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// let latency = perf.series("latency", &[("route", "/users/{id}")]).unwrap();
    /// latency.record(0.004);
    /// ```
    pub fn series(&self, name: &str, tags: &[(&str, &str)]) -> Option<Series> {
        self.series_for(&KeyRef { name, tags })
            .map(|window| Series {
                window,
                monitor: self.clone(),
            })
    }

    /// The series for `key`, created if there is room; `None` when the cap is reached.
    fn series_for(&self, key: &KeyRef<'_>) -> Option<Arc<Window>> {
        let inner = &self.inner;
        {
            let series = inner.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(w) = series.get(key) {
                return Some(w.clone());
            }
            // Series are never removed: a full map stays full, and past the cap no call
            // takes the write lock (which would make every recording thread wait).
            if series.len() >= inner.max_series {
                return None;
            }
        }
        let mut series = inner.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = series.get(key) {
            return Some(w.clone());
        }
        if series.len() >= inner.max_series {
            return None;
        }
        let owned = Key {
            name: key.name.into(),
            tags: key
                .tags
                .iter()
                .map(|(k, v)| (Box::from(*k), Box::from(*v)))
                .collect(),
        };
        let w = Arc::new(Window::new(inner.shards, inner.slots));
        series.insert(owned, w.clone());
        Some(w)
    }

    /// Statistics of the series `name` without tags over the last `window` (at most the
    /// horizon), or `None` when nothing was recorded in it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// for ms in 1..=100 {
    ///     perf.record("render", f64::from(ms) / 1000.0, &[]);
    /// }
    /// let s = perf.stats("render", Duration::from_secs(60)).unwrap();
    /// assert_eq!(s.count, 100);
    /// assert!((s.p95 - 0.095).abs() < 0.002, "{}", s.p95);
    /// assert!(perf.stats("never_recorded", Duration::from_secs(60)).is_none());
    /// ```
    pub fn stats(&self, name: &str, window: Duration) -> Option<Stats> {
        self.stats_tagged(name, &[], window)
    }

    /// Statistics of the series `name` with exactly these tags.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// perf.record("http", 0.010, &[("route", "/a")]);
    /// perf.record("http", 0.900, &[("route", "/b")]);
    /// let a = perf.stats_tagged("http", &[("route", "/a")], Duration::from_secs(60)).unwrap();
    /// assert_eq!(a.count, 1);
    /// assert!((a.max - 0.010).abs() < 0.0001); // within the histograms' precision
    /// ```
    pub fn stats_tagged(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        window: Duration,
    ) -> Option<Stats> {
        let (first, last) = self.epochs(window);
        let series = self
            .inner
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let w = series.get(&KeyRef { name, tags })?;
        let mut h = new_histogram();
        w.merge_into(first, last, &mut h);
        drop(series);
        summarize(&h)
    }

    /// Statistics of every series named `name`, whatever its tags, merged (p95 over all
    /// routes, say).
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// perf.record("http", 0.010, &[("route", "/a")]);
    /// perf.record("http", 0.900, &[("route", "/b")]);
    /// let all = perf.stats_merged("http", Duration::from_secs(60)).unwrap();
    /// assert_eq!(all.count, 2);
    /// assert!((all.max - 0.900).abs() < 0.01); // the slow route, within the histograms' precision
    /// ```
    pub fn stats_merged(&self, name: &str, window: Duration) -> Option<Stats> {
        let (first, last) = self.epochs(window);
        let mut h = new_histogram();
        let series = self
            .inner
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for (k, w) in series.iter() {
            if *k.name == *name {
                w.merge_into(first, last, &mut h);
            }
        }
        drop(series);
        summarize(&h)
    }

    /// Statistics of every series with data in the window, keyed `name{k=v,...}`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// perf.record("http", 0.010, &[("route", "/a")]);
    /// perf.record("startup", 0.8, &[]);
    /// let keys: Vec<String> = perf.all_stats(Duration::from_secs(60)).into_keys().collect();
    /// assert_eq!(keys, ["http{route=/a}", "startup"]);
    /// ```
    pub fn all_stats(&self, window: Duration) -> BTreeMap<String, Stats> {
        let (first, last) = self.epochs(window);
        let series = self
            .inner
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = BTreeMap::new();
        for (k, w) in series.iter() {
            let mut h = new_histogram();
            w.merge_into(first, last, &mut h);
            if let Some(s) = summarize(&h) {
                out.insert(render_key(&k.name, &k.tags), s);
            }
        }
        let mut h = new_histogram();
        self.inner.overflow.merge_into(first, last, &mut h);
        if let Some(s) = summarize(&h) {
            out.insert("_overflow".to_owned(), s);
        }
        out
    }

    /// Values recorded into `_overflow` because the series cap was reached.
    ///
    /// ```
    /// let perf = towerscope_perf::PerfMonitor::builder().max_series(1).build();
    /// perf.record("a", 0.1, &[]);
    /// assert_eq!(perf.overflowed(), 0);
    /// perf.record("b", 0.1, &[]);
    /// assert_eq!(perf.overflowed(), 1);
    /// ```
    pub fn overflowed(&self) -> u64 {
        self.inner.overflowed.load(Ordering::Relaxed)
    }

    /// The slots covering the last `window`: whole slots, the current one included.
    fn epochs(&self, window: Duration) -> (u64, u64) {
        let last = self.epoch();
        let wanted = u64::try_from(window.as_nanos())
            .unwrap_or(u64::MAX)
            .div_ceil(self.inner.slot_nanos)
            .max(1);
        let n = wanted.min(self.inner.slots as u64 - 1).max(1);
        (last.saturating_sub(n - 1), last)
    }

    /// A guard that records the seconds until it is dropped under `name`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// {
    ///     let _t = perf.timer("rebuild_index");
    ///     // ... the work ...
    /// } // recorded here
    /// assert_eq!(perf.stats("rebuild_index", Duration::from_secs(60)).unwrap().count, 1);
    /// ```
    pub fn timer(&self, name: &'static str) -> crate::Timer {
        crate::Timer::new(self.clone(), name, &[])
    }

    /// [`PerfMonitor::timer`] with tags.
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// drop(perf.timer_tagged("db_query", &[("table", "orders")]));
    /// assert!(perf.stats_tagged("db_query", &[("table", "orders")], Duration::from_secs(60)).is_some());
    /// ```
    pub fn timer_tagged(
        &self,
        name: &'static str,
        tags: &'static [(&'static str, &'static str)],
    ) -> crate::Timer {
        crate::Timer::new(self.clone(), name, tags)
    }

    /// Wraps a future: the seconds from its first poll to its completion are recorded
    /// under `name` (a future dropped before completing records nothing).
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// let total = perf.time("fetch_prices", async { 3 + 4 }).await;
    /// assert_eq!(total, 7);
    /// assert_eq!(perf.stats("fetch_prices", Duration::from_secs(60)).unwrap().count, 1);
    /// # });
    /// ```
    pub fn time<F: std::future::Future>(&self, name: &'static str, fut: F) -> crate::Timed<F> {
        crate::Timed::new(self.clone(), name, fut)
    }
}

/// One series of a [`PerfMonitor`]; see [`PerfMonitor::series`].
///
/// ```
/// use std::time::Duration;
/// let perf = towerscope_perf::PerfMonitor::new();
/// let query = perf.series("db_query", &[("table", "orders")]).expect("under the series cap");
/// for seconds in [0.002, 0.003, 0.250] {
///     query.record(seconds);
/// }
/// let stats = perf.stats_tagged("db_query", &[("table", "orders")], Duration::from_secs(60)).unwrap();
/// assert_eq!(stats.count, 3);
/// ```
#[derive(Clone)]
pub struct Series {
    window: Arc<Window>,
    monitor: PerfMonitor,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Series(..)")
    }
}

impl Series {
    /// Records `value` (finite and non-negative; others are ignored).
    ///
    /// ```
    /// use std::time::Duration;
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// let series = perf.series("payload_bytes", &[]).unwrap();
    /// series.record(512.0);
    /// series.record(-1.0); // ignored
    /// assert_eq!(perf.stats("payload_bytes", Duration::from_secs(60)).unwrap().count, 1);
    /// ```
    pub fn record(&self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        let scaled = (value * SCALE).round() as u64;
        self.window
            .record(this_shard(), self.monitor.epoch(), scaled);
    }
}

fn summarize(h: &hdrhistogram::Histogram<u64>) -> Option<Stats> {
    if h.is_empty() {
        return None;
    }
    let v = |x: u64| x as f64 / SCALE;
    Some(Stats {
        count: h.len(),
        min: v(h.min()),
        max: v(h.max()),
        mean: h.mean() / SCALE,
        median: v(h.value_at_quantile(0.5)),
        p95: v(h.value_at_quantile(0.95)),
        p99: v(h.value_at_quantile(0.99)),
        std_dev: h.stdev() / SCALE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_monitor_refuses_new_series_without_the_write_lock() {
        let perf = PerfMonitor::builder().max_series(1).build();
        assert!(perf.series("a", &[]).is_some());
        // A reader holds the series (another thread recording, or a snapshot): a new
        // series past the cap must not wait for it.
        let reader = perf
            .inner
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let (done, finished) = std::sync::mpsc::channel();
        let other = perf.clone();
        std::thread::spawn(move || {
            let _ = done.send(other.series("b", &[("route", "/x")]).is_none());
        });
        let refused = finished.recv_timeout(Duration::from_secs(10));
        drop(reader);
        assert_eq!(
            refused,
            Ok(true),
            "a new series past the cap waited or was made"
        );
    }
}

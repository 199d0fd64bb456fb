//! A series map with a cardinality cap and an overflow series.

use std::cell::RefCell;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::thread::LocalKey;

use hashbrown::{Equivalent, HashMap};

/// Label sets of one family, at most `cap` of them. Past the cap every new label set goes
/// to one overflow series, the overflow is counted, and one warning is logged.
#[derive(Debug)]
pub(crate) struct CappedMap<K, V> {
    /// Tells this map from every other in the threads' [`RecentSeries`].
    id: u64,
    family: &'static str,
    cap: usize,
    map: RwLock<HashMap<K, V>>,
    overflow: V,
    overflowed: AtomicU64,
    warned: AtomicBool,
}

impl<K: Hash + Eq, V> CappedMap<K, V> {
    pub(crate) fn new(family: &'static str, cap: usize, overflow: V) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            family,
            cap,
            map: RwLock::new(HashMap::new()),
            overflow,
            overflowed: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the series for `key`, creating it (with `make`) if there is room, or on
    /// the overflow series. The common case takes one read lock and allocates nothing.
    ///
    /// A full map sends a new key to the overflow under the read lock: series are never
    /// removed, so a map that is full stays full. Past the cap (a cardinality attack sends
    /// a new label set with every request) no request takes the write lock, which would
    /// make every core wait, the attack's requests and everyone else's alike.
    #[inline]
    pub(crate) fn with<Q, R>(
        &self,
        key: &Q,
        make: impl FnOnce() -> (K, V),
        f: impl FnOnce(&V) -> R,
    ) -> R
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = map.get(key) {
                return f(v);
            }
            if map.len() >= self.cap {
                drop(map);
                return self.overflow_with(f);
            }
        }
        self.insert_slow(key, make, f)
    }

    /// Counts one overflow (warning once) and runs `f` on the overflow series.
    #[cold]
    fn overflow_with<R>(&self, f: impl FnOnce(&V) -> R) -> R {
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                family = self.family,
                cap = self.cap,
                "metric family reached its cardinality cap; new label sets go to the overflow series"
            );
        }
        f(&self.overflow)
    }

    #[cold]
    fn insert_slow<Q, R>(
        &self,
        key: &Q,
        make: impl FnOnce() -> (K, V),
        f: impl FnOnce(&V) -> R,
    ) -> R
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = map.get(key) {
            return f(v);
        }
        if map.len() >= self.cap {
            drop(map);
            return self.overflow_with(f);
        }
        let (k, v) = make();
        let v = map.entry(k).or_insert(v);
        f(v)
    }

    /// Read access for encoding.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, HashMap<K, V>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn overflow(&self) -> &V {
        &self.overflow
    }

    /// How many observations went to the overflow series because the cap was reached.
    pub(crate) fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    pub(crate) fn family(&self) -> &'static str {
        self.family
    }
}

/// Series a thread keeps in front of the maps of one kind.
const RECENT_SERIES: usize = 8;

/// The text of a series' key that [`RecentSeries`] compares (the rest of the key is a
/// small tag the caller packs).
pub(crate) trait SeriesText {
    fn series_text(&self) -> &str;
}

/// A thread's last [`RECENT_SERIES`] series of one kind, in front of their maps, replaced
/// round robin. Series are never removed from a [`CappedMap`], so a cached series is the
/// one its map holds; an entry keeps its series alive after the map is dropped, until the
/// thread replaces it.
pub(crate) struct RecentSeries<V> {
    entries: [Option<RecentEntry<V>>; RECENT_SERIES],
    next: usize,
}

struct RecentEntry<V> {
    map: u64,
    tag: u32,
    series: Arc<V>,
}

impl<V> RecentSeries<V> {
    pub(crate) const fn new() -> Self {
        Self {
            entries: [const { None }; RECENT_SERIES],
            next: 0,
        }
    }
}

impl<V: SeriesText> RecentSeries<V> {
    fn find(&self, map: u64, tag: u32, text: &str) -> Option<&V> {
        self.entries.iter().flatten().find_map(|e| {
            (e.map == map && e.tag == tag && e.series.series_text() == text).then_some(&*e.series)
        })
    }

    fn push(&mut self, entry: RecentEntry<V>) {
        self.entries[self.next] = Some(entry);
        self.next = (self.next + 1) % RECENT_SERIES;
    }
}

impl<K: Hash + Eq, V: SeriesText> CappedMap<K, Arc<V>> {
    /// [`with`](Self::with), asking the thread's recent series first: the common case then
    /// takes no lock, hashes nothing, and writes no cache line that every core shares (the
    /// read lock's reader count is one). `tag` and `text` must tell keys apart exactly as
    /// `key` does. The overflow series is never cached, so every overflow is counted; a
    /// thread being torn down, or a re-entrant call, goes to the map.
    #[inline]
    pub(crate) fn with_recent<Q, R>(
        &self,
        recent: &'static LocalKey<RefCell<RecentSeries<V>>>,
        (tag, text, key): (u32, &str, &Q),
        make: impl FnOnce() -> (K, Arc<V>),
        f: impl Fn(&V) -> R,
    ) -> R
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let cached = recent.try_with(|r| {
            let r = r.try_borrow().ok()?;
            r.find(self.id, tag, text).map(&f)
        });
        if let Ok(Some(answer)) = cached {
            return answer;
        }
        let (series, answer) = self.with(key, make, |s| (s.clone(), f(s)));
        if !Arc::ptr_eq(&series, &self.overflow) {
            let _ = recent.try_with(|r| {
                if let Ok(mut r) = r.try_borrow_mut() {
                    r.push(RecentEntry {
                        map: self.id,
                        tag,
                        series,
                    });
                }
            });
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_sends_new_keys_to_overflow() {
        let m: CappedMap<u32, AtomicU64> = CappedMap::new("t", 3, AtomicU64::new(0));
        for k in 0..10u32 {
            m.with(
                &k,
                || (k, AtomicU64::new(0)),
                |v| v.fetch_add(1, Ordering::Relaxed),
            );
        }
        assert_eq!(m.read().len(), 3);
        assert_eq!(m.overflow().load(Ordering::Relaxed), 7);
        assert_eq!(m.overflowed(), 7);
        // Existing keys still resolve to their own series.
        m.with(
            &1,
            || unreachable!("exists"),
            |v| v.fetch_add(1, Ordering::Relaxed),
        );
        assert_eq!(m.read()[&1].load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_map_overflows_without_the_write_lock() {
        let m = Arc::new(CappedMap::<u32, AtomicU64>::new("t", 1, AtomicU64::new(0)));
        m.with(&0, || (0, AtomicU64::new(0)), |_| ());
        // A reader holds the map (a scrape encoding it, or a request on another core):
        // a new key past the cap must not wait for it.
        let reader = m.read();
        let (done, finished) = std::sync::mpsc::channel();
        let writer = Arc::clone(&m);
        std::thread::spawn(move || {
            writer.with(
                &1,
                || unreachable!("the map is full"),
                |v| v.fetch_add(1, Ordering::Relaxed),
            );
            let _ = done.send(());
        });
        let waited = finished.recv_timeout(std::time::Duration::from_secs(10));
        drop(reader);
        assert!(waited.is_ok(), "an overflow waited for the write lock");
        assert_eq!(m.overflowed(), 1);
        assert_eq!(m.overflow().load(Ordering::Relaxed), 1);
    }

    struct Named(&'static str, AtomicU64);

    impl SeriesText for Named {
        fn series_text(&self) -> &str {
            self.0
        }
    }

    thread_local! {
        static RECENT: RefCell<RecentSeries<Named>> = const { RefCell::new(RecentSeries::new()) };
    }

    type Map = CappedMap<(u32, &'static str), Arc<Named>>;

    fn hit(m: &Map, tag: u32, text: &'static str) {
        m.with_recent(
            &RECENT,
            (tag, text, &(tag, text)),
            || ((tag, text), Arc::new(Named(text, AtomicU64::new(0)))),
            |s| s.1.fetch_add(1, Ordering::Relaxed),
        );
    }

    fn count(m: &Map, tag: u32, text: &'static str) -> u64 {
        m.read()[&(tag, text)].1.load(Ordering::Relaxed)
    }

    #[test]
    fn recent_series_are_the_maps_own_and_never_the_overflow() {
        // The overflow series answers to the text of the key sent to it, so a cached
        // overflow would be found again (and the overflow no longer counted).
        let a: Map = CappedMap::new("a", 2, Arc::new(Named("/y", AtomicU64::new(0))));
        let b: Map = CappedMap::new("b", 2, Arc::new(Named("_overflow", AtomicU64::new(0))));
        for _ in 0..3 {
            hit(&a, 1, "/x");
            hit(&a, 2, "/x");
            hit(&b, 1, "/x");
            // Past the cap: the overflow, counted every time.
            hit(&a, 1, "/y");
        }
        assert_eq!(count(&a, 1, "/x"), 3);
        assert_eq!(count(&a, 2, "/x"), 3);
        assert_eq!(count(&b, 1, "/x"), 3);
        assert_eq!(a.overflow().1.load(Ordering::Relaxed), 3);
        assert_eq!(a.overflowed(), 3);
        assert_eq!(b.overflowed(), 0);
        // More keys than a thread keeps: the evicted ones are found in the map again.
        let c: Map = CappedMap::new("c", 100, Arc::new(Named("_overflow", AtomicU64::new(0))));
        const TEXTS: [&str; 12] = [
            "/0", "/1", "/2", "/3", "/4", "/5", "/6", "/7", "/8", "/9", "/10", "/11",
        ];
        for _ in 0..2 {
            for t in TEXTS {
                hit(&c, 0, t);
            }
        }
        assert!(TEXTS.iter().all(|t| count(&c, 0, t) == 2));
        assert_eq!(c.read().len(), TEXTS.len());
    }
}

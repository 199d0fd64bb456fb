//! A series map with a cardinality cap and an overflow series.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use hashbrown::{Equivalent, HashMap};

/// Label sets of one family, at most `cap` of them. Past the cap every new label set goes
/// to one overflow series, the overflow is counted, and one warning is logged.
#[derive(Debug)]
pub(crate) struct CappedMap<K, V> {
    family: &'static str,
    cap: usize,
    map: RwLock<HashMap<K, V>>,
    overflow: V,
    overflowed: AtomicU64,
    warned: AtomicBool,
}

impl<K: Hash + Eq, V> CappedMap<K, V> {
    pub(crate) fn new(family: &'static str, cap: usize, overflow: V) -> Self {
        Self {
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
        }
        self.insert_slow(key, make, f)
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
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    family = self.family,
                    cap = self.cap,
                    "metric family reached its cardinality cap; new label sets go to the overflow series"
                );
            }
            return f(&self.overflow);
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
}

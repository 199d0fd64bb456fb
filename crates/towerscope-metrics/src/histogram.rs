//! A lock-free histogram: one atomic per bucket and an atomic sum.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ConfigError;

/// Histogram bucket upper bounds, validated once and shared by every series of a family.
///
/// ```
/// use towerscope_metrics::Buckets;
/// let b = Buckets::new([0.1, 0.5, 1.0]).unwrap();
/// assert_eq!(b.bounds(), &[0.1, 0.5, 1.0]);
/// assert!(Buckets::new([1.0, 0.5]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    bounds: Arc<[f64]>,
    rendered: Arc<[Box<str>]>,
}

impl Buckets {
    /// The OpenTelemetry HTTP semantic conventions' boundaries for
    /// `http.server.request.duration`, in seconds (the same as the Python client's defaults).
    ///
    /// ```
    /// use towerscope_metrics::Buckets;
    /// assert_eq!(Buckets::HTTP_DURATION_SECONDS.first(), Some(&0.005));
    /// assert_eq!(Buckets::HTTP_DURATION_SECONDS.last(), Some(&10.0));
    /// ```
    pub const HTTP_DURATION_SECONDS: [f64; 14] = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];

    /// Boundaries for body sizes in bytes: powers of four from 64 B to 64 MiB.
    ///
    /// ```
    /// use towerscope_metrics::Buckets;
    /// assert!(Buckets::BODY_SIZE_BYTES.windows(2).all(|w| w[1] == w[0] * 4.0));
    /// ```
    pub const BODY_SIZE_BYTES: [f64; 11] = [
        64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
        67108864.0,
    ];

    /// Validated buckets: finite, strictly increasing, at least one, at most 64. `+Inf` is
    /// implied and must not be given.
    ///
    /// ```
    /// use towerscope_metrics::{Buckets, ConfigError};
    /// // The guide's order-value buckets.
    /// let orders = Buckets::new([5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]).unwrap();
    /// assert_eq!(orders.bounds().len(), 8);
    /// assert!(matches!(Buckets::new([]), Err(ConfigError::Buckets(_))));
    /// assert!(matches!(Buckets::new([1.0, f64::INFINITY]), Err(ConfigError::Buckets(_))));
    /// assert!(matches!(Buckets::new([1.0, 1.0]), Err(ConfigError::Buckets(_))));
    /// assert!(Buckets::new((1..=64).map(f64::from)).is_ok());
    /// assert!(matches!(Buckets::new((1..=65).map(f64::from)), Err(ConfigError::Buckets(_))));
    /// ```
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Result<Self, ConfigError> {
        let bounds: Vec<f64> = bounds.into_iter().collect();
        if bounds.is_empty() || bounds.len() >= MAX_BUCKETS {
            return Err(ConfigError::Buckets("between 1 and 64 bounds are required"));
        }
        if bounds.iter().any(|b| !b.is_finite()) {
            return Err(ConfigError::Buckets(
                "bounds must be finite (+Inf is implied)",
            ));
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ConfigError::Buckets("bounds must be strictly increasing"));
        }
        let mut rendered: Vec<Box<str>> = bounds
            .iter()
            .map(|b| crate::text::render_f64(*b).into_boxed_str())
            .collect();
        rendered.push("+Inf".into());
        Ok(Self {
            bounds: bounds.into(),
            rendered: rendered.into(),
        })
    }

    /// The upper bounds, without `+Inf`.
    ///
    /// ```
    /// let b = towerscope_metrics::Buckets::new([0.1, 0.5, 1.0]).unwrap();
    /// assert_eq!(b.bounds(), [0.1, 0.5, 1.0]); // `+Inf` is implied, not listed
    /// ```
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// The `le` label values, `+Inf` last.
    pub(crate) fn rendered(&self) -> &[Box<str>] {
        &self.rendered
    }

    pub(crate) fn http_duration() -> Self {
        Self::new(Self::HTTP_DURATION_SECONDS).unwrap_or_else(|_| unreachable!("constant is valid"))
    }

    pub(crate) fn body_size() -> Self {
        Self::new(Self::BODY_SIZE_BYTES).unwrap_or_else(|_| unreachable!("constant is valid"))
    }

    /// Index of the bucket a value falls into (`bounds.len()` for `+Inf`).
    #[inline]
    pub(crate) fn index(&self, v: f64) -> usize {
        // Few bounds: a linear scan beats a binary search and is branch-predictable for the
        // common fast requests. NaN lands in +Inf.
        self.bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len())
    }
}

/// The per-series state of a histogram.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

/// Most buckets a histogram may have, `+Inf` included.
pub(crate) const MAX_BUCKETS: usize = 65;

/// A reading of a histogram: bucket counts (not cumulative) and sum, on the stack so that
/// encoding allocates nothing per series.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistogramSnapshot {
    counts: [u64; MAX_BUCKETS],
    len: usize,
    pub(crate) sum: f64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            counts: [0; MAX_BUCKETS],
            len: 0,
            sum: 0.0,
        }
    }
}

impl HistogramSnapshot {
    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts[..self.len]
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts().iter().sum()
    }

    pub(crate) fn merge(&mut self, other: &HistogramSnapshot) {
        self.len = self.len.max(other.len);
        for (a, b) in self.counts.iter_mut().zip(other.counts()) {
            *a += b;
        }
        self.sum += other.sum;
    }
}

impl AtomicHistogram {
    pub(crate) fn new(buckets: &Buckets) -> Self {
        Self {
            counts: (0..=buckets.bounds().len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records `v` into bucket `index` (from [`Buckets::index`]).
    #[inline]
    pub(crate) fn observe_at(&self, index: usize, v: f64) {
        if let Some(c) = self.counts.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if v != 0.0 {
            // The CAS loop only spins when two threads add at the same instant.
            let _ = self
                .sum_bits
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    Some((f64::from_bits(bits) + v).to_bits())
                });
        }
    }

    /// Reads the histogram. The total count is derived from the buckets, so `_count` always
    /// equals the `+Inf` bucket.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut snap = HistogramSnapshot {
            len: self.counts.len(),
            ..HistogramSnapshot::default()
        };
        for (dst, src) in snap.counts.iter_mut().zip(self.counts.iter()) {
            *dst = src.load(Ordering::Relaxed);
        }
        snap.sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let b = Buckets::new([1.0, 2.0]).expect("valid");
        assert_eq!(b.index(0.5), 0);
        assert_eq!(b.index(1.0), 0, "le is inclusive");
        assert_eq!(b.index(1.5), 1);
        assert_eq!(b.index(3.0), 2);
        assert_eq!(b.index(f64::NAN), 2);
        let h = AtomicHistogram::new(&b);
        for v in [0.5, 1.5, 3.0, 3.0] {
            h.observe_at(b.index(v), v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts(), [1, 1, 2]);
        assert_eq!(s.count(), 4);
        assert!((s.sum - 8.0).abs() < 1e-12);
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let b = Buckets::http_duration();
        let h = Arc::new(AtomicHistogram::new(&b));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        let v = f64::from(i % 100) / 1000.0;
                        h.observe_at(b.index(v), v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 40_000);
        // sum of (0..100)/1000 = 4.95 per 100, 100 rounds per thread, 4 threads.
        assert!((s.sum - 4.95 * 100.0 * 4.0).abs() < 1e-6, "{}", s.sum);
    }

    #[test]
    fn invalid_buckets_are_rejected() {
        assert!(Buckets::new([]).is_err());
        assert!(Buckets::new([f64::INFINITY]).is_err());
        assert!(Buckets::new([f64::NAN]).is_err());
        assert!(Buckets::new([1.0, 1.0]).is_err());
        assert!(Buckets::new((0..65).map(f64::from)).is_err());
    }
}

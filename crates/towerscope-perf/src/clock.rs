//! Time sources: the monotonic clock, and a manual one for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where a [`PerfMonitor`](crate::PerfMonitor) reads the time: nanoseconds since an
/// arbitrary origin, never going backwards.
///
/// ```
/// use std::time::Duration;
/// use towerscope_perf::{ManualClock, PerfMonitor};
/// // Tests drive the windows by hand.
/// let clock = ManualClock::new();
/// let perf = PerfMonitor::builder().clock(clock.clone()).build();
/// perf.record("checkout", 0.120, &[]);
/// clock.advance(Duration::from_secs(600));
/// assert!(perf.stats("checkout", Duration::from_secs(60)).is_none()); // out of the window
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the clock's origin.
    fn now_nanos(&self) -> u64;
}

/// The coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux, through `coarsetime`):
/// a few milliseconds of resolution, which is plenty to pick a time slot, for a fraction of
/// the cost of a precise reading on every record.
///
/// ```
/// use towerscope_perf::{Clock, MonotonicClock};
/// let c = MonotonicClock::new();
/// assert!(c.now_nanos() <= c.now_nanos());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: coarsetime::Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    ///
    /// ```
    /// use towerscope_perf::{Clock, MonotonicClock};
    /// let clock = MonotonicClock::new();
    /// std::thread::sleep(std::time::Duration::from_millis(20));
    /// // Nanoseconds since `new`, at the coarse clock's resolution (a few milliseconds).
    /// assert!(clock.now_nanos() > 0);
    /// ```
    pub fn new() -> Self {
        Self {
            origin: coarsetime::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_nanos(&self) -> u64 {
        // `now()` would also write coarsetime's process-wide cached instant: a cache line every
        // recording thread would fight over.
        coarsetime::Instant::now_without_cache_update()
            .duration_since(self.origin)
            .as_nanos()
    }
}

/// A clock that moves only when told to (window expiry in tests).
///
/// ```
/// use std::time::Duration;
/// use towerscope_perf::{Clock, ManualClock};
/// let c = ManualClock::new();
/// c.advance(Duration::from_secs(3));
/// assert_eq!(c.now_nanos(), 3_000_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_perf::{ManualClock, PerfMonitor};
    /// let clock = ManualClock::new();
    /// let perf = PerfMonitor::builder().clock(clock.clone()).build();
    /// perf.record("checkout", 0.25, &[]);
    /// assert_eq!(perf.stats("checkout", Duration::from_secs(60)).unwrap().count, 1);
    /// clock.advance(Duration::from_secs(3600)); // an hour later the value is out of the window
    /// assert!(perf.stats("checkout", Duration::from_secs(60)).is_none());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward (stopping at `u64::MAX` nanoseconds).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_perf::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// let shared = clock.clone(); // clones move together
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(shared.now_nanos(), 1_500_000_000);
    /// clock.advance(Duration::MAX); // saturates rather than wrapping
    /// assert!(shared.now_nanos() > 1_500_000_000);
    /// ```
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Saturating: a wrapping add would move the clock backwards.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(nanos))
            });
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

//! Timing helpers: a guard and a future wrapper.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;

use crate::PerfMonitor;

/// Records the seconds from its creation until it is dropped; see [`PerfMonitor::timer`].
///
/// ```
/// let perf = towerscope_perf::PerfMonitor::new();
/// {
///     let _t = perf.timer("render");
/// }
/// assert_eq!(perf.stats("render", std::time::Duration::from_secs(60)).unwrap().count, 1);
/// ```
#[must_use = "the timer records when dropped; bind it to a variable"]
pub struct Timer {
    perf: PerfMonitor,
    name: &'static str,
    tags: &'static [(&'static str, &'static str)],
    start: Instant,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Timer {
    pub(crate) fn new(
        perf: PerfMonitor,
        name: &'static str,
        tags: &'static [(&'static str, &'static str)],
    ) -> Self {
        Self {
            perf,
            name,
            tags,
            start: Instant::now(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.perf
            .record(self.name, self.start.elapsed().as_secs_f64(), self.tags);
    }
}

pin_project! {
    /// A future whose run time is recorded; see [`PerfMonitor::time`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let perf = towerscope_perf::PerfMonitor::new();
    /// let rows = perf.time("load_orders", async { 42 }).await;
    /// assert_eq!(rows, 42);
    /// assert_eq!(perf.stats("load_orders", Duration::from_secs(60)).unwrap().count, 1);
    /// # });
    /// ```
    pub struct Timed<F> {
        #[pin]
        inner: F,
        perf: PerfMonitor,
        name: &'static str,
        start: Option<Instant>,
    }
}

impl<F> Timed<F> {
    pub(crate) fn new(perf: PerfMonitor, name: &'static str, inner: F) -> Self {
        Self {
            inner,
            perf,
            name,
            start: None,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let start = *this.start.get_or_insert_with(Instant::now);
        let out = ready!(this.inner.poll(cx));
        this.perf
            .record(this.name, start.elapsed().as_secs_f64(), &[]);
        Poll::Ready(out)
    }
}

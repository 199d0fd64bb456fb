//! The process-wide monitor used by `#[timed]`.

use std::sync::OnceLock;

use crate::PerfMonitor;

static GLOBAL: OnceLock<PerfMonitor> = OnceLock::new();

/// Sets the monitor `#[timed]` functions record into. Only the first call takes effect;
/// returns whether this one did.
///
/// ```
/// let perf = towerscope_perf::PerfMonitor::new();
/// let _ = towerscope_perf::set_global(perf);
/// ```
pub fn set_global(perf: PerfMonitor) -> bool {
    GLOBAL.set(perf).is_ok()
}

/// The process-wide monitor, if one was set. `#[timed]` functions record nothing before.
///
/// ```
/// let _maybe = towerscope_perf::global();
/// ```
pub fn global() -> Option<&'static PerfMonitor> {
    GLOBAL.get()
}

//! # towerscope-perf
//!
//! The guide's in-process performance monitor, with bounded memory and without a global
//! lock: record values under a name, ask for count, min, max, mean, median, p95, p99 and
//! standard deviation over the last N minutes.
//!
//! ```
//! use std::time::Duration;
//! use towerscope_perf::{PerfMonitor, timed};
//!
//! let perf = PerfMonitor::new();
//! perf.record("cache_lookup_seconds", 0.0004, &[("cache", "users")]);
//! {
//!     let _t = perf.timer("checkout");
//! }
//! let p95 = perf.stats("checkout", Duration::from_secs(300)).map(|s| s.p95);
//!
//! // `#[timed]` records into the process-wide monitor, once one is set.
//! towerscope_perf::set_global(perf.clone());
//! #[timed("user_service.get_profile")]
//! fn get_profile(id: u64) -> u64 { id }
//! get_profile(7);
//! assert_eq!(perf.stats("user_service.get_profile", Duration::from_secs(60)).unwrap().count, 1);
//! ```
//!
//! ## Accuracy and memory
//! Each series keeps, per shard, a ring of `horizon / slot` HDR histograms with two
//! significant digits: percentiles, min, max and mean are within 1% of the exact values
//! (tested against sorting). Histograms grow only over the range of values seen. At most
//! `max_series` series exist; later names go to `_overflow`.
//!
//! ## Windows
//! A window covers whole slots (default 10 s) back from the current one, so "the last 5
//! minutes" means the current slot and the 29 before it. Windows longer than the horizon
//! (default 5 minutes) are cut to it.

mod clock;
mod db;
mod global;
mod monitor;
mod timer;
mod window;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use db::{DbMonitor, statement_kind};
pub use global::{global, set_global};
pub use monitor::{PerfMonitor, PerfMonitorBuilder, Series, Stats};
pub use timer::{Timed, Timer};
pub use towerscope_perf_macros::timed;

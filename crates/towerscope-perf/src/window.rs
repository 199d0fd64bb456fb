//! One series: shards of a ring of time slots, each slot an HDR histogram.

use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

/// Values are stored as integers of this many units per 1.0 (micro-units): a duration in
/// seconds keeps microsecond resolution, a row count stays exact.
pub(crate) const SCALE: f64 = 1e6;

/// Two significant digits: every stored value is within 1% of the value recorded.
pub(crate) const SIGFIG: u8 = 2;

pub(crate) fn new_histogram() -> Histogram<u64> {
    // `new` auto-resizes: memory follows the range of values actually seen.
    Histogram::new(SIGFIG).unwrap_or_else(|_| unreachable!("2 significant digits is valid"))
}

struct Slot {
    /// Which time slot (now / slot length) this holds; `u64::MAX` when empty.
    epoch: u64,
    hist: Histogram<u64>,
}

/// A ring of slots covering the monitor's horizon.
struct Ring {
    slots: Vec<Slot>,
}

impl Ring {
    fn new(n: usize) -> Self {
        Self {
            slots: (0..n)
                .map(|_| Slot {
                    epoch: u64::MAX,
                    hist: new_histogram(),
                })
                .collect(),
        }
    }
}

/// A shard on its own cache lines, so that threads recording into neighbouring shards do
/// not invalidate each other's lines (two adjacent prefetch lines: 128 bytes).
#[repr(align(128))]
struct Padded(Mutex<Ring>);

/// One series, split into shards so that threads recording at once rarely share a lock.
pub(crate) struct Window {
    shards: Box<[Padded]>,
}

impl Window {
    pub(crate) fn new(shards: usize, slots: usize) -> Self {
        Self {
            shards: (0..shards)
                .map(|_| Padded(Mutex::new(Ring::new(slots))))
                .collect(),
        }
    }

    /// Records a scaled value into the slot of `epoch`, in the shard `shard`.
    pub(crate) fn record(&self, shard: usize, epoch: u64, value: u64) {
        let shard = &self.shards[shard % self.shards.len()].0;
        let mut ring = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let n = ring.slots.len() as u64;
        let slot = &mut ring.slots[(epoch % n) as usize];
        if slot.epoch != epoch {
            slot.hist.reset();
            slot.epoch = epoch;
        }
        // `record` grows the histogram's range; saturate only if it cannot grow.
        if slot.hist.record(value).is_err() {
            slot.hist.saturating_record(value);
        }
    }

    /// Merges the slots of epochs `first..=last` of every shard into `into`.
    pub(crate) fn merge_into(&self, first: u64, last: u64, into: &mut Histogram<u64>) {
        for shard in self.shards.iter() {
            let ring = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in &ring.slots {
                if slot.epoch != u64::MAX && slot.epoch >= first && slot.epoch <= last {
                    // Both auto-resize; adding cannot fail for lack of range.
                    let _ = into.add(&slot.hist);
                }
            }
        }
    }
}

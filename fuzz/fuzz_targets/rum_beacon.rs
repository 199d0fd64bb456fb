//! RUM beacons: any body is parsed or refused without panic, and what parses is within the
//! event limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use towerscope_rum::{MAX_EVENTS, parse_beacon};

fuzz_target!(|data: &[u8]| {
    if let Ok(beacon) = parse_beacon(data) {
        assert!(beacon.events.len() <= MAX_EVENTS);
    }
});

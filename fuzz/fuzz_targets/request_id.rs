//! Inbound request IDs: any header bytes are checked without panic, an accepted ID is
//! visible ASCII within the length limit, and `request_id_from` agrees with the rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use towerscope_request_id::{IdRules, request_id_from};

fuzz_target!(|data: &[u8]| {
    let rules = IdRules::default();
    if rules.check(data).is_ok() {
        assert!(data.iter().all(u8::is_ascii_graphic));
        assert!(!data.is_empty() && data.len() <= 128 * 8);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(id) = request_id_from(text) {
            assert_eq!(id.as_str(), text);
        }
    }
});

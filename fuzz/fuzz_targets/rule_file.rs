//! Alert rule files, YAML and TOML: any text gives rules or an error naming the file, never
//! a panic, and never more rules than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use towerscope_alert::{MAX_RULES, parse_rules};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["fuzz.yaml", "fuzz.toml"] {
        match parse_rules(name, text) {
            Ok(rules) => assert!(rules.len() <= MAX_RULES),
            Err(e) => assert!(e.to_string().contains(name)),
        }
    }
});

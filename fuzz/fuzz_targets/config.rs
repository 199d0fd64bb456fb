//! towerscope configuration files: any text gives a config or an error that names a key and
//! the file, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use towerscope::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::from_sources(Some(("fuzz.toml", text)), |_| None) {
        assert!(!e.key().is_empty());
        assert!(e.to_string().starts_with("fuzz.toml: "));
    }
});

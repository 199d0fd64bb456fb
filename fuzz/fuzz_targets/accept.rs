//! `Accept` negotiation for /metrics: any header value gives one of the two formats, and
//! asking for the chosen format's content type chooses it again.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use towerscope_metrics::negotiate_format;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let format = negotiate_format(Some(&value));
    let again = HeaderValue::from_static(format.content_type());
    assert_eq!(negotiate_format(Some(&again)), format);
});

//! traceparent, tracestate, baggage and B3 parsing on arbitrary header values: no panic,
//! bounded output, and whatever parses writes back to something that parses the same.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use towerscope_trace::{MAX_LEN, TraceParent, TraceState, extract_b3, parse_baggage};

fuzz_target!(|data: &[u8]| {
    // The input is split into header values at newlines; each header name gets them all.
    let mut headers = HeaderMap::new();
    for (i, line) in data.split(|b| *b == b'\n').enumerate().take(64) {
        let Ok(value) = HeaderValue::from_bytes(line) else {
            continue;
        };
        let name = ["traceparent", "tracestate", "baggage", "b3"][i % 4];
        headers.append(name, value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(tp) = TraceParent::parse(text) {
            assert_eq!(TraceParent::parse(&tp.to_string()).map(|p| p.trace_id), Ok(tp.trace_id));
        }
        let state = TraceState::parse(text);
        assert!(state.to_string().len() <= MAX_LEN);
        assert_eq!(TraceState::parse(&state.to_string()).to_string(), state.to_string());
    }
    let _ = TraceParent::from_headers(&headers);
    let state = TraceState::from_headers(&headers);
    assert!(state.to_string().len() <= MAX_LEN);
    let baggage = parse_baggage(&headers);
    assert!(baggage.len() <= towerscope_trace::MAX_BAGGAGE_MEMBERS);
    let _ = extract_b3(&headers);
});

//! Property tests for the other inbound propagation headers: `baggage` and B3. Any input is
//! parsed without panic, the baggage stays within its limits, and what is written reads
//! back the same.

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::TraceContextExt as _;
use proptest::prelude::*;
use towerscope_trace::{MAX_BAGGAGE_LEN, MAX_BAGGAGE_MEMBERS, extract_b3, parse_baggage};

fn headers(name: &'static str, values: &[Vec<u8>]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(name, v);
        }
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn baggage_is_bounded_whatever_arrives(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..6)
    ) {
        let baggage = parse_baggage(&headers("baggage", &values));
        prop_assert!(baggage.len() <= MAX_BAGGAGE_MEMBERS);
        let size: usize = baggage.iter().map(|(k, (v, _))| k.as_str().len() + v.as_str().len()).sum();
        prop_assert!(size <= MAX_BAGGAGE_LEN, "{size}");
    }

    #[test]
    fn well_formed_baggage_round_trips(
        members in proptest::collection::btree_map("[a-z][a-z0-9_.-]{0,10}", "[A-Za-z0-9 /=%é]{0,12}", 0..10)
    ) {
        let header: Vec<String> = members
            .iter()
            .map(|(k, v)| {
                let encoded: String = percent_encode(v);
                format!("{k}={encoded}")
            })
            .collect();
        let baggage = parse_baggage(&headers("baggage", &[header.join(",").into_bytes()]));
        prop_assert_eq!(baggage.len(), members.len());
        for (k, v) in &members {
            let got = baggage.get(k.as_str()).map(|v| v.as_str().to_owned());
            prop_assert_eq!(got.as_deref(), Some(v.as_str()), "{}", k);
        }
    }

    #[test]
    fn b3_never_panics_and_accepts_only_valid_ids(
        single in proptest::collection::vec(any::<u8>(), 0..120),
        trace in "[0-9a-fA-F]{0,40}",
        span in "[0-9a-fA-F]{0,20}",
        sampled in "[0-9a-z]{0,2}",
    ) {
        let mut h = headers("b3", &[single]);
        let _ = extract_b3(&h);
        h.clear();
        for (name, value) in [("x-b3-traceid", &trace), ("x-b3-spanid", &span), ("x-b3-sampled", &sampled)] {
            h.insert(name, HeaderValue::from_str(value).expect("ascii"));
        }
        if let Some(cx) = extract_b3(&h) {
            prop_assert!(cx.is_valid());
            prop_assert!(cx.is_remote());
            let _ = opentelemetry::Context::new().with_remote_span_context(cx);
        }
    }
}

/// Percent-encodes what a baggage value may not hold as is.
fn percent_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

//! W3C Trace Context parsing: every bad-input case of the spec and the test suite, and
//! property tests (no panic, bounded output, round trips).

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use towerscope_trace::{TraceParent, TraceParentError, TraceState};

const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn valid_parents_and_their_flags() {
    let tp = TraceParent::parse(VALID).expect("valid");
    assert_eq!(tp.version, 0);
    assert!(tp.sampled() && !tp.random());
    assert_eq!(tp.to_string(), VALID);
    let unsampled = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
        .expect("valid");
    assert!(!unsampled.sampled());
    // Optional white space around the value is tolerated.
    assert!(TraceParent::parse(&format!(" \t{VALID} ")).is_ok());
}

#[test]
fn every_bad_traceparent_is_refused() {
    use TraceParentError::*;
    let cases: &[(&str, TraceParentError)] = &[
        (
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Version,
        ),
        (
            "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Version,
        ),
        (
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            ZeroTraceId,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            ZeroParentId,
        ),
        (
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            Hex,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",
            Hex,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0G",
            Hex,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            Format,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319cc-b7ad6b7169203331-01",
            Format,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            Format,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            Format,
        ),
        (
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
            Format,
        ),
        ("", Format),
        ("00", Format),
    ];
    for (value, why) in cases {
        assert_eq!(TraceParent::parse(value), Err(*why), "{value:?}");
    }
}

#[test]
fn future_versions_are_read_leniently() {
    let tp = TraceParent::parse(
        "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff-what-the-future-holds",
    )
    .expect("future version with extra fields");
    assert_eq!(tp.version, 0xcc);
    assert_eq!(
        tp.flags, 0x03,
        "unknown flags of a future version are dropped"
    );
    assert_eq!(
        tp.to_string(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"
    );
    // Extra data must follow a dash.
    assert!(
        TraceParent::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x").is_err()
    );
    assert!(TraceParent::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_ok());
}

#[test]
fn repeated_traceparent_headers_start_a_new_trace() {
    let mut h = HeaderMap::new();
    h.append("traceparent", HeaderValue::from_static(VALID));
    h.append("traceparent", HeaderValue::from_static(VALID));
    assert_eq!(
        TraceParent::from_headers(&h),
        Err(TraceParentError::Duplicate)
    );
    let mut h = HeaderMap::new();
    h.append(
        "traceparent",
        HeaderValue::from_bytes(b"00-\xff").expect("obs-text"),
    );
    assert!(TraceParent::from_headers(&h).is_err());
}

#[test]
fn tracestate_members_are_validated_and_bounded() {
    let ts = TraceState::parse("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    assert_eq!(ts.to_string(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    // Invalid members are dropped, valid ones kept.
    // (The space in "trail=6 ," is white space around the member, which the list allows.)
    let ts = TraceState::parse(
        "UPPER=1,ok=2,bad key=3,novalue=,=x,ten@ant=4,t@toolongsystemid1=5,trail=6 ,empty,,",
    );
    assert_eq!(ts.to_string(), "ok=2,ten@ant=4,trail=6");
    // A repeated key discards the list.
    assert!(TraceState::parse("a=1,b=2,a=3").is_empty());
    // 32 members are kept, 33 discard the list.
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(TraceState::parse(&list(32)).members().count(), 32);
    assert!(TraceState::parse(&list(33)).is_empty());
    // Written back in at most 512 characters, long members dropped first.
    let mut long = (0..10)
        .map(|i| format!("m{i}={}", "x".repeat(40)))
        .collect::<Vec<_>>();
    long.insert(3, format!("big={}", "y".repeat(200)));
    let ts = TraceState::parse(&long.join(","));
    let out = ts.to_string();
    assert!(out.len() <= 512, "{}", out.len());
    assert!(!out.contains("big="), "the long member goes first");
    assert!(out.starts_with("m0="));
}

#[test]
fn tracestate_headers_are_joined() {
    let mut h = HeaderMap::new();
    h.append("tracestate", HeaderValue::from_static("a=1"));
    h.append("tracestate", HeaderValue::from_static("b=2,c=3"));
    assert_eq!(TraceState::from_headers(&h).to_string(), "a=1,b=2,c=3");
    // Repeated keys across headers are repeated keys.
    h.append("tracestate", HeaderValue::from_static("a=9"));
    assert!(TraceState::from_headers(&h).is_empty());
}

proptest! {
    #[test]
    fn traceparent_never_panics(s in "\\PC{0,80}") {
        let _ = TraceParent::parse(&s);
    }

    #[test]
    fn valid_traceparents_round_trip(trace in proptest::array::uniform16(any::<u8>()),
                                     parent in proptest::array::uniform8(any::<u8>()),
                                     flags in any::<u8>()) {
        prop_assume!(trace != [0; 16] && parent != [0; 8]);
        let tp = TraceParent { version: 0, trace_id: trace, parent_id: parent, flags };
        prop_assert_eq!(TraceParent::parse(&tp.to_string()), Ok(tp));
    }

    #[test]
    fn tracestate_never_panics_and_stays_bounded(s in "[a-z0-9=,@ _*/-]{0,2000}") {
        let ts = TraceState::parse(&s);
        prop_assert!(ts.members().count() <= 32);
        prop_assert!(ts.to_string().len() <= 512);
        // What it writes, it reads back the same.
        let again = TraceState::parse(&ts.to_string());
        prop_assert_eq!(again.to_string(), ts.to_string());
    }
}

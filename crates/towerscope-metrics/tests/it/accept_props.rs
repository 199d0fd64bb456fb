//! Property tests for `Accept` and `Accept-Encoding` negotiation on `/metrics`: any header
//! value is answered (never a panic), the format agrees with its own content type, and an
//! explicit preference is honoured.

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Empty;
use prometheus_client::registry::Registry;
use proptest::prelude::*;
use tower::ServiceExt as _;
use towerscope_metrics::{Format, MetricsService, negotiate_format};

fn media_range() -> impl Strategy<Value = String> {
    let media = prop_oneof![
        Just("application/openmetrics-text".to_owned()),
        Just("text/plain".to_owned()),
        Just("*/*".to_owned()),
        Just("application/json".to_owned()),
        "[a-z*]{1,8}/[a-z*+.-]{1,12}",
    ];
    let params = proptest::collection::vec(
        prop_oneof![
            (0u32..=1000).prop_map(|q| format!("q={}.{:03}", q / 1000, q % 1000)),
            Just("version=1.0.0".to_owned()),
            Just("version=0.0.4".to_owned()),
            Just("charset=utf-8".to_owned()),
            "[a-z]{1,5}=[a-z0-9.\"]{0,6}",
        ],
        0..3,
    );
    (media, params).prop_map(|(m, p)| std::iter::once(m).chain(p).collect::<Vec<_>>().join(";"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_bytes_negotiate_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let _ = negotiate_format(Some(&value));
        }
    }

    #[test]
    fn well_formed_headers_negotiate_consistently(ranges in proptest::collection::vec(media_range(), 0..6)) {
        let header = ranges.join(", ");
        let value = HeaderValue::from_str(&header).expect("ascii");
        let format = negotiate_format(Some(&value));
        // Asking for exactly what was chosen chooses it again.
        let again = HeaderValue::from_static(format.content_type());
        prop_assert_eq!(negotiate_format(Some(&again)), format);
        // OpenMetrics only when it is asked for by name with q > 0.
        if format == Format::OpenMetrics {
            prop_assert!(header.contains("application/openmetrics-text"), "{}", header);
        }
    }

    #[test]
    fn a_clear_preference_wins(om_q in 1u32..=1000, plain_q in 0u32..=1000) {
        let q = |n: u32| format!("{}.{:03}", n / 1000, n % 1000);
        let header = format!(
            "text/plain;version=0.0.4;q={}, application/openmetrics-text;version=1.0.0;q={}",
            q(plain_q),
            q(om_q)
        );
        let format = negotiate_format(Some(&HeaderValue::from_str(&header).expect("ascii")));
        let want = if om_q >= plain_q { Format::OpenMetrics } else { Format::Prometheus };
        prop_assert_eq!(format, want, "{}", header);
    }

    #[test]
    fn the_service_answers_any_accept_headers(
        accept in proptest::collection::vec(proptest::collection::vec(32u8..127, 0..80), 0..3),
        encoding in proptest::collection::vec(32u8..127, 0..40),
    ) {
        let service = MetricsService::new(Registry::default());
        let mut req = Request::get("/metrics");
        for a in &accept {
            req = req.header("accept", HeaderValue::from_bytes(a).expect("visible ascii"));
        }
        req = req.header("accept-encoding", HeaderValue::from_bytes(&encoding).expect("visible ascii"));
        let req = req.body(Empty::<Bytes>::new()).expect("request");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let resp = runtime.block_on(service.oneshot(req)).expect("infallible");
        prop_assert_eq!(resp.status(), 200);
        let ct = resp.headers().get("content-type").expect("content type");
        prop_assert!(
            ct == Format::Prometheus.content_type() || ct == Format::OpenMetrics.content_type(),
            "{:?}", ct
        );
    }
}

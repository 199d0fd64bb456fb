//! Property tests for inbound request IDs: whatever arrives, the response carries a valid ID,
//! an invalid inbound value is never echoed, and valid ones round-trip unchanged.

use std::convert::Infallible;

use http::{HeaderValue, Request, Response};
use prometheus_client::registry::Registry;
use proptest::prelude::*;
use tower::{Layer as _, ServiceExt as _};
use towerscope_request_id::{IdRules, RequestId, RequestIdLayer, request_id_from};

fn respond(raw: &[Vec<u8>]) -> (Option<HeaderValue>, Option<String>) {
    let layer = RequestIdLayer::new(&mut Registry::default());
    let service = layer.layer(tower::service_fn(|req: Request<()>| async move {
        let mut resp = Response::new(http_body_util::Empty::<bytes::Bytes>::new());
        if let Some(id) = req.extensions().get::<RequestId>() {
            resp.headers_mut()
                .insert("x-seen", id.header_value().clone());
        }
        Ok::<_, Infallible>(resp)
    }));
    let mut req = Request::builder().uri("/");
    for value in raw {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            req = req.header("x-request-id", v);
        }
    }
    let req = req.body(()).expect("request");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let resp = runtime.block_on(service.oneshot(req)).expect("infallible");
    let header = resp.headers().get("x-request-id").cloned();
    let seen = resp
        .headers()
        .get("x-seen")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (header, seen)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_response_has_a_valid_id_and_bad_ones_are_not_echoed(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4)
    ) {
        let (header, seen) = respond(&values);
        let header = header.expect("an ID on every response");
        let rules = IdRules::default();
        prop_assert!(rules.check(header.as_bytes()).is_ok(), "{header:?}");
        prop_assert_eq!(seen.as_deref(), header.to_str().ok(), "handler and response agree");
        let valid: Vec<&Vec<u8>> = values
            .iter()
            .filter(|v| HeaderValue::from_bytes(v).is_ok())
            .collect();
        // One valid inbound ID is kept as it is; anything else gets a fresh one.
        if valid.len() == 1 && rules.check(valid[0]).is_ok() {
            prop_assert_eq!(header.as_bytes(), valid[0].as_slice());
        } else {
            for v in &valid {
                prop_assert_ne!(header.as_bytes(), v.as_slice());
            }
        }
    }

    #[test]
    fn valid_ids_round_trip(id in "[A-Za-z0-9._:-]{1,128}") {
        let (header, _) = respond(&[id.clone().into_bytes()]);
        prop_assert_eq!(header.as_ref().map(HeaderValue::as_bytes), Some(id.as_bytes()));
        let parsed = request_id_from(&id).expect("valid");
        prop_assert_eq!(parsed.as_str(), id.as_str());
    }

    #[test]
    fn request_id_from_never_panics_and_accepts_only_visible_ascii(text in "\\PC{0,200}") {
        if let Some(id) = request_id_from(&text) {
            prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(id.as_str(), text.as_str());
        }
    }
}

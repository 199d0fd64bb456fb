//! Per-request cost of `RequestIdLayer` against tower-http's `SetRequestIdLayer` +
//! `PropagateRequestIdLayer` (UUID v4, `x-request-id`), interleaved in one run.
//!
//! What it measures: one `GET /` with curl's three headers (`towerscope_bench::CURL_HEADERS`:
//! a real request's header map is never empty, so writing the ID into it allocates nothing)
//! through a plain tower service wrapped by each stack, to
//! the end of the collected body, with no tracing subscriber installed (so the request span
//! is disabled, as tower-http's layers create none). Both stacks read the inbound header,
//! make an ID, put it in the request (header and extensions) and copy it to the response.
//! What it leaves out: the span's cost under a subscriber (see `towerscope-log`'s
//! `access_log` bench, which runs the stack with the JSON subscriber).
//!
//! Two tower-http rows: tower-http asks uuid for `v4` only, so its users get one
//! `getrandom` call (a system call here) per ID. In this workspace uuid is built with
//! `fast-rng` (we enable it) and Cargo's feature unification hands tower-http's
//! `MakeRequestUuid` the same generator; the second row reproduces uuid's code path without
//! `fast-rng` (`getrandom::fill` of 16 bytes, version and variant bits, then tower-http's own
//! `to_string().parse()`), which is what a service with tower-http alone runs.
//!
//! Three reference rows: the floor (a constant put where both stacks put their ID); a
//! lower bound for any layer that does what the issue asks with its default generator: a
//! fresh UUID v7 `RequestId` into the request extensions and the response header, inside a
//! `request` span (no inbound header read, no request header written); and the same with
//! the cheapest v7 ID we could write (`cheapest_v7`: a non-cryptographic random source, no
//! counter, no validation, no reference count): what the first bound would cost with an
//! ID generator as cheap as we know how to make one.
//!
//! Run: `cargo bench -p towerscope-request-id --bench request_id`

use axum::body::Body;
use http::{Request, Response};
use prometheus_client::registry::Registry;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer,
};
use towerscope_bench::{CURL_HEADERS, Runner, Settings, runner_with_headers, table};
use towerscope_request_id::{RequestId, RequestIdLayer};

/// tower-http's `MakeRequestUuid` with uuid built as tower-http asks for it (`v4`, no
/// `fast-rng`): `Uuid::new_v4` is then `getrandom::fill` of 16 bytes with the version and
/// variant bits set (uuid 1.x `rng.rs`, `v4.rs`).
#[derive(Clone, Copy)]
struct MakeRequestUuidGetrandom;

impl MakeRequestId for MakeRequestUuidGetrandom {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<tower_http::request_id::RequestId> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        let uuid = uuid::Uuid::from_u128(
            u128::from_ne_bytes(bytes) & 0xFFFFFFFFFFFF4FFFBFFFFFFFFFFFFFFF
                | 0x40008000000000000000,
        );
        let value = uuid.to_string().parse().ok()?;
        Some(tower_http::request_id::RequestId::new(value))
    }
}

/// The cheapest UUID v7 text we could write, for the second lower bound: the request
/// clock's Unix time, a per-thread wyrand (not the cryptographic generator RFC 9562 asks
/// for), no per-thread counter, uuid's hex encoder, no allocation. The row puts the text
/// into the extensions as it is (no reference count to keep) and into one unvalidated
/// header value (one allocation).
fn cheapest_v7() -> [u8; 36] {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish(),
        );
    }
    let wyrand = || {
        STATE.with(|s| {
            let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            s.set(x);
            let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
            (t as u64) ^ ((t >> 64) as u64)
        })
    };
    let millis = towerscope_core::unix_now().as_millis() as u64;
    let hi = (millis << 16) | 0x7000 | (wyrand() & 0x0fff);
    let lo = (wyrand() & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut text = [0u8; 36];
    uuid::Uuid::from_u128((u128::from(hi) << 64) | u128::from(lo))
        .hyphenated()
        .encode_lower(&mut text);
    text
}

/// `text` as a header value, unvalidated: `cheapest_v7` writes hex digits and '-' only.
#[allow(unsafe_code)]
fn unvalidated(text: &[u8; 36]) -> http::HeaderValue {
    // SAFETY: hex digits and '-' only, all visible ASCII.
    unsafe { http::HeaderValue::from_maybe_shared_unchecked(bytes::Bytes::from(text.to_vec())) }
}

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
const FIXED: http::HeaderValue =
    http::HeaderValue::from_static("0190a0c5-7f1e-7000-8000-000000000000");

fn main() {
    let settings = Settings::from_env();
    // The cheapest ID must still be a UUID v7 of the current millisecond.
    let probe = unvalidated(&cheapest_v7());
    let uuid = uuid::Uuid::parse_str(probe.to_str().expect("ASCII")).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 7, "{uuid}");
    assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{uuid}");
    let (secs, _) = uuid.get_timestamp().expect("v7 has a time").to_unix();
    let now = towerscope_core::unix_now().as_secs();
    assert!(secs.abs_diff(now) <= 1, "{uuid}: {secs} against {now}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let plain = || {
        tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from("ok")))
        })
    };
    let mut registry = Registry::default();
    let mut stacks: Vec<(&str, Runner)> = vec![
        (
            "bare tower service",
            runner_with_headers(plain(), "/", CURL_HEADERS),
        ),
        (
            "towerscope RequestIdLayer (UUID v7)",
            runner_with_headers(
                ServiceBuilder::new()
                    .layer(RequestIdLayer::new(&mut registry))
                    .service(plain()),
                "/",
                CURL_HEADERS,
            ),
        ),
        (
            "tower-http SetRequestId + PropagateRequestId (UUID v4)",
            runner_with_headers(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                    .layer(PropagateRequestIdLayer::x_request_id())
                    .service(plain()),
                "/",
                CURL_HEADERS,
            ),
        ),
        (
            "tower-http as built alone (uuid v4 from getrandom)",
            runner_with_headers(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuidGetrandom))
                    .layer(PropagateRequestIdLayer::x_request_id())
                    .service(plain()),
                "/",
                CURL_HEADERS,
            ),
        ),
        (
            "floor: a fixed ID put where both put theirs (extensions, request and response header)",
            runner_with_headers(
                ServiceBuilder::new()
                    .map_request(|mut req: Request<Body>| {
                        req.headers_mut().insert(X_REQUEST_ID, FIXED.clone());
                        req.extensions_mut().insert(FIXED.clone());
                        req
                    })
                    .map_response(|mut res: Response<Body>| {
                        res.headers_mut().insert(X_REQUEST_ID, FIXED.clone());
                        res
                    })
                    .service(plain()),
                "/",
                CURL_HEADERS,
            ),
        ),
        (
            "lower bound: a fresh v7 ID into extensions and response header, in a span",
            runner_with_headers(
                tower::service_fn({
                    let mut inner = plain();
                    move |mut req: Request<Body>| {
                        let id = RequestId::new_v7();
                        let span = tracing::info_span!("request", request_id = id.as_str());
                        req.extensions_mut().insert(id.clone());
                        let fut = {
                            let _entered = span.enter();
                            tower::Service::call(&mut inner, req)
                        };
                        async move {
                            let mut res = fut.await?;
                            res.headers_mut()
                                .insert(X_REQUEST_ID, id.into_header_value());
                            Ok::<_, std::convert::Infallible>(res)
                        }
                    }
                }),
                "/",
                CURL_HEADERS,
            ),
        ),
        (
            "lower bound with the cheapest v7 ID (non-cryptographic, unvalidated) into extensions and response header, in a span",
            runner_with_headers(
                tower::service_fn({
                    let mut inner = plain();
                    move |mut req: Request<Body>| {
                        let id = cheapest_v7();
                        let span = tracing::info_span!(
                            "request",
                            request_id = std::str::from_utf8(&id).unwrap_or_default()
                        );
                        req.extensions_mut().insert(id);
                        let fut = {
                            let _entered = span.enter();
                            tower::Service::call(&mut inner, req)
                        };
                        async move {
                            let mut res = fut.await?;
                            res.headers_mut().insert(X_REQUEST_ID, unvalidated(&id));
                            Ok::<_, std::convert::Infallible>(res)
                        }
                    }
                }),
                "/",
                CURL_HEADERS,
            ),
        ),
    ];
    let o = table(
        "request IDs around a plain service",
        &rt,
        &mut stacks,
        settings,
    );
    println!();
    println!(
        "towerscope / tower-http (fast-rng, as unified here) = {:.2}",
        o[1] / o[2]
    );
    println!(
        "towerscope / tower-http (getrandom, as built alone) = {:.2} (target <= 0.25)",
        o[1] / o[3]
    );
    println!(
        "lower bound / tower-http (getrandom, as built alone) = {:.2}; floor = {:.2}",
        o[5] / o[3],
        o[4] / o[3]
    );
    println!(
        "lower bound with the cheapest v7 ID / tower-http (getrandom, as built alone) = {:.2}",
        o[6] / o[3]
    );
}

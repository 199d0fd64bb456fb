//! Per-request cost of `RequestIdLayer` against tower-http's `SetRequestIdLayer` +
//! `PropagateRequestIdLayer` (UUID v4, `x-request-id`), interleaved in one run.
//!
//! What it measures: one `GET /` through a plain tower service wrapped by each stack, to
//! the end of the collected body, with no tracing subscriber installed (so the request span
//! is disabled, as tower-http's layers create none). Both stacks read the inbound header,
//! make an ID, put it in the request (header and extensions) and copy it to the response.
//! What it leaves out: the span's cost under a subscriber (see `towerscope-log`'s
//! `access_log` bench, which runs the stack with the JSON subscriber).
//!
//! Run: `cargo bench -p towerscope-request-id --bench request_id`

use axum::body::Body;
use http::{Request, Response};
use prometheus_client::registry::Registry;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use towerscope_bench::{Runner, Settings, runner, table};
use towerscope_request_id::RequestIdLayer;

fn main() {
    let settings = Settings::from_env();
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
        ("bare tower service", runner(plain(), "/")),
        (
            "towerscope RequestIdLayer (UUID v7)",
            runner(
                ServiceBuilder::new()
                    .layer(RequestIdLayer::new(&mut registry))
                    .service(plain()),
                "/",
            ),
        ),
        (
            "tower-http SetRequestId + PropagateRequestId (UUID v4)",
            runner(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                    .layer(PropagateRequestIdLayer::x_request_id())
                    .service(plain()),
                "/",
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
        "towerscope / tower-http = {:.2} (target <= 0.25)",
        o[1] / o[2]
    );
}

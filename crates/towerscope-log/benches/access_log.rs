//! Per-request cost of the access log writing one JSON line, against tower-http's
//! `TraceLayer` at INFO with the tracing-subscriber fmt layer, interleaved in one run.
//!
//! What it measures: one `GET /` through a plain tower service wrapped by each stack, to
//! the end of the collected body, each stack under its own subscriber writing to
//! `io::sink()` on the calling thread (so formatting is measured, not I/O):
//! - `AccessLogLayer` + towerscope's JSON layer: one JSON line per request;
//! - `RequestIdLayer` + `AccessLogLayer` + JSON: the same line, with the request span and
//!   its `request_id` field;
//! - tower-http `TraceLayer` with its span and `on_response` at INFO + fmt layer: one
//!   span and one text line per request;
//! - `AccessLogLayer` with `sample_successes(0.1)` (no trace ID, so a random draw): nine
//!   requests in ten write nothing.
//!
//! Run: `cargo bench -p towerscope-log --bench access_log`

use axum::body::Body;
use http::{Request, Response};
use prometheus_client::registry::Registry;
use tower::ServiceBuilder;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use towerscope_bench::{Runner, Settings, runner, table};
use towerscope_log::{AccessLogLayer, LogFormat, Logging};
use towerscope_request_id::RequestIdLayer;
use tracing::{Dispatch, Level};

/// Runs `inner` with `dispatch` as this thread's subscriber.
fn under(dispatch: Dispatch, mut inner: Runner) -> Runner {
    Box::new(move |rt, n| tracing::dispatcher::with_default(&dispatch, || inner(rt, n)))
}

fn json() -> Dispatch {
    let (subscriber, _guard) = Logging::builder()
        .writer(std::io::sink)
        .blocking()
        .format(LogFormat::Json)
        .filter("info")
        .build()
        .expect("logging");
    Dispatch::new(subscriber)
}

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
    let fmt = Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_max_level(Level::INFO)
            .finish(),
    );
    let mut registry = Registry::default();
    let mut stacks: Vec<(&str, Runner)> = vec![
        ("bare tower service", under(json(), runner(plain(), "/"))),
        (
            "towerscope AccessLogLayer, JSON line",
            under(
                json(),
                runner(
                    ServiceBuilder::new()
                        .layer(AccessLogLayer::new())
                        .service(plain()),
                    "/",
                ),
            ),
        ),
        (
            "towerscope RequestIdLayer + AccessLogLayer, JSON line",
            under(
                json(),
                runner(
                    ServiceBuilder::new()
                        .layer(RequestIdLayer::new(&mut registry))
                        .layer(AccessLogLayer::new())
                        .service(plain()),
                    "/",
                ),
            ),
        ),
        (
            "tower-http TraceLayer at INFO, fmt line",
            under(
                fmt,
                runner(
                    ServiceBuilder::new()
                        .layer(
                            TraceLayer::new_for_http()
                                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                                .on_response(DefaultOnResponse::new().level(Level::INFO)),
                        )
                        .service(plain()),
                    "/",
                ),
            ),
        ),
        (
            "towerscope AccessLogLayer, successes sampled at 0.1 (no trace ID)",
            under(
                json(),
                runner(
                    ServiceBuilder::new()
                        .layer(AccessLogLayer::builder().sample_successes(0.1).build())
                        .service(plain()),
                    "/",
                ),
            ),
        ),
    ];
    let o = table("access log line per request", &rt, &mut stacks, settings);
    println!();
    println!(
        "towerscope access log / tower-http TraceLayer = {:.2} (target <= 0.33)",
        o[1] / o[3]
    );
    println!(
        "towerscope request ID + access log / tower-http TraceLayer = {:.2}",
        o[2] / o[3]
    );
    println!(
        "access log sampled at 0.1 / every line = {:.2}",
        o[4] / o[1]
    );
}

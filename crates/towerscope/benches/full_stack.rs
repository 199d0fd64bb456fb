//! The whole request path, interleaved in one run on a bare axum router (`GET /users/{id}`):
//!
//! - the bare router;
//! - the peer stack users add today: tower-http `SetRequestIdLayer` + `PropagateRequestIdLayer`
//!   (UUID v4), tower-http `TraceLayer` with its span and `on_response` at INFO written by the
//!   tracing-subscriber fmt layer, and axum-prometheus's `PrometheusMetricLayer`;
//! - towerscope's full stack, `Observability::layer()`: request ID, an OpenTelemetry server
//!   span (sampled, batch processor to a no-op exporter), RED metrics with the trace as
//!   exemplar, the in-flight gauge, the per-route performance window, one JSON access-log
//!   line, panic catching;
//! - each towerscope layer alone.
//!
//! Logs go to `io::sink()` on the calling thread (formatting is measured, not I/O).
//!
//! Run: `cargo bench -p towerscope --bench full_stack` (`BENCH_ROUNDS`, `BENCH_BATCH`).

use axum::Router;
use axum::routing::get;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus_client::registry::Registry;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer as HttpTraceLayer};
use towerscope::core::CatchPanicLayer;
use towerscope::log::{AccessLogLayer, LogFormat, Logging};
use towerscope::metrics::{HttpMetricsLayer, InFlightLayer};
use towerscope::request_id::RequestIdLayer;
use towerscope::trace::{NoopExporter, TraceLayer};
use towerscope::{Observability, Piece};
use towerscope_bench::{Runner, Settings, router_runner, table};
use tracing::{Dispatch, Level};

/// Runs `inner` with `dispatch` as this thread's subscriber.
fn under(dispatch: &Dispatch, mut inner: Runner) -> Runner {
    let dispatch = dispatch.clone();
    Box::new(move |rt, n| tracing::dispatcher::with_default(&dispatch, || inner(rt, n)))
}

fn main() {
    let settings = Settings::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // axum-prometheus and the batch span processor start background work when built.
    let _enter = rt.enter();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(NoopExporter)
        .build();
    let tracer = provider.tracer("bench");

    let (json, _guard) = Logging::builder()
        .writer(std::io::sink)
        .blocking()
        .format(LogFormat::Json)
        .filter("info")
        .build()
        .expect("logging");
    let json = Dispatch::new(json);
    let fmt = Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_max_level(Level::INFO)
            .finish(),
    );

    let app = || Router::new().route("/users/{id}", get(|| async { "ok" }));
    let (axum_prometheus, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let peer = app()
        .layer(axum_prometheus)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            HttpTraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

    let obs = Observability::builder("bench")
        .without_logging()
        .tracer(tracer.clone())
        .disable(Piece::Alerts)
        .disable(Piece::Dashboard)
        .build()
        .expect("the stack");

    let mut r = Registry::default();
    let request_id = RequestIdLayer::new(&mut r);
    let metrics = HttpMetricsLayer::builder()
        .in_flight(InFlightLayer::new(&mut r))
        .build(&mut r)
        .expect("metrics");

    let path = "/users/7";
    let mut stacks: Vec<(&str, Runner)> = vec![
        ("bare axum router", under(&json, router_runner(app(), path))),
        (
            "peer: tower-http request ID + TraceLayer (INFO, fmt) + axum-prometheus",
            under(&fmt, router_runner(peer, path)),
        ),
        (
            "towerscope Observability::layer() (everything on)",
            under(&json, router_runner(app().layer(obs.layer()), path)),
        ),
        (
            "towerscope RequestIdLayer alone",
            under(&json, router_runner(app().layer(request_id), path)),
        ),
        (
            "towerscope TraceLayer alone (sampled)",
            under(
                &json,
                router_runner(app().layer(TraceLayer::new(tracer.clone())), path),
            ),
        ),
        (
            "towerscope HttpMetricsLayer + in-flight alone",
            under(&json, router_runner(app().layer(metrics), path)),
        ),
        (
            "towerscope AccessLogLayer alone (JSON line)",
            under(
                &json,
                router_runner(app().layer(AccessLogLayer::new()), path),
            ),
        ),
        (
            "towerscope CatchPanicLayer alone",
            under(
                &json,
                router_runner(app().layer(CatchPanicLayer::new()), path),
            ),
        ),
    ];
    let o = table("full request path", &rt, &mut stacks, settings);
    println!();
    println!(
        "towerscope full stack / peer stack overhead = {:.2} (target <= 0.33)",
        o[2] / o[1]
    );
    let _ = provider.shutdown();
}

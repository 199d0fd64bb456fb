//! The server side of `scripts/load stacks`: one route, `GET /users/{id}`, served by a bare
//! axum router, by the peer stack users add today, or by `Observability::layer()`, so wrk
//! can compare the three over loopback (the in-process comparison is
//! `benches/full_stack.rs`).
//!
//! ```sh
//! cargo run --release -p towerscope --example loopback -- towerscope 127.0.0.1:18091 > log.jsonl
//! ```
//!
//! - `bare`: the router alone, no subscriber.
//! - `peer`: tower-http `SetRequestIdLayer` (UUID v4) + `PropagateRequestIdLayer`,
//!   tower-http `TraceLayer` (span and `on_response` at INFO) written by tracing-subscriber's
//!   fmt layer to stdout (no colours), and axum-prometheus's `PrometheusMetricLayer` (its `/metrics` too).
//! - `towerscope`: `Observability::layer()` with everything on (request ID, an OpenTelemetry
//!   server span sampled and exported through a batch processor to a no-op exporter, RED
//!   metrics with exemplars, the in-flight gauge, the performance window, one JSON access
//!   line per request to stdout through the background writer, panic catching), and
//!   `obs.router()` merged (metrics, health, dashboard, alerts evaluated in the background).
//! - `towerscope-sampled`: the same, with the access lines of successful requests sampled
//!   at one in ten (`AccessLogBuilder::sample_successes(0.1)`).
//!
//! Logs go to stdout in both logged stacks; redirect it to a file, as a service's supervisor
//! would.

use axum::Router;
use axum::routing::get;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use towerscope::Observability;
use towerscope::log::{AccessLogLayer, LogFormat};
use towerscope::trace::NoopExporter;
use tracing::Level;

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { r#"{"id":1,"name":"ada"}"# }))
        // Before the layers, so that unknown paths pass them after the merge too.
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let stack = args.next().unwrap_or_else(|| "towerscope".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18091".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let mut provider = None;
    let mut obs = None;
    let router = match stack.as_str() {
        "bare" => app(),
        "peer" => {
            tracing_subscriber::fmt()
                .with_max_level(Level::INFO)
                .with_ansi(false)
                .init();
            let (metrics, handle) = axum_prometheus::PrometheusMetricLayer::pair();
            app()
                .route("/metrics", get(move || async move { handle.render() }))
                .layer(metrics)
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        }
        "towerscope" | "towerscope-sampled" => {
            let p = SdkTracerProvider::builder()
                .with_batch_exporter(NoopExporter)
                .build();
            let mut builder = Observability::builder("loopback")
                .tracer(p.tracer("loopback"))
                .log_format(LogFormat::Json);
            if stack == "towerscope-sampled" {
                builder = builder.access_log(AccessLogLayer::builder().sample_successes(0.1));
            }
            let o = builder.build()?;
            let router = app().layer(o.layer()).merge(o.router());
            provider = Some(p);
            obs = Some(o);
            router
        }
        other => {
            return Err(format!(
                "unknown stack {other:?}: bare, peer, towerscope or towerscope-sampled"
            )
            .into());
        }
    };
    eprintln!("{stack} listening on {addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(obs) = obs {
        obs.shutdown().await;
    }
    if let Some(p) = provider {
        let _ = p.shutdown();
    }
    Ok(())
}

//! Per-request cost of a server span, interleaved in one run on a bare axum router:
//!
//! - towerscope `TraceLayer`, sampled (always on, batch processor to a no-op exporter) and
//!   sampled out (always off), the latter also with the layer told its sampler
//!   (`TraceLayer::sampler`, as `TracingConfig::init` and the facade set it up), so the
//!   layer drops the span without the SDK;
//! - a minimal layer that uses the OpenTelemetry SDK directly (start a span with the route
//!   name and method attribute, end it when the response future completes): the floor;
//! - tower-http `TraceLayer` (span at INFO) bridged to OpenTelemetry by
//!   tracing-opentelemetry, what users stack today;
//! - towerscope `TraceLayer` plus one `info_span!` in the handler through the bridge
//!   (`tracing_layer`), to price handler spans separately;
//! - the floors for a sampled-out span: the direct-SDK layer with a sampler that drops
//!   every span, and a layer that only wraps the response future and body (what any layer
//!   that ends its span with the body pays under `Router::layer`);
//! - a lower bound for any sampled-out server span that keeps its duties: the pass-through
//!   floor plus fresh trace and span IDs (the SDK's generator) in a context attached around
//!   `call` and each poll, so the handler's spans and outgoing calls see the decision. No
//!   parent is read, no sampler runs, no name is made; and the same without the body
//!   wrapper, for a layer that keeps axum's body type for a dropped span;
//! - `TraceLayer::for_axum`, which does that, sampled out (told its sampler) and sampled.
//! - the direct-SDK layer made to end its span when the response body ends, as ours does
//!   (the direct-SDK layer ends it at the response head): the same reference with
//!   the body wrapper any such layer pays under `Router::layer`.
//!
//! The global subscriber is `tracing_layer` over the same sampled provider for every row.
//! Every request carries the headers curl sends (`Host`, `User-Agent`, `Accept`; since
//! 2026-12-07): the server span records the first two, as it does for any real request.
//!
//! Run: `cargo bench -p towerscope-trace --bench server_span`

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tower::{Layer, Service};
use towerscope_bench::{PassLayer, Runner, Settings, table};
use towerscope_trace::{NoopExporter, SamplerConfig, TraceLayer, tracing_layer};
use tracing_subscriber::layer::SubscriberExt as _;

fn provider(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_batch_exporter(NoopExporter)
        .build()
}

/// The direct-SDK floor: a span per request, ended when the response future completes
/// (`at_head`, the layer); or made to end it when the response body ends, as the
/// issue asks of ours (`with_body`): the span then moves into a body wrapper that ends it
/// when the body is dropped (after its last frame, or abandoned), boxed into axum's `Body`
/// as `Router::layer` boxes any wrapped body.
#[derive(Clone)]
struct DirectLayer {
    tracer: SdkTracer,
    with_body: bool,
}

impl DirectLayer {
    fn at_head(tracer: SdkTracer) -> Self {
        Self {
            tracer,
            with_body: false,
        }
    }

    fn with_body(tracer: SdkTracer) -> Self {
        Self {
            tracer,
            with_body: true,
        }
    }
}

impl<S> Layer<S> for DirectLayer {
    type Service = Direct<S>;
    fn layer(&self, inner: S) -> Direct<S> {
        Direct(inner, self.clone())
    }
}

#[derive(Clone)]
struct Direct<S>(S, DirectLayer);

impl<S, B> Service<Request<B>> for Direct<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let tracer = &self.1.tracer;
        let mut span = tracer
            .span_builder(format!("{} {}", req.method(), req.uri().path()))
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new(
                "http.request.method",
                req.method().as_str().to_owned(),
            )])
            .start(tracer);
        let with_body = self.1.with_body;
        let fut = self.0.call(req);
        Box::pin(async move {
            let res = fut.await;
            if let Ok(r) = &res {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(r.status().as_u16()),
                ));
            }
            match res {
                Ok(r) if with_body => Ok(r.map(|inner| Body::new(SpanBody { inner, span }))),
                res => {
                    span.end();
                    res
                }
            }
        })
    }
}

/// A response body that ends its span when dropped.
struct SpanBody {
    inner: Body,
    span: opentelemetry_sdk::trace::Span,
}

impl http_body::Body for SpanBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SpanBody {
    fn drop(&mut self) {
        self.span.end();
    }
}

/// The lower bound for a sampled-out server span: see the module docs. The body-less
/// bound below, with the response future and body wrapped as the floor row wraps them.
#[derive(Clone, Copy)]
struct DroppedBoundLayer;

impl<S> Layer<S> for DroppedBoundLayer {
    type Service = towerscope_bench::Pass<DroppedBoundNoBody<S>>;
    fn layer(&self, inner: S) -> Self::Service {
        PassLayer.layer(DroppedBoundNoBody(inner))
    }
}

/// The lower bound without the body wrapper: a layer that keeps axum's body type for a
/// dropped span (a design where only sampled responses are re-boxed) pays only this.
#[derive(Clone, Copy)]
struct DroppedBoundNoBodyLayer;

impl<S> Layer<S> for DroppedBoundNoBodyLayer {
    type Service = DroppedBoundNoBody<S>;
    fn layer(&self, inner: S) -> DroppedBoundNoBody<S> {
        DroppedBoundNoBody(inner)
    }
}

#[derive(Clone)]
struct DroppedBoundNoBody<S>(S);

impl<S> Service<Request<Body>> for DroppedBoundNoBody<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = opentelemetry::context::WithContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        use opentelemetry::context::FutureExt as _;
        let cx = dropped_span_context();
        let fut = {
            let _guard = cx.clone().attach();
            self.0.call(req)
        };
        fut.with_context(cx)
    }
}

/// Fresh IDs, not sampled, as the current span of a new context.
fn dropped_span_context() -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
    let ids = RandomIdGenerator::default();
    let sc = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::default(),
        false,
        TraceState::NONE,
    );
    opentelemetry::Context::new().with_remote_span_context(sc)
}

/// Every stack gets the same requests, with the headers curl sends (`Host`, `User-Agent`,
/// `Accept`): a server span reads the first two.
fn router_runner(app: Router, uri: &'static str) -> Runner {
    towerscope_bench::router_runner_with_headers(app, uri, towerscope_bench::CURL_HEADERS)
}

fn main() {
    let settings = Settings::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let sampled = provider(Sampler::AlwaysOn);
    let unsampled = provider(Sampler::AlwaysOff);
    let on = sampled.tracer("bench");
    let off = unsampled.tracer("bench");
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(tracing_layer(on.clone())),
    )
    .expect("subscriber");

    let app = || Router::new().route("/users/{id}", get(|| async { "ok" }));
    let with_handler_span = || {
        Router::new().route(
            "/users/{id}",
            get(|| async {
                let _span = tracing::info_span!("load_user").entered();
                "ok"
            }),
        )
    };
    let mut stacks: Vec<(&str, Runner)> = vec![
        ("bare axum router", router_runner(app(), "/users/7")),
        (
            "towerscope TraceLayer, sampled",
            router_runner(app().layer(TraceLayer::new(on.clone())), "/users/7"),
        ),
        (
            "towerscope TraceLayer, sampled out",
            router_runner(app().layer(TraceLayer::new(off.clone())), "/users/7"),
        ),
        (
            "direct-SDK minimal layer, sampled",
            router_runner(app().layer(DirectLayer::at_head(on.clone())), "/users/7"),
        ),
        (
            "tower-http TraceLayer (INFO) + tracing-opentelemetry",
            router_runner(
                app().layer(
                    tower_http::trace::TraceLayer::new_for_http().make_span_with(
                        tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
                    ),
                ),
                "/users/7",
            ),
        ),
        (
            "towerscope TraceLayer + one bridged handler span",
            router_runner(
                with_handler_span().layer(TraceLayer::new(on.clone())),
                "/users/7",
            ),
        ),
        (
            "direct-SDK minimal layer, sampled out",
            router_runner(app().layer(DirectLayer::at_head(off.clone())), "/users/7"),
        ),
        (
            "floor: pass-through body-wrapping layer",
            router_runner(app().layer(PassLayer), "/users/7"),
        ),
        (
            "towerscope TraceLayer told its sampler (as TracingConfig::init sets it up), sampled out",
            router_runner(
                app().layer(TraceLayer::new(off.clone()).sampler(SamplerConfig::AlwaysOff)),
                "/users/7",
            ),
        ),
        (
            "lower bound, sampled out: the floor + fresh IDs in a context attached around call and poll",
            router_runner(app().layer(DroppedBoundLayer), "/users/7"),
        ),
        (
            "lower bound, sampled out, without the body wrapper (axum's body type kept)",
            router_runner(app().layer(DroppedBoundNoBodyLayer), "/users/7"),
        ),
        (
            "towerscope TraceLayer::for_axum (axum's body type kept), told its sampler, sampled out",
            router_runner(
                app().layer(
                    TraceLayer::new(off.clone())
                        .sampler(SamplerConfig::AlwaysOff)
                        .for_axum(),
                ),
                "/users/7",
            ),
        ),
        (
            "towerscope TraceLayer::for_axum, sampled",
            router_runner(
                app().layer(TraceLayer::new(on.clone()).for_axum()),
                "/users/7",
            ),
        ),
        (
            "direct-SDK minimal layer, sampled, its span ended with the body",
            router_runner(app().layer(DirectLayer::with_body(on.clone())), "/users/7"),
        ),
    ];
    let o = table(
        "server span per request, bare axum router",
        &rt,
        &mut stacks,
        settings,
    );
    println!();
    println!(
        "sampled: towerscope / direct SDK = {:.2} (target <= 1.0); tower-http+tracing-otel / towerscope = {:.1}x (target >= 5)",
        o[1] / o[3],
        o[4] / o[1]
    );
    println!(
        "sampled out: {:.0} ns (target <= 300 ns); direct SDK sampled out {:.0} ns, pass-through floor {:.0} ns",
        o[2], o[6], o[7]
    );
    println!(
        "sampled out, told its sampler: {:.0} ns (target <= 300 ns); lower bound: {:.0} ns; towerscope told its sampler - lower bound = {:+.0} ns",
        o[8],
        o[9],
        o[8] - o[9]
    );
    println!(
        "sampled out, lower bound without the body wrapper: {:.0} ns (target <= 300 ns)",
        o[10]
    );
    println!(
        "for_axum: told its sampler, sampled out {:.0} ns (target <= 300 ns; - lower bound without the body wrapper = {:+.0} ns); sampled / direct SDK = {:.2}",
        o[11],
        o[11] - o[10],
        o[12] / o[3]
    );
    println!(
        "sampled, against the direct-SDK layer ending its span with the body: TraceLayer {:.2}, for_axum {:.2}; that layer / the direct-SDK layer = {:.2}",
        o[1] / o[13],
        o[12] / o[13],
        o[13] / o[3]
    );
    println!(
        "bridged handler span: +{:.0} ns over the server span alone",
        o[5] - o[1]
    );
    drop(stacks);
    let _ = sampled.shutdown();
    let _ = unsampled.shutdown();
}

//! Per-request overhead of the metrics layers on an axum router.
//!
//! What it measures: one `GET /users/{id}` through an axum `Router` (in-process, no
//! network), from building the request to the last byte of the collected response body,
//! for five stacks:
//! - `bare`: the router alone;
//! - `towerscope`: `HttpMetricsLayer` + `InFlightLayer` (duration to end of body,
//!   cancel-safe, exemplar hook, cardinality cap);
//! - `towerscope metrics only`: `HttpMetricsLayer` alone;
//! - `axum-prometheus`: its `PrometheusMetricLayer` (metrics crate + global recorder);
//! - `lean prometheus-client`: a minimal hand-written layer (a counter family, a histogram
//!   family and a gauge keyed by method, `MatchedPath` and status; boxed future; duration to
//!   the response head only);
//! - the same lean layer timed to the end of the body, as the issue asks of ours: its
//!   response body wrapped (towerscope-core's `ObservedBody`) and the metrics recorded when
//!   the body ends;
//! - the floor: a pass-through layer that wraps future and body and does nothing;
//! - a lower bound for any layer that meets the issue: the floor plus the least such a
//!   layer must do per request (gauge up and down, a clock read at each end, one
//!   histogram observation into one fixed series: no labels, no lookup, no exclusion check).
//!
//! Then the same around a plain tower service (no axum, as hyper and tonic users stack it):
//! the bare service, ours as two layers and as one layer keeping the gauge, the lean layer,
//! and the lower bound; and the axum stacks again from two threads at once.
//!
//! What it leaves out: sockets, HTTP parsing, scraping (see `benches/encode.rs`).
//!
//! How: the stacks alternate round by round (order rotated each round) so that machine
//! noise hits all of them alike; each round times a batch per stack. The report gives the
//! median per-request time of each stack, the median of the per-round overheads over
//! `bare`, their ratios, and heap allocations per request (counted by `stats_alloc`).
//!
//! Run: `cargo bench -p towerscope-metrics --bench http_layers`
//! (`BENCH_ROUNDS`, `BENCH_BATCH` override the defaults 31 and 20000; the harness is
//! `towerscope-bench`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::routing::get;
use http::{Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower::{Layer, Service};
use towerscope_bench::{PassLayer, Runner, Settings, router_runner_threads, table};
use towerscope_metrics::{Buckets, HttpMetricsLayer, InFlightLayer};

/// Every stack serves the same templated route (axum rows through `router`, as `axum::serve`
/// runs a router: routes finished once with their layers).
fn router(app: Router) -> Runner {
    towerscope_bench::router_runner(app, "/users/42")
}

/// The same route through a plain tower service.
fn runner<S, B>(svc: S) -> Runner
where
    S: Service<Request<Body>, Response = Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    towerscope_bench::runner(svc, "/users/42")
}

fn bare() -> Router {
    Router::new().route("/users/{id}", get(|| async { "user" }))
}

// ---------------------------------------------------------------- the lean baseline

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    path: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    method: String,
    path: String,
}

#[derive(Clone)]
struct LeanLayer {
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
}

impl LeanLayer {
    fn new(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: Family<DurationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(Buckets::HTTP_DURATION_SECONDS));
        let in_flight = Gauge::default();
        registry.register("lean_requests", "Requests", requests.clone());
        registry.register("lean_duration_seconds", "Duration", duration.clone());
        registry.register("lean_in_flight", "In flight", in_flight.clone());
        Self {
            requests,
            duration,
            in_flight,
        }
    }
}

impl<S> Layer<S> for LeanLayer {
    type Service = Lean<S>;
    fn layer(&self, inner: S) -> Lean<S> {
        Lean {
            inner,
            m: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Lean<S> {
    inner: S,
    m: LeanLayer,
}

/// The lean layer, recording when the response body ends (as ours does) instead of at the
/// response head.
#[derive(Clone)]
struct LeanToBodyEndLayer(LeanLayer);

impl<S> Layer<S> for LeanToBodyEndLayer {
    type Service = LeanToBodyEnd<S>;
    fn layer(&self, inner: S) -> LeanToBodyEnd<S> {
        LeanToBodyEnd {
            inner,
            m: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct LeanToBodyEnd<S> {
    inner: S,
    m: LeanLayer,
}

/// What the lean layer records for one request, from its start to `finish`.
struct LeanRecord {
    m: LeanLayer,
    method: String,
    path: String,
    status: u16,
    start: Instant,
}

impl LeanLayer {
    /// Labels from the request, the gauge up, the clock started.
    fn begin(&self, req: &Request<Body>) -> LeanRecord {
        let method = req.method().as_str().to_owned();
        let path = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(String::new, |p| p.as_str().to_owned());
        let m = self.clone();
        m.in_flight.inc();
        LeanRecord {
            m,
            method,
            path,
            status: 0,
            start: Instant::now(),
        }
    }
}

impl LeanRecord {
    fn finish(self) {
        self.m
            .requests
            .get_or_create(&RequestLabels {
                method: self.method.clone(),
                path: self.path.clone(),
                status: self.status,
            })
            .inc();
        self.m
            .duration
            .get_or_create(&DurationLabels {
                method: self.method,
                path: self.path,
            })
            .observe(self.start.elapsed().as_secs_f64());
        self.m.in_flight.dec();
    }
}

impl towerscope_core::Observer for LeanRecord {
    fn on_end(self, _end: towerscope_core::End<'_>) {
        self.finish();
    }
}

impl<S> Service<Request<Body>> for LeanToBodyEnd<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<towerscope_core::ObservedBody<Body, LeanRecord>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let mut record = self.m.begin(&req);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            record.status = resp.status().as_u16();
            Ok(resp.map(|body| towerscope_core::ObservedBody::new(body, record)))
        })
    }
}

impl<S> Service<Request<Body>> for Lean<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let mut record = self.m.begin(&req);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await;
            record.status = resp.as_ref().map_or(500, |r| r.status().as_u16());
            record.finish();
            resp
        })
    }
}

/// The least a cancel-safe metrics layer timed to the end of the body does per request,
/// on top of the floor: no labels are resolved and no series is looked up, so every real
/// layer (ours, the lean one made to time to the end of the body) does strictly more.
#[derive(Clone, Copy)]
struct BoundLayer(&'static BoundState);

struct BoundState {
    in_flight: AtomicI64,
    bounds: [f64; 14],
    counts: [AtomicU64; 15],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl BoundLayer {
    fn new() -> Self {
        Self(Box::leak(Box::new(BoundState {
            in_flight: AtomicI64::new(0),
            bounds: Buckets::HTTP_DURATION_SECONDS,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        })))
    }
}

/// The observer of [`BoundLayer`]: a start time and the shared state.
struct BoundRecord {
    state: &'static BoundState,
    start: towerscope_core::RequestStart,
}

impl towerscope_core::Observer for BoundRecord {
    fn on_end(self, _end: towerscope_core::End<'_>) {
        let d = self.start.elapsed();
        let s = self.state;
        let v = d.as_secs_f64();
        let i = s
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(s.bounds.len());
        s.counts[i].fetch_add(1, Ordering::Relaxed);
        s.sum_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        s.count.fetch_add(1, Ordering::Relaxed);
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> Layer<S> for BoundLayer {
    type Service = Bound<S>;
    fn layer(&self, inner: S) -> Bound<S> {
        Bound(inner, self.0)
    }
}

#[derive(Clone)]
struct Bound<S>(S, &'static BoundState);

impl<S> Service<Request<Body>> for Bound<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<towerscope_core::ObservedBody<Body, BoundRecord>>;
    type Error = S::Error;
    type Future = towerscope_core::ObservedFuture<S::Future, BoundRecord>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        self.1.in_flight.fetch_add(1, Ordering::Relaxed);
        let record = BoundRecord {
            state: self.1,
            start: towerscope_core::RequestStart::now(),
        };
        towerscope_core::ObservedFuture::new(self.0.call(req), record)
    }
}

fn main() {
    let settings = Settings::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // axum-prometheus spawns its upkeep task when built.
    let _enter = rt.enter();
    let (axum_prom, _handle) = axum_prometheus::PrometheusMetricLayer::pair();

    // 1. axum Router::layer, the way axum users add middleware.
    let mut r1 = Registry::default();
    let mut r2 = Registry::default();
    let mut r3 = Registry::default();
    let mut r6 = Registry::default();
    let mut r7 = Registry::default();
    let mut stacks: Vec<(&str, Runner)> = vec![
        ("bare axum router", router(bare())),
        (
            "towerscope: HttpMetricsLayer + InFlightLayer",
            router(
                bare()
                    .layer(InFlightLayer::new(&mut r1))
                    .layer(HttpMetricsLayer::new(&mut r1)),
            ),
        ),
        (
            "towerscope: HttpMetricsLayer only",
            router(bare().layer(HttpMetricsLayer::new(&mut r2))),
        ),
        (
            "towerscope: HttpMetricsLayer maintaining the in-flight gauge",
            router(
                bare().layer(
                    HttpMetricsLayer::builder()
                        .in_flight(InFlightLayer::new(&mut r6))
                        .build(&mut r6)
                        .expect("valid"),
                ),
            ),
        ),
        ("axum-prometheus", router(bare().layer(axum_prom.clone()))),
        (
            "lean prometheus-client layer",
            router(bare().layer(LeanLayer::new(&mut r3))),
        ),
        (
            "floor: pass-through body-wrapping layer",
            router(bare().layer(PassLayer)),
        ),
        (
            "lean prometheus-client layer, timed to the end of the body",
            router(bare().layer(LeanToBodyEndLayer(LeanLayer::new(&mut r7)))),
        ),
        (
            "lower bound: the floor + gauge, two clock reads, one fixed histogram series",
            router(bare().layer(BoundLayer::new())),
        ),
    ];
    let o = table("axum Router::layer", &rt, &mut stacks, settings);
    println!();
    println!(
        "towerscope (two layers) / lean = {:.2} (target <= 0.60)",
        o[1] / o[5]
    );
    println!(
        "towerscope (one layer with gauge) / lean = {:.2} (target <= 0.60)",
        o[3] / o[5]
    );
    println!(
        "towerscope (two layers) / axum-prometheus = {:.3} (target <= 0.125)",
        o[1] / o[4]
    );
    println!(
        "towerscope (one layer with gauge) / axum-prometheus = {:.3} (target <= 0.125)",
        o[3] / o[4]
    );
    println!("floor (one pass-through layer) / lean = {:.2}", o[6] / o[5]);
    println!(
        "towerscope (one layer with gauge) / lean timed to the end of the body = {:.2}",
        o[3] / o[7]
    );
    println!(
        "lower bound / lean = {:.2}; / axum-prometheus = {:.3}; towerscope (one layer) - lower bound = {:+.0} ns",
        o[8] / o[5],
        o[8] / o[4],
        o[3] - o[8]
    );

    // 2. tower::ServiceBuilder around a plain service (hyper and tonic users): no type
    //    erasure, so each layer's own cost shows.
    let plain = || {
        tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from("user")))
        })
    };
    let mut r4 = Registry::default();
    let mut r5 = Registry::default();
    let mut r11 = Registry::default();
    let mut stacks: Vec<(&str, Runner)> = vec![
        ("bare tower service", runner(plain())),
        (
            "towerscope: HttpMetricsLayer + InFlightLayer",
            runner(
                tower::ServiceBuilder::new()
                    .layer(HttpMetricsLayer::new(&mut r4))
                    .layer(InFlightLayer::new(&mut r4))
                    .service(plain()),
            ),
        ),
        (
            "lean prometheus-client layer",
            runner(LeanLayer::new(&mut r5).layer(plain())),
        ),
        (
            "towerscope: HttpMetricsLayer maintaining the in-flight gauge",
            runner(
                HttpMetricsLayer::builder()
                    .in_flight(InFlightLayer::new(&mut r11))
                    .build(&mut r11)
                    .expect("valid")
                    .layer(plain()),
            ),
        ),
        (
            "lower bound: gauge, two clock reads, one fixed histogram series",
            runner(BoundLayer::new().layer(plain())),
        ),
    ];
    let o = table(
        "tower::ServiceBuilder around a plain service",
        &rt,
        &mut stacks,
        settings,
    );
    println!();
    println!(
        "towerscope (two layers) / lean = {:.2} (target <= 0.60)",
        o[1] / o[2]
    );
    println!(
        "towerscope (one layer with gauge) / lean = {:.2} (target <= 0.60)",
        o[3] / o[2]
    );
    println!(
        "lower bound / lean = {:.2}; towerscope (one layer) - lower bound = {:+.0} ns",
        o[4] / o[2],
        o[3] - o[4]
    );

    // 3. Two threads at once through one router: one series per stack, contended.
    let mut r8 = Registry::default();
    let mut r9 = Registry::default();
    let mut r10 = Registry::default();
    let two = |app: Router| router_runner_threads(app, "/users/42", 2);
    let mut stacks: Vec<(&str, Runner)> = vec![
        ("bare axum router, 2 threads", two(bare())),
        (
            "towerscope: HttpMetricsLayer maintaining the in-flight gauge, 2 threads",
            two(bare().layer(
                HttpMetricsLayer::builder()
                    .in_flight(InFlightLayer::new(&mut r8))
                    .build(&mut r8)
                    .expect("valid"),
            )),
        ),
        (
            "axum-prometheus, 2 threads",
            two(bare().layer(axum_prom.clone())),
        ),
        (
            "lean prometheus-client layer, 2 threads",
            two(bare().layer(LeanLayer::new(&mut r9))),
        ),
        (
            "lean prometheus-client layer timed to the end of the body, 2 threads",
            two(bare().layer(LeanToBodyEndLayer(LeanLayer::new(&mut r10)))),
        ),
    ];
    let o = table(
        "axum Router::layer, two threads at once (wall time per request)",
        &rt,
        &mut stacks,
        settings,
    );
    println!();
    println!(
        "two threads: towerscope / lean = {:.2}; / lean timed to the end of the body = {:.2}; / axum-prometheus = {:.3}",
        o[1] / o[3],
        o[1] / o[4],
        o[1] / o[2]
    );
}

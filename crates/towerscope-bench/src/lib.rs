//! # towerscope-bench
//!
//! The harness behind towerscope's per-request benchmarks. Stacks of layers are timed in
//! batches that alternate round by round (the order rotated each round), so that the noise
//! of a shared machine hits every stack alike; the report gives each stack's median time per
//! request, the median of its per-round difference to the first (baseline) stack, and its
//! heap allocations per request, counted by `stats_alloc` in a separate, untimed pass. The
//! global allocator this crate installs in every benchmark binary that links it counts only
//! while a count is running ([`allocations`] and the allocation pass of [`table`]); the timed
//! passes go straight to the system allocator.
//!
//! ```no_run
//! use towerscope_bench::{Settings, runner, table};
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let svc = tower::service_fn(|_r: http::Request<axum::body::Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
//! });
//! let mut stacks = vec![("bare", runner(svc, "/"))];
//! let settings = Settings::from_env();
//! table("example", &rt, &mut stacks, settings);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Service, ServiceExt};

/// `stats_alloc`'s counting allocator, switched on only while allocations are counted.
///
/// `StatsAlloc` adds sequentially consistent read-modify-writes on shared counters to every
/// allocation and free. Left on in the timed passes, it charged each stack for its
/// allocations at more than their real price, and more again in rows whose exporter thread
/// frees on the other core what the request thread allocated (the counters' cache lines
/// bounce between the cores). No server pays that, so the timed passes must not either.
struct Switched;

static COUNTING: AtomicBool = AtomicBool::new(false);
static STATS: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

// The one `unsafe` in the workspace outside dependencies: a `GlobalAlloc` cannot be written
// without it, and no allocator crate counts only on demand. Benchmarks only.
// SAFETY: every call is forwarded unchanged to `System`, directly or through `StatsAlloc`
// (which forwards to `System`); a block may be freed by the other path than the one that
// allocated it, which is sound because both end in `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Switched {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                STATS.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                STATS.dealloc(ptr, layout);
            } else {
                System.dealloc(ptr, layout);
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                STATS.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                STATS.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Switched = Switched;

/// Counts the allocations `f` makes (on any thread while it runs).
fn counted<R>(f: impl FnOnce() -> R) -> (R, stats_alloc::Stats) {
    COUNTING.store(true, Ordering::SeqCst);
    let region = Region::new(STATS);
    let r = f();
    let stats = region.change();
    COUNTING.store(false, Ordering::SeqCst);
    (r, stats)
}

/// Times `n` requests through a stack.
///
/// ```
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let svc = tower::service_fn(|_req: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
/// });
/// let mut run: towerscope_bench::Runner = towerscope_bench::runner(svc, "/");
/// let took = run(&rt, 10); // ten requests, each body read to its end
/// # let _ = took;
/// ```
pub type Runner = Box<dyn FnMut(&tokio::runtime::Runtime, usize) -> Duration>;

/// Run length.
///
/// ```
/// let short = towerscope_bench::Settings { rounds: 3, batch: 100 };
/// assert_eq!(short.rounds * short.batch, 300);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Rounds (each times one batch of every stack).
    pub rounds: usize,
    /// Requests per batch.
    pub batch: usize,
}

impl Settings {
    /// `BENCH_ROUNDS` (default 31) and `BENCH_BATCH` (default 20000); a short smoke run when
    /// the binary is run by `cargo test --benches` (`--test` argument).
    ///
    /// ```
    /// let settings = towerscope_bench::Settings::from_env();
    /// assert!(settings.rounds > 0 && settings.batch > 0);
    /// ```
    pub fn from_env() -> Self {
        if std::env::args().any(|a| a == "--test") {
            return Self {
                rounds: 2,
                batch: 200,
            };
        }
        let get = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            rounds: get("BENCH_ROUNDS", 31),
            batch: get("BENCH_BATCH", 20_000),
        }
    }
}

/// The headers of `curl http://127.0.0.1:8080/`, as hyper hands them to a service: about
/// the fewest a real HTTP/1.1 request carries (`Host` is required).
///
/// A request with no headers at all has an empty `HeaderMap`, which allocates on its first
/// insert; a real one never starts empty, so a layer that writes a request header pays for
/// that allocation only in a benchmark of header-less requests.
///
/// ```
/// assert_eq!(towerscope_bench::CURL_HEADERS[0].0, "host");
/// ```
pub const CURL_HEADERS: &[(&str, &str)] = &[
    ("host", "127.0.0.1:8080"),
    ("user-agent", "curl/7.88.1"),
    ("accept", "*/*"),
];

/// A runner sending `GET uri` through `svc`, collecting each response body to its end.
///
/// ```
/// let svc = tower::service_fn(|_req: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
/// });
/// let run = towerscope_bench::runner(svc, "/users/7");
/// # let _ = run;
/// ```
pub fn runner<S, B>(svc: S, uri: &'static str) -> Runner
where
    S: Service<Request<Body>, Response = Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    runner_with_headers(svc, uri, &[])
}

/// A runner sending `GET uri` with `headers` (for example [`CURL_HEADERS`]) through `svc`,
/// collecting each response body to its end.
///
/// ```no_run
/// let svc = tower::service_fn(|_r: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
/// });
/// let _runner = towerscope_bench::runner_with_headers(svc, "/", towerscope_bench::CURL_HEADERS);
/// ```
pub fn runner_with_headers<S, B>(
    mut svc: S,
    uri: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Runner
where
    S: Service<Request<Body>, Response = Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    Box::new(move |rt, n| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                let mut req = Request::get(uri);
                for (name, value) in headers {
                    req = req.header(*name, *value);
                }
                let req = req.body(Body::empty()).expect("request");
                let resp = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(req)
                    .await
                    .expect("response");
                let body = resp.into_body().collect().await.expect("body");
                std::hint::black_box(body);
            }
            start.elapsed()
        })
    })
}

/// A runner sending `GET uri` through an axum `router` the way `axum::serve` runs it.
///
/// `axum::serve` (through `Router::into_make_service`) calls `Router::with_state(())` once,
/// which turns every route into a finished service with its layers applied. A router called
/// as a `Service` without that step applies its layers again on every request (it clones
/// each layer and boxes the route anew), a cost no server pays; measuring through this
/// function keeps that cost out of every row alike.
///
/// ```no_run
/// let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let _runner = towerscope_bench::router_runner(router, "/");
/// ```
pub fn router_runner(router: axum::Router, uri: &'static str) -> Runner {
    runner(router.with_state(()), uri)
}

/// [`router_runner`] with request headers, for example [`CURL_HEADERS`]: the `Host` and
/// `User-Agent` every real request has, which layers that read them pay for.
///
/// ```no_run
/// let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let _runner =
///     towerscope_bench::router_runner_with_headers(router, "/", towerscope_bench::CURL_HEADERS);
/// ```
pub fn router_runner_with_headers(
    router: axum::Router,
    uri: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Runner {
    runner_with_headers(router.with_state(()), uri, headers)
}

/// A runner sending `GET uri` through `router` from `threads` threads at once, each with its
/// own current-thread runtime and `n / threads` of the requests, so the stack's shared state
/// (locks, atomics, reference counts) is contended as on a multi-core server. It returns the
/// time until the last thread finished: divided by `n`, the wall time per request at that
/// parallelism. Allocations are counted on every thread.
///
/// ```no_run
/// let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let _runner = towerscope_bench::router_runner_threads(router, "/", 2);
/// ```
pub fn router_runner_threads(router: axum::Router, uri: &'static str, threads: usize) -> Runner {
    let router = router.with_state(());
    let threads = threads.max(1);
    Box::new(move |_rt, n| {
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (router, barrier) = (router.clone(), &barrier);
                    s.spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .expect("runtime");
                        let mut run = runner(router, uri);
                        barrier.wait();
                        run(&rt, n / threads)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .max()
                .unwrap_or_default()
        })
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Interleaves the stacks, prints a markdown table, returns the overheads over the first
/// stack (same order).
///
/// ```no_run
/// use towerscope_bench::{PassLayer, Settings, router_runner, table};
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let app = || axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
/// let mut stacks = vec![
///     ("bare router", router_runner(app(), "/")),
///     ("pass-through layer", router_runner(app().layer(PassLayer), "/")),
/// ];
/// let overheads = table("per request", &rt, &mut stacks, Settings::from_env());
/// assert_eq!(overheads[0], 0.0); // the first stack is the baseline
/// ```
pub fn table(
    title: &str,
    rt: &tokio::runtime::Runtime,
    stacks: &mut [(&str, Runner)],
    settings: Settings,
) -> Vec<f64> {
    let Settings { rounds, batch } = settings;
    if let Ok(name) = std::env::var("BENCH_PROFILE") {
        return profile(&name, rt, stacks, settings);
    }
    let k = stacks.len();
    for (_, r) in stacks.iter_mut() {
        r(rt, batch.min(5_000));
    }
    let mut per_req: Vec<Vec<f64>> = vec![Vec::new(); k];
    for round in 0..rounds {
        for j in 0..k {
            let idx = (j + round) % k;
            let d = (stacks[idx].1)(rt, batch);
            per_req[idx].push(d.as_nanos() as f64 / batch as f64);
        }
    }
    let medians: Vec<f64> = per_req.iter().map(|v| median(&mut v.clone())).collect();
    let overheads: Vec<f64> = (0..k)
        .map(|i| {
            let mut d: Vec<f64> = per_req[i]
                .iter()
                .zip(&per_req[0])
                .map(|(a, b)| a - b)
                .collect();
            median(&mut d)
        })
        .collect();
    let allocs: Vec<f64> = stacks
        .iter_mut()
        .map(|(_, r)| {
            let ((), stats) = counted(|| {
                r(rt, 1_000);
            });
            stats.allocations as f64 / 1_000.0
        })
        .collect();
    println!("\n### {title}\n");
    println!(
        "rounds={rounds} batch={batch}; overhead = median of per-round differences to the first row\n"
    );
    println!("| stack | median ns/req | overhead ns/req | allocations/req |");
    println!("|---|---|---|---|");
    for i in 0..k {
        println!(
            "| {} | {:.0} | {:+.0} | {:.2} |",
            stacks[i].0, medians[i], overheads[i], allocs[i]
        );
    }
    overheads
}

/// Runs only the first stack whose name contains `name` (or, for `=name`, is `name`),
/// `rounds × batch` requests, for a profiler (`BENCH_PROFILE=<part of a name> perf record
/// …`); prints its time per request.
fn profile(
    name: &str,
    rt: &tokio::runtime::Runtime,
    stacks: &mut [(&str, Runner)],
    settings: Settings,
) -> Vec<f64> {
    // `=name` asks for that exact name (a row whose name another row's contains).
    let matches = |t: &str| match name.strip_prefix('=') {
        Some(exact) => t == exact,
        None => t.contains(name),
    };
    let Some((title, r)) = stacks.iter_mut().find(|(t, _)| matches(t)) else {
        eprintln!("BENCH_PROFILE={name}: no stack with that in its name");
        return vec![0.0; stacks.len()];
    };
    let mut total = Duration::ZERO;
    for _ in 0..settings.rounds {
        total += r(rt, settings.batch);
    }
    let n = (settings.rounds * settings.batch).max(1);
    println!("{title}: {:.0} ns/req", total.as_nanos() as f64 / n as f64);
    vec![0.0; stacks.len()]
}

/// Bytes and allocations one call of `f` makes.
///
/// ```
/// let (v, bytes, count) = towerscope_bench::allocations(|| vec![0u8; 64]);
/// assert_eq!((v.len(), bytes, count), (64, 64, 1));
/// ```
pub fn allocations<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let (r, stats) = counted(f);
    let bytes = stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize;
    (r, bytes, stats.allocations + stats.reallocations)
}

/// A layer that only wraps the response future and body (towerscope-core's observer with
/// nothing to do): the floor any layer that watches the response to the end of its body
/// pays, under axum's `Router::layer` a boxed future and a boxed body per layer and request.
///
/// ```
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "ok" }))
///     .layer(towerscope_bench::PassLayer);
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PassLayer;

/// The observer of [`PassLayer`]: does nothing.
///
/// ```
/// fn observer<O: towerscope_core::Observer>(_: O) {}
/// observer(towerscope_bench::Nothing);
/// ```
#[derive(Debug)]
pub struct Nothing;

impl towerscope_core::Observer for Nothing {
    fn on_end(self, _end: towerscope_core::End<'_>) {}
}

impl<S> tower::Layer<S> for PassLayer {
    type Service = Pass<S>;
    fn layer(&self, inner: S) -> Pass<S> {
        Pass(inner)
    }
}

/// The service of [`PassLayer`].
///
/// ```
/// use tower::Layer as _;
/// let svc: towerscope_bench::Pass<()> = towerscope_bench::PassLayer.layer(());
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
pub struct Pass<S>(S);

impl<S> Service<Request<Body>> for Pass<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<towerscope_core::ObservedBody<Body, Nothing>>;
    type Error = S::Error;
    type Future = towerscope_core::ObservedFuture<S::Future, Nothing>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        towerscope_core::ObservedFuture::new(self.0.call(req), Nothing)
    }
}

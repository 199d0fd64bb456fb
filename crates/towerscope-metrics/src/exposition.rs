//! [`MetricsService`]: the registry over HTTP, in Prometheus text or OpenMetrics.

use std::convert::Infallible;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower_service::Service;

use crate::text::{self, Format};

/// Longest `Accept` or `Accept-Encoding` value looked at; the rest is ignored.
const MAX_NEGOTIATION_HEADER: usize = 1024;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum FormatValue {
    prometheus,
    openmetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabel {
    format: FormatValue,
}

struct Inner {
    registry: Registry,
    token: Option<Box<[u8]>>,
    gzip: bool,
    scrapes: Family<FormatLabel, Counter>,
    encode_seconds: Histogram,
    /// Sizes of the last registry text and of the last whole exposition, to size the next
    /// buffers in one allocation each.
    last_registry_len: AtomicUsize,
    last_total_len: AtomicUsize,
    duplicates: std::sync::Mutex<Duplicates>,
}

/// Families the registry writes more than once in one scrape (the same layer or collector
/// built twice on one registry): Prometheus refuses such a scrape, and nothing else says
/// why. Looked for at the first scrape and then at most once a minute (one pass over the
/// text), each reported once.
#[derive(Debug, Default)]
struct Duplicates {
    last: Option<Instant>,
    reported: std::collections::HashSet<String>,
}

impl Duplicates {
    fn check(&mut self, text: &str) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(60))
        {
            return;
        }
        self.last = Some(Instant::now());
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let name = rest.split(' ').next().unwrap_or(rest);
            if !seen.insert(name) && self.reported.insert(name.to_owned()) {
                tracing::warn!(
                    family = name,
                    "metric family written twice in one scrape: it is registered twice in \
                     the registry (a layer or collector built twice on one registry?), and \
                     Prometheus refuses the scrape"
                );
            }
        }
    }
}

/// Serves the application's registry: Prometheus text 0.0.4 by default, OpenMetrics 1.0
/// (with exemplars) when the `Accept` header prefers `application/openmetrics-text`, gzip
/// when `Accept-Encoding` allows it. Only `GET` and `HEAD` are answered (`405` otherwise).
///
/// It counts its own work in the same registry: `towerscope_scrapes_total{format}` and
/// `towerscope_scrape_encode_duration_seconds`.
///
/// A collector of the application's that panics or returns an error fails the scrape with
/// `500` and an `ERROR` log line, rather than dropping the connection or serving the part of
/// the registry before it as if it were all.
///
/// With a bearer token configured, requests without `Authorization: Bearer <token>` get
/// `401`; the comparison takes the same time wherever the tokens differ.
///
/// A plain tower service: mount it in axum with `Router::route_service("/metrics", svc)`,
/// on a tonic side port, or in a hyper server through hyper-util's `TowerToHyperService`.
/// Encoding runs on the calling task; a registry of 10,000 histogram series takes a few
/// milliseconds (see `docs/benchmarks.md`).
///
/// ```
/// use prometheus_client::registry::Registry;
/// use towerscope_metrics::{Format, MetricsService};
/// let mut registry = Registry::default();
/// let c: prometheus_client::metrics::counter::Counter = Default::default();
/// registry.register("jobs", "Jobs done.", c.clone());
/// c.inc();
/// let svc = MetricsService::builder().bearer_token("s3cret").build(registry);
/// let text = svc.encode(Format::Prometheus);
/// assert!(text.contains("# TYPE jobs_total counter\njobs_total 1\n"));
/// assert!(!format!("{svc:?}").contains("s3cret"), "Debug leaves the token out");
/// ```
#[derive(Clone)]
pub struct MetricsService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService")
            .field("token", &self.inner.token.as_ref().map(|_| "[REDACTED]"))
            .field("gzip", &self.inner.gzip)
            .finish_non_exhaustive()
    }
}

/// Builder for [`MetricsService`].
///
/// ```
/// let svc = towerscope_metrics::MetricsService::builder()
///     .gzip(false)
///     .build(prometheus_client::registry::Registry::default());
/// # let _ = svc;
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct MetricsServiceBuilder {
    token: Option<String>,
    no_gzip: bool,
}

impl std::fmt::Debug for MetricsServiceBuilder {
    /// The token is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServiceBuilder")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("gzip", &!self.no_gzip)
            .finish()
    }
}

impl MetricsServiceBuilder {
    /// Require `Authorization: Bearer <token>`.
    ///
    /// ```
    /// use tower::ServiceExt as _;
    /// use towerscope_metrics::MetricsService;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = MetricsService::builder()
    ///     .bearer_token("s3cret")
    ///     .build(prometheus_client::registry::Registry::default());
    /// let scrape = |auth: &'static str| {
    ///     let req = http::Request::get("/metrics").header("authorization", auth).body(()).unwrap();
    ///     metrics.clone().oneshot(req)
    /// };
    /// assert_eq!(scrape("Bearer wrong").await.unwrap().status(), 401);
    /// assert_eq!(scrape("Bearer s3cret").await.unwrap().status(), 200);
    /// assert!(!format!("{:?}", MetricsService::builder().bearer_token("s3cret")).contains("s3cret"));
    /// # });
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Whether to compress when the scraper accepts gzip (default on).
    ///
    /// ```
    /// use tower::ServiceExt as _;
    /// use towerscope_metrics::MetricsService;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = MetricsService::builder().gzip(false).build(prometheus_client::registry::Registry::default());
    /// let req = http::Request::get("/metrics").header("accept-encoding", "gzip").body(()).unwrap();
    /// let resp = metrics.oneshot(req).await.unwrap();
    /// assert!(resp.headers().get("content-encoding").is_none());
    /// # });
    /// ```
    pub fn gzip(mut self, on: bool) -> Self {
        self.no_gzip = !on;
        self
    }

    /// Registers the service's own metrics into `registry` and takes it over.
    ///
    /// ```
    /// use towerscope_metrics::{Format, MetricsService};
    /// let metrics = MetricsService::builder().build(prometheus_client::registry::Registry::default());
    /// // Its own scrape counter and encode duration are in the registry it serves.
    /// assert!(metrics.encode(Format::Prometheus).contains("# TYPE"));
    /// ```
    pub fn build(self, mut registry: Registry) -> MetricsService {
        let scrapes = Family::<FormatLabel, Counter>::default();
        registry.register(
            "towerscope_scrapes",
            "Scrapes of the metrics endpoint",
            scrapes.clone(),
        );
        let encode_seconds = Histogram::new([0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]);
        registry.register(
            "towerscope_scrape_encode_duration_seconds",
            "Time to encode the registry for a scrape",
            encode_seconds.clone(),
        );
        MetricsService {
            inner: Arc::new(Inner {
                registry,
                token: self.token.map(|t| t.into_bytes().into_boxed_slice()),
                gzip: !self.no_gzip,
                scrapes,
                encode_seconds,
                last_registry_len: AtomicUsize::new(4096),
                last_total_len: AtomicUsize::new(8192),
                duplicates: std::sync::Mutex::default(),
            }),
        }
    }
}

impl MetricsService {
    /// A service with defaults (no token, gzip on), taking over `registry`.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = towerscope_metrics::HttpMetricsLayer::new(&mut registry);
    /// let metrics = towerscope_metrics::MetricsService::new(registry); // after every layer registered
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "hi" }))
    ///     .layer(layer)
    ///     .route_service("/metrics", metrics); // beside the layer: scrapes are not requests
    /// ```
    pub fn new(registry: Registry) -> Self {
        MetricsServiceBuilder::default().build(registry)
    }

    /// A builder.
    ///
    /// ```
    /// let metrics = towerscope_metrics::MetricsService::builder()
    ///     .bearer_token("s3cret")
    ///     .build(prometheus_client::registry::Registry::default());
    /// # let _ = metrics;
    /// ```
    pub fn builder() -> MetricsServiceBuilder {
        MetricsServiceBuilder::default()
    }

    /// The registry, for other readers (a dashboard, a test).
    ///
    /// ```
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, metrics.registry()).unwrap(); // OpenMetrics
    /// assert!(text.ends_with("# EOF\n"));
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Encodes the whole registry in `format`.
    ///
    /// A collector that returns an error is logged (`ERROR`) and the text ends where it
    /// failed; a collector's panic goes on to the caller. (A scrape through the service gets
    /// a `500` in both cases instead.)
    ///
    /// ```
    /// use towerscope_metrics::{Format, MetricsService};
    /// let metrics = MetricsService::new(prometheus_client::registry::Registry::default());
    /// assert!(metrics.encode(Format::OpenMetrics).ends_with("# EOF\n"));
    /// assert!(!metrics.encode(Format::Prometheus).contains("# EOF")); // text 0.0.4 has no EOF marker
    /// ```
    pub fn encode(&self, format: Format) -> String {
        match self.try_encode(format) {
            Ok(text) | Err(EncodeFailed(text)) => text,
        }
    }

    /// [`encode`](Self::encode), telling a collector's error apart: the text then ends
    /// where that collector failed (the rest of the registry is missing) and is logged.
    fn try_encode(&self, format: Format) -> Result<String, EncodeFailed> {
        let start = Instant::now();
        let inner = &self.inner;
        let registry_len = inner.last_registry_len.load(Ordering::Relaxed);
        let total_len = inner.last_total_len.load(Ordering::Relaxed);
        // Sized from the last scrape so the big buffer is allocated once: in OpenMetrics
        // the registry text and our families go into one buffer; in the classic format the
        // registry text is transcoded into the output buffer and our families follow.
        let slack = |n: usize| n + n / 8 + 1024;
        let mut om = String::with_capacity(match format {
            Format::OpenMetrics => slack(total_len),
            Format::Prometheus => slack(registry_len),
        });
        let (result, families) = text::capture(|| {
            prometheus_client::encoding::text::encode_registry(&mut om, &inner.registry)
        });
        if let Err(e) = &result {
            // Writing to a String cannot fail: a collector returned the error.
            tracing::error!(error = %e, "a metrics collector failed to encode");
        }
        inner.last_registry_len.store(om.len(), Ordering::Relaxed);
        inner
            .duplicates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check(&om);
        let mut out = match format {
            Format::OpenMetrics => om,
            Format::Prometheus => {
                let mut out = String::with_capacity(slack(total_len));
                text::openmetrics_to_prometheus(&om, &mut out);
                out
            }
        };
        for f in &families {
            f.write_text(format, &mut out);
        }
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        inner.last_total_len.store(out.len(), Ordering::Relaxed);
        inner.encode_seconds.observe(start.elapsed().as_secs_f64());
        match result {
            Ok(()) => Ok(out),
            Err(_) => Err(EncodeFailed(out)),
        }
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(token) = &self.inner.token else {
            return true;
        };
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some(given) = value
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..])
        else {
            return false;
        };
        bool::from(subtle::ConstantTimeEq::ct_eq(given, &token[..]))
    }

    fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        if !self.authorized(req) {
            let mut resp = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        let format = negotiate_format(req.headers().get(header::ACCEPT));
        let label = FormatLabel {
            format: match format {
                Format::Prometheus => FormatValue::prometheus,
                Format::OpenMetrics => FormatValue::openmetrics,
            },
        };
        self.inner.scrapes.get_or_create(&label).inc();
        // A collector of the application's that panics or fails must not cost the scrape
        // its connection, nor pass off the part of the registry written before it as the
        // whole (Prometheus would mark every series after it stale): the scraper gets a
        // 500 (its target shows as down, with this reason) and the log says which.
        let body = match catch_unwind(AssertUnwindSafe(|| self.try_encode(format))) {
            Ok(Ok(body)) => body,
            Ok(Err(EncodeFailed(_))) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "a metrics collector failed to encode; see the server's log\n",
                );
            }
            Err(panic) => {
                tracing::error!(
                    panic.message = towerscope_core::panic_message(&*panic),
                    "a metrics collector panicked; the scrape is answered with 500"
                );
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "a metrics collector panicked; see the server's log\n",
                );
            }
        };
        let gzip = self.inner.gzip && accepts_gzip(req.headers().get(header::ACCEPT_ENCODING));
        let mut resp = Response::new(Full::new(Bytes::new()));
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        headers.insert(
            header::VARY,
            HeaderValue::from_static("accept, accept-encoding"),
        );
        let bytes = if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(body.as_bytes());
            Bytes::from(enc.finish().unwrap_or_default())
        } else {
            Bytes::from(body)
        };
        if req.method() != Method::HEAD {
            *resp.body_mut() = Full::new(bytes);
        }
        resp
    }
}

/// The text of a registry one of whose collectors returned an error.
struct EncodeFailed(String);

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Media ranges of an `Accept`-style header: `(type, q)`, at most 32 of them.
fn media_ranges(value: &str) -> impl Iterator<Item = (&str, f32)> {
    value.split(',').take(32).filter_map(|range| {
        let mut parts = range.split(';');
        let media = parts.next()?.trim();
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse().ok().filter(|q: &f32| q.is_finite())?;
                }
            }
        }
        Some((media, q.clamp(0.0, 1.0)))
    })
}

fn header_str(value: Option<&HeaderValue>) -> &str {
    value
        .and_then(|v| v.to_str().ok())
        .map(|v| v.get(..MAX_NEGOTIATION_HEADER.min(v.len())).unwrap_or(""))
        .unwrap_or("")
}

/// OpenMetrics when the client ranks `application/openmetrics-text` above (or equal to)
/// `text/plain` and gives it a non-zero q; the classic format otherwise, including when
/// there is no `Accept` header.
///
/// ```
/// # use towerscope_metrics::{Format, negotiate_format};
/// use http::HeaderValue;
/// let prom = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(negotiate_format(Some(&HeaderValue::from_static(prom))), Format::OpenMetrics);
/// assert_eq!(negotiate_format(None), Format::Prometheus);
/// assert_eq!(negotiate_format(Some(&HeaderValue::from_static("*/*"))), Format::Prometheus);
/// ```
pub fn negotiate_format(accept: Option<&HeaderValue>) -> Format {
    let mut om = 0.0f32;
    let mut plain_q = 0.0f32;
    for (media, q) in media_ranges(header_str(accept)) {
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            om = om.max(q);
        } else if media.eq_ignore_ascii_case("text/plain") {
            plain_q = plain_q.max(q);
        }
    }
    if om > 0.0 && om >= plain_q {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    media_ranges(header_str(value))
        .any(|(coding, q)| coding.eq_ignore_ascii_case("gzip") && q > 0.0)
}

impl<B> Service<Request<B>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(svc: &MetricsService, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
        let mut req = Request::get("/metrics");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        svc.respond(&req.body(()).expect("request"))
    }

    #[test]
    fn token_is_required_when_configured() {
        let svc = MetricsService::builder()
            .bearer_token("tok")
            .build(Registry::default());
        assert_eq!(get(&svc, &[]).status(), 401);
        assert_eq!(get(&svc, &[("authorization", "Bearer nope")]).status(), 401);
        assert_eq!(get(&svc, &[("authorization", "Basic tok")]).status(), 401);
        assert_eq!(get(&svc, &[("authorization", "Bearer tok")]).status(), 200);
        assert_eq!(get(&svc, &[("authorization", "bearer tok")]).status(), 200);
    }

    #[test]
    fn negotiates_format_and_gzip() {
        let svc = MetricsService::new(Registry::default());
        let resp = get(&svc, &[]);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            Format::Prometheus.content_type()
        );
        let resp = get(
            &svc,
            &[("accept", "application/openmetrics-text; version=1.0.0")],
        );
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            Format::OpenMetrics.content_type()
        );
        let resp = get(&svc, &[("accept-encoding", "br, gzip;q=0.5")]);
        assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
        let resp = get(&svc, &[("accept-encoding", "gzip;q=0")]);
        assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[test]
    fn openmetrics_ranked_below_text_is_not_chosen() {
        let v = HeaderValue::from_static("text/plain;q=1,application/openmetrics-text;q=0.5");
        assert_eq!(negotiate_format(Some(&v)), Format::Prometheus);
        let v = HeaderValue::from_static("application/openmetrics-text;q=0");
        assert_eq!(negotiate_format(Some(&v)), Format::Prometheus);
        let v = HeaderValue::from_static("application/openmetrics-text;q=nan");
        assert_eq!(negotiate_format(Some(&v)), Format::Prometheus);
    }

    #[test]
    fn counts_its_own_scrapes() {
        let svc = MetricsService::new(Registry::default());
        get(&svc, &[]);
        get(&svc, &[]);
        let text = svc.encode(Format::Prometheus);
        assert!(
            text.contains("towerscope_scrapes_total{format=\"prometheus\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE towerscope_scrape_encode_duration_seconds histogram"));
    }

    /// A collector of the application's that fails, as told, the way the test says.
    #[derive(Debug, Default, Clone)]
    struct Faulty(Arc<std::sync::Mutex<Option<&'static str>>>);

    impl prometheus_client::collector::Collector for Faulty {
        fn encode(
            &self,
            _encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
        ) -> Result<(), std::fmt::Error> {
            let fault = *self.0.lock().expect("lock");
            match fault {
                Some("panic") => panic!("the orders table is gone"),
                Some(_) => Err(std::fmt::Error),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn a_failing_collector_fails_the_scrape_with_500_and_the_next_one_succeeds() {
        let faulty = Faulty::default();
        let mut registry = Registry::default();
        let before: Counter = Counter::default();
        registry.register("before", "Registered before the faulty collector.", before);
        registry.register_collector(Box::new(faulty.clone()));
        let after: Counter = Counter::default();
        registry.register("after", "Registered after it.", after);
        let svc = MetricsService::new(registry);
        let body = |resp: Response<Full<Bytes>>| {
            let Ok(collected) = ready_now(http_body_util::BodyExt::collect(resp.into_body()));
            String::from_utf8(collected.to_bytes().to_vec()).expect("utf-8")
        };

        for (fault, says) in [("panic", "panicked"), ("error", "failed to encode")] {
            *faulty.0.lock().expect("lock") = Some(fault);
            for accept in ["", "application/openmetrics-text"] {
                let resp = get(&svc, &[("accept", accept), ("accept-encoding", "gzip")]);
                assert_eq!(resp.status(), 500, "{fault}, accept {accept:?}");
                let text = body(resp);
                assert!(text.contains(says), "{fault}: {text}");
                assert!(
                    !text.contains("before_total"),
                    "no part passed off as the whole"
                );
            }
        }
        *faulty.0.lock().expect("lock") = None;
        let resp = get(&svc, &[]);
        assert_eq!(resp.status(), 200);
        let text = body(resp);
        assert!(
            text.contains("before_total 0\n") && text.contains("after_total 0\n"),
            "{text}"
        );
    }

    /// The body of a `Full` is ready at once.
    fn ready_now<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("a Full body is always ready"),
        }
    }

    #[test]
    fn other_methods_get_405() {
        let svc = MetricsService::new(Registry::default());
        let resp = svc.respond(&Request::post("/metrics").body(()).expect("request"));
        assert_eq!(resp.status(), 405);
    }
}

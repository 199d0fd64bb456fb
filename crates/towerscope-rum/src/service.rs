//! The ingestion service (`POST /api/rum`) and the collector script (`GET /rum.js`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use prometheus_client::registry::Registry;
use towerscope_core::{IpRange, IpRangeError, client_ip, peer_ip};

use crate::payload::{Event, parse_beacon};
use crate::state::{
    ApiLabels, ErrorLabels, Metrics, OutcomeLabel, PageLabel, PageTemplates, PhaseLabels,
    RateLimiter, Sessions, VitalLabels, browser_family,
};

/// The collector script, written for towerscope and embedded: no dependencies, no CDN.
///
/// ```
/// let js = towerscope_rum::RUM_JS;
/// assert!(js.contains("sendBeacon")); // sent when the page is hidden, so the last batch arrives
/// assert!(!js.contains("https://")); // nothing loaded from elsewhere
/// ```
pub const RUM_JS: &str = include_str!("../assets/rum.js");

/// The 75th percentile of one vital on one page, as the Core Web Vitals assess it.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceExt as _;
/// use towerscope_rum::{PageTemplates, Rum};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut registry = prometheus_client::registry::Registry::default();
/// let rum = Rum::builder().pages(PageTemplates::new(["/products/{id}"])).build(&mut registry);
/// let beacon = http::Request::post("/api/rum")
///     .body(http_body_util::Full::new(bytes::Bytes::from_static(br#"{"session":"s1","page":"/products/7","events":[{"type":"vital","name":"LCP","value":1800}]}"#)))
///     .unwrap();
/// rum.ingest_service().oneshot(beacon).await.unwrap();
/// let summary = &rum.vitals_p75(Duration::from_secs(300))[0];
/// assert_eq!((summary.page.as_str(), summary.vital, summary.p75), ("/products/{id}", "LCP", 1800.0));
/// assert_eq!(summary.rating, "good");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VitalSummary {
    /// The page template.
    pub page: String,
    /// `LCP`, `INP`, `CLS`, `FCP` or `TTFB`.
    pub vital: &'static str,
    /// The 75th percentile (milliseconds; CLS unitless).
    pub p75: f64,
    /// The rating of the p75.
    pub rating: &'static str,
    /// Values it was computed from.
    pub count: usize,
}

/// Recent values per (page, vital), with when they arrived.
type Recent =
    std::collections::HashMap<(String, crate::Vital), std::collections::VecDeque<(Instant, f64)>>;

/// Recent values per (page, vital), for p75: at most this many each.
const RECENT: usize = 500;

struct Inner {
    recent: std::sync::Mutex<Recent>,
    pages: PageTemplates,
    metrics: Metrics,
    limiter: RateLimiter,
    sessions: Sessions,
    max_body: usize,
    origins: Vec<HeaderValue>,
    trusted: Vec<IpRange>,
    /// Set once a beacon came without a client address (then it is not rate limited).
    warned_no_client: std::sync::atomic::AtomicBool,
}

/// Builds [`Rum`].
///
/// ```
/// use towerscope_rum::{PageTemplates, Rum};
/// let mut registry = prometheus_client::registry::Registry::default();
/// let rum = Rum::builder()
///     .pages(PageTemplates::new(["/", "/products/{id}"]))
///     .max_body(32 * 1024)
///     .rate_limit(30, 10, 5_000) // per client: 30 beacons a minute, bursts of 10; 5,000 clients tracked
///     .allow_origins(["https://shop.example"])
///     .build(&mut registry);
/// # let _ = rum;
/// ```
#[must_use]
pub struct RumBuilder {
    pages: PageTemplates,
    max_body: usize,
    per_minute: u32,
    burst: u32,
    max_clients: usize,
    origins: Vec<HeaderValue>,
    trusted: Vec<IpRange>,
}

impl std::fmt::Debug for RumBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RumBuilder").finish_non_exhaustive()
    }
}

impl RumBuilder {
    /// The route templates page and API URLs are reduced to (anything else is `other`).
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().pages(PageTemplates::new(["/products/{id}"])).build(&mut registry);
    /// post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await;
    /// assert_eq!(rum.vitals_p75(std::time::Duration::from_secs(60))[0].page, "/products/{id}");
    /// # });
    /// ```
    pub fn pages(mut self, pages: PageTemplates) -> Self {
        self.pages = pages;
        self
    }

    /// The largest body accepted (default 64 KiB); larger ones get 413.
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().max_body(64).build(&mut registry);
    /// assert_eq!(post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await, 413);
    /// # });
    /// ```
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Beacons per minute per client address, with a burst (defaults 60 and 20); more get
    /// 429. At most `max_clients` addresses are remembered (default 10,000).
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().rate_limit(60, 2, 1_000).build(&mut registry);
    /// assert_eq!(post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await, 204);
    /// assert_eq!(post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await, 204);
    /// assert_eq!(post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await, 429); // past the burst
    /// assert_eq!(post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 2]).await, 204); // another client
    /// # });
    /// ```
    pub fn rate_limit(mut self, per_minute: u32, burst: u32, max_clients: usize) -> Self {
        self.per_minute = per_minute;
        self.burst = burst;
        self.max_clients = max_clients.max(1);
        self
    }

    /// Origins allowed to send beacons cross-origin (CORS). Same-origin pages need none.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = towerscope_rum::Rum::builder()
    ///     .allow_origins(["https://shop.example", "https://m.shop.example"])
    ///     .build(&mut registry);
    /// # let _ = rum;
    /// ```
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.origins = origins
            .into_iter()
            .filter_map(|o| HeaderValue::from_str(o.as_ref()).ok())
            .collect();
        self
    }

    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed (`"10.0.0.0/8"`,
    /// `"::1"`), as for the access log: behind a load balancer every beacon comes from its
    /// address, so without this all browsers would share one rate-limit bucket.
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// use towerscope_rum::Rum;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder()
    ///     .rate_limit(60, 1, 1_000) // one beacon at once per client
    ///     .trusted_proxies(["10.0.0.0/8"])
    ///     .unwrap()
    ///     .build(&mut registry);
    /// // Two browsers behind the load balancer at 10.0.0.1.
    /// let beacon = |browser: &str| {
    ///     let mut req = http::Request::post("/api/rum")
    ///         .header("x-forwarded-for", browser)
    ///         .body(http_body_util::Full::new(bytes::Bytes::from_static(br#"{"session":"s","page":"/","events":[]}"#)))
    ///         .unwrap();
    ///     req.extensions_mut().insert(towerscope_core::PeerAddr("10.0.0.1:40000".parse().unwrap()));
    ///     rum.ingest_service().oneshot(req)
    /// };
    /// assert_eq!(beacon("198.51.100.7").await.unwrap().status(), 204);
    /// assert_eq!(beacon("203.0.113.9").await.unwrap().status(), 204); // a bucket of its own
    /// assert_eq!(beacon("198.51.100.7").await.unwrap().status(), 429);
    /// # });
    /// ```
    pub fn trusted_proxies<I, S>(mut self, ranges: I) -> Result<Self, IpRangeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.trusted.extend(IpRange::parse_all(ranges)?);
        Ok(self)
    }

    /// Registers the RUM metrics into `registry`.
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().build(&mut registry);
    /// post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await;
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("rum_inp_seconds_count{page=\"other\",rating=\"good\"} 1"), "{text}");
    /// # });
    /// ```
    pub fn build(self, registry: &mut Registry) -> Rum {
        Rum {
            inner: Arc::new(Inner {
                recent: std::sync::Mutex::default(),
                pages: self.pages,
                metrics: Metrics::register(registry),
                limiter: RateLimiter::new(self.per_minute, self.burst, self.max_clients),
                sessions: Sessions::new(100_000),
                max_body: self.max_body,
                origins: self.origins,
                trusted: self.trusted,
                warned_no_client: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }
}

/// Real-user monitoring: the ingestion service for the collector's beacons, and the script.
///
#[cfg_attr(feature = "axum", doc = "```")]
#[cfg_attr(not(feature = "axum"), doc = "```ignore")]
/// use prometheus_client::registry::Registry;
/// use towerscope_rum::{PageTemplates, Rum};
/// let mut registry = Registry::default();
/// let rum = Rum::builder()
///     .pages(PageTemplates::new(["/", "/products/{id}", "/cart"]))
///     .build(&mut registry);
/// let app: axum::Router = rum.router(); // GET /rum.js, POST /api/rum
/// ```
#[derive(Clone)]
pub struct Rum {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Rum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rum").finish_non_exhaustive()
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

impl Rum {
    /// Defaults: no page templates (every page is `other`), 64 KiB bodies, 60 beacons a
    /// minute per client with a burst of 20, no cross-origin senders.
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().build(&mut registry);
    /// post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await;
    /// assert_eq!(rum.vitals_p75(std::time::Duration::from_secs(60))[0].page, "other");
    /// # });
    /// ```
    pub fn builder() -> RumBuilder {
        RumBuilder {
            pages: PageTemplates::default(),
            max_body: 64 * 1024,
            per_minute: 60,
            burst: 20,
            max_clients: 10_000,
            origins: Vec::new(),
            trusted: Vec::new(),
        }
    }

    /// Distinct sessions that sent a beacon within `within` (the dashboard's active users).
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().build(&mut registry);
    /// post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await;
    /// post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await; // the same session again
    /// assert_eq!(rum.active_sessions(std::time::Duration::from_secs(300)), 1);
    /// # });
    /// ```
    pub fn active_sessions(&self, within: Duration) -> usize {
        self.inner.sessions.active(within, Instant::now())
    }

    /// The p75 of each vital on each page over the last `within` (the dashboard's Core Web
    /// Vitals chart), from the most recent values (at most 500 per page and vital).
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().pages(PageTemplates::new(["/products/{id}"])).build(&mut registry);
    /// post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await;
    /// let inp = &rum.vitals_p75(std::time::Duration::from_secs(60))[0];
    /// assert_eq!((inp.vital, inp.p75, inp.rating), ("INP", 180.0, "good"));
    /// # });
    /// ```
    pub fn vitals_p75(&self, within: Duration) -> Vec<VitalSummary> {
        let now = Instant::now();
        let recent = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<VitalSummary> = recent
            .iter()
            .filter_map(|((page, vital), values)| {
                let mut v: Vec<f64> = values
                    .iter()
                    .filter(|(t, _)| now.saturating_duration_since(*t) <= within)
                    .map(|(_, v)| *v)
                    .collect();
                if v.is_empty() {
                    return None;
                }
                v.sort_by(f64::total_cmp);
                // Nearest rank.
                let rank = ((v.len() as f64) * 0.75).ceil() as usize;
                let p75 = v[rank.clamp(1, v.len()) - 1];
                Some(VitalSummary {
                    page: page.clone(),
                    vital: vital.as_str(),
                    p75,
                    rating: vital.rating(p75),
                    count: v.len(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.page.cmp(&b.page).then(a.vital.cmp(b.vital)));
        out
    }

    /// The ingestion endpoint as a tower service (mount it at `POST /api/rum`).
    ///
    /// ```
    /// # use tower::ServiceExt as _;
    /// # async fn post(rum: &towerscope_rum::Rum, body: &'static [u8], from: [u8; 4]) -> u16 {
    /// #     let mut req = http::Request::post("/api/rum")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
    /// #         .unwrap();
    /// #     req.extensions_mut().insert(towerscope_core::PeerAddr((from, 40000).into()));
    /// #     rum.ingest_service().oneshot(req).await.unwrap().status().as_u16()
    /// # }
    /// use towerscope_rum::{PageTemplates, Rum};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = Rum::builder().build(&mut registry);
    /// assert_eq!(post(&rum, br#"{"session":"s1","page":"/products/42?ref=ad","events":[{"type":"vital","name":"INP","value":180}]}"#, [10, 0, 0, 1]).await, 204);
    /// # });
    /// ```
    pub fn ingest_service(&self) -> RumService {
        RumService { rum: self.clone() }
    }

    /// The collector script as a tower service (mount it at `GET /rum.js`).
    ///
    /// ```
    /// use tower::ServiceExt as _;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = towerscope_rum::Rum::builder().build(&mut registry);
    /// let resp = rum.script_service().oneshot(http::Request::get("/rum.js").body(()).unwrap()).await.unwrap();
    /// assert_eq!(resp.status(), 200);
    /// # });
    /// ```
    pub fn script_service(&self) -> ScriptService {
        ScriptService
    }

    /// `GET /rum.js` and `POST /api/rum` (with `OPTIONS` for CORS preflight).
    ///
    /// ```
    /// use tower::ServiceExt as _;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let rum = towerscope_rum::Rum::builder().build(&mut registry);
    /// let app: axum::Router = axum::Router::new().merge(rum.router());
    /// let script = app.clone().oneshot(http::Request::get("/rum.js").body(axum::body::Body::empty()).unwrap()).await.unwrap();
    /// assert_eq!(script.status(), 200);
    /// let beacon = r#"{"session":"s1","page":"/","events":[{"type":"vital","name":"LCP","value":1800}]}"#;
    /// let sent = app.oneshot(http::Request::post("/api/rum").body(axum::body::Body::from(beacon)).unwrap()).await.unwrap();
    /// assert_eq!(sent.status(), 204);
    /// assert_eq!(rum.vitals_p75(std::time::Duration::from_secs(60))[0].p75, 1800.0);
    /// # });
    /// ```
    #[cfg(feature = "axum")]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        axum::Router::new()
            .route_service("/rum.js", self.script_service())
            .route_service("/api/rum", self.ingest_service())
    }

    fn cors(&self, origin: Option<&HeaderValue>, resp: &mut Response<Full<Bytes>>) {
        if let Some(origin) = origin.filter(|o| self.inner.origins.contains(o)) {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            h.insert(header::VARY, HeaderValue::from_static("origin"));
        }
    }

    fn count(&self, outcome: &'static str) {
        self.inner
            .metrics
            .beacons
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    async fn handle<B>(self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let origin = req.headers().get(header::ORIGIN).cloned();
        let mut resp = self.handle_inner(req).await;
        self.cors(origin.as_ref(), &mut resp);
        resp
    }

    async fn handle_inner<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &*self.inner;
        if req.method() == Method::OPTIONS {
            return empty(StatusCode::NO_CONTENT);
        }
        if req.method() != Method::POST {
            let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            return r;
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/plain");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "text/plain" && mime != "application/json" {
            self.count("invalid");
            return json_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                serde_json::json!({ "error": "send JSON as text/plain or application/json", "field": "content-type" }),
            );
        }
        let client = client_ip(peer_ip(req.extensions()), req.headers(), &inner.trusted);
        if client.is_none()
            && !inner
                .warned_no_client
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "RUM beacons arrive without a client address, so they are not rate limited: \
                 serve with connect info (axum: `into_make_service_with_connect_info::<PeerAddr>()`)"
            );
        }
        if let Some(ip) = client {
            if !inner.limiter.allow(ip, Instant::now()) {
                self.count("rate_limited");
                let mut r = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    serde_json::json!({ "error": "too many beacons" }),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                return r;
            }
        }
        let browser = browser_family(
            req.headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        );
        let body = match Limited::new(req.into_body(), inner.max_body)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let too_large = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                self.count(if too_large { "too_large" } else { "invalid" });
                return if too_large {
                    json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        serde_json::json!({ "error": format!("body larger than {} bytes", inner.max_body), "field": "body" }),
                    )
                } else {
                    json_response(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({ "error": "body could not be read", "field": "body" }),
                    )
                };
            }
        };
        let beacon = match parse_beacon(&body) {
            Ok(b) => b,
            Err(e) => {
                self.count("invalid");
                return json_response(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": e.message, "field": e.field }),
                );
            }
        };
        self.count("accepted");
        inner.sessions.touch(&beacon.session, Instant::now());
        let page = inner.pages.normalize(&beacon.page).to_owned();
        let m = &inner.metrics;
        for event in beacon.events {
            match event {
                Event::Vital { vital, value } => {
                    {
                        let mut recent = inner
                            .recent
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let q = recent.entry((page.clone(), vital)).or_default();
                        if q.len() == RECENT {
                            q.pop_front();
                        }
                        q.push_back((Instant::now(), value));
                    }
                    let seconds = if vital == crate::Vital::Cls {
                        value
                    } else {
                        value / 1000.0
                    };
                    m.vital(vital)
                        .get_or_create(&VitalLabels {
                            page: page.clone(),
                            rating: vital.rating(value),
                        })
                        .observe(seconds);
                }
                Event::Navigation {
                    dom_content_loaded,
                    load,
                } => {
                    for (phase, v) in [("dom_content_loaded", dom_content_loaded), ("load", load)] {
                        if let Some(v) = v {
                            m.load
                                .get_or_create(&PhaseLabels {
                                    page: page.clone(),
                                    phase,
                                })
                                .observe(v / 1000.0);
                        }
                    }
                }
                Event::Error {
                    message,
                    source,
                    line,
                    stack,
                } => {
                    m.errors
                        .get_or_create(&ErrorLabels {
                            page: page.clone(),
                            browser,
                        })
                        .inc();
                    tracing::warn!(
                        target: "towerscope_rum",
                        event_type = "rum_error",
                        page = %page,
                        browser,
                        session = %beacon.session,
                        source = source.as_deref(),
                        line,
                        stack = stack.as_deref(),
                        "browser error: {message}"
                    );
                }
                Event::Api {
                    url,
                    status,
                    duration,
                } => {
                    let status_class = match status {
                        0 => "network_error",
                        100..=199 => "1xx",
                        200..=299 => "2xx",
                        300..=399 => "3xx",
                        400..=499 => "4xx",
                        _ => "5xx",
                    };
                    m.api
                        .get_or_create(&ApiLabels {
                            endpoint: inner.pages.normalize(&url).to_owned(),
                            status_class,
                        })
                        .observe(duration / 1000.0);
                }
                Event::Click => {
                    m.clicks
                        .get_or_create(&PageLabel { page: page.clone() })
                        .inc();
                }
            }
        }
        empty(StatusCode::NO_CONTENT)
    }
}

/// `POST /api/rum`: see [`Rum`].
///
/// ```
/// use tower::ServiceExt as _;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut registry = prometheus_client::registry::Registry::default();
/// let rum = towerscope_rum::Rum::builder().build(&mut registry);
/// let post = |body: &'static [u8]| {
///     let req = http::Request::post("/api/rum")
///         .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
///         .unwrap();
///     rum.ingest_service().oneshot(req)
/// };
/// let ok = br#"{"session":"s1","page":"/","events":[{"type":"vital","name":"CLS","value":0.02}]}"#;
/// assert_eq!(post(ok).await.unwrap().status(), 204);
/// // A bad beacon is refused whole, with the field that is wrong.
/// let bad = br#"{"session":"s1","page":"/","events":[{"type":"vital","name":"FID","value":8}]}"#;
/// assert_eq!(post(bad).await.unwrap().status(), 400);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct RumService {
    rum: Rum,
}

impl<B> tower_service::Service<Request<B>> for RumService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let rum = self.rum.clone();
        Box::pin(async move { Ok(rum.handle(req).await) })
    }
}

/// `GET /rum.js`: the collector script, cacheable for an hour.
///
/// ```
/// use tower::ServiceExt as _;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let req = http::Request::get("/rum.js").body(()).unwrap();
/// let resp = towerscope_rum::ScriptService.oneshot(req).await.unwrap();
/// assert_eq!(resp.status(), 200);
/// assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
/// # });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ScriptService;

impl<B> tower_service::Service<Request<B>> for ScriptService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let resp = if req.method() == Method::GET || req.method() == Method::HEAD {
            let mut r = Response::new(Full::new(Bytes::from_static(RUM_JS.as_bytes())));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        } else {
            let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        };
        std::future::ready(Ok(resp))
    }
}

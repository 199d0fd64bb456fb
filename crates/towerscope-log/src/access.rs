//! [`AccessLogLayer`]: one line when a request starts (debug) and one when it ends.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, Uri};
use tower_layer::Layer;
use towerscope_core::{
    End, ExcludedPaths, IpRange, IpRangeError, MakeObserver, NormalizedMethod, ObserveService,
    Observer, Outcome, PanicCaught, RequestStart, Route, RouteClassifier, TraceIds, UserId,
    client_ip, peer_ip, resolve_route,
};
use tracing::{Level, Span};

use crate::redact::{REDACTED, Redaction};

/// Target of the access log events (for filters: `towerscope_log::access=debug`).
///
/// ```
/// // Start lines are debug: turn them on for the access log alone.
/// let filter = format!("info,{}=debug", towerscope_log::ACCESS_TARGET);
/// assert_eq!(filter, "info,towerscope_log::access=debug");
/// ```
pub const ACCESS_TARGET: &str = "towerscope_log::access";

/// Longest path written, in bytes; longer paths are cut at a character boundary.
const MAX_PATH: usize = 1024;
/// Longest user agent written, in bytes.
const MAX_USER_AGENT: usize = 256;

#[derive(Debug)]
struct Config {
    trusted: Vec<IpRange>,
    exclude: ExcludedPaths,
    classifier: Option<RouteClassifier>,
    redaction: Redaction,
    headers: Vec<HeaderName>,
    sampling: Option<Sampling>,
    client_addr: ClientAddrLog,
}

/// How the access log writes the client's address (`client_addr`). An IP address is
/// personal data in much of the world (the GDPR's among others): keep the network only, or
/// nothing, where the whole address is more than the logs need.
///
/// ```
/// use towerscope_log::ClientAddrLog;
/// let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
/// assert_eq!(ClientAddrLog::Full.apply(ip("203.0.113.77")), Some(ip("203.0.113.77")));
/// assert_eq!(ClientAddrLog::Truncated.apply(ip("203.0.113.77")), Some(ip("203.0.113.0")));
/// assert_eq!(ClientAddrLog::Truncated.apply(ip("2001:db8:1:2:3:4:5:6")), Some(ip("2001:db8:1::")));
/// assert_eq!(ClientAddrLog::Omitted.apply(ip("203.0.113.77")), None);
/// assert_eq!("truncated".parse::<ClientAddrLog>(), Ok(ClientAddrLog::Truncated));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAddrLog {
    /// The whole address (the default).
    #[default]
    Full,
    /// The network only, as IP anonymisers do: an IPv4 address to its /24 (`203.0.113.0`),
    /// an IPv6 address to its /48 (`2001:db8:1::`); an IPv4 address mapped into IPv6 as
    /// IPv4. Enough to tell networks and abuse apart, not the person.
    Truncated,
    /// No `client_addr` field at all.
    Omitted,
}

impl ClientAddrLog {
    /// `ip` as this setting writes it; `None` when it is not written.
    ///
    /// ```
    /// use towerscope_log::ClientAddrLog;
    /// let mapped: std::net::IpAddr = "::ffff:198.51.100.9".parse().unwrap();
    /// assert_eq!(ClientAddrLog::Truncated.apply(mapped), Some("198.51.100.0".parse().unwrap()));
    /// ```
    pub fn apply(self, ip: IpAddr) -> Option<IpAddr> {
        match self {
            Self::Full => Some(ip),
            Self::Omitted => None,
            Self::Truncated => Some(match ip.to_canonical() {
                IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
                IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()),
            }),
        }
    }
}

impl std::str::FromStr for ClientAddrLog {
    type Err = String;

    /// `full`, `truncated` or `omitted`.
    ///
    /// ```
    /// use towerscope_log::ClientAddrLog;
    /// assert_eq!("omitted".parse::<ClientAddrLog>(), Ok(ClientAddrLog::Omitted));
    /// assert_eq!(
    ///     "hashed".parse::<ClientAddrLog>().unwrap_err(),
    ///     "`hashed` is not one of full, truncated, omitted"
    /// );
    /// ```
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "full" => Ok(Self::Full),
            "truncated" => Ok(Self::Truncated),
            "omitted" => Ok(Self::Omitted),
            other => Err(format!("`{other}` is not one of full, truncated, omitted")),
        }
    }
}

/// Which completion lines of successful requests are written; see
/// [`AccessLogBuilder::sample_successes`].
#[derive(Debug, Clone, Copy)]
struct Sampling {
    /// A line is kept when the trace ID's low 63 bits (or a random number) fall below this:
    /// OpenTelemetry's `TraceIdRatioBased` rule.
    bound: u64,
    /// One kept line stands for this many requests (`1 / ratio`), written as `sample_rate`.
    rate: f64,
    /// Successful requests at least this slow are always written.
    slow: Option<Duration>,
}

impl Sampling {
    fn new(ratio: f64, slow: Option<Duration>) -> Self {
        // Same bound as opentelemetry_sdk's `sample_based_on_probability`.
        let ratio = if ratio.is_nan() {
            1.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        Self {
            bound: (ratio * (1u64 << 63) as f64) as u64,
            rate: if ratio > 0.0 { 1.0 / ratio } else { 0.0 },
            slow,
        }
    }

    /// Whether a successful request's line is written, and with which `sample_rate`.
    fn decide(&self, trace: Option<&TraceIds>, duration: Duration) -> Decision {
        if self.slow.is_some_and(|slow| duration >= slow) {
            return Decision::Write { sample_rate: None };
        }
        let draw = match trace {
            Some(t) => {
                let mut low = [0u8; 8];
                low.copy_from_slice(&t.trace_id[8..]);
                u64::from_be_bytes(low)
            }
            // No trace ID: fastrand's per-thread generator.
            None => fastrand::u64(..),
        };
        if draw >> 1 < self.bound {
            Decision::Write {
                sample_rate: Some(self.rate),
            }
        } else {
            Decision::Drop
        }
    }
}

/// What [`Sampling::decide`] says of one successful request's line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Decision {
    /// Not written.
    Drop,
    /// Written; with the rate when sampling picked it, without when it is always written
    /// (slow).
    Write { sample_rate: Option<f64> },
}

/// Logs each request: a `debug` event when it starts, and when it ends an `info` event
/// (1xx–4xx), a `warn` event (cancelled by the client) or an `error` event (5xx, service or
/// body error, panic), with `event_type="http_request"`, `method`, `route`, `path`,
/// `query` (`"[REDACTED]"` when present: query strings often carry tokens), `status`,
/// `duration_ms` (to the end of the body), `user_agent`, `client_addr`, `user_id` (from a
/// [`UserId`] extension set by an auth layer, on the request or the response), `outcome`,
/// and the configured request headers with secret ones masked. The request ID comes from
/// the enclosing `request` span of `RequestIdLayer`, which must be outside this layer.
/// [`AccessLogBuilder::sample_successes`] writes only a share of the successful requests'
/// lines (those carry `sample_rate`).
///
/// `client_addr` is the peer address (axum's `ConnectInfo<PeerAddr>` or
/// `ConnectInfo<SocketAddr>`, or a [`PeerAddr`](towerscope_core::PeerAddr) or `SocketAddr` request
/// extension, read by [`peer_ip`](towerscope_core::peer_ip)); `Forwarded`/`X-Forwarded-For` are
/// believed only when the peer is one
/// of the configured trusted proxies.
///
/// ```
/// use axum::{Router, routing::get};
/// use towerscope_log::AccessLogLayer;
/// let layer = AccessLogLayer::builder()
///     .trusted_proxies(["10.0.0.0/8"]).unwrap()
///     .log_headers(["accept", "x-api-key"]) // x-api-key is written as [REDACTED]
///     .build();
/// let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(layer);
/// ```
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    config: Arc<Config>,
}

impl Default for AccessLogLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessLogLayer {
    /// A layer with defaults: no trusted proxies, no extra headers, `/metrics`, `/health`
    /// and `/ready` not logged.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// use towerscope_log::AccessLogLayer;
    /// let line = logged(AccessLogLayer::new(), get("/orders/7?card=4111111111111111"));
    /// assert_eq!(line["message"], "GET /orders/7 200");
    /// assert_eq!(line["level"], "INFO");
    /// assert_eq!(line["query"], "[REDACTED]"); // query strings are never written
    /// assert!(line["duration_ms"].is_f64());
    /// assert!(logged(AccessLogLayer::new(), get("/health")).is_null()); // probes are not logged
    /// ```
    pub fn new() -> Self {
        AccessLogBuilder::default().build()
    }

    /// A builder.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// use towerscope_log::AccessLogLayer;
    /// let layer = AccessLogLayer::builder().log_headers(["accept"]).build();
    /// let mut req = get("/");
    /// req.headers_mut().insert("accept", "text/html".parse().unwrap());
    /// assert_eq!(logged(layer, req)["headers"], "accept=text/html");
    /// ```
    pub fn builder() -> AccessLogBuilder {
        AccessLogBuilder::default()
    }
}

/// Builder for [`AccessLogLayer`].
///
/// ```
/// use std::time::Duration;
/// let access_log = towerscope_log::AccessLogLayer::builder()
///     .trusted_proxies(["10.0.0.0/8", "::1"])
///     .expect("valid ranges")
///     .log_headers(["x-tenant"])
///     .sample_successes(0.1)
///     .always_log_slower_than(Duration::from_millis(500))
///     .build();
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "ok" }))
///     .layer(access_log);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AccessLogBuilder {
    trusted: Vec<IpRange>,
    exclude: ExcludedPaths,
    classifier: Option<RouteClassifier>,
    redaction: Redaction,
    headers: Vec<HeaderName>,
    sample_ratio: Option<f64>,
    always_slower_than: Option<Duration>,
    client_addr: ClientAddrLog,
}

impl AccessLogBuilder {
    /// Proxies whose forwarding headers are believed (`"10.0.0.0/8"`, `"::1"`).
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// use towerscope_core::PeerAddr;
    /// let layer = towerscope_log::AccessLogLayer::builder().trusted_proxies(["10.0.0.0/8"]).unwrap().build();
    /// let from = |peer: &str| {
    ///     let mut req = get("/");
    ///     // What axum's connect info (or a hyper accept loop) puts into the extensions.
    ///     req.extensions_mut().insert(PeerAddr(format!("{peer}:40000").parse().unwrap()));
    ///     req.headers_mut().insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    ///     logged(layer.clone(), req)["client_addr"].clone()
    /// };
    /// assert_eq!(from("10.1.2.3"), "203.0.113.7"); // a trusted proxy: its header is believed
    /// assert_eq!(from("198.51.100.1"), "198.51.100.1"); // anyone else: the peer itself
    /// ```
    pub fn trusted_proxies<I, S>(mut self, ranges: I) -> Result<Self, IpRangeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.trusted.extend(IpRange::parse_all(ranges)?);
        Ok(self)
    }

    /// Exact paths not logged (replaces the default `/metrics`, `/health`, `/ready`).
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// let layer = towerscope_log::AccessLogLayer::builder().exclude_paths(["/internal/status"]).build();
    /// assert!(logged(layer.clone(), get("/internal/status")).is_null());
    /// assert_eq!(logged(layer, get("/health"))["path"], "/health"); // the defaults were replaced
    /// ```
    pub fn exclude_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        self.exclude = ExcludedPaths::new(paths);
        self
    }

    /// A route classifier, as for the metrics layer.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// use towerscope_core::{RequestHead, Route, RouteClassifier};
    /// let classifier = RouteClassifier::new(|req: &RequestHead<'_>| {
    ///     req.uri.path().starts_with("/static/").then_some(Route::Static("/static/*"))
    /// });
    /// let layer = towerscope_log::AccessLogLayer::builder().route_classifier(classifier).build();
    /// let line = logged(layer, get("/static/app.js"));
    /// assert_eq!((line["route"].as_str(), line["path"].as_str()), (Some("/static/*"), Some("/static/app.js")));
    /// ```
    pub fn route_classifier(mut self, classifier: RouteClassifier) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Which header names are secret (default [`Redaction::default`]).
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// use towerscope_log::{AccessLogLayer, Redaction};
    /// let layer = AccessLogLayer::builder()
    ///     .redaction(Redaction::default().with(["x-tenant"]))
    ///     .log_headers(["x-tenant"])
    ///     .build();
    /// let mut req = get("/");
    /// req.headers_mut().insert("x-tenant", "acme".parse().unwrap());
    /// assert_eq!(logged(layer, req)["headers"], "x-tenant=[REDACTED]");
    /// ```
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Request headers to include in the completion event (secret ones masked). Names that
    /// are not valid header names are ignored.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// let layer = towerscope_log::AccessLogLayer::builder()
    ///     .log_headers(["accept", "x-api-key", "not a header name"])
    ///     .build();
    /// let mut req = get("/");
    /// req.headers_mut().insert("accept", "text/html".parse().unwrap());
    /// req.headers_mut().insert("x-api-key", "k-123".parse().unwrap());
    /// assert_eq!(logged(layer, req)["headers"], "accept=text/html; x-api-key=[REDACTED]");
    /// ```
    pub fn log_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.headers = names
            .into_iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_ref().as_bytes()).ok())
            .collect();
        self
    }

    /// Writes the completion line of only a share (`ratio`, 0.0–1.0; values outside are
    /// clamped, NaN counts as 1.0) of successful requests (status 1xx–3xx). Client errors
    /// (4xx), server errors, cancellations and panics are always written, and so are
    /// successes slower than [`always_log_slower_than`](Self::always_log_slower_than). A line kept by sampling
    /// carries `sample_rate` (`1 / ratio`: how many requests it stands for), so log queries
    /// can weight it. The `debug` start lines are not sampled.
    ///
    /// The choice follows the request's trace ID when a trace layer ran outside this one,
    /// with OpenTelemetry's `TraceIdRatioBased` rule: every service with the same ratio keeps
    /// the lines of the same traces, and with the ratio of your trace sampler the lines kept
    /// are those of the traces it sampled at the root. Without a trace ID the choice is
    /// random.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = towerscope_log::AccessLogLayer::builder()
    ///     .sample_successes(0.1)
    ///     .always_log_slower_than(Duration::from_millis(500))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn sample_successes(mut self, ratio: f64) -> Self {
        self.sample_ratio = Some(ratio);
        self
    }

    /// With [`sample_successes`](Self::sample_successes): successful requests that took at
    /// least `duration` (to the end of the body) are always written.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// use std::time::Duration;
    /// use towerscope_log::AccessLogLayer;
    /// // Keep no fast success at all ...
    /// let none = AccessLogLayer::builder().sample_successes(0.0).build();
    /// assert!(logged(none, get("/")).is_null());
    /// // ... but every one that took at least this long (here: every one).
    /// let slow = AccessLogLayer::builder().sample_successes(0.0).always_log_slower_than(Duration::ZERO).build();
    /// assert_eq!(logged(slow, get("/"))["status"], 200);
    /// ```
    pub fn always_log_slower_than(mut self, duration: Duration) -> Self {
        self.always_slower_than = Some(duration);
        self
    }

    /// How `client_addr` is written: whole (the default), truncated to its network, or
    /// not at all ([`ClientAddrLog`]).
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// use towerscope_core::PeerAddr;
    /// use towerscope_log::{AccessLogLayer, ClientAddrLog};
    /// let from = |layer: AccessLogLayer| {
    ///     let mut req = get("/");
    ///     req.extensions_mut().insert(PeerAddr("203.0.113.77:40000".parse().unwrap()));
    ///     logged(layer, req)
    /// };
    /// let truncated = AccessLogLayer::builder().client_addr(ClientAddrLog::Truncated).build();
    /// assert_eq!(from(truncated)["client_addr"], "203.0.113.0");
    /// let omitted = AccessLogLayer::builder().client_addr(ClientAddrLog::Omitted).build();
    /// assert!(from(omitted).get("client_addr").is_none());
    /// ```
    pub fn client_addr(mut self, how: ClientAddrLog) -> Self {
        self.client_addr = how;
        self
    }

    /// Builds the layer.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use tracing_subscriber::layer::SubscriberExt as _;
    /// # /// The access log's completion line for `req` served through `layer` (null if none).
    /// # fn logged(layer: towerscope_log::AccessLogLayer, req: http::Request<String>) -> serde_json::Value {
    /// #     let out = towerscope_log::CaptureWriter::new();
    /// #     let json = towerscope_log::JsonLayer::new(out.clone(), towerscope_log::Redaction::default());
    /// #     tracing::subscriber::with_default(tracing_subscriber::registry().with(json), || {
    /// #         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #             let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
    /// #                 Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    /// #             });
    /// #             let resp = svc.oneshot(req).await.unwrap();
    /// #             http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// #         })
    /// #     });
    /// #     let lines = out.json_lines().unwrap();
    /// #     lines.into_iter().find(|l| l["message"] != "request started").unwrap_or_default()
    /// # }
    /// # let get = |uri: &str| http::Request::get(uri).body(String::new()).unwrap();
    /// let layer = towerscope_log::AccessLogLayer::builder().build(); // the same as `AccessLogLayer::new()`
    /// assert_eq!(logged(layer, get("/"))["event_type"], "http_request");
    /// ```
    pub fn build(self) -> AccessLogLayer {
        RequestStart::calibrate();
        AccessLogLayer {
            config: Arc::new(Config {
                trusted: self.trusted,
                exclude: self.exclude,
                classifier: self.classifier,
                redaction: self.redaction,
                headers: self.headers,
                sampling: self
                    .sample_ratio
                    .map(|ratio| Sampling::new(ratio, self.always_slower_than)),
                client_addr: self.client_addr,
            }),
        }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        ObserveService::new(inner, self.clone())
    }
}

/// Service made by [`AccessLogLayer`].
///
/// ```
/// use tower::Layer as _;
/// use towerscope_log::{AccessLog, AccessLogLayer};
/// let inner = tower::service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let svc: AccessLog<_> = AccessLogLayer::new().layer(inner);
/// # let _ = svc;
/// ```
pub type AccessLog<S> = ObserveService<S, AccessLogLayer>;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Per-request state of [`AccessLog`].
///
/// ```
/// use towerscope_core::ObservedBody;
/// use towerscope_log::AccessLogObserver;
/// // The completion line is written when the response body ends (or is dropped).
/// type LoggedBody<B> = ObservedBody<B, Option<AccessLogObserver>>;
/// ```
pub struct AccessLogObserver {
    span: Span,
    start: RequestStart,
    method: NormalizedMethod,
    route: Route,
    uri: Uri,
    user_agent: Option<HeaderValue>,
    client: Option<IpAddr>,
    user_id: Option<UserId>,
    trace: Option<TraceIds>,
    headers: Option<String>,
    status: Option<u16>,
    panic: bool,
    sampling: Option<Sampling>,
}

impl std::fmt::Debug for AccessLogObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogObserver")
            .field("route", &self.route.as_str())
            .finish_non_exhaustive()
    }
}

impl MakeObserver for AccessLogLayer {
    type Observer = AccessLogObserver;

    fn make_observer<B>(&self, req: &mut Request<B>) -> Option<AccessLogObserver> {
        let config = &self.config;
        if config.exclude.contains(req.uri().path()) {
            return None;
        }
        let observer = AccessLogObserver {
            span: Span::current(),
            start: RequestStart::get_or_now(req.extensions()),
            method: NormalizedMethod::from(req.method()),
            route: resolve_route(req, config.classifier.as_ref()),
            uri: req.uri().clone(),
            user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
            client: match config.client_addr {
                ClientAddrLog::Omitted => None,
                how => client_ip(peer_ip(req.extensions()), req.headers(), &config.trusted)
                    .and_then(|ip| how.apply(ip)),
            },
            user_id: req.extensions().get::<UserId>().cloned(),
            trace: req.extensions().get::<TraceIds>().copied(),
            headers: (!config.headers.is_empty()).then(|| render_headers(config, req.headers())),
            status: None,
            panic: false,
            sampling: config.sampling,
        };
        tracing::debug!(
            target: ACCESS_TARGET,
            event_type = "http_request",
            method = observer.method.as_str(),
            route = observer.route.as_str(),
            path = cut(observer.uri.path(), MAX_PATH),
            "request started"
        );
        Some(observer)
    }
}

fn render_headers(config: &Config, headers: &http::HeaderMap) -> String {
    let mut out = String::new();
    for name in &config.headers {
        for value in headers.get_all(name) {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name.as_str());
            out.push('=');
            if config.redaction.is_secret(name.as_str()) {
                out.push_str(REDACTED);
            } else {
                out.push_str(cut(&String::from_utf8_lossy(value.as_bytes()), 256));
            }
        }
    }
    out
}

/// The status code, or the outcome when there was no response, for the message.
struct StatusText(Option<u16>, &'static str);

impl std::fmt::Display for StatusText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{s}"),
            None => f.write_str(self.1),
        }
    }
}

macro_rules! at_level {
    ($level:expr, $($args:tt)*) => {
        match $level {
            Level::ERROR => tracing::error!($($args)*),
            Level::WARN => tracing::warn!($($args)*),
            _ => tracing::info!($($args)*),
        }
    };
}

impl Observer for AccessLogObserver {
    fn on_response<B>(&mut self, response: &Response<B>) {
        self.status = Some(response.status().as_u16());
        self.panic = response.extensions().get::<PanicCaught>().is_some();
        if let Some(user) = response.extensions().get::<UserId>() {
            self.user_id = Some(user.clone());
        }
    }

    fn on_end(self, end: End<'_>) {
        let duration = self.start.elapsed();
        // Milliseconds with microsecond resolution, without float noise in the text.
        let duration_ms = (duration.as_secs_f64() * 1e6).round() / 1e3;
        let outcome = Outcome::of(&end, self.method, self.status, self.panic);
        let success = outcome == Outcome::Ok && self.status.is_some_and(|s| s < 400);
        let sample_rate = match &self.sampling {
            Some(sampling) if success => match sampling.decide(self.trace.as_ref(), duration) {
                Decision::Write { sample_rate } => sample_rate,
                Decision::Drop => return,
            },
            _ => None,
        };
        let level = match outcome {
            Outcome::Ok => Level::INFO,
            Outcome::Cancelled => Level::WARN,
            _ => Level::ERROR,
        };
        let outcome = outcome.as_str();
        let error = match end {
            End::ServiceError(e) | End::BodyError { error: e, .. } => {
                Some(towerscope_core::display_text(e))
            }
            _ => None,
        };
        let path = cut(self.uri.path(), MAX_PATH);
        // Borrowed when the header is valid UTF-8 (nearly always).
        let user_agent = self
            .user_agent
            .as_ref()
            .map(|ua| String::from_utf8_lossy(ua.as_bytes()));
        let user_agent = user_agent.as_deref().map(|ua| cut(ua, MAX_USER_AGENT));
        let query = self.uri.query().map(|_| REDACTED);
        let method = self.method.as_str();
        let status_text = StatusText(self.status, outcome);
        // The line is written when the body ends, where the server span is no longer the
        // current context: name it from the IDs the trace layer left in the extensions.
        let trace_id = self.trace.map(|t| t.trace_id_hex());
        let span_id = self.trace.map(|t| t.span_id_hex());
        let _entered = self.span.enter();
        at_level!(
            level,
            target: ACCESS_TARGET,
            event_type = "http_request",
            method,
            route = self.route.as_str(),
            path,
            query,
            status = self.status,
            duration_ms,
            user_agent,
            client_addr = self.client.map(tracing::field::display),
            user_id = self.user_id.as_ref().map(UserId::as_str),
            trace_id = trace_id.as_ref().map(|h| h.as_str()),
            span_id = span_id.as_ref().map(|h| h.as_str()),
            outcome,
            error = error.as_deref(),
            headers = self.headers.as_deref(),
            sample_rate,
            "{method} {path} {status_text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanKind, TraceId};
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};

    fn ids(trace_id: [u8; 16]) -> TraceIds {
        TraceIds {
            trace_id,
            span_id: [1; 8],
            sampled: false,
        }
    }

    #[test]
    fn with_a_trace_id_the_choice_is_opentelemetrys_ratio_sampler() {
        for ratio in [0.0, 0.01, 0.25, 0.5, 0.9, 1.0] {
            let ours = Sampling::new(ratio, None);
            let sdk = Sampler::TraceIdRatioBased(ratio);
            let mut kept = 0;
            for _ in 0..2_000 {
                let trace_id = fastrand::u128(..).to_be_bytes();
                let decision = sdk
                    .should_sample(
                        None,
                        TraceId::from_bytes(trace_id),
                        "GET /",
                        &SpanKind::Server,
                        &[],
                        &[],
                    )
                    .decision;
                let keeps = ours.decide(Some(&ids(trace_id)), Duration::ZERO) != Decision::Drop;
                assert_eq!(keeps, decision == SamplingDecision::RecordAndSample);
                kept += usize::from(keeps);
            }
            let expected = ratio * 2_000.0;
            assert!(
                (kept as f64 - expected).abs() <= 150.0,
                "ratio {ratio}: kept {kept}"
            );
        }
    }

    #[test]
    fn slow_requests_are_kept_without_a_rate_and_bad_ratios_are_clamped() {
        let sampled = |rate| Decision::Write {
            sample_rate: Some(rate),
        };
        let never = Sampling::new(0.0, Some(Duration::from_millis(100)));
        let trace = ids([0; 16]);
        assert_eq!(
            never.decide(Some(&trace), Duration::from_millis(99)),
            Decision::Drop
        );
        assert_eq!(
            never.decide(Some(&trace), Duration::from_millis(100)),
            Decision::Write { sample_rate: None }
        );
        let always = Sampling::new(f64::NAN, None);
        assert_eq!(
            always.decide(Some(&ids([0xff; 16])), Duration::ZERO),
            sampled(1.0)
        );
        let over = Sampling::new(7.0, None);
        assert_eq!(over.decide(None, Duration::ZERO), sampled(1.0));
        let under = Sampling::new(-1.0, None);
        assert_eq!(
            under.decide(Some(&ids([0; 16])), Duration::ZERO),
            Decision::Drop
        );
    }
}

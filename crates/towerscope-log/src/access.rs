//! [`AccessLogLayer`]: one line when a request starts (debug) and one when it ends.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Request, Response, Uri};
use tower_layer::Layer;
use towerscope_core::{
    End, ExcludedPaths, MakeObserver, NormalizedMethod, ObserveService, Observer, Outcome,
    PanicCaught, PeerAddr, RequestStart, Route, RouteClassifier, TraceIds, UserId, resolve_route,
};
use tracing::{Level, Span};

use crate::client_addr::{IpRange, IpRangeError, client_addr};
use crate::redact::{REDACTED, Redaction};

/// Target of the access log events (for filters: `towerscope_log::access=debug`).
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
}

/// Logs each request: a `debug` event when it starts, and when it ends an `info` event
/// (1xx–4xx), a `warn` event (cancelled by the client) or an `error` event (5xx, service or
/// body error, panic), with `event_type="http_request"`, `method`, `route`, `path`,
/// `query` (`"[REDACTED]"` when present: query strings often carry tokens), `status`,
/// `duration_ms` (to the end of the body), `user_agent`, `client_addr`, `user_id` (from a
/// [`UserId`] extension set by an auth layer, on the request or the response), `outcome`,
/// and the configured request headers with secret ones masked. The request ID comes from
/// the enclosing `request` span of `RequestIdLayer`, which must be outside this layer.
///
/// `client_addr` is the peer address (axum's `ConnectInfo<PeerAddr>` or
/// `ConnectInfo<SocketAddr>`, or a [`PeerAddr`] or `SocketAddr` request extension); `Forwarded`/`X-Forwarded-For` are believed only when the peer is one
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
    pub fn new() -> Self {
        AccessLogBuilder::default().build()
    }

    /// A builder.
    pub fn builder() -> AccessLogBuilder {
        AccessLogBuilder::default()
    }
}

/// Builder for [`AccessLogLayer`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AccessLogBuilder {
    trusted: Vec<IpRange>,
    exclude: ExcludedPaths,
    classifier: Option<RouteClassifier>,
    redaction: Redaction,
    headers: Vec<HeaderName>,
}

impl AccessLogBuilder {
    /// Proxies whose forwarding headers are believed (`"10.0.0.0/8"`, `"::1"`).
    pub fn trusted_proxies<I, S>(mut self, ranges: I) -> Result<Self, IpRangeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for r in ranges {
            self.trusted.push(r.as_ref().parse()?);
        }
        Ok(self)
    }

    /// Exact paths not logged (replaces the default `/metrics`, `/health`, `/ready`).
    pub fn exclude_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        self.exclude = ExcludedPaths::new(paths);
        self
    }

    /// A route classifier, as for the metrics layer.
    pub fn route_classifier(mut self, classifier: RouteClassifier) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Which header names are secret (default [`Redaction::default`]).
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Request headers to include in the completion event (secret ones masked). Names that
    /// are not valid header names are ignored.
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

    /// Builds the layer.
    pub fn build(self) -> AccessLogLayer {
        RequestStart::calibrate();
        AccessLogLayer {
            config: Arc::new(Config {
                trusted: self.trusted,
                exclude: self.exclude,
                classifier: self.classifier,
                redaction: self.redaction,
                headers: self.headers,
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
pub type AccessLog<S> = ObserveService<S, AccessLogLayer>;

fn peer<B>(req: &Request<B>) -> Option<IpAddr> {
    let ext = req.extensions();
    #[cfg(feature = "axum")]
    {
        use axum::extract::ConnectInfo;
        if let Some(info) = ext.get::<ConnectInfo<PeerAddr>>() {
            return Some(info.0.0.ip());
        }
        if let Some(info) = ext.get::<ConnectInfo<std::net::SocketAddr>>() {
            return Some(info.0.ip());
        }
    }
    ext.get::<PeerAddr>().map(|p| p.0.ip()).or_else(|| {
        ext.get::<std::net::SocketAddr>()
            .map(std::net::SocketAddr::ip)
    })
}

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
            client: client_addr(peer(req), req.headers(), &config.trusted),
            user_id: req.extensions().get::<UserId>().cloned(),
            trace: req.extensions().get::<TraceIds>().copied(),
            headers: (!config.headers.is_empty()).then(|| render_headers(config, req.headers())),
            status: None,
            panic: false,
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
        // Milliseconds with microsecond resolution, without float noise in the text.
        let duration_ms = (self.start.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let outcome = Outcome::of(&end, self.method, self.status, self.panic);
        let level = match outcome {
            Outcome::Ok => Level::INFO,
            Outcome::Cancelled => Level::WARN,
            _ => Level::ERROR,
        };
        let outcome = outcome.as_str();
        let error = match end {
            End::ServiceError(e) | End::BodyError { error: e, .. } => Some(e.to_string()),
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
            "{method} {path} {status_text}"
        );
    }
}

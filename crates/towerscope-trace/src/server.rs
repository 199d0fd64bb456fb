//! [`TraceLayer`]: an OpenTelemetry server span per request.

use std::borrow::Cow;
use std::sync::Arc;

use http::{Request, Response, Version};
use opentelemetry::trace::{
    Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, Tracer,
};
use opentelemetry::{Context, KeyValue};
use tower_layer::Layer;
use towerscope_core::{
    End, ExcludedPaths, MakeObserver, NormalizedMethod, ObserveService, Observer, Outcome,
    PanicCaught, RouteClassifier, TraceIds, resolve_route,
};

use crate::{TraceParent, TraceState};

struct Config<T> {
    tracer: T,
    exclude: ExcludedPaths,
    classifier: Option<RouteClassifier>,
}

/// Starts an OpenTelemetry server span for every request and ends it when the response
/// body ends.
///
/// - **Parent:** read with this crate's strict [`TraceParent`] and [`TraceState`] parsers.
///   An invalid or repeated `traceparent` starts a new trace.
/// - **Name:** `{METHOD} {route}`, or `{METHOD}` when no route matched.
/// - **Attributes** (stable HTTP semantic conventions): `http.request.method`, `http.route`,
///   `url.path`, `url.scheme`, `server.address`, `network.protocol.version`,
///   `user_agent.original`, `request.id` (from `x-request-id`), `http.response.status_code`,
///   and `error.type` on failures.
/// - **Status:** `Error` for 5xx, panics, cancellations, service and body errors; left
///   unset otherwise.
/// - **Extensions:** the new span's [`TraceIds`] go into the request extensions, so the
///   metrics layer attaches them as exemplars and the handler can read them.
///
/// `/metrics`, `/health` and `/ready` get no span by default.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let layer = towerscope_trace::TraceLayer::new(provider.tracer("shop"));
/// let app: axum::Router = axum::Router::new().layer(layer);
/// ```
pub struct TraceLayer<T> {
    config: Arc<Config<T>>,
}

impl<T> Clone for TraceLayer<T> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<T> std::fmt::Debug for TraceLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceLayer").finish_non_exhaustive()
    }
}

impl<T> TraceLayer<T> {
    /// Spans from `tracer`; probe and scrape paths excluded.
    pub fn new(tracer: T) -> Self {
        Self {
            config: Arc::new(Config {
                tracer,
                exclude: ExcludedPaths::default(),
                classifier: None,
            }),
        }
    }

    /// Exact paths that get no span (replaces the defaults).
    pub fn exclude_paths<I, P>(self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
        T: Clone,
    {
        Self {
            config: Arc::new(Config {
                tracer: self.config.tracer.clone(),
                exclude: ExcludedPaths::new(paths),
                classifier: self.config.classifier.clone(),
            }),
        }
    }
}

impl<S, T> Layer<S> for TraceLayer<T> {
    type Service = ObserveService<S, TraceLayer<T>>;
    fn layer(&self, inner: S) -> Self::Service {
        ObserveService::new(inner, self.clone())
    }
}

/// The parent context of a request, from its `traceparent` and `tracestate`.
pub fn parent_context(headers: &http::HeaderMap) -> Context {
    let Ok(parent) = TraceParent::from_headers(headers) else {
        return Context::new();
    };
    let state = TraceState::from_headers(headers);
    let otel_state =
        opentelemetry::trace::TraceState::from_key_value(state.members()).unwrap_or_default();
    let sc = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_id),
        TraceFlags::new(parent.flags),
        true,
        otel_state,
    );
    Context::new().with_remote_span_context(sc)
}

fn header_str<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl<T> MakeObserver for TraceLayer<T>
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    type Observer = SpanObserver<T::Span>;

    fn make_observer<B>(&self, req: &mut Request<B>) -> Option<SpanObserver<T::Span>> {
        let config = &self.config;
        if config.exclude.contains(req.uri().path()) {
            return None;
        }
        let parent = parent_context(req.headers());
        let method = NormalizedMethod::from(req.method());
        let route = resolve_route(req, config.classifier.as_ref());
        let name: Cow<'static, str> = if route.is_unmatched() {
            method.as_str().into()
        } else {
            format!("{} {}", method.as_str(), route.as_str()).into()
        };
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.as_str()),
            KeyValue::new("url.path", cut(req.uri().path(), 1024)),
            KeyValue::new(
                "url.scheme",
                req.uri().scheme_str().unwrap_or("http").to_owned(),
            ),
            KeyValue::new(
                "network.protocol.version",
                match req.version() {
                    Version::HTTP_09 => "0.9",
                    Version::HTTP_10 => "1.0",
                    Version::HTTP_2 => "2",
                    Version::HTTP_3 => "3",
                    _ => "1.1",
                },
            ),
        ];
        if !route.is_unmatched() {
            attributes.push(KeyValue::new("http.route", route.as_str().to_owned()));
        }
        if method == NormalizedMethod::Other {
            attributes.push(KeyValue::new(
                "http.request.method_original",
                cut(req.method().as_str(), 64),
            ));
        }
        let host = req
            .uri()
            .host()
            .or_else(|| header_str(req, "host").map(|h| h.split(':').next().unwrap_or(h)));
        if let Some(host) = host {
            attributes.push(KeyValue::new("server.address", cut(host, 256)));
        }
        if let Some(ua) = header_str(req, "user-agent") {
            attributes.push(KeyValue::new("user_agent.original", cut(ua, 256)));
        }
        if let Some(id) = header_str(req, "x-request-id") {
            attributes.push(KeyValue::new("request.id", cut(id, 128)));
        }
        let span = config
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&config.tracer, &parent);
        let sc = span.span_context();
        req.extensions_mut().insert(TraceIds {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            sampled: sc.is_sampled(),
        });
        Some(SpanObserver {
            span,
            method,
            status: None,
            panic: false,
        })
    }
}

/// Per-request state of [`TraceLayer`]: the span, ended once with the outcome.
pub struct SpanObserver<S> {
    span: S,
    method: NormalizedMethod,
    status: Option<u16>,
    panic: bool,
}

impl<S> std::fmt::Debug for SpanObserver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanObserver")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl<S: Span> Observer for SpanObserver<S> {
    fn on_response<B>(&mut self, response: &Response<B>) {
        self.status = Some(response.status().as_u16());
        self.panic = response.extensions().get::<PanicCaught>().is_some();
    }

    fn on_end(mut self, end: End<'_>) {
        if let Some(code) = self.status {
            self.span
                .set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
        }
        let error: Option<Cow<'static, str>> =
            match Outcome::of(&end, self.method, self.status, self.panic) {
                Outcome::Ok => None,
                // The status code is the error type of a 5xx (semantic conventions).
                Outcome::ServerError => self.status.map(|s| Cow::Owned(s.to_string())),
                other => Some(other.as_str().into()),
            };
        if let Some(error) = error {
            let description = match end {
                End::ServiceError(e) | End::BodyError { error: e, .. } => e.to_string(),
                _ => error.to_string(),
            };
            self.span.set_attribute(KeyValue::new("error.type", error));
            self.span.set_status(Status::error(description));
        }
        self.span.end();
    }
}

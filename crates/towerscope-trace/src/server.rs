//! [`TraceLayer`]: an OpenTelemetry server span per request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use http::{HeaderValue, Request, Response, Version};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::SpanRef;
use opentelemetry::trace::{
    Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, Tracer,
};
use opentelemetry::{Context, KeyValue};
use std::task::Poll;
use tower_layer::Layer;
use tower_service::Service;
use towerscope_core::{
    End, ExcludedPaths, GrpcCode, NormalizedMethod, ObservedBody, ObservedFuture, Observer,
    Outcome, PanicCaught, Ring, RouteClassifier, TraceIds, is_grpc_request, resolve_route,
};

use crate::{Propagators, SamplerConfig, TraceParent, TraceState};

struct Config<T> {
    tracer: T,
    exclude: ExcludedPaths,
    classifier: Option<RouteClassifier>,
    propagators: Propagators,
    presample: Option<Presample>,
}

impl<T: Clone> Config<T> {
    fn cloned(&self) -> Self {
        Self {
            tracer: self.tracer.clone(),
            exclude: self.exclude.clone(),
            classifier: self.classifier.clone(),
            propagators: self.propagators,
            presample: self.presample.clone(),
        }
    }
}

/// The provider's sampler, held by the layer so that it can tell a span the sampler drops
/// before asking the SDK for one ([`TraceLayer::sampler`]).
#[derive(Clone)]
struct Presample {
    config: SamplerConfig,
    sampler: opentelemetry_sdk::trace::Sampler,
}

impl Presample {
    fn new(config: SamplerConfig) -> Self {
        Self {
            config,
            sampler: config.into(),
        }
    }

    /// Whether a span without a valid parent is dropped whatever its trace ID: the SDK
    /// draws that ID itself, so only such a decision can be made outside it.
    fn drops_roots(&self) -> bool {
        match self.config {
            SamplerConfig::AlwaysOff | SamplerConfig::ParentBasedAlwaysOff => true,
            // The SDK's ratio sampler keeps nothing at a ratio of 0 (or below, or NaN).
            SamplerConfig::Ratio(r) | SamplerConfig::ParentBasedRatio(r) => r <= 0.0 || r.is_nan(),
            SamplerConfig::AlwaysOn | SamplerConfig::ParentBasedAlwaysOn => false,
        }
    }
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
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    /// use tower::{ServiceBuilder, ServiceExt as _};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let exporter = InMemorySpanExporter::default();
    /// let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    /// let svc = ServiceBuilder::new()
    ///     .layer(towerscope_trace::TraceLayer::new(provider.tracer("shop")))
    ///     .service_fn(|_req: http::Request<String>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new("ok".to_owned()))
    ///     });
    /// for path in ["/orders", "/health"] {
    ///     let req = http::Request::get(path).body(String::new()).unwrap();
    ///     let resp = svc.clone().oneshot(req).await.unwrap();
    ///     // The span ends with the response body.
    ///     http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    /// }
    /// let spans = exporter.get_finished_spans().unwrap();
    /// assert_eq!(spans.len(), 1, "/health is excluded by default");
    /// assert_eq!(spans[0].name, "GET"); // "GET {route}" under an axum router
    /// # });
    /// ```
    pub fn new(tracer: T) -> Self {
        Self {
            config: Arc::new(Config {
                tracer,
                exclude: ExcludedPaths::default(),
                classifier: None,
                propagators: Propagators::default(),
                presample: None,
            }),
        }
    }

    /// Exact paths that get no span (replaces the defaults).
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use tower::{ServiceBuilder, ServiceExt as _};
    /// use towerscope_core::TraceIds;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer = towerscope_trace::TraceLayer::new(provider.tracer("shop"))
    ///     .exclude_paths(["/internal/status"]);
    /// // The handler says whether the request got a span.
    /// let svc = ServiceBuilder::new().layer(layer).service_fn(|req: http::Request<String>| async move {
    ///     let traced = req.extensions().get::<TraceIds>().is_some();
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(traced.to_string()))
    /// });
    /// let traced = |path: &'static str| {
    ///     let svc = svc.clone();
    ///     async move {
    ///         let resp = svc.oneshot(http::Request::get(path).body(String::new()).unwrap()).await.unwrap();
    ///         resp.body().get_ref() == "true"
    ///     }
    /// };
    /// assert!(!traced("/internal/status").await);
    /// assert!(traced("/health").await, "the defaults were replaced");
    /// # });
    /// ```
    pub fn exclude_paths<I, P>(self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
        T: Clone,
    {
        Self {
            config: Arc::new(Config {
                exclude: ExcludedPaths::new(paths),
                ..self.config.cloned()
            }),
        }
    }

    /// Also accept a B3 parent ([`extract_b3`](crate::extract_b3)) from callers that send
    /// no valid `traceparent` (Zipkin-instrumented services). W3C wins when both are sent.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer = towerscope_trace::TraceLayer::new(provider.tracer("shop")).accept_b3();
    /// # let _ = layer;
    /// ```
    pub fn accept_b3(self) -> Self
    where
        T: Clone,
    {
        Self {
            config: Arc::new(Config {
                propagators: self.config.propagators.with_b3(crate::B3Format::Multi),
                ..self.config.cloned()
            }),
        }
    }

    /// The formats the context is read in (`OTEL_PROPAGATORS`; default
    /// `tracecontext,baggage`): [`Tracing::propagators`](crate::Tracing::propagators)
    /// gives the configured ones. With `none` every request starts a new trace.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use towerscope_trace::{Propagators, TraceLayer};
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let propagators: Propagators = "tracecontext,baggage,b3multi".parse()?;
    /// let layer = TraceLayer::new(provider.tracer("shop")).propagators(propagators);
    /// # let _ = layer;
    /// # Ok::<(), towerscope_trace::ConfigError>(())
    /// ```
    pub fn propagators(self, propagators: Propagators) -> Self
    where
        T: Clone,
    {
        Self {
            config: Arc::new(Config {
                propagators,
                ..self.config.cloned()
            }),
        }
    }

    /// The sampler the tracer's provider was built with, so the layer can recognise a span
    /// that sampler drops before it asks the SDK for one. Such a request gets what a
    /// dropped SDK span would give it (fresh span ID, the caller's trace ID or a fresh one,
    /// not sampled, the caller's `tracestate` and `random` flag, [`TraceIds`] in the
    /// extensions, the context current while it is served) without the SDK's span.
    ///
    /// The layer decides ahead only where its decision is the SDK's: for requests with a
    /// valid parent (the trace ID is the caller's, so any of these samplers decides the
    /// same), and for new traces only when the sampler drops every new trace
    /// (`AlwaysOff`, `ParentBasedAlwaysOff`, a ratio of 0). Everything else goes to the
    /// SDK as before. [`Tracing::sampler`](crate::Tracing::sampler) gives the sampler
    /// [`TracingConfig::init`](crate::TracingConfig::init) configured; give a provider
    /// built another way the sampler it was built with (a different one makes the layer
    /// drop what that one drops).
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use towerscope_trace::{SamplerConfig, TraceLayer};
    /// let sampler = SamplerConfig::ParentBasedRatio(0.1);
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
    ///     .with_sampler(opentelemetry_sdk::trace::Sampler::from(sampler))
    ///     .build();
    /// let layer = TraceLayer::new(provider.tracer("shop")).sampler(sampler);
    /// # let _ = layer;
    /// ```
    pub fn sampler(self, sampler: SamplerConfig) -> Self
    where
        T: Clone,
    {
        Self {
            config: Arc::new(Config {
                presample: Some(Presample::new(sampler)),
                ..self.config.cloned()
            }),
        }
    }
}

impl<S, T> Layer<S> for TraceLayer<T> {
    type Service = TraceService<S, T>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`TraceLayer`] makes: the server span is the current OpenTelemetry context
/// while the inner service is called and its future polled, so the handler's own spans
/// (directly, or through `tracing` with [`tracing_layer`](crate::tracing_layer)) and its
/// outgoing calls ([`TraceClientLayer`](crate::TraceClientLayer)) are its children.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tower::{ServiceBuilder, ServiceExt as _};
/// use towerscope_core::TraceIds;
/// use towerscope_trace::TraceLayer;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let svc = ServiceBuilder::new()
///     .layer(TraceLayer::new(provider.tracer("shop")))
///     .service_fn(|req: http::Request<String>| async move {
///         // The server span's IDs, for logs and exemplars.
///         let ids = *req.extensions().get::<TraceIds>().expect("set by the layer");
///         Ok::<_, std::convert::Infallible>(http::Response::new(ids.trace_id_hex().to_string()))
///     });
/// let resp = svc.oneshot(http::Request::new(String::new())).await.unwrap();
/// assert_eq!(resp.status(), 200);
/// # });
/// ```
pub struct TraceService<S, T> {
    inner: S,
    layer: TraceLayer<T>,
}

impl<S: Clone, T> Clone for TraceService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, T> std::fmt::Debug for TraceService<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, T> TraceService<S, T> {
    /// The inner service.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use tower::Layer as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let mut svc = towerscope_trace::TraceLayer::new(provider.tracer("shop")).layer(vec![1]);
    /// assert_eq!(svc.get_ref(), &[1]);
    /// svc.get_mut().push(2);
    /// assert_eq!(svc.into_inner(), [1, 2]);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use tower::Layer as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let mut svc = towerscope_trace::TraceLayer::new(provider.tracer("shop")).layer(vec![1]);
    /// svc.get_mut().push(2);
    /// assert_eq!(svc.get_ref(), &[1, 2]);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use tower::Layer as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let svc = towerscope_trace::TraceLayer::new(provider.tracer("shop")).layer(vec![1]);
    /// assert_eq!(svc.into_inner(), [1]);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, ReqB, ResB> Service<Request<ReqB>> for TraceService<S, T>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: std::fmt::Display,
    T: Tracer,
    T::Span: Send + Sync + 'static,
    ResB: http_body::Body,
    ResB::Error: std::fmt::Display + 'static,
{
    type Response = Response<ObservedBody<ResB, Option<SpanObserver>>>;
    type Error = S::Error;
    type Future = ObservedFuture<WithContext<S::Future>, Option<SpanObserver>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        self.layer
            .call_traced(&mut self.inner, req, ObservedFuture::new)
    }
}

/// The parent context of a request, from its `traceparent` and `tracestate`.
///
/// The W3C `baggage` header, if any, is read too ([`parse_baggage`](crate::parse_baggage)).
///
/// ```
/// use opentelemetry::trace::TraceContextExt as _;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
/// let cx = towerscope_trace::parent_context(&headers);
/// assert!(cx.span().span_context().is_remote());
/// ```
pub fn parent_context(headers: &http::HeaderMap) -> Context {
    parent_from(headers, &ContextHeaders::of(headers))
}

/// [`parent_context`] for a request whose context headers were found already.
fn parent_from(headers: &http::HeaderMap, present: &ContextHeaders) -> Context {
    parent_with(headers, present.traceparent, present.baggage)
}

/// The context of `headers`: its baggage if `baggage`, its `traceparent` and `tracestate`
/// if `traceparent` (each flag: the header is there and is to be read).
pub(crate) fn parent_with(headers: &http::HeaderMap, traceparent: bool, baggage: bool) -> Context {
    let cx = if baggage {
        Context::new().with_baggage(crate::parse_baggage(headers))
    } else {
        Context::new()
    };
    if !traceparent {
        return cx;
    }
    let Ok(parent) = TraceParent::from_headers(headers) else {
        return cx;
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
    cx.with_remote_span_context(sc)
}

/// Which of the headers a server span reads a request carries (the W3C context headers,
/// the request ID): most carry none, and then none is looked up
/// ([`small_header_names`](towerscope_core::small_header_names)).
struct ContextHeaders {
    traceparent: bool,
    baggage: bool,
    request_id: bool,
}

impl ContextHeaders {
    fn of(headers: &http::HeaderMap) -> Self {
        let Some(names) = towerscope_core::small_header_names(headers) else {
            return Self {
                traceparent: headers.contains_key(crate::names::TRACEPARENT),
                baggage: headers.contains_key(crate::names::BAGGAGE),
                request_id: headers.contains_key(crate::names::REQUEST_ID),
            };
        };
        let mut present = Self {
            traceparent: false,
            baggage: false,
            request_id: false,
        };
        for name in names {
            match name.as_str() {
                crate::TRACEPARENT => present.traceparent = true,
                crate::BAGGAGE => present.baggage = true,
                crate::names::REQUEST_ID_TEXT => present.request_id = true,
                _ => {}
            }
        }
        present
    }
}

/// The header values a recorded span's attributes take: the first `Host`, `User-Agent`
/// and request ID. In a small map one pass over it finds them, where each lookup would
/// hash a name and probe the map; only a span that records reads them.
struct SpanHeaders<'a> {
    host: Option<&'a HeaderValue>,
    user_agent: Option<&'a HeaderValue>,
    request_id: Option<&'a HeaderValue>,
}

impl<'a> SpanHeaders<'a> {
    fn of(headers: &'a http::HeaderMap, request_id: bool) -> Self {
        if towerscope_core::small_header_names(headers).is_none() {
            return Self {
                host: headers.get(http::header::HOST),
                user_agent: headers.get(http::header::USER_AGENT),
                request_id: request_id
                    .then(|| headers.get(crate::names::REQUEST_ID))
                    .flatten(),
            };
        }
        let mut found = Self {
            host: None,
            user_agent: None,
            request_id: None,
        };
        for (name, value) in headers {
            // Standard names compare by their tag, without reading text.
            let slot = if *name == http::header::HOST {
                &mut found.host
            } else if *name == http::header::USER_AGENT {
                &mut found.user_agent
            } else if request_id && *name == crate::names::REQUEST_ID {
                &mut found.request_id
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        found
    }
}

fn header_text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

pub(crate) fn cut(s: &str, max: usize) -> String {
    prefix(s, max).to_owned()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// How many recent values of one request attribute each thread keeps.
const RECENT_VALUES: usize = 4;

/// A thread's last few values of one request attribute (`server.address`,
/// `user_agent.original`), shared with the spans that carry them.
///
/// Requests mostly repeat the host and the user agent of the ones before them: a span then
/// takes a reference to the same text instead of a copy of its own, one allocation fewer
/// per attribute, and one fewer for the exporter's thread to free. Bounded: a few values of
/// at most 256 bytes each per thread.
type RecentValues = Ring<Arc<str>, RECENT_VALUES>;

thread_local! {
    static HOSTS: std::cell::RefCell<RecentValues> = const { std::cell::RefCell::new(Ring::new()) };
    static USER_AGENTS: std::cell::RefCell<RecentValues> = const { std::cell::RefCell::new(Ring::new()) };
}

/// `value` as kept in `recent`: the same text when it is there, else a new one it keeps.
fn shared(recent: &mut RecentValues, value: &str) -> Arc<str> {
    if let Some(seen) = recent.find(|s| **s == *value) {
        return Arc::clone(seen);
    }
    let new: Arc<str> = Arc::from(value);
    recent.push(Arc::clone(&new));
    new
}

/// `value` as an attribute value, shared with this thread's recent requests when one of
/// them had the same (a copy of its own when the thread is being torn down).
fn recent_value(
    recent: &'static std::thread::LocalKey<std::cell::RefCell<RecentValues>>,
    value: &str,
) -> opentelemetry::StringValue {
    match recent.try_with(|r| r.try_borrow_mut().map(|mut r| shared(&mut r, value))) {
        Ok(Ok(text)) => text.into(),
        _ => value.to_owned().into(),
    }
}

/// `host` (at most 256 bytes) as a `server.address` value, shared with this thread's
/// recent spans, server and client alike, when one of them had the same.
pub(crate) fn server_address(host: &str) -> opentelemetry::StringValue {
    recent_value(&HOSTS, prefix(host, 256))
}

pub(crate) fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

impl<T> TraceLayer<T>
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    /// Calls `inner` with the request's context current, and gives `make` the future (run
    /// in that context) and, for a span that records, the observer that ends it. `make`
    /// builds the response future in place: returning the parts would copy the future.
    #[inline]
    pub(crate) fn call_traced<S, ReqB, R>(
        &self,
        inner: &mut S,
        mut req: Request<ReqB>,
        make: impl FnOnce(WithContext<S::Future>, Option<SpanObserver>) -> R,
    ) -> R
    where
        S: Service<Request<ReqB>>,
    {
        let (cx, observer) = self.start(&mut req);
        let future = {
            let _guard = cx.clone().attach();
            inner.call(req)
        };
        make(future.with_context(cx), observer)
    }

    /// The request's context (its server span, or the caller's context for an excluded
    /// path) and, for a span that records, the observer that ends it.
    fn start<B>(&self, req: &mut Request<B>) -> (Context, Option<SpanObserver>) {
        let config = &*self.config;
        if config.exclude.contains(req.uri().path()) {
            return (Context::current(), None);
        }
        let present = ContextHeaders::of(req.headers());
        let read = config.propagators;
        let mut parent = parent_with(
            req.headers(),
            read.trace_context() && present.traceparent,
            read.baggage() && present.baggage,
        );
        // Tested here rather than in a call that moves the context in and out.
        if read.b3() && !parent.has_active_span() {
            if let Some(sc) = crate::extract_b3(req.headers()) {
                parent = parent.with_remote_span_context(sc);
            }
        }
        let parent_valid = parent.span().span_context().is_valid();
        if let Some(pre) = &config.presample {
            if !parent_valid && pre.drops_roots() {
                return (dropped_context(req, &parent, None), None);
            }
        }
        let method = NormalizedMethod::from(req.method());
        let route = resolve_route(req, config.classifier.as_ref());
        let grpc = is_grpc_request(req);
        // Room for every attribute a span gets, the ones set when it ends included: the
        // SDK keeps this vector as the span's own.
        let mut attributes = Vec::with_capacity(16);
        let name: Cow<'static, str> = if grpc {
            let rpc_method = match route.grpc_parts() {
                Some(_) => route.as_str().trim_start_matches('/').to_owned(),
                None => {
                    attributes.push(KeyValue::new(
                        "rpc.method_original",
                        cut(req.uri().path(), 256),
                    ));
                    OTHER.to_owned()
                }
            };
            attributes.push(KeyValue::new("rpc.system.name", "grpc"));
            attributes.push(KeyValue::new("rpc.method", rpc_method.clone()));
            rpc_method.into()
        } else {
            attributes.push(KeyValue::new("http.request.method", method.as_str()));
            if route.is_unmatched() {
                method.as_str().into()
            } else if let Some(name) = interned_name(method, route.as_str()) {
                name.into()
            } else {
                // Concatenated by hand: the formatting machinery costs more than the copy.
                let (m, r) = (method.as_str(), route.as_str());
                let mut name = String::with_capacity(m.len() + 1 + r.len());
                name.push_str(m);
                name.push(' ');
                name.push_str(r);
                name.into()
            }
        };
        // An interned name (`{METHOD} {route}`) lends its tail to `http.route`.
        let interned = match &name {
            Cow::Borrowed(n) if !grpc && !route.is_unmatched() => Some(*n),
            _ => None,
        };
        if let (Some(pre), true) = (&config.presample, parent_valid) {
            use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};
            // With a valid parent the SDK samples on the parent's trace ID: the same call
            // here gives the same answer. The SDK's own samplers (the only ones a layer is
            // told of) read no attribute, so the request's are only built for a span that
            // is not dropped here.
            let decision = pre.sampler.should_sample(
                Some(&parent),
                parent.span().span_context().trace_id(),
                &name,
                &SpanKind::Server,
                &attributes,
                &[],
            );
            if decision.decision == SamplingDecision::Drop {
                return (
                    dropped_context(req, &parent, Some(decision.trace_state)),
                    None,
                );
            }
        }
        // Every attribute goes in at creation: the semantic conventions ask for the
        // sampling-relevant ones there (method, `url.*`, `server.address`,
        // `user_agent.original`), so that the tracer's sampler, whichever it is, sees them.
        if !grpc && !route.is_unmatched() {
            let value: opentelemetry::StringValue = match interned {
                Some(n) => n[method.as_str().len() + 1..].into(),
                None => route.as_str().to_owned().into(),
            };
            attributes.push(KeyValue::new("http.route", value));
        }
        request_attributes(&mut attributes, req, method, grpc, present.request_id);
        let span = config
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&config.tracer, &parent);
        let recording = span.is_recording();
        let sc = span.span_context();
        req.extensions_mut().insert(TraceIds {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            sampled: sc.is_sampled(),
        });
        let cx = child_context(&parent, span);
        if !recording {
            // Sampled out: ending the span records nothing, so nothing observes the response.
            return (cx, None);
        }
        let observer = SpanObserver {
            cx: cx.clone(),
            method,
            grpc,
            grpc_code: None,
            status: None,
            panic: false,
        };
        (cx, Some(observer))
    }
}

/// The context of a span started under `parent`: the span itself when it records; its IDs
/// alone when its sampler dropped it (the handler's spans, logs and outgoing calls need the
/// IDs, nothing needs the span, and a context holding only the span context saves boxing it).
///
/// The SDK gives a span it drops default flags, so the caller's `random` flag (W3C Trace
/// Context Level 2: the trace ID's right 7 bytes are random) would be lost for every
/// request its sampler drops, though the span shares the caller's trace ID. It is kept.
pub(crate) fn child_context<S>(parent: &Context, span: S) -> Context
where
    S: Span + Send + Sync + 'static,
{
    if span.is_recording() {
        return parent.with_span(span);
    }
    dropped_child(parent, span.span_context())
}

/// The context of a dropped span `sc` under `parent`: its IDs alone, with the caller's
/// `random` flag when it continues the caller's trace (see [`child_context`]).
fn dropped_child(parent: &Context, sc: &SpanContext) -> Context {
    let caller = parent.span();
    let psc = caller.span_context();
    let random = psc.is_valid()
        && psc.trace_id() == sc.trace_id()
        && psc.trace_flags().to_u8() & crate::FLAG_RANDOM != 0;
    let sc = if random {
        SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            TraceFlags::new(sc.trace_flags().to_u8() | crate::FLAG_RANDOM),
            sc.is_remote(),
            sc.trace_state().clone(),
        )
    } else {
        sc.clone()
    };
    parent.with_remote_span_context(sc)
}

/// The context of a server span its sampler drops, made without the SDK: what the SDK
/// gives such a span (a fresh span ID; the parent's trace ID, or a fresh one from the same
/// generator; default flags; the sampler's `tracestate`, else the caller's), put into a
/// context as [`child_context`] puts the SDK's (the caller's `random` flag kept), with its
/// [`TraceIds`] in the extensions.
fn dropped_context<B>(
    req: &mut Request<B>,
    parent: &Context,
    state: Option<opentelemetry::trace::TraceState>,
) -> Context {
    use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
    let ids = RandomIdGenerator::default();
    let caller = parent.span();
    let psc = caller.span_context();
    let trace_id = if psc.is_valid() {
        psc.trace_id()
    } else {
        ids.new_trace_id()
    };
    let span_id = ids.new_span_id();
    let state = state.unwrap_or_else(|| psc.trace_state().clone());
    req.extensions_mut().insert(TraceIds {
        trace_id: trace_id.to_bytes(),
        span_id: span_id.to_bytes(),
        sampled: false,
    });
    let sc = SpanContext::new(trace_id, span_id, TraceFlags::default(), false, state);
    dropped_child(parent, &sc)
}

/// The attributes of a server span read from the request, beyond the method (or the RPC
/// method) and the route.
fn request_attributes<B>(
    attributes: &mut Vec<KeyValue>,
    req: &Request<B>,
    method: NormalizedMethod,
    grpc: bool,
    has_request_id: bool,
) {
    if !grpc {
        attributes.push(KeyValue::new("url.path", cut(req.uri().path(), 1024)));
        attributes.push(KeyValue::new(
            "url.scheme",
            match req.uri().scheme_str() {
                Some("https") => "https",
                _ => "http",
            },
        ));
        if method == NormalizedMethod::Other {
            attributes.push(KeyValue::new(
                "http.request.method_original",
                cut(req.method().as_str(), 64),
            ));
        }
    }
    attributes.push(KeyValue::new(
        "network.protocol.version",
        protocol_version(req.version()),
    ));
    let found = SpanHeaders::of(req.headers(), has_request_id);
    let host = req
        .uri()
        .host()
        .or_else(|| header_text(found.host).map(|h| h.split(':').next().unwrap_or(h)));
    if let Some(host) = host {
        attributes.push(KeyValue::new("server.address", server_address(host)));
    }
    if let Some(ua) = header_text(found.user_agent) {
        attributes.push(KeyValue::new(
            "user_agent.original",
            recent_value(&USER_AGENTS, prefix(ua, 256)),
        ));
    }
    if let Some(id) = header_text(found.request_id) {
        attributes.push(KeyValue::new("request.id", cut(id, 128)));
    }
}

/// Most span names [`interned_name`] keeps.
const MAX_INTERNED: usize = 1024;

/// Interned names, by route template and then by method.
type NameTable = HashMap<&'static str, [Option<&'static str>; METHODS], foldhash::fast::FixedState>;

/// Number of [`NormalizedMethod`] values.
const METHODS: usize = NormalizedMethod::Other as usize + 1;

/// The span name `{METHOD} {route}` for a route template, made once per process.
///
/// OpenTelemetry span names are `Cow<'static, str>`: a name made per request is an
/// allocation per span, freed later on the exporter's thread. Route templates are a small,
/// finite set, so each name is made once and kept for the life of the process; the `http.route`
/// attribute borrows its tail. At most [`MAX_INTERNED`] names are kept (a route classifier
/// with unbounded answers gets names made per span past that, as before).
///
/// Each thread keeps its last few answers in front of the shared table, so the common case
/// is a few short byte comparisons, with no lock and no hashing.
fn interned_name(method: NormalizedMethod, route: &str) -> Option<&'static str> {
    static NAMES: OnceLock<RwLock<(NameTable, usize)>> = OnceLock::new();
    // `try_with`/`try_borrow`: a thread being torn down, or a re-entrant call, just skips
    // the cache.
    let recent =
        RECENT.try_with(|r| Some(r.try_borrow().ok()?.find(|e| e.is(method, route))?.name));
    if let Ok(Some(name)) = recent {
        return Some(name);
    }
    let table = NAMES.get_or_init(|| RwLock::new((NameTable::default(), 0)));
    let name = intern(table, MAX_INTERNED, method, route)?;
    let _ = RECENT.try_with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            r.push(RecentName { method, name });
        }
    });
    Some(name)
}

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = const { std::cell::RefCell::new(Recent::new()) };
}

/// A thread's last [`RECENT_NAMES`] interned names.
type Recent = Ring<RecentName, RECENT_NAMES>;

const RECENT_NAMES: usize = 8;

#[derive(Clone, Copy)]
struct RecentName {
    method: NormalizedMethod,
    /// `{METHOD} {route}`: the route is its tail.
    name: &'static str,
}

impl RecentName {
    /// Whether this is the name of `route` for `method`.
    fn is(&self, method: NormalizedMethod, route: &str) -> bool {
        self.method == method && self.name.get(method.as_str().len() + 1..) == Some(route)
    }
}

fn intern(
    table: &RwLock<(NameTable, usize)>,
    max: usize,
    method: NormalizedMethod,
    route: &str,
) -> Option<&'static str> {
    let slot = method as usize;
    if let Ok(read) = table.read() {
        if let Some(name) = read.0.get(route).and_then(|names| names[slot]) {
            return Some(name);
        }
        // Names are never removed: past the cap no span takes the write lock.
        if read.1 >= max {
            return None;
        }
    }
    let mut write = table.write().ok()?;
    let (names, count) = &mut *write;
    if let Some(name) = names.get(route).and_then(|names| names[slot]) {
        return Some(name);
    }
    if *count >= max {
        return None;
    }
    let name: &'static str = Box::leak(format!("{} {route}", method.as_str()).into_boxed_str());
    let key: &'static str = &name[method.as_str().len() + 1..];
    names.entry(key).or_insert([None; METHODS])[slot] = Some(name);
    *count += 1;
    Some(name)
}

/// The method value the semantic conventions give a method the server does not know.
const OTHER: &str = "_OTHER";

/// Per-request state of [`TraceLayer`]: the span (inside its context), ended once with the
/// outcome.
///
/// ```
/// use towerscope_core::{ObservedBody, ObservedFuture};
/// use towerscope_trace::SpanObserver;
/// // The response body a `TraceService` gives for an inner body `B`: the span ends with it.
/// type Traced<B> = ObservedBody<B, Option<SpanObserver>>;
/// type TracedFuture<F> = ObservedFuture<F, Option<SpanObserver>>;
/// ```
pub struct SpanObserver {
    cx: Context,
    method: NormalizedMethod,
    grpc: bool,
    grpc_code: Option<GrpcCode>,
    status: Option<u16>,
    panic: bool,
}

impl std::fmt::Debug for SpanObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanObserver")
            .field("status", &self.status)
            .field("grpc_code", &self.grpc_code)
            .finish_non_exhaustive()
    }
}

impl Observer for SpanObserver {
    fn on_response<B>(&mut self, response: &Response<B>) {
        self.status = Some(response.status().as_u16());
        self.panic = response.extensions().get::<PanicCaught>().is_some();
        if self.grpc {
            self.grpc_code = GrpcCode::from_headers(response.headers());
        }
    }

    fn on_trailers(&mut self, trailers: &http::HeaderMap) {
        if self.grpc && self.grpc_code.is_none() {
            self.grpc_code = GrpcCode::from_headers(trailers);
        }
    }

    fn on_end(self, end: End<'_>) {
        let span = self.cx.span();
        let outcome = Outcome::of(&end, self.method, self.status, self.panic);
        let error: Option<Cow<'static, str>> = if self.grpc {
            end_rpc(&span, outcome, self.grpc_code, GrpcCode::is_server_error)
        } else {
            if let Some(code) = self.status {
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
            }
            match outcome {
                Outcome::Ok => None,
                // The status code is the error type of a 5xx (semantic conventions).
                Outcome::ServerError => self.status.map(|s| Cow::Owned(s.to_string())),
                other => Some(other.as_str().into()),
            }
        };
        if let Some(error) = error {
            let description = match end {
                End::ServiceError(e) | End::BodyError { error: e, .. } => e.to_string(),
                _ => error.to_string(),
            };
            span.set_attribute(KeyValue::new("error.type", error));
            span.set_status(Status::error(description));
        }
        span.end();
    }
}

/// Records the gRPC outcome on an RPC span and returns its `error.type`, if it failed.
/// `is_error` says which status codes count as errors for this side (server or client).
pub(crate) fn end_rpc(
    span: &SpanRef<'_>,
    outcome: Outcome,
    code: Option<GrpcCode>,
    is_error: fn(GrpcCode) -> bool,
) -> Option<Cow<'static, str>> {
    if let Some(code) = code {
        span.set_attribute(KeyValue::new("rpc.status_code", code.as_str()));
        if code == GrpcCode::Unimplemented {
            // The method is unknown to the server: the conventions name it `_OTHER`.
            span.update_name(OTHER);
            span.set_attribute(KeyValue::new("rpc.method", OTHER));
        }
    }
    match (outcome, code) {
        (Outcome::Ok | Outcome::ServerError, Some(code)) if is_error(code) => {
            Some(code.as_str().into())
        }
        (Outcome::Ok | Outcome::ServerError, Some(_)) => None,
        (Outcome::Ok, None) => Some("grpc_missing_status".into()),
        (Outcome::ServerError, None) => Some("http_5xx".into()),
        (other, _) => Some(other.as_str().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_are_made_once_and_bounded() {
        let table = RwLock::new((NameTable::default(), 0));
        let get = intern(&table, 3, NormalizedMethod::Get, "/users/{id}").expect("room");
        assert_eq!(get, "GET /users/{id}");
        let again = intern(&table, 3, NormalizedMethod::Get, "/users/{id}").expect("kept");
        assert!(std::ptr::eq(get, again), "made twice");
        let post = intern(&table, 3, NormalizedMethod::Post, "/users/{id}").expect("room");
        assert_eq!(post, "POST /users/{id}");
        assert_eq!(
            intern(&table, 3, NormalizedMethod::Other, "/a"),
            Some("_OTHER /a")
        );
        // Full: new names are not kept, known ones still are.
        assert_eq!(intern(&table, 3, NormalizedMethod::Get, "/b"), None);
        assert!(intern(&table, 3, NormalizedMethod::Post, "/users/{id}").is_some());
        assert_eq!(table.read().expect("lock").1, 3);
        // Full, with a reader holding the table: a new name does not wait for it.
        let table = std::sync::Arc::new(table);
        let reader = table.read().expect("lock");
        let (done, finished) = std::sync::mpsc::channel();
        let other = std::sync::Arc::clone(&table);
        std::thread::spawn(move || {
            let _ = done.send(intern(&other, 3, NormalizedMethod::Get, "/c").is_none());
        });
        let refused = finished.recv_timeout(std::time::Duration::from_secs(10));
        drop(reader);
        assert_eq!(
            refused,
            Ok(true),
            "a new name past the cap waited or was kept"
        );
    }

    #[test]
    fn context_headers_are_found_in_small_and_large_maps() {
        use opentelemetry::baggage::BaggageExt as _;
        // Scanned up to HEADER_SCAN_LIMIT names, looked up past it: both find the same.
        for fillers in [0, 3, towerscope_core::HEADER_SCAN_LIMIT - 3, 40] {
            let mut headers = http::HeaderMap::new();
            for i in 0..fillers {
                let name = http::HeaderName::try_from(format!("x-filler-{i}")).expect("name");
                headers.insert(name, http::HeaderValue::from_static("1"));
            }
            let none = ContextHeaders::of(&headers);
            assert!(
                !none.traceparent && !none.baggage && !none.request_id,
                "{fillers}"
            );
            headers.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
            );
            let parent = ContextHeaders::of(&headers);
            assert!(parent.traceparent && !parent.baggage, "{fillers}");
            headers.insert("baggage", http::HeaderValue::from_static("tenant=acme"));
            let both = ContextHeaders::of(&headers);
            assert!(
                both.traceparent && both.baggage && !both.request_id,
                "{fillers}"
            );
            headers.insert("x-request-id", http::HeaderValue::from_static("req-1"));
            assert!(ContextHeaders::of(&headers).request_id, "{fillers}");
            // The first of each, as a lookup gives it, in small maps and large ones.
            headers.insert(
                http::header::HOST,
                http::HeaderValue::from_static("shop:8080"),
            );
            for ua in ["first/1", "second/2"] {
                headers.append(http::header::USER_AGENT, http::HeaderValue::from_static(ua));
            }
            let found = SpanHeaders::of(&headers, true);
            assert_eq!(header_text(found.host), Some("shop:8080"), "{fillers}");
            assert_eq!(header_text(found.user_agent), Some("first/1"), "{fillers}");
            assert_eq!(header_text(found.request_id), Some("req-1"), "{fillers}");
            assert_eq!(SpanHeaders::of(&headers, false).request_id, None);
            let cx = parent_context(&headers);
            assert_eq!(
                cx.span().span_context().trace_id().to_string(),
                "0af7651916cd43dd8448eb211c80319c",
                "{fillers}"
            );
            assert_eq!(
                cx.baggage().get("tenant").map(|v| v.to_string()),
                Some("acme".to_owned()),
                "{fillers}"
            );
        }
    }

    #[test]
    fn recent_values_are_shared_by_text_and_bounded() {
        let mut recent = RecentValues::new();
        let shop = shared(&mut recent, "shop.example");
        assert!(
            Arc::ptr_eq(&shop, &shared(&mut recent, "shop.example")),
            "copied again"
        );
        let api = shared(&mut recent, "api.example");
        assert_eq!((&*shop, &*api), ("shop.example", "api.example"));
        for i in 0..10 {
            assert_eq!(
                &*shared(&mut recent, &format!("h{i}.example")),
                format!("h{i}.example")
            );
        }
        assert_eq!(recent.len(), RECENT_VALUES);
        // Pushed out by the ten since: the cache holds it no longer, a new copy is made.
        assert_eq!(Arc::strong_count(&shop), 1);
        let again = shared(&mut recent, "shop.example");
        assert_eq!(&*again, "shop.example");
        assert!(!Arc::ptr_eq(&shop, &again));
    }

    #[test]
    fn recent_names_match_the_method_and_the_text() {
        let mut recent = Recent::new();
        let mut route = String::from("/users/{id}");
        let find = |recent: &Recent, method, route: &str| {
            recent.find(|e| e.is(method, route)).map(|e| e.name)
        };
        recent.push(RecentName {
            method: NormalizedMethod::Get,
            name: "GET /users/{id}",
        });
        assert_eq!(
            find(&recent, NormalizedMethod::Get, &route),
            Some("GET /users/{id}")
        );
        assert_eq!(find(&recent, NormalizedMethod::Post, &route), None);
        // Same memory, other text.
        route.replace_range(.., "/items/{id}");
        assert_eq!(find(&recent, NormalizedMethod::Get, &route), None);
        assert_eq!(
            interned_name(NormalizedMethod::Get, &route),
            Some("GET /items/{id}")
        );
        assert_eq!(
            interned_name(NormalizedMethod::Get, &route),
            Some("GET /items/{id}")
        );
        for i in 0..20 {
            let r = format!("/r{i}");
            assert_eq!(
                interned_name(NormalizedMethod::Put, &r).map(str::to_owned),
                Some(format!("PUT {r}"))
            );
        }
    }
}

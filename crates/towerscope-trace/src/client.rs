//! [`TraceClientLayer`]: a client span per outgoing request, and its context injected.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use tower_layer::Layer;
use towerscope_core::{
    End, GrpcCode, MakeObserver, NormalizedMethod, ObserveService, Observer, Outcome,
    is_grpc_request,
};

use crate::server::{cut, end_rpc, protocol_version};
use crate::{B3Format, Propagators, TRACEPARENT, TRACESTATE, TraceParent};

/// Records a client span for every outgoing request and injects its context
/// (`traceparent`, `tracestate`, `baggage`) into the request headers, so the service called
/// continues the same trace with this span as its parent.
///
/// - **Parent:** an [`opentelemetry::Context`] in the request's extensions if there is one
///   (for a request built on a task that did not inherit the context), otherwise the current
///   context: inside a handler served through [`TraceLayer`](crate::TraceLayer) that is the
///   server span, or the innermost handler span.
/// - **HTTP** (stable semantic conventions): name `{METHOD}`; `http.request.method`,
///   `server.address`, `server.port`, `url.full` (user info removed, query values
///   redacted), `network.protocol.version`, `http.response.status_code`; `error.type` and
///   `Error` status for 4xx, 5xx and failures, as the conventions ask of client spans.
/// - **gRPC** (`content-type: application/grpc…`, so a tonic `Channel` wrapped in this layer):
///   name `pkg.Service/Method`; `rpc.system.name = grpc`, `rpc.method`,
///   `rpc.status_code` from trailers or a trailers-only response; every non-`OK`
///   status is an error on the client side.
/// - **End:** when the response body ends, or is dropped.
///
/// Use it around any tower HTTP client: a hyper-util `Client`, a tonic `Channel`.
/// For reqwest, which is not a tower service, inject by hand with [`inject`] (or
/// [`Propagators::inject`]).
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tower::ServiceBuilder;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let traced = ServiceBuilder::new()
///     .layer(towerscope_trace::TraceClientLayer::new(provider.tracer("shop")))
///     .service(client);
/// # let _ = traced;
/// ```
pub struct TraceClientLayer<T> {
    tracer: Arc<T>,
    server: Option<(Arc<str>, Option<u16>)>,
    propagators: Propagators,
}

impl<T> Clone for TraceClientLayer<T> {
    fn clone(&self) -> Self {
        Self {
            tracer: self.tracer.clone(),
            server: self.server.clone(),
            propagators: self.propagators,
        }
    }
}

impl<T> std::fmt::Debug for TraceClientLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceClientLayer").finish_non_exhaustive()
    }
}

impl<T> TraceClientLayer<T> {
    /// Client spans from `tracer`.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use tower::{ServiceBuilder, ServiceExt as _};
    /// use towerscope_trace::{TraceClientLayer, TraceParent};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// // The "server" echoes the traceparent it received.
    /// let client = ServiceBuilder::new()
    ///     .layer(TraceClientLayer::new(provider.tracer("shop")))
    ///     .service_fn(|req: http::Request<String>| async move {
    ///         let tp = req.headers()["traceparent"].to_str().unwrap().to_owned();
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(tp))
    ///     });
    /// let req = http::Request::get("http://inventory.internal/items").body(String::new()).unwrap();
    /// let resp = client.oneshot(req).await.unwrap();
    /// // The client span's context, sampled by the provider's default sampler.
    /// let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    /// assert!(TraceParent::parse(std::str::from_utf8(&body).unwrap()).unwrap().sampled());
    /// # });
    /// ```
    pub fn new(tracer: T) -> Self {
        Self {
            tracer: Arc::new(tracer),
            server: None,
            propagators: Propagators::default(),
        }
    }

    /// Also write the context as B3 headers in `format`, for Zipkin-instrumented services
    /// that do not read `traceparent`.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer = towerscope_trace::TraceClientLayer::new(provider.tracer("shop"))
    ///     .inject_b3(towerscope_trace::B3Format::Multi);
    /// # let _ = layer;
    /// ```
    pub fn inject_b3(mut self, format: B3Format) -> Self {
        self.propagators = self.propagators.with_b3(format);
        self
    }

    /// The formats the context is written in (`OTEL_PROPAGATORS`; default
    /// `tracecontext,baggage`): [`Tracing::propagators`](crate::Tracing::propagators)
    /// gives the configured ones. With `none` outgoing requests carry no context (the
    /// client span is still recorded).
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use towerscope_trace::{Propagators, TraceClientLayer};
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let propagators: Propagators = "b3".parse()?; // a Zipkin-only service
    /// let layer = TraceClientLayer::new(provider.tracer("shop")).propagators(propagators);
    /// # let _ = layer;
    /// # Ok::<(), towerscope_trace::ConfigError>(())
    /// ```
    pub fn propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// The `server.address` and `server.port` for requests whose URI names no host. A tonic
    /// `Channel` adds its origin below this layer, so requests reach the layer as bare
    /// paths: name the server here.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer = towerscope_trace::TraceClientLayer::new(provider.tracer("shop"))
    ///     .server_address("orders.internal", Some(50051));
    /// # let _ = layer;
    /// ```
    pub fn server_address(mut self, host: impl Into<String>, port: Option<u16>) -> Self {
        self.server = Some((Arc::from(host.into()), port));
        self
    }
}

impl<S, T> Layer<S> for TraceClientLayer<T> {
    type Service = ObserveService<S, TraceClientLayer<T>>;
    fn layer(&self, inner: S) -> Self::Service {
        ObserveService::new(inner, self.clone())
    }
}

/// Injects the span context of `cx` into `headers` as `traceparent` and `tracestate`, and
/// its baggage as `baggage`; headers of those names already present are replaced. Nothing
/// is written for a context without a valid span.
///
/// This is what [`TraceClientLayer`] does with the default propagators
/// ([`Propagators::inject`] writes the configured ones, B3 included); call it yourself for
/// a client that is not a tower service, such as reqwest:
///
/// ```
/// # async fn f(client: reqwest::Client) -> reqwest::Result<()> {
/// let mut headers = http::HeaderMap::new();
/// towerscope_trace::inject(&opentelemetry::Context::current(), &mut headers);
/// client.get("http://inventory.internal/items").headers(headers).send().await?;
/// # Ok(()) }
/// ```
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    inject_trace_context(cx, headers);
    crate::baggage::inject(cx, headers);
}

/// Writes `traceparent` and `tracestate` for the span context of `cx`, if valid.
pub(crate) fn inject_trace_context(cx: &Context, headers: &mut HeaderMap) {
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        let parent = TraceParent {
            version: 0,
            trace_id: sc.trace_id().to_bytes(),
            parent_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        };
        headers.insert(TRACEPARENT, parent.header_value());
        let state = sc.trace_state().header();
        match HeaderValue::try_from(state) {
            Ok(v) if !v.is_empty() => {
                headers.insert(TRACESTATE, v);
            }
            _ => {
                headers.remove(TRACESTATE);
            }
        }
    }
}

/// `url.full` without user info and with every query value replaced by `REDACTED`
/// (signatures and tokens travel in query strings).
fn url_full<B>(req: &Request<B>) -> Option<String> {
    let uri = req.uri();
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    let mut url = format!("{scheme}://{host}");
    if let Some(port) = uri.port_u16() {
        url.push(':');
        url.push_str(&port.to_string());
    }
    url.push_str(uri.path());
    if let Some(query) = uri.query() {
        url.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                url.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) => {
                    url.push_str(k);
                    url.push_str("=REDACTED");
                }
                None => url.push_str(pair),
            }
        }
    }
    Some(cut(&url, 2048))
}

impl<T> MakeObserver for TraceClientLayer<T>
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    type Observer = ClientSpanObserver;

    fn make_observer<B>(&self, req: &mut Request<B>) -> Option<ClientSpanObserver> {
        let parent = req
            .extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_else(Context::current);
        let method = NormalizedMethod::from(req.method());
        let grpc = is_grpc_request(req);
        let mut attributes = Vec::with_capacity(8);
        let name: Cow<'static, str> = if grpc {
            let rpc_method = req.uri().path().trim_start_matches('/');
            let rpc_method = cut(rpc_method, 256);
            attributes.push(KeyValue::new("rpc.system.name", "grpc"));
            attributes.push(KeyValue::new("rpc.method", rpc_method.clone()));
            rpc_method.into()
        } else {
            attributes.push(KeyValue::new("http.request.method", method.as_str()));
            if method == NormalizedMethod::Other {
                attributes.push(KeyValue::new(
                    "http.request.method_original",
                    cut(req.method().as_str(), 64),
                ));
            }
            if let Some(url) = url_full(req) {
                attributes.push(KeyValue::new("url.full", url));
            }
            method.as_str().into()
        };
        attributes.push(KeyValue::new(
            "network.protocol.version",
            protocol_version(req.version()),
        ));
        let port = if let Some(host) = req.uri().host() {
            attributes.push(KeyValue::new(
                "server.address",
                crate::server::server_address(host),
            ));
            req.uri().port_u16().or(match req.uri().scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })
        } else if let Some((host, port)) = &self.server {
            // The configured name, shared with every span: no copy per request.
            attributes.push(KeyValue::new("server.address", Arc::clone(host)));
            *port
        } else {
            None
        };
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&*self.tracer, &parent);
        let recording = span.is_recording();
        let cx = crate::server::child_context(&parent, span);
        self.propagators.inject(&cx, req.headers_mut());
        recording.then(|| ClientSpanObserver {
            cx,
            method,
            grpc,
            grpc_code: None,
            status: None,
        })
    }
}

/// Per-request state of [`TraceClientLayer`]: the client span, ended once with the outcome.
///
/// ```
/// use towerscope_core::ObservedBody;
/// use towerscope_trace::ClientSpanObserver;
/// // The response body a traced client returns: the client span ends when it is read.
/// type TracedResponseBody<B> = ObservedBody<B, Option<ClientSpanObserver>>;
/// ```
pub struct ClientSpanObserver {
    cx: Context,
    method: NormalizedMethod,
    grpc: bool,
    grpc_code: Option<GrpcCode>,
    status: Option<u16>,
}

impl std::fmt::Debug for ClientSpanObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSpanObserver")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Observer for ClientSpanObserver {
    fn on_response<B>(&mut self, response: &Response<B>) {
        self.status = Some(response.status().as_u16());
        if self.grpc {
            self.grpc_code = GrpcCode::from_headers(response.headers());
        }
    }

    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if self.grpc && self.grpc_code.is_none() {
            self.grpc_code = GrpcCode::from_headers(trailers);
        }
    }

    fn on_end(self, end: End<'_>) {
        let span = self.cx.span();
        let outcome = Outcome::of(&end, self.method, self.status, false);
        let error: Option<Cow<'static, str>> = if self.grpc {
            end_rpc(&span, outcome, self.grpc_code, |c| c != GrpcCode::Ok)
        } else {
            if let Some(code) = self.status {
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
            }
            match (outcome, self.status) {
                // A client span fails on 4xx too (semantic conventions).
                (Outcome::Ok | Outcome::ServerError, Some(s)) if s >= 400 => {
                    Some(Cow::Owned(s.to_string()))
                }
                (Outcome::Ok, _) => None,
                (other, _) => Some(other.as_str().into()),
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

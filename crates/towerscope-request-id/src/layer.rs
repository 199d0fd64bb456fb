//! [`RequestIdLayer`]: the server side.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::HeaderName;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Level, Span};

use crate::span::request_span;
use crate::{Generator, IdRules, Rejection, RequestId};

/// The header the ID is read from and written to by default.
///
/// ```
/// let mut req = http::Request::new(());
/// req.headers_mut().insert(towerscope_request_id::REQUEST_ID_HEADER, "abc-123".parse().unwrap());
/// assert_eq!(req.headers()["x-request-id"], "abc-123");
/// ```
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Also accepted on the way in by default.
///
/// ```
/// use towerscope_request_id::{CORRELATION_ID_HEADER, RequestIdLayer};
/// // Accept only `x-correlation-id` on the way in (the ID still goes out in `x-request-id`).
/// let mut registry = prometheus_client::registry::Registry::default();
/// let layer = RequestIdLayer::builder()
///     .accept_headers([CORRELATION_ID_HEADER])
///     .build(&mut registry);
/// ```
pub const CORRELATION_ID_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum ReasonValue {
    empty,
    too_long,
    invalid_character,
    multiple,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: ReasonValue,
}

fn label(r: Rejection) -> ReasonLabel {
    ReasonLabel {
        reason: match r {
            Rejection::Empty => ReasonValue::empty,
            Rejection::TooLong => ReasonValue::too_long,
            Rejection::InvalidCharacter => ReasonValue::invalid_character,
            Rejection::Multiple => ReasonValue::multiple,
        },
    }
}

#[derive(Debug)]
struct Config {
    header: HeaderName,
    accept: Vec<HeaderName>,
    rules: IdRules,
    generator: Generator,
    span_level: Level,
    rejected: Family<ReasonLabel, Counter>,
}

/// Gives every request a correlation ID.
///
/// On the way in it takes the ID from `x-request-id` (or `x-correlation-id`; configurable)
/// when the request carries exactly one and it passes the [`IdRules`]; otherwise it makes a
/// new one (UUID v7 by default). A refused inbound ID is replaced, never echoed, and counted
/// in `towerscope_request_id_rejected_total{reason}`.
///
/// The ID then goes:
/// - into the request extensions as [`RequestId`], and into the request's `x-request-id`
///   header (replacing whatever was there), for handlers;
/// - into a span named `request` with a `request_id` field, entered whenever the inner
///   future or the response body is polled, so every event logged while serving the request
///   carries it (a JSON subscriber from `towerscope-log` writes it as a top-level field);
/// - into the response's `x-request-id` header, also on responses made by layers inside
///   this one (a caught panic's 500, a timeout's 408), unless the response already has one.
///
/// Place it outermost, so that everything else runs inside its span.
///
/// ```
/// use axum::{Router, routing::get, Extension};
/// use prometheus_client::registry::Registry;
/// use towerscope_request_id::{RequestId, RequestIdLayer};
///
/// async fn handler(Extension(id): Extension<RequestId>) -> String {
///     tracing::info!("handling"); // carries request_id through the span
///     id.to_string()
/// }
/// let mut registry = Registry::default();
/// let app: Router = Router::new().route("/", get(handler)).layer(RequestIdLayer::new(&mut registry));
/// ```
///
/// Cancel and panic: the span closes when the future or body is dropped. Bad input (CR/LF,
/// control or non-ASCII bytes, empty, 10 KB values, repeated headers) never reaches a log
/// line or a response: a fresh ID is used.
#[derive(Debug, Clone)]
pub struct RequestIdLayer {
    config: Arc<Config>,
}

impl RequestIdLayer {
    /// A layer with defaults, counting refused IDs into `registry`.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_request_id::RequestIdLayer;
    /// # /// The ID header of the response to a request carrying `headers`.
    /// # fn answer(layer: RequestIdLayer, headers: &[(&'static str, &'static str)], name: &str) -> Option<String> {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         let svc = ServiceBuilder::new().layer(layer).service_fn(|_r: http::Request<()>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #         });
    /// #         let mut req = http::Request::new(());
    /// #         for (k, v) in headers { req.headers_mut().insert(*k, v.parse().unwrap()); }
    /// #         let resp = svc.oneshot(req).await.unwrap();
    /// #         resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    /// #     })
    /// # }
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::new(&mut registry);
    /// // A valid inbound ID is kept; a hostile one is replaced, never echoed.
    /// assert_eq!(answer(layer.clone(), &[("x-request-id", "abc-123")], "x-request-id").as_deref(), Some("abc-123"));
    /// assert_ne!(answer(layer, &[("x-request-id", "a b")], "x-request-id").as_deref(), Some("a b"));
    /// ```
    pub fn new(registry: &mut Registry) -> Self {
        RequestIdBuilder::default().build(registry)
    }

    /// A builder.
    ///
    /// ```
    /// use towerscope_request_id::{Generator, IdRules, RequestIdLayer};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::builder()
    ///     .header(http::HeaderName::from_static("x-trace-ref"))
    ///     .rules(IdRules::default().max_len(64))
    ///     .generator(Generator::UuidV4)
    ///     .build(&mut registry);
    /// # let _ = layer;
    /// ```
    pub fn builder() -> RequestIdBuilder {
        RequestIdBuilder::default()
    }
}

/// Builder for [`RequestIdLayer`].
///
/// ```
/// use towerscope_request_id::{Generator, IdRules, RequestIdLayer};
/// let mut registry = prometheus_client::registry::Registry::default();
/// let layer = RequestIdLayer::builder()
///     .header(http::HeaderName::from_static("x-trace-ref"))
///     .rules(IdRules::default().max_len(64))
///     .generator(Generator::UuidV4)
///     .span_level(tracing::Level::DEBUG)
///     .build(&mut registry);
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "ok" }))
///     .layer(layer);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RequestIdBuilder {
    header: HeaderName,
    accept: Vec<HeaderName>,
    rules: IdRules,
    generator: Generator,
    span_level: Level,
}

impl Default for RequestIdBuilder {
    fn default() -> Self {
        Self {
            header: REQUEST_ID_HEADER,
            accept: vec![REQUEST_ID_HEADER, CORRELATION_ID_HEADER],
            rules: IdRules::default(),
            generator: Generator::default(),
            span_level: Level::INFO,
        }
    }
}

impl RequestIdBuilder {
    /// The header written on requests and responses (default `x-request-id`); it is also
    /// accepted on the way in.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_request_id::RequestIdLayer;
    /// # /// The ID header of the response to a request carrying `headers`.
    /// # fn answer(layer: RequestIdLayer, headers: &[(&'static str, &'static str)], name: &str) -> Option<String> {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         let svc = ServiceBuilder::new().layer(layer).service_fn(|_r: http::Request<()>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #         });
    /// #         let mut req = http::Request::new(());
    /// #         for (k, v) in headers { req.headers_mut().insert(*k, v.parse().unwrap()); }
    /// #         let resp = svc.oneshot(req).await.unwrap();
    /// #         resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    /// #     })
    /// # }
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::builder()
    ///     .header(http::HeaderName::from_static("x-trace-ref"))
    ///     .build(&mut registry);
    /// assert_eq!(answer(layer, &[("x-trace-ref", "abc")], "x-trace-ref").as_deref(), Some("abc"));
    /// ```
    pub fn header(mut self, header: HeaderName) -> Self {
        if !self.accept.contains(&header) {
            self.accept.insert(0, header.clone());
        }
        self.header = header;
        self
    }

    /// The headers an inbound ID is read from (default `x-request-id`, `x-correlation-id`).
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_request_id::RequestIdLayer;
    /// # /// The ID header of the response to a request carrying `headers`.
    /// # fn answer(layer: RequestIdLayer, headers: &[(&'static str, &'static str)], name: &str) -> Option<String> {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         let svc = ServiceBuilder::new().layer(layer).service_fn(|_r: http::Request<()>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #         });
    /// #         let mut req = http::Request::new(());
    /// #         for (k, v) in headers { req.headers_mut().insert(*k, v.parse().unwrap()); }
    /// #         let resp = svc.oneshot(req).await.unwrap();
    /// #         resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    /// #     })
    /// # }
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::builder()
    ///     .accept_headers([towerscope_request_id::CORRELATION_ID_HEADER])
    ///     .build(&mut registry);
    /// // Read from `x-correlation-id`, written back in `x-request-id`.
    /// assert_eq!(answer(layer, &[("x-correlation-id", "c-9")], "x-request-id").as_deref(), Some("c-9"));
    /// ```
    pub fn accept_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.accept = headers.into_iter().collect();
        self
    }

    /// What an inbound ID must look like.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_request_id::RequestIdLayer;
    /// # /// The ID header of the response to a request carrying `headers`.
    /// # fn answer(layer: RequestIdLayer, headers: &[(&'static str, &'static str)], name: &str) -> Option<String> {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         let svc = ServiceBuilder::new().layer(layer).service_fn(|_r: http::Request<()>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #         });
    /// #         let mut req = http::Request::new(());
    /// #         for (k, v) in headers { req.headers_mut().insert(*k, v.parse().unwrap()); }
    /// #         let resp = svc.oneshot(req).await.unwrap();
    /// #         resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    /// #     })
    /// # }
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::builder()
    ///     .rules(towerscope_request_id::IdRules::default().max_len(8))
    ///     .build(&mut registry);
    /// let sent = "longer-than-eight";
    /// assert_ne!(answer(layer, &[("x-request-id", sent)], "x-request-id").as_deref(), Some(sent)); // replaced
    /// ```
    pub fn rules(mut self, rules: IdRules) -> Self {
        self.rules = rules;
        self
    }

    /// How new IDs are made.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_request_id::RequestIdLayer;
    /// # /// The ID header of the response to a request carrying `headers`.
    /// # fn answer(layer: RequestIdLayer, headers: &[(&'static str, &'static str)], name: &str) -> Option<String> {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         let svc = ServiceBuilder::new().layer(layer).service_fn(|_r: http::Request<()>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #         });
    /// #         let mut req = http::Request::new(());
    /// #         for (k, v) in headers { req.headers_mut().insert(*k, v.parse().unwrap()); }
    /// #         let resp = svc.oneshot(req).await.unwrap();
    /// #         resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    /// #     })
    /// # }
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::builder()
    ///     .generator(towerscope_request_id::Generator::UuidV4)
    ///     .build(&mut registry);
    /// let id = answer(layer, &[], "x-request-id").unwrap();
    /// assert_eq!(&id[14..15], "4");
    /// ```
    pub fn generator(mut self, generator: Generator) -> Self {
        self.generator = generator;
        self
    }

    /// Level of the `request` span (default INFO). A span is only recorded when its level is
    /// enabled: keep `towerscope_request_id=info` in your filter (towerscope-log's setup
    /// does) so that warnings and errors carry the ID even when INFO is off elsewhere.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_request_id::RequestIdLayer;
    /// # /// The ID header of the response to a request carrying `headers`.
    /// # fn answer(layer: RequestIdLayer, headers: &[(&'static str, &'static str)], name: &str) -> Option<String> {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         let svc = ServiceBuilder::new().layer(layer).service_fn(|_r: http::Request<()>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #         });
    /// #         let mut req = http::Request::new(());
    /// #         for (k, v) in headers { req.headers_mut().insert(*k, v.parse().unwrap()); }
    /// #         let resp = svc.oneshot(req).await.unwrap();
    /// #         resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    /// #     })
    /// # }
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::builder().span_level(tracing::Level::DEBUG).build(&mut registry);
    /// assert!(answer(layer, &[], "x-request-id").is_some()); // the ID is set whatever the level
    /// ```
    pub fn span_level(mut self, level: Level) -> Self {
        self.span_level = level;
        self
    }

    /// Builds the layer, registering `towerscope_request_id_rejected_total` into `registry`.
    ///
    /// ```
    /// # use tower::{ServiceBuilder, ServiceExt as _};
    /// # use towerscope_request_id::RequestIdLayer;
    /// # /// The ID header of the response to a request carrying `headers`.
    /// # fn answer(layer: RequestIdLayer, headers: &[(&'static str, &'static str)], name: &str) -> Option<String> {
    /// #     tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #         let svc = ServiceBuilder::new().layer(layer).service_fn(|_r: http::Request<()>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #         });
    /// #         let mut req = http::Request::new(());
    /// #         for (k, v) in headers { req.headers_mut().insert(*k, v.parse().unwrap()); }
    /// #         let resp = svc.oneshot(req).await.unwrap();
    /// #         resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    /// #     })
    /// # }
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = RequestIdLayer::builder().build(&mut registry);
    /// answer(layer, &[("x-request-id", "has space")], "x-request-id");
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("towerscope_request_id_rejected_total{reason=\"invalid_character\"} 1"), "{text}");
    /// ```
    pub fn build(self, registry: &mut Registry) -> RequestIdLayer {
        let rejected = Family::<ReasonLabel, Counter>::default();
        for r in Rejection::ALL {
            // Pre-created so every reason shows, at 0, from the first scrape.
            let _ = rejected.get_or_create(&label(r));
        }
        registry.register(
            "towerscope_request_id_rejected",
            "Inbound request IDs refused and replaced, by reason",
            rejected.clone(),
        );
        RequestIdLayer {
            config: Arc::new(Config {
                header: self.header,
                accept: self.accept,
                rules: self.rules,
                generator: self.generator,
                span_level: self.span_level,
                rejected,
            }),
        }
    }
}

/// What a request's ID headers held, and what the layer must do to them.
struct Resolved {
    id: RequestId,
    /// The ID came from the written header, as its only value: nothing to rewrite.
    in_place: bool,
    /// An accepted header other than the written one was present: remove it.
    strip_others: bool,
}

impl Config {
    /// Whether `accept[i]` is the header the layer writes.
    fn is_written(&self, i: usize) -> bool {
        self.accept[i] == self.header
    }

    fn resolve(&self, headers: &HeaderMap) -> Resolved {
        // The first value found, and whether there were more; one lookup per header name,
        // and none when a small map holds none of the names (most requests).
        let mut first: Option<(usize, &http::HeaderValue)> = None;
        let mut several = false;
        let mut strip_others = false;
        let none_there = towerscope_core::small_header_names(headers)
            .is_some_and(|mut names| !names.any(|name| self.accept.contains(name)));
        let lookups = if none_there {
            &[][..]
        } else {
            &self.accept[..]
        };
        for (i, name) in lookups.iter().enumerate() {
            let mut values = headers.get_all(name).iter();
            let Some(value) = values.next() else {
                continue;
            };
            strip_others |= !self.is_written(i);
            several |= first.is_some() || values.next().is_some();
            first.get_or_insert((i, value));
        }
        let verdict = match first {
            None => {
                return Resolved {
                    id: self.generator.generate(),
                    in_place: false,
                    strip_others,
                };
            }
            Some(_) if several => Err(Rejection::Multiple),
            Some((i, value)) => self.rules.accept(value).map(|id| (id, self.is_written(i))),
        };
        let (id, in_place) = verdict.unwrap_or_else(|reason| {
            self.rejected.get_or_create(&label(reason)).inc();
            let id = self.generator.generate();
            tracing::debug!(reason = reason.as_str(), request_id = %id, "inbound request ID refused; replaced");
            (id, false)
        });
        Resolved {
            id,
            in_place,
            strip_others,
        }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> RequestIdService<S> {
        RequestIdService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Service made by [`RequestIdLayer`].
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt as _};
/// use towerscope_request_id::{RequestId, RequestIdLayer};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut registry = prometheus_client::registry::Registry::default();
/// let svc = ServiceBuilder::new()
///     .layer(RequestIdLayer::new(&mut registry))
///     .service_fn(|req: http::Request<String>| async move {
///         let id = req.extensions().get::<RequestId>().expect("set by the layer").clone();
///         Ok::<_, std::convert::Infallible>(http::Response::new(id.as_str().to_owned()))
///     });
/// let resp = svc.oneshot(http::Request::new(String::new())).await.unwrap();
/// assert_eq!(resp.headers()["x-request-id"].len(), 36); // a fresh UUID v7
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RequestIdService<S> {
    /// The inner service.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let mut svc = towerscope_request_id::RequestIdLayer::new(&mut registry).layer(vec![1]);
    /// svc.get_mut().push(2);
    /// assert_eq!(svc.get_ref(), &[1, 2]);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let mut svc = towerscope_request_id::RequestIdLayer::new(&mut registry).layer(vec![1]);
    /// svc.get_mut().push(2);
    /// assert_eq!(svc.into_inner(), [1, 2]);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let svc = towerscope_request_id::RequestIdLayer::new(&mut registry).layer(vec![1]);
    /// assert_eq!(svc.into_inner(), [1]);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RequestIdService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
{
    type Response = Response<RequestIdBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let config = &self.config;
        let Resolved {
            id,
            in_place,
            strip_others,
        } = config.resolve(req.headers());
        if strip_others {
            for (i, name) in config.accept.iter().enumerate() {
                if !config.is_written(i) {
                    req.headers_mut().remove(name);
                }
            }
        }
        // Handlers see exactly the ID in use: rewrite the header unless it already holds it.
        if !in_place {
            req.headers_mut()
                .insert(config.header.clone(), id.header_value().clone());
        }
        let span = request_span(&id, config.span_level);
        req.extensions_mut().insert(id.clone());
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            span,
            // The name alone, not the shared config: no reference count to bump per request
            // (a static name, like the default, clones for free).
            pending: Some((id, config.header.clone())),
        }
    }
}

pin_project! {
    /// Response future of [`RequestIdService`]: polls the inner future inside the request span.
    ///
    /// ```
    /// use towerscope_request_id::{RequestIdBody, RequestIdService, ResponseFuture};
    /// // The types a `RequestIdService` around `S` answers with, for a struct field or a signature.
    /// type Svc<S> = RequestIdService<S>;
    /// type Fut<F> = ResponseFuture<F>;
    /// type Body = RequestIdBody<String>;
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // The ID and the header it goes into, until the response comes.
        pending: Option<(RequestId, HeaderName)>,
    }
}

impl<F, B, E> std::future::Future for ResponseFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<RequestIdBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some((id, header)) = this.pending.take() {
            // An ID set by the inner service (one it propagated, say) is kept. The name is
            // moved into the lookup: an entry by reference clones it first.
            if let http::header::Entry::Vacant(slot) = response.headers_mut().entry(header) {
                slot.insert(id.into_header_value());
            }
        }
        let span = this.span.clone();
        Poll::Ready(Ok(response.map(|inner| RequestIdBody { inner, span })))
    }
}

pin_project! {
    /// Response body of [`RequestIdService`]: polled inside the request span, so events
    /// logged while streaming carry the ID.
    ///
    /// ```
    /// use http_body_util::BodyExt as _;
    /// use tower::{ServiceBuilder, ServiceExt as _};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let svc = ServiceBuilder::new()
    ///     .layer(towerscope_request_id::RequestIdLayer::new(&mut registry))
    ///     .service_fn(|_req: http::Request<()>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("streamed")))
    ///     });
    /// let body: towerscope_request_id::RequestIdBody<String> =
    ///     svc.oneshot(http::Request::new(())).await.unwrap().into_body();
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "streamed");
    /// # });
    /// ```
    pub struct RequestIdBody<B> {
        #[pin]
        inner: B,
        span: Span,
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for RequestIdBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestIdBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for RequestIdBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let _entered = this.span.enter();
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

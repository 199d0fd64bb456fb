//! [`RequestIdClientLayer`]: the ID onto outgoing requests.

use std::task::{Context, Poll};

use http::Request;
use http::header::HeaderName;
use tower_layer::Layer;
use tower_service::Service;

use crate::{REQUEST_ID_HEADER, RequestId};

/// For HTTP clients built from tower services (a hyper-util client in a
/// `tower::ServiceBuilder`, a tonic channel): sets `x-request-id` on each outgoing request to
/// the ID of the request being served ([`RequestId::current`]), unless the request already
/// has one or a [`RequestId`] is in its extensions (then that one is used).
///
/// ```
/// use tower::ServiceBuilder;
/// use towerscope_request_id::RequestIdClientLayer;
/// let client = hyper_util_client_placeholder();
/// let client = ServiceBuilder::new().layer(RequestIdClientLayer::new()).service(client);
/// # fn hyper_util_client_placeholder() -> tower::util::BoxService<http::Request<String>, http::Response<String>, std::convert::Infallible> {
/// #     tower::util::BoxService::new(tower::service_fn(|_r: http::Request<String>| async { Ok(http::Response::new(String::new())) }))
/// # }
/// # let _ = client;
/// ```
///
/// With reqwest, which has no tower layers, set the header where the request is built:
/// ```
/// # fn build(builder: http::request::Builder) -> http::request::Builder {
/// use towerscope_request_id::{REQUEST_ID_HEADER, RequestId};
/// let mut builder = builder; // or a reqwest::RequestBuilder: same `.header(..)` call
/// if let Some(id) = RequestId::current() {
///     builder = builder.header(REQUEST_ID_HEADER, id.header_value().clone());
/// }
/// builder
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequestIdClientLayer {
    header: HeaderName,
}

impl Default for RequestIdClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIdClientLayer {
    /// Writes `x-request-id`.
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use towerscope_request_id::RequestIdClientLayer;
    /// let client = tower::service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// });
    /// let client = ServiceBuilder::new().layer(RequestIdClientLayer::new()).service(client);
    /// # let _ = client;
    /// ```
    pub fn new() -> Self {
        Self {
            header: REQUEST_ID_HEADER,
        }
    }

    /// Writes another header.
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use towerscope_request_id::RequestIdClientLayer;
    /// let client = tower::service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// });
    /// let header = http::HeaderName::from_static("x-correlation-id"); // what the callee reads
    /// let client = ServiceBuilder::new().layer(RequestIdClientLayer::header(header)).service(client);
    /// # let _ = client;
    /// ```
    pub fn header(header: HeaderName) -> Self {
        Self { header }
    }
}

impl<S> Layer<S> for RequestIdClientLayer {
    type Service = RequestIdClient<S>;
    fn layer(&self, inner: S) -> RequestIdClient<S> {
        RequestIdClient {
            inner,
            header: self.header.clone(),
        }
    }
}

/// Service made by [`RequestIdClientLayer`].
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt as _};
/// use towerscope_request_id::{RequestId, RequestIdClientLayer};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // A stand-in for a hyper-util client: echoes the header it was sent.
/// let client = ServiceBuilder::new()
///     .layer(RequestIdClientLayer::new())
///     .service_fn(|req: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(req.headers()["x-request-id"].clone())
///     });
/// // An ID in the outgoing request's extensions is the one sent (inside a request served
/// // by `RequestIdLayer`, the served request's ID is used without it).
/// let id = RequestId::new_v7();
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(id.clone());
/// assert_eq!(client.oneshot(req).await.unwrap(), id.as_str());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RequestIdClient<S> {
    inner: S,
    header: HeaderName,
}

impl<S> RequestIdClient<S> {
    /// The inner service.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut client = towerscope_request_id::RequestIdClientLayer::new().layer(vec![1]);
    /// client.get_mut().push(2);
    /// assert_eq!(client.get_ref(), &[1, 2]);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut client = towerscope_request_id::RequestIdClientLayer::new().layer(vec![1]);
    /// client.get_mut().push(2);
    /// assert_eq!(client.into_inner(), [1, 2]);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    ///
    /// ```
    /// use tower::Layer as _;
    /// let client = towerscope_request_id::RequestIdClientLayer::new().layer(vec![1]);
    /// assert_eq!(client.into_inner(), [1]);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for RequestIdClient<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        if !req.headers().contains_key(&self.header) {
            let id = req
                .extensions()
                .get::<RequestId>()
                .cloned()
                .or_else(RequestId::current);
            if let Some(id) = id {
                req.headers_mut()
                    .insert(self.header.clone(), id.header_value().clone());
            }
        }
        self.inner.call(req)
    }
}

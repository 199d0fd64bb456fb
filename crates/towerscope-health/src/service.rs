//! The `/health` and `/ready` tower services.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tower_service::Service;

use crate::{Health, Status};

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Probes read: `GET` and `HEAD` run the checks; any other method gets `405` and runs
/// nothing.
fn method_not_allowed<B>(req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return None;
    }
    let mut resp = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({ "error": "method not allowed: use GET or HEAD" }),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(resp)
}

/// `/health`: liveness as JSON (`status`, `version`, `uptime_seconds`, `start_time`), for
/// `GET` and `HEAD`; other methods get `405` with `Allow: GET, HEAD`.
///
/// ```
/// use tower::ServiceExt as _;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = towerscope_health::Health::builder("1.0.0").build();
/// let resp = health
///     .liveness_service()
///     .oneshot(http::Request::new(()))
///     .await
///     .unwrap();
/// assert_eq!(resp.status(), 200);
/// assert_eq!(resp.headers()["content-type"], "application/json");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct LivenessService {
    health: Health,
}

impl LivenessService {
    pub(crate) fn new(health: Health) -> Self {
        Self { health }
    }
}

impl<B> Service<Request<B>> for LivenessService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let resp = method_not_allowed(&req)
            .unwrap_or_else(|| json(StatusCode::OK, &self.health.liveness()));
        std::future::ready(Ok(resp))
    }
}

/// `/ready`: readiness as JSON (`status`, `checks`); 200 when healthy or degraded, 503 when
/// unhealthy. `GET` and `HEAD` run the checks; other methods get `405` with
/// `Allow: GET, HEAD` and run nothing.
///
/// ```
/// use tower::ServiceExt as _;
/// use towerscope_health::{CheckOptions, Health, check_fn};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = Health::builder("1.0.0")
///     .check(
///         "db",
///         check_fn(|| async { Err(std::io::Error::other("down")) }),
///         CheckOptions::default(), // critical by default
///     )
///     .build();
/// let resp = health
///     .readiness_service()
///     .oneshot(http::Request::new(()))
///     .await
///     .unwrap();
/// assert_eq!(resp.status(), 503);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ReadinessService {
    health: Health,
}

impl ReadinessService {
    pub(crate) fn new(health: Health) -> Self {
        Self { health }
    }
}

impl<B> Service<Request<B>> for ReadinessService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Some(resp) = method_not_allowed(&req) {
            return Box::pin(std::future::ready(Ok(resp)));
        }
        let health = self.health.clone();
        Box::pin(async move {
            let readiness = health.readiness().await;
            let code = match readiness.status {
                Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
                Status::Healthy | Status::Degraded => StatusCode::OK,
            };
            Ok(json(code, &readiness))
        })
    }
}

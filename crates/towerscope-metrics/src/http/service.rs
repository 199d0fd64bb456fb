//! The `Service` impl and the per-request observer.

use std::fmt;
use std::sync::Arc;

use http::{Request, Response};
use towerscope_core::{
    End, GrpcCode, MakeObserver, NormalizedMethod, ObserveService, ObservedBody, ObservedFuture,
    Observer, Outcome, PanicCaught, RequestStart, Route, TraceIds, UNMATCHED_ROUTE,
    is_grpc_request, resolve_route,
};

use super::HttpMetricsLayer;
use super::layer::Shared;
use super::{Completion, ErrorType};

/// Response future of [`HttpMetrics`].
///
/// ```
/// use towerscope_metrics::{HttpMetrics, ResponseBody, ResponseFuture};
/// // Naming the types, for a struct field or a hand-written `Service` impl around the layer.
/// type Metered<S> = HttpMetrics<S>;
/// type MeteredFuture<F> = ResponseFuture<F>;
/// type MeteredBody = ResponseBody<axum::body::Body>;
/// ```
pub type ResponseFuture<F> = ObservedFuture<F, Option<HttpMetricsObserver>>;
/// Response body of [`HttpMetrics`].
///
/// ```
/// use towerscope_metrics::{HttpMetrics, ResponseBody, ResponseFuture};
/// // Naming the types, for a struct field or a hand-written `Service` impl around the layer.
/// type Metered<S> = HttpMetrics<S>;
/// type MeteredFuture<F> = ResponseFuture<F>;
/// type MeteredBody = ResponseBody<axum::body::Body>;
/// ```
pub type ResponseBody<B> = ObservedBody<B, Option<HttpMetricsObserver>>;

/// Service made by [`HttpMetricsLayer`].
///
/// ```
/// use tower::Layer as _;
/// use towerscope_metrics::{HttpMetrics, HttpMetricsLayer};
/// let mut registry = prometheus_client::registry::Registry::default();
/// let inner = tower::service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let svc: HttpMetrics<_> = HttpMetricsLayer::new(&mut registry).layer(inner);
/// # let _ = svc;
/// ```
pub type HttpMetrics<S> = ObserveService<S, HttpMetricsLayer>;

impl MakeObserver for HttpMetricsLayer {
    type Observer = HttpMetricsObserver;

    fn make_observer<B>(&self, req: &mut Request<B>) -> Option<HttpMetricsObserver> {
        let shared = self.shared();
        if shared.exclude.contains(req.uri().path()) {
            return None;
        }
        let method = NormalizedMethod::from(req.method());
        Some(HttpMetricsObserver {
            // Taken before the inner call: a panic in `call` drops it and releases the unit.
            in_flight: shared.in_flight.as_ref().is_some_and(|g| {
                if shared.in_flight_excludes_more {
                    g.take_unit(req.uri().path(), method)
                } else {
                    g.take_unit_unchecked(method);
                    true
                }
            }),
            start: RequestStart::get_or_now(req.extensions()),
            method,
            route: resolve_route(req, shared.classifier.as_ref()),
            grpc: is_grpc_request(req),
            trace: req.extensions().get::<TraceIds>().copied(),
            request_size: if shared.request_size {
                RequestSize::of(req)
            } else {
                RequestSize::NONE
            },
            response_size: 0,
            status: 0,
            grpc_code: None,
            panic: false,
            shared: shared.clone(),
        })
    }
}

/// A request's declared body size (its `Content-Length`), in eight bytes where an
/// `Option<u64>` takes sixteen: the observer stays small enough to be moved (from the
/// response future into the body, and into the boxes axum puts both in) without a call to
/// `memcpy`. Holds the size plus one; zero is none. A `Content-Length` of `u64::MAX`,
/// which no body has, counts as none.
#[derive(Clone, Copy)]
struct RequestSize(u64);

impl RequestSize {
    const NONE: Self = Self(0);

    fn of<B>(req: &Request<B>) -> Self {
        let len = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        Self(len.and_then(|n| n.checked_add(1)).unwrap_or(0))
    }

    fn get(self) -> Option<u64> {
        self.0.checked_sub(1)
    }
}

/// Per-request state of [`HttpMetrics`]; see [`Observer`].
///
/// ```
/// use towerscope_core::{MakeObserver as _, Observer as _};
/// let mut registry = prometheus_client::registry::Registry::default();
/// let layer = towerscope_metrics::HttpMetricsLayer::new(&mut registry);
/// let mut req = http::Request::get("/users/7").body(()).unwrap();
/// let observer = layer.make_observer(&mut req).expect("not an excluded path");
/// observer.on_end(towerscope_core::End::Cancelled { response_started: false });
/// let text = towerscope_metrics::MetricsService::new(registry).encode(towerscope_metrics::Format::Prometheus);
/// assert!(text.contains("error_type=\"cancelled\""), "{text}");
/// ```
pub struct HttpMetricsObserver {
    shared: Arc<Shared>,
    /// Whether an in-flight unit was taken for this request (in its method's slot), given
    /// back when the observer drops: after the request is recorded, and also when `call`
    /// panics.
    in_flight: bool,
    start: RequestStart,
    method: NormalizedMethod,
    route: Route,
    grpc: bool,
    trace: Option<TraceIds>,
    request_size: RequestSize,
    response_size: u64,
    status: u16,
    grpc_code: Option<GrpcCode>,
    panic: bool,
}

impl fmt::Debug for HttpMetricsObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetricsObserver")
            .field("method", &self.method)
            .field("route", &self.route.as_str())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Observer for HttpMetricsObserver {
    fn on_response<B>(&mut self, response: &Response<B>) {
        self.status = response.status().as_u16();
        self.panic = response.extensions().get::<PanicCaught>().is_some();
        if self.grpc {
            // Trailers-only responses carry the status in the head.
            self.grpc_code = GrpcCode::from_headers(response.headers());
        }
    }

    fn on_data(&mut self, len: usize) {
        self.response_size += len as u64;
    }

    fn on_trailers(&mut self, trailers: &http::HeaderMap) {
        if self.grpc && self.grpc_code.is_none() {
            self.grpc_code = GrpcCode::from_headers(trailers);
        }
    }

    fn on_end(self, end: End<'_>) {
        let seconds = self.start.elapsed().as_secs_f64();
        let status = (self.status != 0).then_some(self.status);
        let error = match Outcome::of(&end, self.method, status, self.panic) {
            // A gRPC call can fail with HTTP 200: its status is in grpc-status.
            Outcome::Ok if self.grpc => match self.grpc_code {
                None => Some(ErrorType::GrpcMissingStatus),
                Some(code) if code.is_server_error() => Some(ErrorType::GrpcServerError),
                Some(_) => None,
            },
            Outcome::Ok => None,
            Outcome::ServerError => Some(ErrorType::ServerError),
            Outcome::Cancelled => Some(ErrorType::Cancelled),
            Outcome::ServiceError => Some(ErrorType::ServiceError),
            Outcome::Panic => Some(ErrorType::Panic),
            Outcome::BodyError if self.grpc && self.grpc_code.is_none() => {
                Some(ErrorType::GrpcMissingStatus)
            }
            Outcome::BodyError => Some(ErrorType::BodyError),
        };
        // A gRPC path the server does not implement is a client's invention: do not let it
        // become a label.
        let unimplemented = self.grpc_code == Some(GrpcCode::Unimplemented);
        let route = if unimplemented && matches!(self.route, Route::Grpc(_)) {
            UNMATCHED_ROUTE
        } else {
            self.route.as_str()
        };
        let grpc_service = if self.grpc && !unimplemented {
            self.route.grpc_parts().map(|(service, _)| service)
        } else {
            None
        };
        self.shared.families.record(&Completion {
            method: self.method,
            route,
            grpc_service,
            status: self.status,
            grpc_code: self.grpc_code,
            seconds,
            trace: self.trace,
            request_size: self.request_size.get(),
            response_size: self.response_size,
            error,
        });
        // The in-flight unit is given back when `self` drops, after recording: a scrape
        // never sees the gauge fall before the request is counted.
    }
}

impl Drop for HttpMetricsObserver {
    fn drop(&mut self) {
        if let (true, Some(gauge)) = (self.in_flight, &self.shared.in_flight) {
            gauge.release_unit(self.method);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{HttpMetricsObserver, RequestSize};

    #[test]
    fn the_observer_stays_within_128_bytes() {
        // Moved whole from the response future into the body (and into axum's boxes): at
        // most 128 bytes a move is a few vector moves, above it a call to `memcpy`
        // (callgrind: about 140 instructions a request more at 136 bytes).
        let size = std::mem::size_of::<HttpMetricsObserver>();
        assert!(size <= 128, "HttpMetricsObserver is {size} bytes");
    }

    #[test]
    fn request_sizes_keep_zero_and_drop_only_what_no_body_has() {
        let size = |value: Option<&str>| {
            let mut req = http::Request::post("/orders");
            if let Some(v) = value {
                req = req.header(http::header::CONTENT_LENGTH, v);
            }
            RequestSize::of(&req.body(()).expect("request")).get()
        };
        assert_eq!(size(Some("0")), Some(0));
        assert_eq!(size(Some("512")), Some(512));
        assert_eq!(size(Some("18446744073709551614")), Some(u64::MAX - 1));
        assert_eq!(size(Some("18446744073709551615")), None);
        assert_eq!(size(Some("-1")), None);
        assert_eq!(size(Some("12x")), None);
        assert_eq!(size(None), None);
        assert_eq!(RequestSize::NONE.get(), None);
    }
}

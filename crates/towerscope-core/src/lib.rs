//! # towerscope-core
//!
//! The request model every towerscope layer shares, so that each question is answered in
//! one place:
//!
//! - **Which route?** [`resolve_route`] gives a bounded label: axum's `MatchedPath`
//!   template, a gRPC method path `/pkg.Service/Method`, a [`RouteClassifier`]'s answer, or
//!   the fixed [`UNMATCHED_ROUTE`]. A raw URL path is never a label.
//! - **Which method?** [`NormalizedMethod`] keeps the nine standard methods and maps every
//!   other to `_OTHER`.
//! - **How did it end?** [`ObservedFuture`] and [`ObservedBody`] report to an [`Observer`]
//!   exactly once: at end of body, on a service or body error, on cancel (dropped by the
//!   caller), or on panic. Durations therefore end when the last byte leaves, not when the
//!   handler returns.
//! - **gRPC outcome?** [`GrpcCode`] reads `grpc-status` from the response head
//!   (trailers-only responses) or from the trailers.
//! - **Panics?** [`CatchPanicLayer`] answers HTTP callers with `500` and gRPC callers with a
//!   trailers-only `INTERNAL`, also for panics raised while the body is polled.
//! - **Which client?** [`peer_ip`] reads the connection's address from the extensions and
//!   [`client_ip`] believes `Forwarded` / `X-Forwarded-For` only from trusted proxies
//!   ([`IpRange`]): the access log's `client_addr` and RUM's rate limit agree.
//! - **Does it carry a trace or request-ID header?** [`small_header_names`] lets a layer
//!   compare the few names a request has instead of hashing each non-standard name it
//!   looks for: most requests carry none of them.
//!
//! Layers share context through `http::Extensions` only: [`TraceIds`] (set by a trace
//! layer, read by the metrics layer for exemplars), [`RequestStart`], [`PanicCaught`].
//!
//! ```
//! use std::convert::Infallible;
//! use towerscope_core::{End, NormalizedMethod, Observer, ObservedFuture, resolve_route};
//!
//! /// Logs the route and outcome of each request.
//! struct Outcome { method: NormalizedMethod, route: towerscope_core::Route, status: u16 }
//!
//! impl Observer for Outcome {
//!     fn on_response<B>(&mut self, r: &http::Response<B>) { self.status = r.status().as_u16(); }
//!     fn on_end(self, end: End<'_>) {
//!         println!("{} {} {} {end:?}", self.method, self.route.as_str(), self.status);
//!     }
//! }
//!
//! let req = http::Request::get("/users/7").body(()).unwrap();
//! let observer = Outcome {
//!     method: NormalizedMethod::from(req.method()),
//!     route: resolve_route(&req, None),
//!     status: 0,
//! };
//! let fut = ObservedFuture::new(async { Ok::<_, Infallible>(http::Response::new(String::new())) }, observer);
//! # let _ = fut;
//! ```
//!
//! ## Cancel, panic and bad input
//! Dropping an [`ObservedFuture`] or [`ObservedBody`] reports [`End::Cancelled`] (or
//! [`End::Panicked`] while unwinding). Malformed `grpc-status` values and malformed gRPC
//! paths are treated as absent, never as errors, and never panic.

mod client_addr;
pub mod connection;
mod context;
mod exclude;
mod file;
mod grpc;
mod headers;
#[cfg(feature = "tonic")]
mod incoming;
mod method;
pub mod observe;
pub mod panic;
mod ring;
pub mod route;
#[cfg(any(test, feature = "test-util"))]
pub mod test_body;
mod text;
mod time;

pub use client_addr::{IpRange, IpRangeError, client_ip, peer_ip};
pub use connection::{ConnectionObserver, TrackedIo, TrackedListener};
pub use context::{
    HexId, MAX_PERIOD, PeerAddr, RequestStart, SpanRequestId, TraceIds, UserId, unix_now,
};
pub use exclude::ExcludedPaths;
pub use file::read_capped;
pub use grpc::{GrpcCode, is_grpc, is_grpc_request};
pub use headers::{HEADER_SCAN_LIMIT, redacted_uri, redacted_url, small_header_names};
#[cfg(feature = "tonic")]
pub use incoming::TrackedIncoming;
pub use method::NormalizedMethod;
pub use observe::{
    End, MakeObserver, ObserveService, ObservedBody, ObservedFuture, Observer, Outcome,
};
pub use panic::{
    BoxError, CatchPanic, CatchPanicBody, CatchPanicFuture, CatchPanicLayer, PanicCaught,
    PanicError, is_panic_error, mark_panic_logged, panic_message,
};
pub use ring::Ring;
pub use route::{
    InlineRoute, RequestHead, Route, RouteClassifier, UNMATCHED_ROUTE, is_grpc_method_path,
    resolve_route,
};
pub use text::{debug_text, display_text};
pub use time::{rfc3339_millis, utc_second};

//! # towerscope-metrics
//!
//! Prometheus metrics for any tower HTTP or gRPC service, into one
//! `prometheus_client::registry::Registry` that the application owns:
//!
//! - [`HttpMetricsLayer`]: request count, duration (to the end of the response body),
//!   errors by type, optional body sizes, and gRPC call durations; exemplars from the
//!   request's trace; bounded labels and a per-family cardinality cap.
//! - [`InFlightLayer`]: requests in flight, balanced on every path (end, error, cancel,
//!   panic).
//! - [`ConnectionTracker`]: open connections, connections accepted, connection duration,
//!   for `axum::serve` listeners and hyper-util accept loops.
//! - [`MetricsService`]: the registry over HTTP in Prometheus text 0.0.4 or OpenMetrics 1.0,
//!   gzip, optional bearer token.
//! - [`ProcessCollector`], [`SystemCollector`], [`AppInfo`]: process metrics, the guide's
//!   system metrics, and an `app_info` metric, all read at scrape time.
//!
#![cfg_attr(feature = "system", doc = "```")]
#![cfg_attr(not(feature = "system"), doc = "```ignore")]
//! use axum::{Router, routing::get};
//! use prometheus_client::registry::Registry;
//! use towerscope_core::CatchPanicLayer;
//! use towerscope_metrics::{HttpMetricsLayer, InFlightLayer, MetricsService, ProcessCollector};
//!
//! let mut registry = Registry::default();
//! ProcessCollector::register(&mut registry).unwrap();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     // Outermost first: metrics see the 500 the panic layer makes.
//!     .layer(CatchPanicLayer::new())
//!     .layer(InFlightLayer::new(&mut registry))
//!     .layer(HttpMetricsLayer::new(&mut registry));
//! let app = app.route_service("/metrics", MetricsService::new(registry));
//! # let _ = app;
//! ```
//!
//! ## Order of layers
//! `Router::layer` wraps what is already there, so the last `.layer` call is the outermost.
//! Put [`HttpMetricsLayer`] outside [`CatchPanicLayer`](towerscope_core::CatchPanicLayer)
//! so a panic is counted as `error_type="panic"` with status 500, and inside the trace layer
//! so that exemplars can name the trace. With axum, layers added with `Router::layer` see
//! the matched route; a layer wrapped around the whole router sees `unmatched` for every
//! request unless a [`RouteClassifier`](towerscope_core::RouteClassifier) is given.
//!
//! ## Cancel, panic and bad input
//! A request whose client disconnects is recorded when its future or body is dropped, with
//! `error_type="cancelled"`. Unknown methods become `_OTHER`; paths no route matches
//! become `unmatched`; gRPC paths answered `UNIMPLEMENTED` become `unmatched`. Nothing a
//! client sends can create more than `max_series` label sets per family.

mod connection;
mod error;
mod exposition;
mod histogram;
mod http;
mod in_flight;
mod info;
mod names;
mod series;
#[cfg(feature = "system")]
mod system;
mod text;

pub use connection::{ConnectionGuard, ConnectionTracker, TrackedIo, TrackedListener};
pub use error::ConfigError;
pub use exposition::{MetricsService, MetricsServiceBuilder, negotiate_format};
pub use histogram::Buckets;
pub use http::{
    DEFAULT_MAX_SERIES, ErrorType, HttpMetrics, HttpMetricsBuilder, HttpMetricsLayer,
    HttpMetricsObserver, PERF_SERIES, ResponseBody, ResponseFuture,
};
pub use in_flight::{InFlight, InFlightGuard, InFlightLayer};
pub use info::AppInfo;
pub use names::MetricNames;
#[cfg(feature = "system")]
pub use system::{
    MAX_NETWORK_INTERFACES, ProcessCollector, SystemCollector, SystemCollectorBuilder, SystemNames,
};
pub use text::Format;

/// The prometheus-client crate this crate is built against, so applications register their
/// own metrics with the same types.
pub use prometheus_client;

//! [`HttpMetricsLayer`]: RED metrics (rate, errors, duration) for HTTP and gRPC servers.

mod families;
mod layer;
mod service;

pub(crate) use families::{Completion, FamilyOptions, HttpCollector, HttpFamilies};
pub use families::{ErrorType, PERF_SERIES};
pub use layer::{DEFAULT_MAX_SERIES, HttpMetricsBuilder, HttpMetricsLayer};
pub use service::{HttpMetrics, HttpMetricsObserver, ResponseBody, ResponseFuture};

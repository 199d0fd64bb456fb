//! [`HttpMetricsLayer`]: RED metrics (rate, errors, duration) for HTTP and gRPC servers.

mod families;
mod layer;
mod service;

pub use families::ErrorType;
pub(crate) use families::{Completion, FamilyOptions, HttpCollector, HttpFamilies};
pub use layer::{DEFAULT_MAX_SERIES, HttpMetricsBuilder, HttpMetricsLayer};
pub use service::{HttpMetrics, HttpMetricsObserver, ResponseBody, ResponseFuture};

//! Configuration errors.

/// A configuration the metrics layers cannot work with.
///
/// ```
/// use towerscope_metrics::{Buckets, ConfigError};
/// let err = Buckets::new([2.0, 1.0]).unwrap_err();
/// assert!(matches!(err, ConfigError::Buckets(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A metric or label name is not valid.
    #[error("invalid name for `{field}`: {name:?}: {reason}")]
    Name {
        /// The configuration field.
        field: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Histogram buckets are not valid.
    #[error("invalid histogram buckets: {0}")]
    Buckets(&'static str),
    /// The series cap is zero.
    #[error("max_series must be at least 1")]
    MaxSeries,
    /// The platform refused to give process or system information.
    #[error("system information unavailable: {0}")]
    System(String),
}

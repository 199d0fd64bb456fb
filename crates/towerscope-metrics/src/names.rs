//! Metric and label names: the OpenTelemetry preset, the guide's preset, validation.

use std::borrow::Cow;

use crate::ConfigError;

type Name = Cow<'static, str>;

/// Names of the request metrics and their labels.
///
/// Two presets: [`MetricNames::otel`] (the default) follows the OpenTelemetry HTTP and RPC
/// semantic conventions as Prometheus names; [`MetricNames::guide`] reproduces the
/// observability guide's `app_*` metrics exactly. Every field can be changed; names are
/// validated when the layer is built.
///
/// | what | `otel()` | `guide()` |
/// |---|---|---|
/// | duration histogram | `http_server_request_duration_seconds{http_request_method,http_route,http_response_status_code}` | `app_request_duration_seconds{method,endpoint}` |
/// | request counter | `http_server_requests_total{…same three…}` | `app_requests_total{method,endpoint,status_code}` |
/// | error counter | `http_server_errors_total{error_type,http_route}` | `app_errors_total{error_type,endpoint}` |
/// | in-flight gauge | `http_server_active_requests{http_request_method}` | `app_active_connections` |
/// | body sizes | `http_server_request_body_size_bytes`, `http_server_response_body_size_bytes` | `app_request_size_bytes`, `app_response_size_bytes` |
/// | gRPC calls | `rpc_server_call_duration_seconds{rpc_system_name,rpc_service,rpc_method,rpc_status_code}` | same |
///
/// ```
/// use towerscope_metrics::MetricNames;
/// let mut names = MetricNames::otel();
/// names.request_duration = "myapp_http_duration_seconds".into();
/// assert!(names.validate().is_ok());
/// names.route_label = "bad-label".into();
/// assert!(names.validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricNames {
    /// Duration histogram, seconds, to the end of the response body.
    pub request_duration: Name,
    /// Whether the duration histogram carries the status label.
    pub duration_has_status: bool,
    /// Request counter family name, without `_total`; `None` to leave it out (its value is
    /// the histogram's `_count`).
    pub requests: Option<Name>,
    /// Error counter family name, without `_total`; `None` to leave it out.
    pub errors: Option<Name>,
    /// Request body size histogram (from `Content-Length`), when enabled.
    pub request_size: Name,
    /// Response body size histogram (bytes actually sent), when enabled.
    pub response_size: Name,
    /// gRPC call duration histogram; `None` to leave it out.
    pub rpc_duration: Option<Name>,
    /// In-flight requests gauge.
    pub in_flight: Name,
    /// Whether the in-flight gauge carries the method label.
    pub in_flight_has_method: bool,
    /// Method label.
    pub method_label: Name,
    /// Route label.
    pub route_label: Name,
    /// HTTP status label.
    pub status_label: Name,
    /// Error type label of the error counter.
    pub error_type_label: Name,
}

impl Default for MetricNames {
    fn default() -> Self {
        Self::otel()
    }
}

impl MetricNames {
    /// OpenTelemetry semantic-convention names (the default).
    ///
    /// ```
    /// use towerscope_metrics::MetricNames;
    /// let names = MetricNames::otel();
    /// assert_eq!(names, MetricNames::default());
    /// assert_eq!(names.request_duration, "http_server_request_duration_seconds");
    /// assert_eq!(names.route_label, "http_route");
    /// ```
    pub fn otel() -> Self {
        Self {
            request_duration: "http_server_request_duration_seconds".into(),
            duration_has_status: true,
            requests: Some("http_server_requests".into()),
            errors: Some("http_server_errors".into()),
            request_size: "http_server_request_body_size_bytes".into(),
            response_size: "http_server_response_body_size_bytes".into(),
            rpc_duration: Some("rpc_server_call_duration_seconds".into()),
            in_flight: "http_server_active_requests".into(),
            in_flight_has_method: true,
            method_label: "http_request_method".into(),
            route_label: "http_route".into(),
            status_label: "http_response_status_code".into(),
            error_type_label: "error_type".into(),
        }
    }

    /// The observability guide's names: `app_requests_total{method,endpoint,status_code}`,
    /// `app_request_duration_seconds{method,endpoint}`, `app_active_connections`,
    /// `app_errors_total{error_type,endpoint}`.
    ///
    /// ```
    /// use towerscope_metrics::{HttpMetricsLayer, MetricNames};
    /// let names = MetricNames::guide();
    /// assert_eq!(names.requests.as_deref(), Some("app_requests")); // exported as app_requests_total
    /// assert_eq!(names.route_label, "endpoint");
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let layer = HttpMetricsLayer::builder().names(names).build(&mut registry).unwrap();
    /// # let _ = layer;
    /// ```
    pub fn guide() -> Self {
        Self {
            request_duration: "app_request_duration_seconds".into(),
            duration_has_status: false,
            requests: Some("app_requests".into()),
            errors: Some("app_errors".into()),
            request_size: "app_request_size_bytes".into(),
            response_size: "app_response_size_bytes".into(),
            rpc_duration: Some("rpc_server_call_duration_seconds".into()),
            in_flight: "app_active_connections".into(),
            in_flight_has_method: false,
            method_label: "method".into(),
            route_label: "endpoint".into(),
            status_label: "status_code".into(),
            error_type_label: "error_type".into(),
        }
    }

    /// Checks every name against the Prometheus data model, and that counter names do not
    /// end in `_total` (it is added).
    ///
    /// ```
    /// use towerscope_metrics::{ConfigError, MetricNames};
    /// let mut names = MetricNames::otel();
    /// assert_eq!(names.validate(), Ok(()));
    /// names.requests = Some("http_requests_total".into()); // `_total` is added, not given
    /// assert!(matches!(names.validate(), Err(ConfigError::Name { field: "requests", .. })));
    /// names.requests = Some("http_requests".into());
    /// names.status_label = "__status".into(); // reserved for Prometheus' own use
    /// assert!(matches!(names.validate(), Err(ConfigError::Name { field: "status_label", .. })));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let metrics = [
            ("request_duration", Some(&self.request_duration)),
            ("requests", self.requests.as_ref()),
            ("errors", self.errors.as_ref()),
            ("request_size", Some(&self.request_size)),
            ("response_size", Some(&self.response_size)),
            ("rpc_duration", self.rpc_duration.as_ref()),
            ("in_flight", Some(&self.in_flight)),
        ];
        for (field, name) in metrics {
            if let Some(name) = name {
                check_metric_name(field, name)?;
            }
        }
        for (field, name) in [("requests", &self.requests), ("errors", &self.errors)] {
            if let Some(name) = name {
                if name.ends_with("_total") {
                    return Err(ConfigError::Name {
                        field,
                        name: name.to_string(),
                        reason: "counter names are given without `_total`",
                    });
                }
            }
        }
        for (field, name) in [
            ("method_label", &self.method_label),
            ("route_label", &self.route_label),
            ("status_label", &self.status_label),
            ("error_type_label", &self.error_type_label),
        ] {
            check_label_name(field, name)?;
        }
        Ok(())
    }
}

/// Checks a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn check_metric_name(field: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok = name.bytes().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == b'_' || c == b':' || (i > 0 && c.is_ascii_digit())
    });
    if ok && !name.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Name {
            field,
            name: name.to_owned(),
            reason: "metric names match [a-zA-Z_:][a-zA-Z0-9_:]*",
        })
    }
}

/// Checks a label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub(crate) fn check_label_name(field: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok = name
        .bytes()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == b'_' || (i > 0 && c.is_ascii_digit()));
    if ok && !name.is_empty() && !name.starts_with("__") {
        Ok(())
    } else {
        Err(ConfigError::Name {
            field,
            name: name.to_owned(),
            reason: "label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with __",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        MetricNames::otel().validate().expect("otel");
        MetricNames::guide().validate().expect("guide");
    }

    #[test]
    fn bad_names_name_the_field() {
        let mut n = MetricNames::otel();
        n.requests = Some("x_total".into());
        let e = n.validate().expect_err("invalid").to_string();
        assert!(e.contains("requests"), "{e}");
        let mut n = MetricNames::otel();
        n.request_duration = "9lives".into();
        assert!(n.validate().is_err());
        let mut n = MetricNames::otel();
        n.status_label = "__reserved".into();
        assert!(n.validate().is_err());
    }
}

//! The application info metric.

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::ConfigError;

/// What the application is: exported as `<name>_info{version,environment,build_date,...} 1`,
/// the guide's `app_info`.
///
/// ```
/// use towerscope_metrics::{AppInfo, Format, MetricsService};
/// let mut registry = prometheus_client::registry::Registry::default();
/// AppInfo::new("1.2.3", "production", "2026-11-24").register(&mut registry).unwrap();
/// let text = MetricsService::new(registry).encode(Format::Prometheus);
/// assert!(text.contains(r#"app_info{version="1.2.3",environment="production",build_date="2026-11-24"} 1"#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    name: String,
    labels: Vec<(String, String)>,
}

impl AppInfo {
    /// An info metric named `app` (exported as `app_info`).
    ///
    /// ```
    /// use towerscope_metrics::{AppInfo, Format, MetricsService};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// AppInfo::new(env!("CARGO_PKG_VERSION"), "staging", "2026-11-24").register(&mut registry).unwrap();
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// assert!(text.contains("environment=\"staging\""), "{text}");
    /// ```
    pub fn new(
        version: impl Into<String>,
        environment: impl Into<String>,
        build_date: impl Into<String>,
    ) -> Self {
        Self {
            name: "app".into(),
            labels: vec![
                ("version".into(), version.into()),
                ("environment".into(), environment.into()),
                ("build_date".into(), build_date.into()),
            ],
        }
    }

    /// Use another name than `app` (without `_info`).
    ///
    /// ```
    /// use towerscope_metrics::{AppInfo, ConfigError, Format, MetricsService};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// AppInfo::new("1.0.0", "production", "2026-11-24").name("shop").register(&mut registry).unwrap();
    /// assert!(MetricsService::new(registry).encode(Format::Prometheus).contains("shop_info{"));
    /// let bad = AppInfo::new("1.0.0", "production", "2026-11-24").name("my-shop");
    /// assert!(matches!(bad.register(&mut Default::default()), Err(ConfigError::Name { field: "name", .. })));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a label (service name, git commit, …).
    ///
    /// ```
    /// use towerscope_metrics::{AppInfo, ConfigError, Format, MetricsService};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// AppInfo::new("1.0.0", "production", "2026-11-24")
    ///     .label("git_commit", "5e8514a")
    ///     .register(&mut registry)
    ///     .unwrap();
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// assert!(text.contains("git_commit=\"5e8514a\""), "{text}");
    /// let bad = AppInfo::new("1.0.0", "production", "2026-11-24").label("git commit", "5e8514a");
    /// assert!(matches!(bad.register(&mut Default::default()), Err(ConfigError::Name { field: "label", .. })));
    /// ```
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Registers the metric.
    ///
    /// ```
    /// use towerscope_metrics::{AppInfo, Format, MetricsService};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// AppInfo::new("1.0.0", "production", "2026-11-24").register(&mut registry).unwrap();
    /// let text = MetricsService::new(registry).encode(Format::OpenMetrics);
    /// assert!(text.contains("# TYPE app info"), "{text}");
    /// ```
    pub fn register(self, registry: &mut Registry) -> Result<(), ConfigError> {
        crate::names::check_metric_name("name", &self.name)?;
        for (k, _) in &self.labels {
            crate::names::check_label_name("label", k)?;
        }
        registry.register(self.name, "Application information", Info::new(self.labels));
        Ok(())
    }
}

//! Configuration from a TOML file and `TOWERSCOPE_*` environment variables.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};
use towerscope_alert::AlertmanagerNotifier;
use towerscope_log::{AccessLogLayer, LogFormat};
use towerscope_metrics::{HttpMetricsLayer, MetricNames, SystemNames};
use towerscope_request_id::RequestIdLayer;
use towerscope_rum::{PageTemplates, Rum};
use towerscope_trace::{OtlpProtocol, SamplerConfig, TracingConfig};

use crate::{ObservabilityBuilder, Piece};

mod checks;
pub use checks::{CheckConfig, HealthConfig, SyntheticsConfig};

/// The stack's configuration, as read from a TOML file and the environment.
///
/// Every key has an environment variable: `TOWERSCOPE_` and the key's path in upper case
/// with `_` for `.` (`metrics.max_series` is `TOWERSCOPE_METRICS_MAX_SERIES`). A variable
/// wins over the file; lists in variables are comma-separated. The standard `OTEL_*`
/// variables win over the `[tracing]` keys. Unknown keys in the file are errors; unknown
/// `TOWERSCOPE_*` variables are left alone (the application may use its own).
///
/// ```toml
/// service_name = "shop"
/// service_version = "1.4.2"
/// environment = "production"
/// ops_token = "…"              # better: TOWERSCOPE_OPS_TOKEN
///
/// [metrics]
/// names = "otel"                # or "guide": app_requests_total, app_request_duration_seconds, …
/// max_series = 2000
/// exclude_paths = ["/metrics", "/health", "/ready"]
///
/// [tracing]
/// endpoint = "http://otel-collector:4317"
/// protocol = "grpc"             # or "http/protobuf"
/// sample_ratio = 0.1            # parent-based
/// propagators = ["tracecontext", "baggage", "b3multi"]   # also Zipkin's headers
///
/// [alerts]
/// rules_file = "/etc/shop/rules.yaml"
/// alertmanager = "http://alertmanager:9093"
///
/// [rum]
/// pages = ["/", "/products/{id}", "/cart"]
///
/// [[health.checks]]             # see HealthConfig
/// name = "postgres"
/// tcp = "db.internal:5432"
///
/// [[synthetics.probes]]         # see SyntheticsConfig
/// name = "catalogue"
/// url = "https://shop.example/products"
/// body_contains = "Add to cart"
/// ```
///
/// ```
/// use towerscope::Config;
/// let config = Config::from_sources(
///     Some(("shop.toml", "service_name = \"shop\"\n[metrics]\nmax_series = 500\n")),
///     |var| (var == "TOWERSCOPE_METRICS_MAX_SERIES").then(|| "800".to_owned()),
/// )?;
/// assert_eq!(config.metrics.max_series, 800);
///
/// let err = Config::from_sources(Some(("shop.toml", "[metrics]\nmax_series = \"many\"\n")), |_| None)
///     .unwrap_err();
/// assert_eq!(err.key(), "metrics.max_series");
/// # Ok::<(), towerscope::ConfigError>(())
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `service.name` of spans, `service` label of `app_info`.
    pub service_name: Option<String>,
    /// The service version.
    pub service_version: Option<String>,
    /// The deployment environment; `production` makes logs JSON by default.
    pub environment: Option<String>,
    /// Bearer token on `/metrics` and the dashboard.
    pub ops_token: Option<String>,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[request_id]`.
    pub request_id: RequestIdConfig,
    /// `[tracing]`.
    pub tracing: TracingSection,
    /// `[access_log]`.
    pub access_log: AccessLogConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[health]` and its `[[health.checks]]`.
    pub health: HealthConfig,
    /// `[perf]`.
    pub perf: Switch,
    /// `[alerts]`.
    pub alerts: AlertsConfig,
    /// `[dashboard]`.
    pub dashboard: Switch,
    /// `[rum]`.
    pub rum: RumConfig,
    /// `[panic]`: whether handler panics are caught.
    pub panic: Switch,
    /// `[synthetics]` and its `[[synthetics.probes]]`.
    pub synthetics: SyntheticsConfig,
}

/// A section with only `enabled` (default `true`).
///
/// ```
/// assert!(towerscope::config::Switch::default().enabled);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Switch {
    /// Whether the piece is on.
    pub enabled: bool,
}

impl Default for Switch {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Metric names preset.
///
/// ```
/// assert_eq!(towerscope::config::NamePreset::default(), towerscope::config::NamePreset::Otel);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamePreset {
    /// OpenTelemetry HTTP semantic conventions as Prometheus names.
    #[default]
    Otel,
    /// The guide's names (`app_requests_total`, `app_request_duration_seconds`, …).
    Guide,
}

/// `[metrics]`.
///
/// ```
/// assert_eq!(towerscope::config::MetricsConfig::default().max_series, 2000);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether request, connection, process and system metrics are on.
    pub enabled: bool,
    /// Metric names.
    pub names: NamePreset,
    /// Label sets per metric family before the overflow series (1 to 1,000,000).
    pub max_series: usize,
    /// Paths left out of request metrics.
    pub exclude_paths: Vec<String>,
    /// Request body size histogram.
    pub request_body_size: bool,
    /// Response body size histogram.
    pub response_body_size: bool,
    /// Trace IDs as exemplars.
    pub exemplars: bool,
    /// Filesystem whose usage is reported.
    pub disk_path: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            names: NamePreset::Otel,
            max_series: towerscope_metrics::DEFAULT_MAX_SERIES,
            exclude_paths: vec!["/metrics".into(), "/health".into(), "/ready".into()],
            request_body_size: false,
            response_body_size: false,
            exemplars: true,
            disk_path: None,
        }
    }
}

/// `[request_id]`.
///
/// ```
/// assert_eq!(towerscope::config::RequestIdConfig::default().header, "x-request-id");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestIdConfig {
    /// Whether request IDs are on.
    pub enabled: bool,
    /// The header read and written.
    pub header: String,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            header: "x-request-id".into(),
        }
    }
}

/// `[tracing]`; the `OTEL_*` variables win over these keys.
///
/// ```
/// assert!(towerscope::config::TracingSection::default().endpoint.is_none());
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingSection {
    /// Whether server spans are on.
    pub enabled: bool,
    /// OTLP endpoint; none: spans are exported nowhere.
    pub endpoint: Option<String>,
    /// `grpc` (default) or `http/protobuf`.
    pub protocol: Option<String>,
    /// Fraction of new traces recorded (parent-based), 0 to 1; default all.
    pub sample_ratio: Option<f64>,
    /// The context formats read and written: `tracecontext`, `baggage`, `b3`, `b3multi`
    /// or `none` ([`Propagators`](towerscope_trace::Propagators)); default
    /// `tracecontext` and `baggage`. `OTEL_PROPAGATORS` wins.
    pub propagators: Option<Vec<String>>,
}

impl Default for TracingSection {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: None,
            protocol: None,
            sample_ratio: None,
            propagators: None,
        }
    }
}

/// `[access_log]`.
///
/// ```
/// assert!(towerscope::config::AccessLogConfig::default().trusted_proxies.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Whether the access log is on.
    pub enabled: bool,
    /// Proxies whose `X-Forwarded-For`/`Forwarded` are believed (`10.0.0.0/8`, `::1`): by
    /// the access log for `client_addr`, and by RUM for its per-client rate limit.
    pub trusted_proxies: Vec<String>,
    /// Paths not logged.
    pub exclude_paths: Vec<String>,
    /// How `client_addr` is written: `full` (default), `truncated` (to the /24 or /48
    /// network) or `omitted` ([`ClientAddrLog`](towerscope_log::ClientAddrLog)).
    pub client_addr: Option<String>,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            exclude_paths: vec!["/metrics".into(), "/health".into(), "/ready".into()],
            client_addr: None,
        }
    }
}

/// `[log]`: the global subscriber.
///
/// ```
/// assert!(towerscope::config::LogConfig::default().format.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Whether the global subscriber is installed.
    pub enabled: bool,
    /// `json` or `pretty`; default JSON in production.
    pub format: Option<String>,
    /// A `RUST_LOG`-style filter.
    pub filter: Option<String>,
    /// What happens to panics: `chain` (default: logged, then Rust's own report on stderr),
    /// `replace` (logged only: a log stream that is all JSON) or `off`; see
    /// [`PanicHook`](towerscope_log::PanicHook).
    pub panic_hook: Option<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            format: None,
            filter: None,
            panic_hook: None,
        }
    }
}

/// `[alerts]`.
///
/// ```
/// assert_eq!(towerscope::config::AlertsConfig::default().interval_secs, 15);
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Whether rules are evaluated in-process.
    pub enabled: bool,
    /// Whether the guide's four default rules are included.
    pub default_rules: bool,
    /// More rules, from a YAML or TOML file.
    pub rules_file: Option<PathBuf>,
    /// Seconds between evaluations (1 to 86,400).
    pub interval_secs: u64,
    /// An Alertmanager (`http://host:9093`) that receives the alerts.
    pub alertmanager: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            default_rules: true,
            rules_file: None,
            interval_secs: 15,
            alertmanager: None,
        }
    }
}

/// `[rum]`.
///
/// ```
/// assert!(towerscope::config::RumConfig::default().pages.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RumConfig {
    /// Whether `/rum.js` and `/api/rum` are on.
    pub enabled: bool,
    /// The site's page templates (`/products/{id}`): page URLs are reduced to them.
    pub pages: Vec<String>,
    /// Origins allowed to send beacons from other sites.
    pub allow_origins: Vec<String>,
}

impl Default for RumConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            pages: Vec::new(),
            allow_origins: Vec::new(),
        }
    }
}

/// `Debug` never shows a secret: not the token, nor a URL's user information or query.
///
/// ```
/// let config = towerscope::Config::from_sources(
///     Some(("shop.toml", "ops_token = \"s3cret\"\n[alerts]\nalertmanager = \"http://am:pw@am:9093\"\n")),
///     |_| None,
/// )?;
/// let shown = format!("{config:?}");
/// assert!(!shown.contains("s3cret") && !shown.contains("pw"), "{shown}");
/// # Ok::<(), towerscope::ConfigError>(())
/// ```
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("service_name", &self.service_name)
            .field("service_version", &self.service_version)
            .field("environment", &self.environment)
            .field("ops_token", &self.ops_token.as_ref().map(|_| "[REDACTED]"))
            .field("metrics", &self.metrics)
            .field("request_id", &self.request_id)
            .field("tracing", &self.tracing)
            .field("access_log", &self.access_log)
            .field("log", &self.log)
            .field("health", &self.health)
            .field("perf", &self.perf)
            .field("alerts", &self.alerts)
            .field("dashboard", &self.dashboard)
            .field("rum", &self.rum)
            .field("panic", &self.panic)
            .field("synthetics", &self.synthetics)
            .finish()
    }
}

impl fmt::Debug for TracingSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingSection")
            .field("enabled", &self.enabled)
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(towerscope_core::redacted_url),
            )
            .field("protocol", &self.protocol)
            .field("sample_ratio", &self.sample_ratio)
            .field("propagators", &self.propagators)
            .finish()
    }
}

impl fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("enabled", &self.enabled)
            .field("default_rules", &self.default_rules)
            .field("rules_file", &self.rules_file)
            .field("interval_secs", &self.interval_secs)
            .field(
                "alertmanager",
                &self
                    .alertmanager
                    .as_deref()
                    .map(towerscope_core::redacted_url),
            )
            .finish()
    }
}

/// A configuration value that could not be used: it names the key (`metrics.max_series`)
/// or the variable (`TOWERSCOPE_METRICS_MAX_SERIES`) and the file it came from. Secrets
/// are never repeated.
///
/// ```
/// let err = towerscope::Config::from_sources(None, |v| {
///     (v == "TOWERSCOPE_ALERTS_INTERVAL_SECS").then(|| "soon".to_owned())
/// })
/// .unwrap_err();
/// assert_eq!(err.key(), "TOWERSCOPE_ALERTS_INTERVAL_SECS");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    key: String,
    file: Option<String>,
    reason: String,
}

/// An `OTEL_*` variable's error: named once (the tracing crate's own message names it too).
fn env_error(e: towerscope_trace::ConfigError) -> ConfigError {
    ConfigError {
        key: e.key().to_owned(),
        file: None,
        reason: e.reason().to_owned(),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `(file)` and `(syntax)` mark errors of the file as a whole: no key to name.
        match (&self.file, self.key.as_str()) {
            (Some(file), "(file)") => write!(f, "{file}: {}", self.reason),
            (Some(file), "(syntax)") => write!(f, "{file}: invalid TOML: {}", self.reason),
            (Some(file), key) => write!(f, "{file}: {key}: {}", self.reason),
            (None, key) => write!(f, "{key}: {}", self.reason),
        }
    }
}

impl ConfigError {
    /// The key (`metrics.max_series`) or environment variable that is wrong.
    ///
    /// ```
    /// let err = towerscope::Config::from_sources(Some(("f.toml", "[log]\nformat = \"xml\"\n")), |_| None).unwrap_err();
    /// assert_eq!(err.key(), "log.format");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong with it.
    ///
    /// ```
    /// let err = towerscope::Config::from_sources(Some(("f.toml", "[alerts]\ninterval_secs = 0\n")), |_| None).unwrap_err();
    /// assert_eq!(err.reason(), "must be 1 to 86400");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    List,
}

/// Every key, with the type its environment variable is read as. A test checks the list
/// against the struct.
const KEYS: &[(&str, Kind)] = &[
    ("service_name", Kind::Str),
    ("service_version", Kind::Str),
    ("environment", Kind::Str),
    ("ops_token", Kind::Str),
    ("metrics.enabled", Kind::Bool),
    ("metrics.names", Kind::Str),
    ("metrics.max_series", Kind::Int),
    ("metrics.exclude_paths", Kind::List),
    ("metrics.request_body_size", Kind::Bool),
    ("metrics.response_body_size", Kind::Bool),
    ("metrics.exemplars", Kind::Bool),
    ("metrics.disk_path", Kind::Str),
    ("request_id.enabled", Kind::Bool),
    ("request_id.header", Kind::Str),
    ("tracing.enabled", Kind::Bool),
    ("tracing.endpoint", Kind::Str),
    ("tracing.protocol", Kind::Str),
    ("tracing.sample_ratio", Kind::Float),
    ("tracing.propagators", Kind::List),
    ("access_log.enabled", Kind::Bool),
    ("access_log.trusted_proxies", Kind::List),
    ("access_log.exclude_paths", Kind::List),
    ("access_log.client_addr", Kind::Str),
    ("log.enabled", Kind::Bool),
    ("log.format", Kind::Str),
    ("log.filter", Kind::Str),
    ("log.panic_hook", Kind::Str),
    ("health.enabled", Kind::Bool),
    ("perf.enabled", Kind::Bool),
    ("alerts.enabled", Kind::Bool),
    ("alerts.default_rules", Kind::Bool),
    ("alerts.rules_file", Kind::Str),
    ("alerts.interval_secs", Kind::Int),
    ("alerts.alertmanager", Kind::Str),
    ("dashboard.enabled", Kind::Bool),
    ("rum.enabled", Kind::Bool),
    ("rum.pages", Kind::List),
    ("rum.allow_origins", Kind::List),
    ("panic.enabled", Kind::Bool),
    ("synthetics.enabled", Kind::Bool),
    ("synthetics.interval_secs", Kind::Int),
    ("synthetics.first_round_after_secs", Kind::Int),
    ("synthetics.timeout_secs", Kind::Int),
];

/// Keys whose values are secrets: never repeated in an error.
const SECRET_KEYS: &[&str] = &["ops_token"];

/// The environment variable for `key` (`metrics.max_series` → `TOWERSCOPE_METRICS_MAX_SERIES`).
///
/// ```
/// assert_eq!(towerscope::config::env_var("alerts.interval_secs"), "TOWERSCOPE_ALERTS_INTERVAL_SECS");
/// ```
pub fn env_var(key: &str) -> String {
    format!("TOWERSCOPE_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Largest configuration file read, in bytes.
///
/// ```
/// assert_eq!(towerscope::config::MAX_FILE_BYTES, 1 << 20);
/// ```
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn env_value(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    let v = raw.trim();
    Ok(match kind {
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err("expected true or false".into()),
        },
        Kind::Int => toml::Value::Integer(
            v.parse::<i64>()
                .map_err(|_| "expected a whole number".to_owned())?,
        ),
        Kind::Float => toml::Value::Float(
            v.parse::<f64>()
                .map_err(|_| "expected a number".to_owned())?,
        ),
        Kind::Str => toml::Value::String(raw.to_owned()),
        Kind::List => toml::Value::Array(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

impl Config {
    /// Reads `path` (when given) and the process environment.
    ///
    /// ```no_run
    /// let config = towerscope::Config::load(Some(std::path::Path::new("/etc/shop/towerscope.toml")))?;
    /// # Ok::<(), towerscope::ConfigError>(())
    /// ```
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let name = path.map(|p| p.display().to_string());
        Self::from_sources(name.as_deref().zip(text.as_deref()), |var| {
            std::env::var(var).ok()
        })
    }

    /// Reads a file's text (named for errors) and variables from `var`.
    ///
    /// ```
    /// let config = towerscope::Config::from_sources(
    ///     Some(("shop.toml", "environment = \"staging\"\n")),
    ///     |var| (var == "TOWERSCOPE_ENVIRONMENT").then(|| "production".to_owned()),
    /// )?;
    /// assert_eq!(config.environment.as_deref(), Some("production"));
    /// # Ok::<(), towerscope::ConfigError>(())
    /// ```
    pub fn from_sources(
        file: Option<(&str, &str)>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_name = file.map(|(name, _)| name.to_owned());
        let mut table = match file {
            Some((name, text)) => toml::from_str::<toml::Table>(text).map_err(|e| ConfigError {
                key: "(syntax)".into(),
                file: Some(name.to_owned()),
                reason: e.message().trim_end().to_owned()
                    + &e.span()
                        .map(|s| {
                            let before = &text[..s.start.min(text.len())];
                            let line = before.matches('\n').count() + 1;
                            let column =
                                before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                            format!(" (line {line}, column {column})")
                        })
                        .unwrap_or_default(),
            })?,
            None => toml::Table::new(),
        };
        // Where each key's value came from, for errors.
        let mut from_env: HashMap<&str, String> = HashMap::new();
        for (key, kind) in KEYS {
            let name = env_var(key);
            let Some(raw) = var(&name) else { continue };
            let value = env_value(*kind, &raw).map_err(|reason| ConfigError {
                key: name.clone(),
                file: None,
                reason,
            })?;
            insert(&mut table, key, value);
            from_env.insert(key, name);
        }
        let error = |path: String, reason: String| -> ConfigError {
            match from_env.get(path.as_str()) {
                Some(var) => ConfigError {
                    key: var.clone(),
                    file: None,
                    reason,
                },
                None => ConfigError {
                    key: path,
                    file: file_name.clone(),
                    reason,
                },
            }
        };
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                // An unknown key at the top level has an empty path.
                let path = match e.path().to_string() {
                    p if p.is_empty() || p == "." => "(top level)".to_owned(),
                    p => p,
                };
                let reason = if SECRET_KEYS.contains(&path.as_str()) {
                    "invalid value".to_owned()
                } else {
                    e.into_inner().message().to_owned()
                };
                error(path, reason)
            })?;
        config
            .validate()
            .map_err(|(key, reason)| error(key.to_owned(), reason))?;
        config
            .health
            .validate()
            .and_then(|()| config.synthetics.validate())
            .map_err(|(key, reason)| error(key, reason))?;
        Ok(config)
    }

    /// Checks values the types allow but the stack does not.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        fn non_empty(key: &'static str, v: &Option<String>) -> Result<(), (&'static str, String)> {
            match v {
                Some(s) if s.trim().is_empty() => Err((key, "must not be empty".into())),
                _ => Ok(()),
            }
        }
        fn paths(key: &'static str, paths: &[String]) -> Result<(), (&'static str, String)> {
            match paths.iter().find(|p| !p.starts_with('/')) {
                Some(p) => Err((key, format!("`{p}` does not start with `/`"))),
                None => Ok(()),
            }
        }
        non_empty("service_name", &self.service_name)?;
        non_empty("ops_token", &self.ops_token)?;
        if !(1..=1_000_000).contains(&self.metrics.max_series) {
            return Err(("metrics.max_series", "must be 1 to 1000000".into()));
        }
        paths("metrics.exclude_paths", &self.metrics.exclude_paths)?;
        paths("access_log.exclude_paths", &self.access_log.exclude_paths)?;
        paths("rum.pages", &self.rum.pages)?;
        if HeaderName::from_bytes(self.request_id.header.as_bytes()).is_err() {
            return Err((
                "request_id.header",
                format!("`{}` is not a header name", self.request_id.header),
            ));
        }
        if let Some(p) = &self.tracing.protocol {
            protocol(p).map_err(|reason| ("tracing.protocol", reason))?;
        }
        if let Some(endpoint) = &self.tracing.endpoint {
            url("tracing.endpoint", endpoint)?;
        }
        if let Some(r) = self.tracing.sample_ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err(("tracing.sample_ratio", "must be 0 to 1".into()));
            }
        }
        if let Some(list) = &self.tracing.propagators {
            propagators(list).map_err(|reason| ("tracing.propagators", reason))?;
        }
        for proxy in &self.access_log.trusted_proxies {
            proxy
                .parse::<towerscope_log::IpRange>()
                .map_err(|e| ("access_log.trusted_proxies", format!("`{proxy}`: {e}")))?;
        }
        if let Some(how) = &self.access_log.client_addr {
            how.parse::<towerscope_log::ClientAddrLog>()
                .map_err(|e| ("access_log.client_addr", e))?;
        }
        if let Some(f) = &self.log.format {
            f.parse::<LogFormat>()
                .map_err(|_| ("log.format", format!("`{f}` is not json or pretty")))?;
        }
        if let Some(h) = &self.log.panic_hook {
            h.parse::<towerscope_log::PanicHook>().map_err(|_| {
                (
                    "log.panic_hook",
                    format!("`{h}` is not chain, replace or off"),
                )
            })?;
        }
        if !(1..=86_400).contains(&self.alerts.interval_secs) {
            return Err(("alerts.interval_secs", "must be 1 to 86400".into()));
        }
        if let Some(am) = &self.alerts.alertmanager {
            url("alerts.alertmanager", am)?;
        }
        Ok(())
    }

    /// Applies the configuration to `builder`: the pieces it switches off and their
    /// options; the rules file is read here. The file's health checks and synthetic probes
    /// join those given in code (the probes on the file's schedule where it sets one;
    /// `[synthetics] enabled = false` stops the code's too). Notifiers and code-only
    /// options stay as the builder has them.
    ///
    /// **Call it before the code's own settings of the same options.** It sets the
    /// metrics layer (`[metrics]`), the request-ID layer, the tracing setup, the access log
    /// and RUM from the file's values or their defaults, replacing builders given earlier
    /// (custom buckets, an ID generator, a `TracingConfig`); settings made after it win.
    /// Pieces are the exception: the configuration only switches them off, so a piece the
    /// code switched off stays off in either order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use towerscope::{Config, Observability, Piece};
    /// let config = Config::from_sources(Some(("t.toml", "[rum]\nenabled = false\n[log]\nenabled = false\n")), |_| None)?;
    /// let builder = Observability::builder("shop").configure(&config)?;
    /// assert!(!builder.is_enabled(Piece::Rum));
    /// let obs = builder.build()?;
    /// assert!(obs.rum().is_none());
    /// # Ok(()) }
    /// ```
    pub fn apply(&self, mut b: ObservabilityBuilder) -> Result<ObservabilityBuilder, ConfigError> {
        let key_error = |key: &str, reason: String| ConfigError {
            key: key.to_owned(),
            file: None,
            reason,
        };
        if let Some(name) = &self.service_name {
            b = b.service_name(name.clone());
        }
        if let Some(version) = &self.service_version {
            b = b.version(version.clone());
        }
        if let Some(env) = &self.environment {
            b = b.environment(env.clone());
        }
        if let Some(token) = &self.ops_token {
            b = b.ops_token(token.clone());
        }
        // The configuration switches pieces off; it never switches back on one the code
        // switched off (`without_logging()` for an application with its own subscriber,
        // say), whichever order the calls come in.
        for (piece, on) in [
            (Piece::Metrics, self.metrics.enabled),
            (Piece::RequestId, self.request_id.enabled),
            (Piece::Tracing, self.tracing.enabled),
            (Piece::AccessLog, self.access_log.enabled),
            (Piece::Logging, self.log.enabled),
            (Piece::Health, self.health.enabled),
            (Piece::Perf, self.perf.enabled),
            (Piece::Alerts, self.alerts.enabled),
            (Piece::Dashboard, self.dashboard.enabled),
            (Piece::Rum, self.rum.enabled),
            (Piece::PanicCatching, self.panic.enabled),
        ] {
            if !on {
                b = b.disable(piece);
            }
        }

        let m = &self.metrics;
        if m.names == NamePreset::Guide {
            b = b
                .metric_names(MetricNames::guide())
                .system_names(SystemNames::guide());
        }
        b = b.http_metrics(
            HttpMetricsLayer::builder()
                .max_series(m.max_series)
                .exclude_paths(&m.exclude_paths)
                .request_body_size(m.request_body_size)
                .response_body_size(m.response_body_size)
                .exemplars(m.exemplars),
        );
        if let Some(path) = &m.disk_path {
            b = b.disk_path(path.clone());
        }

        let header = HeaderName::from_bytes(self.request_id.header.as_bytes())
            .map_err(|e| key_error("request_id.header", e.to_string()))?;
        b = b.request_id(RequestIdLayer::builder().header(header));

        let t = &self.tracing;
        if t.enabled {
            let mut tracing = TracingConfig::new(b.service())
                .version(b.service_version())
                .environment(b.service_environment());
            if let Some(endpoint) = &t.endpoint {
                let p = match &t.protocol {
                    Some(p) => protocol(p).map_err(|r| key_error("tracing.protocol", r))?,
                    None => OtlpProtocol::Grpc,
                };
                tracing = tracing.otlp(endpoint.clone(), p);
            }
            if let Some(ratio) = t.sample_ratio {
                tracing = tracing.sampler(SamplerConfig::ParentBasedRatio(ratio));
            }
            if let Some(list) = &t.propagators {
                tracing = tracing.propagators(
                    propagators(list).map_err(|r| key_error("tracing.propagators", r))?,
                );
            }
            let tracing = tracing.with_env().map_err(env_error)?;
            b = b.tracing(tracing);
        }

        let a = &self.access_log;
        let access = AccessLogLayer::builder()
            .trusted_proxies(&a.trusted_proxies)
            .map_err(|e| key_error("access_log.trusted_proxies", e.to_string()))?
            .exclude_paths(&a.exclude_paths);
        let access = match &a.client_addr {
            Some(how) => access.client_addr(
                how.parse()
                    .map_err(|e| key_error("access_log.client_addr", e))?,
            ),
            None => access,
        };
        b = b.access_log(access);

        if let Some(format) = &self.log.format {
            let format = format.parse().map_err(|_| {
                key_error("log.format", format!("`{format}` is not json or pretty"))
            })?;
            b = b.log_format(format);
        }
        if let Some(filter) = &self.log.filter {
            b = b.log_filter(filter.clone());
        }
        if let Some(hook) = &self.log.panic_hook {
            let hook = hook.parse().map_err(|_| {
                key_error(
                    "log.panic_hook",
                    format!("`{hook}` is not chain, replace or off"),
                )
            })?;
            b = b.log_panic_hook(hook);
        }

        let al = &self.alerts;
        b = b
            .default_alert_rules(al.default_rules)
            .alert_interval(Duration::from_secs(al.interval_secs));
        if al.enabled {
            if let Some(path) = &al.rules_file {
                let rules = towerscope_alert::load_rules(path)
                    .map_err(|e| key_error("alerts.rules_file", e.to_string()))?;
                b = b.alert_rules(rules);
            }
            if let Some(url) = &al.alertmanager {
                b = b.notifier(AlertmanagerNotifier::new(url.clone()));
            }
        }

        let mut rum = Rum::builder();
        if !self.rum.pages.is_empty() {
            rum = rum.pages(PageTemplates::new(
                self.rum.pages.iter().map(String::as_str),
            ));
        }
        if !self.rum.allow_origins.is_empty() {
            rum = rum.allow_origins(&self.rum.allow_origins);
        }
        // The same proxies: RUM's rate limit is per browser, not per load balancer.
        let rum = rum
            .trusted_proxies(&self.access_log.trusted_proxies)
            .map_err(|e| key_error("access_log.trusted_proxies", e.to_string()))?;
        b = b.rum(rum);

        for (i, check) in self.health.checks.iter().enumerate() {
            let made = check
                .check()
                .map_err(|reason| key_error(&format!("health.checks[{i}]"), reason))?;
            let (name, opts) = (check.name.clone(), check.options());
            b = b.add_health_check(move |health| made.register(health, name, opts));
        }

        let s = &self.synthetics;
        let code = b.take_synthetics();
        if !s.enabled {
            return Ok(b);
        }
        let mut probes = match code {
            Some(probes) => probes,
            None if s.probes.is_empty() => return Ok(b),
            None => towerscope_health::Synthetics::builder(),
        };
        if let Some(secs) = s.interval_secs {
            probes = probes.every(Duration::from_secs(secs));
        }
        if let Some(secs) = s.first_round_after_secs {
            probes = probes.first_round_after(Duration::from_secs(secs));
        }
        if let Some(secs) = s.timeout_secs {
            probes = probes.timeout(Duration::from_secs(secs));
        }
        for (i, probe) in s.probes.iter().enumerate() {
            let check = probe
                .check()
                .map_err(|reason| key_error(&format!("synthetics.probes[{i}]"), reason))?;
            probes = check.probe(probes, probe.name.clone());
        }
        Ok(b.synthetics(probes))
    }
}

fn propagators(list: &[String]) -> Result<towerscope_trace::Propagators, String> {
    list.join(",")
        .parse()
        .map_err(|e: towerscope_trace::ConfigError| e.reason().to_owned())
}

fn protocol(p: &str) -> Result<OtlpProtocol, String> {
    match p {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        _ => Err(format!("`{p}` is not grpc or http/protobuf")),
    }
}

fn url(key: &'static str, v: &str) -> Result<(), (&'static str, String)> {
    if (v.starts_with("http://") || v.starts_with("https://")) && v.parse::<http::Uri>().is_ok() {
        Ok(())
    } else {
        Err((key, format!("`{v}` is not an http:// or https:// URL")))
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let err = |reason: String| ConfigError {
        key: "(file)".into(),
        file: Some(path.display().to_string()),
        reason,
    };
    let bytes = towerscope_core::read_capped(path, MAX_FILE_BYTES).map_err(|e| {
        err(match e.kind() {
            std::io::ErrorKind::FileTooLarge => format!("is {e}"),
            _ => format!("cannot read: {e}"),
        })
    })?;
    String::from_utf8(bytes).map_err(|_| err("is not UTF-8 text".to_owned()))
}

/// Puts `value` at the dotted `key` in `table`, making the section when missing.
fn insert(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_owned(), value);
        }
        Some((section, rest)) => {
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                // The file has a non-table here; the variable replaces it.
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                insert(t, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat_keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => flat_keys(&key, t, out),
                _ => out.push(key),
            }
        }
    }

    /// Every field of the struct has a variable, and every variable a field.
    #[test]
    fn keys_match_the_struct() {
        let mut full = Config {
            service_name: Some("s".into()),
            service_version: Some("1".into()),
            environment: Some("e".into()),
            ops_token: Some("t".into()),
            ..Config::default()
        };
        full.metrics.disk_path = Some("/".into());
        full.tracing.endpoint = Some("http://x:4317".into());
        full.tracing.protocol = Some("grpc".into());
        full.tracing.sample_ratio = Some(0.5);
        full.tracing.propagators = Some(vec!["b3".into()]);
        full.access_log.client_addr = Some("truncated".into());
        full.log.format = Some("json".into());
        full.log.filter = Some("info".into());
        full.log.panic_hook = Some("chain".into());
        full.alerts.rules_file = Some("r.yaml".into());
        full.alerts.alertmanager = Some("http://am:9093".into());
        full.synthetics.interval_secs = Some(30);
        full.synthetics.first_round_after_secs = Some(0);
        full.synthetics.timeout_secs = Some(10);
        let table = toml::Table::try_from(&full).expect("serializes");
        let mut fields = Vec::new();
        flat_keys("", &table, &mut fields);
        fields.sort();
        // A list of tables has no variable: read from the file only.
        fields.retain(|f| f != "synthetics.probes" && f != "health.checks");
        let mut keys: Vec<String> = KEYS.iter().map(|(k, _)| (*k).to_owned()).collect();
        keys.sort();
        assert_eq!(fields, keys);
    }

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn every_variable_is_read_with_its_type() {
        let c = Config::from_sources(
            None,
            vars(&[
                ("TOWERSCOPE_SERVICE_NAME", "shop"),
                ("TOWERSCOPE_METRICS_ENABLED", "false"),
                ("TOWERSCOPE_METRICS_MAX_SERIES", " 300 "),
                ("TOWERSCOPE_METRICS_EXCLUDE_PATHS", "/a, /b,"),
                ("TOWERSCOPE_TRACING_SAMPLE_RATIO", "0.25"),
                ("TOWERSCOPE_TRACING_PROPAGATORS", "tracecontext, b3"),
                ("TOWERSCOPE_RUM_PAGES", "/,/p/{id}"),
                ("TOWERSCOPE_OPS_TOKEN", "x y"),
                ("TOWERSCOPE_LOG_PANIC_HOOK", "replace"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.service_name.as_deref(), Some("shop"));
        assert!(!c.metrics.enabled);
        assert_eq!(c.metrics.max_series, 300);
        assert_eq!(c.metrics.exclude_paths, ["/a", "/b"]);
        assert_eq!(c.tracing.sample_ratio, Some(0.25));
        assert_eq!(
            c.tracing.propagators.as_deref(),
            Some(&["tracecontext".to_owned(), "b3".to_owned()][..])
        );
        assert_eq!(c.rum.pages, ["/", "/p/{id}"]);
        assert_eq!(c.ops_token.as_deref(), Some("x y"));
        assert_eq!(c.log.panic_hook.as_deref(), Some("replace"));
    }

    /// The configuration switches pieces off and never back on, in either order of the
    /// calls: `without_logging().configure(..)` keeps logging off (it used to come back on
    /// from the default `log.enabled = true`, and the build failed where the application
    /// had its own subscriber).
    #[test]
    fn pieces_switched_off_in_code_stay_off() {
        let config = Config::from_sources(
            Some(("f.toml", "[dashboard]\nenabled = false\n")),
            vars(&[("TOWERSCOPE_LOG_ENABLED", "true")]),
        )
        .expect("valid");
        let b = crate::Observability::builder("shop")
            .without_logging()
            .disable(Piece::Rum)
            .configure(&config)
            .expect("applies");
        assert!(
            !b.is_enabled(Piece::Logging),
            "not back on from the variable"
        );
        assert!(!b.is_enabled(Piece::Rum), "not back on from the default");
        assert!(!b.is_enabled(Piece::Dashboard), "off from the file");
        assert!(b.is_enabled(Piece::Metrics));
        let b = crate::Observability::builder("shop")
            .configure(&config)
            .expect("applies")
            .without_logging();
        assert!(!b.is_enabled(Piece::Logging) && !b.is_enabled(Piece::Dashboard));
    }

    #[test]
    fn variables_win_over_the_file() {
        let c = Config::from_sources(
            Some((
                "f.toml",
                "environment = \"staging\"\n[alerts]\ninterval_secs = 60\n",
            )),
            vars(&[("TOWERSCOPE_ALERTS_INTERVAL_SECS", "5")]),
        )
        .expect("valid");
        assert_eq!(c.environment.as_deref(), Some("staging"));
        assert_eq!(c.alerts.interval_secs, 5);
    }

    fn file_error(text: &str) -> ConfigError {
        Config::from_sources(Some(("f.toml", text)), |_| None).expect_err("invalid")
    }

    #[test]
    fn an_otel_variable_is_named_once() {
        let e = towerscope_trace::TracingConfig::new("shop")
            .with_vars(|k| (k == "OTEL_TRACES_SAMPLER").then(|| "bogus".to_owned()))
            .expect_err("invalid");
        let e = env_error(e);
        assert_eq!(e.key(), "OTEL_TRACES_SAMPLER");
        assert!(
            e.to_string()
                .starts_with("OTEL_TRACES_SAMPLER: `bogus` is not one of always_on,"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let e = file_error("[metrics]\nmax_series = 0\n");
        assert_eq!(e.key(), "metrics.max_series");
        assert_eq!(
            e.to_string(),
            "f.toml: metrics.max_series: must be 1 to 1000000"
        );
        assert_eq!(
            file_error("[metrics]\nnames = \"prom\"\n").key(),
            "metrics.names"
        );
        assert_eq!(
            file_error("[tracing]\nsample_ratio = 2.0\n").key(),
            "tracing.sample_ratio"
        );
        assert_eq!(
            file_error("[tracing]\nprotocol = \"udp\"\n").key(),
            "tracing.protocol"
        );
        assert_eq!(
            file_error("[tracing]\npropagators = [\"tracecontext\", \"xray\"]\n").to_string(),
            "f.toml: tracing.propagators: `xray` is not supported (use tracecontext, baggage, \
             b3, b3multi or none)"
        );
        assert_eq!(
            file_error("[tracing]\nendpoint = \"collector\"\n").key(),
            "tracing.endpoint"
        );
        assert_eq!(
            file_error("[request_id]\nheader = \"x id\"\n").key(),
            "request_id.header"
        );
        assert_eq!(
            file_error("[access_log]\ntrusted_proxies = [\"10.0.0.0/99\"]\n").key(),
            "access_log.trusted_proxies"
        );
        assert_eq!(
            file_error("[access_log]\nclient_addr = \"hashed\"\n").to_string(),
            "f.toml: access_log.client_addr: `hashed` is not one of full, truncated, omitted"
        );
        assert_eq!(file_error("[log]\nformat = \"xml\"\n").key(), "log.format");
        assert_eq!(
            file_error("[log]\npanic_hook = \"sometimes\"\n").key(),
            "log.panic_hook"
        );
        assert_eq!(
            file_error("[rum]\npages = [\"products\"]\n").key(),
            "rum.pages"
        );
        assert_eq!(
            file_error("[alerts]\nalertmanager = \"am:9093\"\n").key(),
            "alerts.alertmanager"
        );
        assert_eq!(file_error("service_name = \" \"\n").key(), "service_name");
        assert_eq!(
            file_error("[health]\nenabled = \"yes\"\n").key(),
            "health.enabled"
        );
        assert_eq!(file_error("metrics = 3\n").key(), "metrics");
    }

    #[test]
    fn unknown_keys_are_errors_naming_them() {
        let e = file_error("[metrics]\nmax_serie = 10\n");
        assert!(e.key().starts_with("metrics"), "{e}");
        assert!(e.reason().contains("max_serie"), "{e}");
        let e = file_error("[metric]\nenabled = true\n");
        assert!(e.reason().contains("metric"), "{e}");
    }

    #[test]
    fn unknown_top_level_keys_are_named_too() {
        // Found by the `config` fuzz target: an empty key had an empty path.
        for (text, key) in [
            ("''=1\n", "(top level)"),
            ("servce_name = \"x\"\n", "servce_name"),
        ] {
            let e = file_error(text);
            assert_eq!(e.key(), key, "{e}");
            assert!(e.reason().contains("unknown field"), "{e}");
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = file_error("[metrics\n");
        assert_eq!(e.key(), "(syntax)");
        assert_eq!(
            e.to_string(),
            "f.toml: invalid TOML: unclosed table, expected `]` (line 1, column 9)"
        );
        let e = file_error("environment = \"prod\"\n\n[log]\nformat = json\n");
        assert!(
            e.to_string().starts_with("f.toml: invalid TOML: ")
                && e.to_string().ends_with("(line 4, column 10)"),
            "{e}"
        );
    }

    #[test]
    fn bad_variables_name_the_variable_and_hide_secrets() {
        let e = Config::from_sources(None, vars(&[("TOWERSCOPE_METRICS_ENABLED", "maybe")]))
            .expect_err("invalid");
        assert_eq!(e.key(), "TOWERSCOPE_METRICS_ENABLED");
        let e = Config::from_sources(None, vars(&[("TOWERSCOPE_METRICS_MAX_SERIES", "0")]))
            .expect_err("invalid");
        assert_eq!(e.key(), "TOWERSCOPE_METRICS_MAX_SERIES");
        assert_eq!(
            e.to_string(),
            "TOWERSCOPE_METRICS_MAX_SERIES: must be 1 to 1000000"
        );
        let e = Config::from_sources(None, vars(&[("TOWERSCOPE_OPS_TOKEN", "")]))
            .expect_err("empty token");
        assert_eq!(e.key(), "TOWERSCOPE_OPS_TOKEN");
        let e = Config::from_sources(Some(("f.toml", "ops_token = 12345\n")), |_| None)
            .expect_err("not a string");
        assert_eq!(e.key(), "ops_token");
        assert!(!e.to_string().contains("12345"), "{e}");
    }

    #[test]
    fn big_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("towerscope-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("big.toml");
        std::fs::write(&path, "#".repeat(MAX_FILE_BYTES as usize + 10)).expect("write");
        let e = read_file(&path).expect_err("too big");
        assert_eq!(
            e.to_string(),
            format!("{}: is larger than {MAX_FILE_BYTES} bytes", path.display())
        );
        let missing = dir.join("missing.toml");
        let e = read_file(&missing).expect_err("missing");
        assert_eq!(e.key(), "(file)");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let e = read_file(&dir).expect_err("a directory");
        assert!(
            e.to_string()
                .ends_with(": cannot read: Is a directory (os error 21)"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn probe(fields: &str) -> String {
        format!("[[synthetics.probes]]\nname = \"home\"\nurl = \"https://shop.example/\"\n{fields}")
    }

    #[test]
    fn probes_are_read_from_the_file() {
        let text = probe(
            "method = \"HEAD\"\nexpect_status = [200, 204]\nbody_contains = \"shop\"\nmin_cert_validity_days = 21\nfollow_redirects = 2\n",
        ) + "[[synthetics.probes]]\nname = \"api/ping\"\nurl = \"http://127.0.0.1:8080/ping?k=1\"\n"
            + "[synthetics]\ninterval_secs = 60\ntimeout_secs = 5\n";
        let c = Config::from_sources(
            Some(("f.toml", &text)),
            vars(&[("TOWERSCOPE_SYNTHETICS_FIRST_ROUND_AFTER_SECS", "7")]),
        )
        .expect("valid");
        let s = &c.synthetics;
        assert!(s.enabled);
        assert_eq!(
            (s.interval_secs, s.first_round_after_secs, s.timeout_secs),
            (Some(60), Some(7), Some(5))
        );
        assert_eq!(s.probes.len(), 2);
        let home = &s.probes[0];
        assert_eq!(home.method.as_deref(), Some("HEAD"));
        assert_eq!(home.expect_status, [200, 204]);
        assert_eq!(home.body_contains.as_deref(), Some("shop"));
        assert_eq!(home.min_cert_validity_days, Some(21));
        assert_eq!(home.follow_redirects, Some(2));
        let ping = &s.probes[1];
        assert_eq!(
            (ping.name.as_str(), ping.method.as_deref()),
            ("api/ping", None)
        );
        assert!(ping.check().is_ok());
        let off = Config::from_sources(None, vars(&[("TOWERSCOPE_SYNTHETICS_ENABLED", "false")]))
            .expect("valid");
        assert!(!off.synthetics.enabled);
    }

    #[test]
    fn bad_probes_name_the_probe_and_the_field() {
        for (fields, key, reason) in [
            ("", "synthetics.probes[1].name", "`home` is used twice"),
            (
                "method = \"get\"\n",
                "synthetics.probes[0].method",
                "`get` is not a method in capitals (GET, HEAD, …)",
            ),
            (
                "expect_status = [200, 700]\n",
                "synthetics.probes[0].expect_status",
                "700 is not a status from 100 to 599",
            ),
            (
                "min_cert_validity_days = 0\n",
                "synthetics.probes[0].min_cert_validity_days",
                "must be 1 to 3650",
            ),
            (
                "follow_redirects = 11\n",
                "synthetics.probes[0].follow_redirects",
                "must be 0 to 10",
            ),
        ] {
            let mut text = probe(fields);
            if fields.is_empty() {
                text = text.clone() + &text;
            }
            let e = file_error(&text);
            assert_eq!((e.key(), e.reason()), (key, reason), "{fields}");
            assert!(e.to_string().starts_with("f.toml: "), "{e}");
        }
        let e = file_error("[[synthetics.probes]]\nname = \"check out\"\nurl = \"http://a/\"\n");
        assert_eq!(e.key(), "synthetics.probes[0].name");
        let e = file_error(
            "[[synthetics.probes]]\nname = \"a\"\nurl = \"http://a/\"\nmin_cert_validity_days = 21\n",
        );
        assert_eq!(e.key(), "synthetics.probes[0].min_cert_validity_days");
        assert!(e.reason().contains("https://"), "{e}");
        let e =
            file_error("[[synthetics.probes]]\nname = \"a\"\nurl = \"https://a/\"\nheaders = 1\n");
        assert!(e.key().starts_with("synthetics.probes[0]"), "{e}");
        assert!(e.reason().contains("unknown field `headers`"), "{e}");
        let e = file_error(&probe("critical = false\n"));
        assert_eq!(e.key(), "synthetics.probes[0].critical");
        assert_eq!(e.reason(), "applies to health checks only");
        let e = file_error("[[synthetics.probes]]\nurl = \"https://a/\"\n");
        assert!(e.reason().contains("missing field `name`"), "{e}");
    }

    #[test]
    fn a_bad_probe_url_is_not_repeated() {
        for url in [
            "ftp://user:s3cret@host/",
            "https://user:s3cret@/x",
            "user:s3cret",
            "/health",
        ] {
            let text = format!("[[synthetics.probes]]\nname = \"a\"\nurl = \"{url}\"\n");
            let e = file_error(&text);
            assert_eq!(e.key(), "synthetics.probes[0].url", "{url}");
            assert!(!e.to_string().contains("s3cret"), "{e}");
            assert!(!e.to_string().contains("health"), "{e}");
        }
    }

    #[test]
    fn the_schedule_keys_have_ranges() {
        for (text, key) in [
            (
                "[synthetics]\ninterval_secs = 0\n",
                "synthetics.interval_secs",
            ),
            (
                "[synthetics]\ninterval_secs = 86401\n",
                "synthetics.interval_secs",
            ),
            (
                "[synthetics]\nfirst_round_after_secs = 86401\n",
                "synthetics.first_round_after_secs",
            ),
            (
                "[synthetics]\ntimeout_secs = 0\n",
                "synthetics.timeout_secs",
            ),
        ] {
            assert_eq!(file_error(text).key(), key, "{text}");
        }
        let e = Config::from_sources(
            None,
            vars(&[("TOWERSCOPE_SYNTHETICS_TIMEOUT_SECS", "3601")]),
        )
        .expect_err("too long");
        assert_eq!(
            e.to_string(),
            "TOWERSCOPE_SYNTHETICS_TIMEOUT_SECS: must be 1 to 3600"
        );
    }

    #[test]
    fn the_files_probes_join_the_codes_on_the_files_schedule() {
        use towerscope_health::{Synthetics, check_fn};
        let text = probe("") + "[synthetics]\ninterval_secs = 120\ntimeout_secs = 4\n";
        let c = Config::from_sources(Some(("f.toml", &text)), |_| None).expect("valid");
        let code = Synthetics::builder()
            .probe("journey", check_fn(|| async { Ok::<(), String>(()) }))
            .every(Duration::from_secs(5));
        let mut b = c
            .apply(crate::Observability::builder("s").synthetics(code))
            .expect("applies");
        let probes = format!("{:?}", b.take_synthetics().expect("kept"));
        assert_eq!(
            probes,
            "SyntheticsBuilder { probes: [\"journey\", \"home\"], every: 120s, timeout: 4s, .. }"
        );
        // With no probe in code or file, no schedule is made.
        let c = Config::from_sources(
            Some(("f.toml", "[synthetics]\ninterval_secs = 9\n")),
            |_| None,
        )
        .expect("valid");
        let mut b = c
            .apply(crate::Observability::builder("s"))
            .expect("applies");
        assert!(b.take_synthetics().is_none());
    }

    fn check(fields: &str) -> String {
        format!("[[health.checks]]\nname = \"dep\"\n{fields}")
    }

    #[test]
    fn health_checks_are_read_from_the_file() {
        let text = check("tcp = \"db.internal:5432\"\n")
            + &check("url = \"https://search/_health\"\nbody_contains = \"green\"\ncritical = false\ntimeout_ms = 500\ncache_secs = 0\n").replace("dep", "search");
        let c = Config::from_sources(Some(("f.toml", &text)), |_| None).expect("valid");
        let [db, search] = &c.health.checks[..] else {
            panic!("two checks: {:?}", c.health.checks);
        };
        assert_eq!(
            (db.tcp.as_deref(), db.critical, db.timeout_ms),
            (Some("db.internal:5432"), None, None)
        );
        assert_eq!(search.url.as_deref(), Some("https://search/_health"));
        assert_eq!(
            (search.critical, search.timeout_ms, search.cache_secs),
            (Some(false), Some(500), Some(0))
        );
        assert!(c.health.enabled);
    }

    #[test]
    fn bad_health_checks_name_the_check_and_the_field() {
        for (fields, key, reason) in [
            (
                "tcp = \"a:1\"\nurl = \"http://a/\"\n",
                "health.checks[0].url",
                "a check has one of `tcp`, `url` and `grpc`",
            ),
            (
                "url = \"http://a/\"\ngrpc = \"http://a:50051\"\n",
                "health.checks[0].grpc",
                "a check has one of `tcp`, `url` and `grpc`",
            ),
            ("", "health.checks[0]", "needs `tcp`, `url` or `grpc`"),
            (
                "tcp = \"db:5432\"\nservice = \"shop.Db\"\n",
                "health.checks[0].service",
                "applies to grpc checks only",
            ),
            (
                "tcp = \"db:5432\"\nmin_cert_validity_days = 7\n",
                "health.checks[0].min_cert_validity_days",
                "applies to url and grpc checks only",
            ),
            (
                "tcp = \"db\"\n",
                "health.checks[0].tcp",
                "`db` is not host:port",
            ),
            (
                "tcp = \"db:0\"\n",
                "health.checks[0].tcp",
                "`db:0` is not host:port",
            ),
            (
                "tcp = \":5432\"\n",
                "health.checks[0].tcp",
                "`:5432` is not host:port",
            ),
            (
                "tcp = \"db:5432\"\nexpect_status = [200]\n",
                "health.checks[0].expect_status",
                "applies to url checks only",
            ),
            (
                "tcp = \"db:5432\"\ntimeout_ms = 0\n",
                "health.checks[0].timeout_ms",
                "must be 1 to 60000",
            ),
            (
                "tcp = \"db:5432\"\ncache_secs = 3601\n",
                "health.checks[0].cache_secs",
                "must be 0 to 3600",
            ),
            (
                "url = \"http://a/\"\nmethod = \"Get\"\n",
                "health.checks[0].method",
                "`Get` is not a method in capitals (GET, HEAD, …)",
            ),
            (
                "url = \"ftp://user:s3cret@a/\"\n",
                "health.checks[0].url",
                "must be an http:// or https:// URL with a host",
            ),
        ] {
            let e = file_error(&check(fields));
            assert_eq!((e.key(), e.reason()), (key, reason), "{fields}");
        }
        let twice = check("tcp = \"a:1\"\n").repeat(2);
        assert_eq!(file_error(&twice).key(), "health.checks[1].name");
        let e = file_error("[[health.checks]]\nname = \"a b\"\ntcp = \"a:1\"\n");
        assert_eq!(e.key(), "health.checks[0].name");
    }

    #[test]
    fn debug_shows_no_secret() {
        let text = "ops_token = \"t0ken-1\"\n\
            [tracing]\nendpoint = \"https://otel:pw-2@collector:4318/?key=k3y-3\"\n\
            [alerts]\nalertmanager = \"http://am:pw-4@alertmanager:9093\"\n\
            [[health.checks]]\nname = \"search\"\nurl = \"https://u:pw-5@search/_health?token=t-6\"\n\
            [[synthetics.probes]]\nname = \"home\"\nurl = \"https://shop.example/?session=s-7\"\n";
        let c = Config::from_sources(Some(("f.toml", text)), |_| None).expect("valid");
        let shown = format!("{c:?}");
        for secret in ["t0ken-1", "pw-2", "k3y-3", "pw-4", "pw-5", "t-6", "s-7"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in [
            "collector:4318",
            "alertmanager:9093",
            "https://[REDACTED]@search/_health?[REDACTED]",
            "shop.example",
        ] {
            assert!(shown.contains(kept), "{kept} not in {shown}");
        }
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn grpc_checks_are_read_and_checked() {
        let text = check(
            "grpc = \"https://inventory:50051\"\nservice = \"shop.Inventory\"\nmin_cert_validity_days = 14\n",
        );
        let c = Config::from_sources(Some(("f.toml", &text)), |_| None).expect("valid");
        let dep = &c.health.checks[0];
        assert_eq!(dep.service.as_deref(), Some("shop.Inventory"));
        assert!(matches!(dep.check(), Ok(checks::Check::Grpc(_))));
        for (fields, key, reason) in [
            (
                "grpc = \"http://a:50051\"\nmethod = \"GET\"\n",
                "health.checks[0].method",
                "applies to url checks only",
            ),
            (
                "grpc = \"http://a:50051\"\nmin_cert_validity_days = 7\n",
                "health.checks[0].min_cert_validity_days",
                "needs an https:// url: a plain http:// server has no certificate",
            ),
            (
                "grpc = \"http://a:50051\"\nservice = \"shop Inventory\"\n",
                "health.checks[0].service",
                "must be 1 to 256 visible ASCII characters",
            ),
            (
                "grpc = \"a:50051\"\n",
                "health.checks[0].grpc",
                "must be an http:// or https:// URL with a host",
            ),
        ] {
            let e = file_error(&check(fields));
            assert_eq!((e.key(), e.reason()), (key, reason), "{fields}");
        }
    }

    #[cfg(not(feature = "grpc"))]
    #[test]
    fn grpc_checks_need_the_feature() {
        let e = file_error(&check("grpc = \"http://a:50051\"\n"));
        assert_eq!(
            (e.key(), e.reason()),
            (
                "health.checks[0].grpc",
                "needs the `grpc` feature of towerscope"
            )
        );
    }
}

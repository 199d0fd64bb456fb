//! Tracing set up in one call: resource, sampler and OTLP exporter from code defaults and
//! the standard `OTEL_*` environment variables.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use percent_encoding::percent_decode_str;

/// How spans leave the process.
///
/// ```
/// use towerscope_trace::{OtlpProtocol, TracingConfig};
/// let tracing = TracingConfig::new("shop")
///     .otlp("http://127.0.0.1:4318", OtlpProtocol::HttpProtobuf)
///     .init()
///     .expect("an HTTP exporter needs no runtime");
/// assert!(tracing.exporting());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`POST {endpoint}/v1/traces`, port 4318).
    HttpProtobuf,
}

/// Which spans are recorded (the `OTEL_TRACES_SAMPLER` values).
///
/// ```
/// use towerscope_trace::SamplerConfig;
/// assert_eq!(SamplerConfig::default(), SamplerConfig::ParentBasedAlwaysOn);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SamplerConfig {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`: this fraction of traces, whatever the caller decided.
    Ratio(f64),
    /// `parentbased_always_on` (the default): the caller's decision, else record.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: the caller's decision, else drop.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: the caller's decision, else this fraction of new traces.
    ParentBasedRatio(f64),
}

/// The SDK sampler for a configuration.
///
/// ```
/// use towerscope_trace::SamplerConfig;
/// let sampler: opentelemetry_sdk::trace::Sampler = SamplerConfig::ParentBasedRatio(0.5).into();
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_sampler(sampler).build();
/// # let _ = provider;
/// ```
impl From<SamplerConfig> for Sampler {
    fn from(config: SamplerConfig) -> Self {
        config.sampler()
    }
}

impl SamplerConfig {
    fn sampler(self) -> Sampler {
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

/// A configuration value that could not be used. It names the key; it repeats the value
/// only where the value is no secret (never for headers).
///
/// ```
/// let err = towerscope_trace::TracingConfig::new("shop")
///     .with_vars(|k| (k == "OTEL_TRACES_SAMPLER_ARG").then(|| "2".to_owned()))
///     .unwrap_err();
/// assert_eq!(err.key(), "OTEL_TRACES_SAMPLER_ARG");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    key: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
    /// The configuration key (environment variable name) that was wrong.
    ///
    /// ```
    /// let err = towerscope_trace::TracingConfig::new("shop")
    ///     .with_vars(|k| (k == "OTEL_TRACES_SAMPLER").then(|| "sometimes".to_owned()))
    ///     .unwrap_err();
    /// assert_eq!(err.key(), "OTEL_TRACES_SAMPLER");
    /// ```
    pub fn key(&self) -> &'static str {
        self.key
    }
    /// What was wrong with it.
    ///
    /// ```
    /// let err = "tracecontext,jaeger".parse::<towerscope_trace::Propagators>().unwrap_err();
    /// assert_eq!(
    ///     err.reason(),
    ///     "`jaeger` is not supported (use tracecontext, baggage, b3, b3multi or none)"
    /// );
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Why tracing could not start.
///
/// ```
/// use towerscope_trace::{OtlpProtocol, SetupError, TracingConfig};
/// // No tokio runtime here: the gRPC exporter's channel has nowhere to run.
/// let Err(err) = TracingConfig::new("shop")
///     .otlp("http://127.0.0.1:4317", OtlpProtocol::Grpc)
///     .init()
/// else {
///     panic!("needs a runtime");
/// };
/// assert!(matches!(err, SetupError::NoRuntime), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A configuration value was wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// OTLP over gRPC needs a tokio runtime to run its channel on.
    #[error("OTLP over gRPC must be set up inside a tokio runtime")]
    NoRuntime,
    /// Flushing or shutting down the provider failed.
    #[error("shutdown: {0}")]
    Shutdown(#[from] opentelemetry_sdk::error::OTelSdkError),
}

/// Where spans are exported to.
#[derive(Clone, PartialEq, Eq)]
struct Otlp {
    endpoint: String,
    protocol: OtlpProtocol,
    timeout: Duration,
    headers: Vec<(String, String)>,
}

impl fmt::Debug for Otlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are credentials: names only; the endpoint without user information
        // or query.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Otlp")
            .field("endpoint", &towerscope_core::redacted_url(&self.endpoint))
            .field("protocol", &self.protocol)
            .field("timeout", &self.timeout)
            .field("headers", &names)
            .finish()
    }
}

/// The tracing configuration: what the code says, overridden by the environment.
///
/// | variable | meaning |
/// |---|---|
/// | `OTEL_SDK_DISABLED` | `true`: record and export nothing (IDs still propagate) |
/// | `OTEL_SERVICE_NAME` | `service.name` |
/// | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, `key=value,…`, percent-encoded; a `service.name` among them names the service unless `OTEL_SERVICE_NAME` does |
/// | `OTEL_TRACES_EXPORTER` | `otlp` or `none` |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | collector address; the generic one gets `/v1/traces` appended for HTTP |
/// | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_TRACES_PROTOCOL` | `grpc` or `http/protobuf` (default) |
/// | `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_TRACES_TIMEOUT` | export timeout in milliseconds (default 10000) |
/// | `OTEL_EXPORTER_OTLP_HEADERS`, `…_TRACES_HEADERS` | `key=value,…` sent with every export, values percent-decoded once; one the protocol cannot carry is an error at [`init`](Self::init) |
/// | `OTEL_EXPORTER_OTLP_COMPRESSION`, `…_TRACES_COMPRESSION` | `gzip` or `none` (default) |
/// | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_TRACES_CERTIFICATE` | PEM file of CA certificates to trust for an `https://` endpoint, besides the system's |
/// | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY` (and `…_TRACES_…`) | PEM files of the certificate and private key this service shows a collector that asks for one (mutual TLS); both or neither |
/// | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | [`SamplerConfig`]; the ratio in `[0, 1]` |
/// | `OTEL_PROPAGATORS` | [`Propagators`](crate::Propagators): `tracecontext`, `baggage`, `b3`, `b3multi` or `none` (default `tracecontext,baggage`) |
/// | `OTEL_BSP_MAX_QUEUE_SIZE` | spans waiting for export, 1 to [`MAX_BATCH_QUEUE_SIZE`] (default 2048); more are dropped |
/// | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | spans per export, 1 to the queue size (default 512) |
/// | `OTEL_BSP_SCHEDULE_DELAY` | milliseconds between exports, 1 to a day (default 5000) |
/// | `OTEL_BSP_EXPORT_TIMEOUT` | checked, but not used by the SDK's batch processor: `OTEL_EXPORTER_OTLP_TIMEOUT` bounds an export |
///
/// With no endpoint configured anywhere, nothing is exported: spans still get IDs, so
/// log lines and exemplars still name them, and propagation to other services works.
/// (The specification's default of `localhost:4318` would make every service without a
/// collector log export errors; set the endpoint to export.)
///
/// ```no_run
/// # async fn run() -> Result<(), towerscope_trace::SetupError> {
/// let tracing = towerscope_trace::TracingConfig::new("shop")
///     .version(env!("CARGO_PKG_VERSION"))
///     .environment("production")
///     .with_env()?
///     .init()?;
/// let layer = towerscope_trace::TraceLayer::new(tracing.tracer()).sampler(tracing.sampler());
/// // … serve …
/// tracing.shutdown()?; // flushes the batch
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TracingConfig {
    service_name: String,
    version: Option<String>,
    environment: Option<String>,
    resource: Vec<(String, String)>,
    sampler: SamplerConfig,
    propagators: crate::Propagators,
    otlp: Option<Otlp>,
    /// Whether exports are gzip-compressed.
    gzip: bool,
    /// PEM certificates of certificate authorities to trust for an `https://` endpoint.
    certificate: Option<Pem>,
    /// The certificate and key shown to a collector that asks (mutual TLS).
    identity: Option<ClientIdentity>,
    disabled: bool,
    batch: Batch,
}

/// The largest `OTEL_BSP_MAX_QUEUE_SIZE` accepted: the SDK allocates its queue whole when
/// tracing starts, about 370 bytes a slot (24 MB at this size); a larger number could abort
/// the process before it serves anything.
///
/// ```
/// let err = towerscope_trace::TracingConfig::new("shop")
///     .with_vars(|k| (k == "OTEL_BSP_MAX_QUEUE_SIZE").then(|| "100000000000".to_owned()))
///     .unwrap_err();
/// assert_eq!(err.reason(), "`100000000000` is not a whole number from 1 to 65536");
/// assert_eq!(towerscope_trace::MAX_BATCH_QUEUE_SIZE, 65_536);
/// ```
pub const MAX_BATCH_QUEUE_SIZE: usize = 65_536;

/// The batch span processor's settings: the SDK's defaults, or `OTEL_BSP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    max_queue_size: usize,
    max_export_batch_size: usize,
    schedule_delay: Duration,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            schedule_delay: Duration::from_secs(5),
        }
    }
}

/// A whole number in `1..=max`.
fn parse_count(key: &'static str, v: &str, max: usize) -> Result<usize, ConfigError> {
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            key,
            format!("`{v}` is not a whole number from 1 to {max}"),
        )),
    }
}

/// Milliseconds, from 1 to a day (`0` would have the batch thread spin).
fn parse_delay(key: &'static str, v: &str) -> Result<Duration, ConfigError> {
    let max = towerscope_core::MAX_PERIOD.as_millis();
    match v.trim().parse::<u64>() {
        Ok(ms) if ms >= 1 && u128::from(ms) <= max => Ok(Duration::from_millis(ms)),
        _ => Err(ConfigError::new(
            key,
            format!("`{v}` is not a number of milliseconds from 1 to {max}"),
        )),
    }
}

/// Certificates, PEM; `Debug` gives their size, not thousands of byte values.
#[derive(Clone)]
struct Pem(Vec<u8>);

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes of PEM>", self.0.len())
    }
}

/// A client certificate chain and its private key, PEM; `Debug` leaves the key out.
#[derive(Clone)]
struct ClientIdentity {
    cert: Pem,
    // Without TLS support it can only be refused (an `https://` endpoint is an error).
    #[cfg_attr(not(feature = "tls"), expect(dead_code))]
    key: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert", &self.cert)
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

impl TracingConfig {
    /// Defaults for the service `service_name`: parent-based always-on sampling, no
    /// exporter.
    ///
    /// ```
    /// let config = towerscope_trace::TracingConfig::new("shop");
    /// assert!(!config.exports()); // no endpoint: IDs for logs and exemplars, nothing exported
    /// ```
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            version: None,
            environment: None,
            resource: Vec::new(),
            sampler: SamplerConfig::default(),
            propagators: crate::Propagators::default(),
            otlp: None,
            gzip: false,
            certificate: None,
            identity: None,
            disabled: false,
            batch: Batch::default(),
        }
    }

    /// `service.version`.
    ///
    /// ```
    /// use towerscope_trace::{OtlpProtocol, SamplerConfig, TracingConfig};
    /// let config = TracingConfig::new("shop")
    ///     .version("1.4.2")
    ///     .environment("production")
    ///     .resource_attribute("team", "payments")
    ///     .sampler(SamplerConfig::ParentBasedRatio(0.1))
    ///     .otlp("http://collector:4318/v1/traces", OtlpProtocol::HttpProtobuf);
    /// assert!(config.exports());
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// `deployment.environment.name`.
    ///
    /// ```
    /// use towerscope_trace::{OtlpProtocol, SamplerConfig, TracingConfig};
    /// let config = TracingConfig::new("shop")
    ///     .version("1.4.2")
    ///     .environment("production")
    ///     .resource_attribute("team", "payments")
    ///     .sampler(SamplerConfig::ParentBasedRatio(0.1))
    ///     .otlp("http://collector:4318/v1/traces", OtlpProtocol::HttpProtobuf);
    /// assert!(config.exports());
    /// ```
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// One more resource attribute.
    ///
    /// ```
    /// use towerscope_trace::{OtlpProtocol, SamplerConfig, TracingConfig};
    /// let config = TracingConfig::new("shop")
    ///     .version("1.4.2")
    ///     .environment("production")
    ///     .resource_attribute("team", "payments")
    ///     .sampler(SamplerConfig::ParentBasedRatio(0.1))
    ///     .otlp("http://collector:4318/v1/traces", OtlpProtocol::HttpProtobuf);
    /// assert!(config.exports());
    /// ```
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// The sampler.
    ///
    /// ```
    /// use towerscope_trace::{OtlpProtocol, SamplerConfig, TracingConfig};
    /// let config = TracingConfig::new("shop")
    ///     .version("1.4.2")
    ///     .environment("production")
    ///     .resource_attribute("team", "payments")
    ///     .sampler(SamplerConfig::ParentBasedRatio(0.1))
    ///     .otlp("http://collector:4318/v1/traces", OtlpProtocol::HttpProtobuf);
    /// assert!(config.exports());
    /// ```
    pub fn sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// Compress exports with gzip (`OTEL_EXPORTER_OTLP_COMPRESSION` and
    /// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, `gzip` or `none`, win): for HTTP a
    /// `Content-Encoding: gzip` body, for gRPC gzip-encoded messages.
    ///
    /// ```
    /// use towerscope_trace::{OtlpProtocol, TracingConfig};
    /// let config = TracingConfig::new("shop")
    ///     .otlp("http://collector:4318/v1/traces", OtlpProtocol::HttpProtobuf)
    ///     .gzip(true);
    /// assert!(config.exports());
    /// ```
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// The formats the layers read and write the context in (`OTEL_PROPAGATORS` wins);
    /// default `tracecontext,baggage`.
    ///
    /// ```
    /// use towerscope_trace::{B3Format, Propagators, TracingConfig};
    /// let tracing = TracingConfig::new("shop")
    ///     .propagators(Propagators::default().with_b3(B3Format::Multi))
    ///     .init()
    ///     .unwrap();
    /// assert_eq!(tracing.propagators().to_string(), "tracecontext,baggage,b3multi");
    /// ```
    pub fn propagators(mut self, propagators: crate::Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Export over OTLP to `endpoint` (for HTTP the full URL of the traces resource, e.g.
    /// `http://collector:4318/v1/traces`; for gRPC the collector's address).
    ///
    /// ```
    /// use towerscope_trace::{OtlpProtocol, SamplerConfig, TracingConfig};
    /// let config = TracingConfig::new("shop")
    ///     .version("1.4.2")
    ///     .environment("production")
    ///     .resource_attribute("team", "payments")
    ///     .sampler(SamplerConfig::ParentBasedRatio(0.1))
    ///     .otlp("http://collector:4318/v1/traces", OtlpProtocol::HttpProtobuf);
    /// assert!(config.exports());
    /// ```
    pub fn otlp(mut self, endpoint: impl Into<String>, protocol: OtlpProtocol) -> Self {
        self.otlp = Some(Otlp {
            endpoint: endpoint.into(),
            protocol,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
        });
        self
    }

    /// Also trust the certificate authorities in `pem` (PEM, one or more certificates) for an
    /// `https://` endpoint, besides the system's: for a collector whose certificate a
    /// private CA signed. `OTEL_EXPORTER_OTLP_CERTIFICATE` names such a file.
    ///
    /// ```
    /// let pem = "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n";
    /// let config = towerscope_trace::TracingConfig::new("shop")
    ///     .otlp("https://collector.internal:4318/v1/traces", towerscope_trace::OtlpProtocol::HttpProtobuf)
    ///     .otlp_certificate(pem);
    /// assert!(format!("{config:?}").contains("certificate: Some(<58 bytes of PEM>)"), "{config:?}");
    /// ```
    pub fn otlp_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.certificate = Some(Pem(pem.into()));
        self
    }

    /// The certificate (PEM; the chain, leaf first) and private key (PEM: PKCS#8, PKCS#1
    /// or SEC1) this service shows a collector that requires clients to authenticate
    /// (mutual TLS) on its `https://` endpoint. `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
    /// `OTEL_EXPORTER_OTLP_CLIENT_KEY` name such files. The key never appears in `Debug`.
    ///
    /// ```
    /// let cert = "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n";
    /// let key = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
    /// let config = towerscope_trace::TracingConfig::new("shop")
    ///     .otlp("https://collector.internal:4318/v1/traces", towerscope_trace::OtlpProtocol::HttpProtobuf)
    ///     .otlp_client_identity(cert, key);
    /// assert!(!format!("{config:?}").contains("secret"));
    /// ```
    pub fn otlp_client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some(ClientIdentity {
            cert: Pem(cert_pem.into()),
            key: key_pem.into(),
        });
        self
    }

    /// The service name spans will carry (`service.name`): the one given, or
    /// `OTEL_SERVICE_NAME` once [`with_env`](Self::with_env) read it.
    ///
    /// ```
    /// use towerscope_trace::TracingConfig;
    /// assert_eq!(TracingConfig::new("shop").service(), "shop");
    /// let renamed = TracingConfig::new("shop")
    ///     .with_vars(|k| (k == "OTEL_SERVICE_NAME").then(|| "storefront".to_owned()))
    ///     .unwrap();
    /// assert_eq!(renamed.service(), "storefront");
    /// ```
    pub fn service(&self) -> &str {
        &self.service_name
    }

    /// Whether spans will be exported.
    ///
    /// ```
    /// use towerscope_trace::{OtlpProtocol, TracingConfig};
    /// assert!(!TracingConfig::new("shop").exports());
    /// assert!(TracingConfig::new("shop").otlp("http://127.0.0.1:4317", OtlpProtocol::Grpc).exports());
    /// ```
    pub fn exports(&self) -> bool {
        self.otlp.is_some() && !self.disabled
    }

    /// Applies the `OTEL_*` environment variables over this configuration.
    ///
    /// ```
    /// // OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, … override the code.
    /// let config = towerscope_trace::TracingConfig::new("shop").with_env().expect("valid OTEL_* variables");
    /// # let _ = config;
    /// ```
    pub fn with_env(self) -> Result<Self, ConfigError> {
        self.with_vars(|key| std::env::var(key).ok())
    }

    /// Applies `OTEL_*` variables read through `var` (for tests and for configuration
    /// that is not the process environment).
    ///
    /// ```
    /// use towerscope_trace::{SamplerConfig, TracingConfig};
    /// let vars = |k: &str| match k {
    ///     "OTEL_TRACES_SAMPLER" => Some("parentbased_traceidratio".to_owned()),
    ///     "OTEL_TRACES_SAMPLER_ARG" => Some("0.25".to_owned()),
    ///     _ => None,
    /// };
    /// let tracing = TracingConfig::new("shop").with_vars(vars).unwrap().init().unwrap();
    /// assert_eq!(tracing.sampler(), SamplerConfig::ParentBasedRatio(0.25));
    /// ```
    pub fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &'static str| var(key).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("OTEL_SDK_DISABLED") {
            self.disabled = parse_bool("OTEL_SDK_DISABLED", &v)?;
        }
        if let Some(v) = get("OTEL_SERVICE_NAME") {
            self.service_name = v;
        }
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, value) in parse_pairs("OTEL_RESOURCE_ATTRIBUTES", &v, true)? {
                if key == "service.name" {
                    // Deploy-time configuration names the service over the name in code;
                    // OTEL_SERVICE_NAME wins over this one (the specification's order).
                    if get("OTEL_SERVICE_NAME").is_none() {
                        self.service_name = value;
                    }
                } else {
                    self.resource.push((key, value));
                }
            }
        }
        if let Some(v) = get("OTEL_TRACES_SAMPLER") {
            let arg = get("OTEL_TRACES_SAMPLER_ARG");
            self.sampler = parse_sampler(&v, arg.as_deref())?;
        } else if let Some(arg) = get("OTEL_TRACES_SAMPLER_ARG") {
            // An argument alone tunes a ratio sampler set in code.
            let ratio = parse_ratio(&arg)?;
            match &mut self.sampler {
                SamplerConfig::Ratio(r) | SamplerConfig::ParentBasedRatio(r) => *r = ratio,
                _ => {}
            }
        }
        if let Some(v) = get(PROPAGATORS) {
            self.propagators = crate::Propagators::parse_for(PROPAGATORS, &v)?;
        }
        self.batch = self.batch_from(&get)?;
        let exporter = get("OTEL_TRACES_EXPORTER");
        match exporter.as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => {
                self.otlp = None;
                return Ok(self);
            }
            Some(other) => {
                return Err(ConfigError::new(
                    "OTEL_TRACES_EXPORTER",
                    format!("`{other}` is not supported (use `otlp` or `none`)"),
                ));
            }
        }
        for key in [CERTIFICATE, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"] {
            if let Some(path) = get(key) {
                self.certificate = Some(Pem(read_pem(key, path.trim(), "CERTIFICATE")?));
            }
        }
        let traces_or = |traces: &'static str, generic: &'static str| {
            get(traces)
                .map(|v| (traces, v))
                .or(get(generic).map(|v| (generic, v)))
        };
        match (
            traces_or(
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
            traces_or(
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
        ) {
            (None, None) => {}
            (Some((key, _)), None) => {
                return Err(ConfigError::new(
                    key,
                    "a client certificate needs its key: set OTEL_EXPORTER_OTLP_CLIENT_KEY too",
                ));
            }
            (None, Some((key, _))) => {
                return Err(ConfigError::new(
                    key,
                    "a client key needs its certificate: set \
                     OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE too",
                ));
            }
            (Some((cert_var, cert)), Some((key_var, key))) => {
                self.identity = Some(ClientIdentity {
                    cert: Pem(read_pem(cert_var, cert.trim(), "CERTIFICATE")?),
                    key: read_pem(key_var, key.trim(), "PRIVATE KEY")?,
                });
            }
        }
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(v) => Some(parse_protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", &v)?),
            None => match get("OTEL_EXPORTER_OTLP_PROTOCOL") {
                Some(v) => Some(parse_protocol("OTEL_EXPORTER_OTLP_PROTOCOL", &v)?),
                None => None,
            },
        };
        let protocol = protocol
            .or(self.otlp.as_ref().map(|o| o.protocol))
            .unwrap_or(OtlpProtocol::HttpProtobuf);
        let endpoint = if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v)?)
        } else if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            let base = check_url("OTEL_EXPORTER_OTLP_ENDPOINT", v)?;
            Some(match protocol {
                OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
                OtlpProtocol::Grpc => base,
            })
        } else {
            self.otlp.as_ref().map(|o| o.endpoint.clone())
        };
        let Some(endpoint) = endpoint else {
            if exporter.is_some() {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "OTEL_TRACES_EXPORTER=otlp needs an endpoint",
                ));
            }
            return Ok(self);
        };
        let mut otlp = self.otlp.take().unwrap_or(Otlp {
            endpoint: String::new(),
            protocol,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
        });
        otlp.endpoint = endpoint;
        otlp.protocol = protocol;
        for key in [
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        ] {
            if let Some(v) = get(key) {
                let ms: u64 = v.trim().parse().map_err(|_| {
                    ConfigError::new(key, format!("`{v}` is not a number of milliseconds"))
                })?;
                otlp.timeout = Duration::from_millis(ms);
            }
        }
        for key in [
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        ] {
            if let Some(v) = get(key) {
                self.gzip = match v.trim() {
                    "gzip" => true,
                    "none" => false,
                    other => {
                        return Err(ConfigError::new(
                            key,
                            format!("`{other}` is not supported (use gzip or none)"),
                        ));
                    }
                };
            }
        }
        for key in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(v) = get(key) {
                for (k, value) in parse_pairs(key, &v, false)? {
                    otlp.headers
                        .retain(|(name, _)| !name.eq_ignore_ascii_case(&k));
                    otlp.headers.push((k, value));
                }
            }
        }
        self.otlp = Some(otlp);
        Ok(self)
    }

    /// `OTEL_BSP_*`, checked: the SDK would take `0` or a huge queue as they are (a
    /// rendezvous queue that drops nearly every span, a spinning thread, an allocation
    /// that aborts), and ignore a value it cannot parse without a word.
    fn batch_from(
        &self,
        get: &impl Fn(&'static str) -> Option<String>,
    ) -> Result<Batch, ConfigError> {
        let mut batch = self.batch;
        const QUEUE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
        const BATCH: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
        if let Some(v) = get(QUEUE) {
            batch.max_queue_size = parse_count(QUEUE, &v, MAX_BATCH_QUEUE_SIZE)?;
        }
        if let Some(v) = get(BATCH) {
            batch.max_export_batch_size = parse_count(BATCH, &v, batch.max_queue_size)
                .map_err(|e| ConfigError::new(BATCH, format!("{} (the queue size)", e.reason())))?;
        }
        if let Some(v) = get("OTEL_BSP_SCHEDULE_DELAY") {
            batch.schedule_delay = parse_delay("OTEL_BSP_SCHEDULE_DELAY", &v)?;
        }
        // Read by the SDK, unused by its batch processor (OTEL_EXPORTER_OTLP_TIMEOUT bounds
        // an export); still a mistake to point out.
        if let Some(v) = get("OTEL_BSP_EXPORT_TIMEOUT") {
            v.trim().parse::<u64>().map_err(|_| {
                ConfigError::new(
                    "OTEL_BSP_EXPORT_TIMEOUT",
                    format!("`{v}` is not a number of milliseconds"),
                )
            })?;
        }
        Ok(batch)
    }

    fn resource(&self) -> Resource {
        let mut attributes = Vec::new();
        if let Some(v) = &self.version {
            attributes.push(KeyValue::new("service.version", v.clone()));
        }
        if let Some(e) = &self.environment {
            attributes.push(KeyValue::new("deployment.environment.name", e.clone()));
        }
        for (k, v) in &self.resource {
            attributes.push(KeyValue::new(k.clone(), v.clone()));
        }
        Resource::builder()
            .with_attributes(attributes)
            .with_service_name(self.service_name.clone())
            .build()
    }

    /// Builds the tracer provider: batch export over OTLP when an endpoint is configured,
    /// no export otherwise. OTLP over gRPC must be set up inside a tokio runtime.
    ///
    /// ```
    /// use towerscope_trace::TracingConfig;
    /// let tracing = TracingConfig::new("shop").init().expect("local tracing");
    /// assert!(!tracing.exporting());
    /// tracing.shutdown().unwrap();
    /// ```
    pub fn init(self) -> Result<Tracing, SetupError> {
        let mut builder = SdkTracerProvider::builder().with_resource(self.resource());
        let sampler = if self.disabled {
            SamplerConfig::AlwaysOff
        } else {
            self.sampler
        };
        builder = builder.with_sampler(sampler.sampler());
        let exporting = self.exports();
        let mut export_stats = None;
        if let (Some(otlp), false) = (&self.otlp, self.disabled) {
            let https = otlp
                .endpoint
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
            #[cfg(not(feature = "tls"))]
            if https {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "an https:// endpoint needs towerscope-trace's `tls` feature",
                )
                .into());
            }
            if self.identity.is_some() && !https {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    format!(
                        "a client certificate needs an https:// endpoint, not {}",
                        towerscope_core::redacted_url(&otlp.endpoint)
                    ),
                )
                .into());
            }
            let stats = crate::export::ExportStats::new(match otlp.protocol {
                OtlpProtocol::Grpc => "otlp_grpc_span_exporter",
                OtlpProtocol::HttpProtobuf => "otlp_http_span_exporter",
            });
            let exporter = match otlp.protocol {
                OtlpProtocol::Grpc => {
                    if tokio::runtime::Handle::try_current().is_err() {
                        return Err(SetupError::NoRuntime);
                    }
                    let mut metadata = tonic::metadata::MetadataMap::new();
                    for (k, v) in &otlp.headers {
                        let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
                            .map_err(|_| header_error(k))?;
                        let value = v.parse().map_err(|_| header_error(k))?;
                        metadata.insert(key, value);
                    }
                    let mut builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(otlp.endpoint.clone())
                        .with_timeout(otlp.timeout)
                        .with_metadata(metadata);
                    if self.gzip {
                        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
                    }
                    #[cfg(feature = "tls")]
                    let builder = if https {
                        // The system's roots (the exporter's own default has none), and
                        // the configured CA.
                        let mut tls = tonic::transport::ClientTlsConfig::new().with_enabled_roots();
                        if let Some(Pem(pem)) = &self.certificate {
                            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                        }
                        if let Some(id) = &self.identity {
                            client_identity(id)?;
                            tls = tls.identity(tonic::transport::Identity::from_pem(
                                &id.cert.0, &id.key,
                            ));
                        }
                        builder.with_tls_config(tls)
                    } else {
                        builder
                    };
                    builder.build()?
                }
                OtlpProtocol::HttpProtobuf => {
                    // The exporter drops, without a word, a header it cannot send, and
                    // percent-decodes values once more: check them here, and hand them over
                    // encoded again, so `%2541` arrives as `%41`.
                    let mut headers = HashMap::new();
                    for (k, v) in &otlp.headers {
                        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                            || http::HeaderValue::from_str(v).is_err()
                        {
                            return Err(ConfigError::new(
                                "OTEL_EXPORTER_OTLP_HEADERS",
                                format!("header `{k}` is not a valid HTTP header"),
                            )
                            .into());
                        }
                        let encoded = percent_encoding::utf8_percent_encode(
                            v,
                            percent_encoding::NON_ALPHANUMERIC,
                        );
                        headers.insert(k.clone(), encoded.to_string());
                    }
                    let mut builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_endpoint(otlp.endpoint.clone())
                        .with_timeout(otlp.timeout)
                        .with_headers(headers);
                    if self.gzip {
                        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
                    }
                    #[cfg(feature = "tls")]
                    let builder =
                        if https && (self.certificate.is_some() || self.identity.is_some()) {
                            builder.with_http_client(https_client(
                                otlp.timeout,
                                self.certificate.as_ref().map(|Pem(pem)| pem.as_slice()),
                                self.identity.as_ref(),
                            )?)
                        } else {
                            builder
                        };
                    builder.build()?
                }
            };
            // Every setting given here: the SDK's own defaults would read `OTEL_BSP_*`
            // from the process unchecked (see `batch_from`).
            let batch = opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_max_queue_size(self.batch.max_queue_size)
                .with_max_export_batch_size(
                    self.batch
                        .max_export_batch_size
                        .min(self.batch.max_queue_size),
                )
                .with_scheduled_delay(self.batch.schedule_delay)
                .build();
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(
                crate::export::CountingExporter::new(exporter, stats.clone(), &otlp.endpoint),
            )
            .with_batch_config(batch)
            .build();
            builder = builder.with_span_processor(processor);
            export_stats = Some(stats);
        }
        let provider = builder.build();
        let tracer = provider.tracer("towerscope");
        Ok(Tracing {
            provider,
            tracer,
            sampler,
            propagators: self.propagators,
            exporting,
            export_stats,
        })
    }
}

/// The variable that lists the propagators.
pub(crate) const PROPAGATORS: &str = "OTEL_PROPAGATORS";

/// The variable that names a PEM file of CA certificates (`…_TRACES_CERTIFICATE` wins).
const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";

/// The PEM file at `path`, which must hold a block whose label ends in `label`
/// (`CERTIFICATE`; `PRIVATE KEY` also matches `RSA PRIVATE KEY` and `EC PRIVATE KEY`).
fn read_pem(key: &'static str, path: &str, label: &str) -> Result<Vec<u8>, ConfigError> {
    /// Room for any CA bundle (the system's whole store is a few hundred KiB), and a
    /// bound for a path like /dev/zero.
    const MAX_BYTES: u64 = 4 * 1024 * 1024;
    let pem =
        towerscope_core::read_capped(path.as_ref(), MAX_BYTES).map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => ConfigError::new(key, format!("`{path}` is {e}")),
            _ => ConfigError::new(key, format!("cannot read `{path}`: {e}")),
        })?;
    let marker = format!("{label}-----");
    let found = pem
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .any(|line| line.starts_with(b"-----BEGIN ") && line.ends_with(marker.as_bytes()));
    if !found {
        return Err(ConfigError::new(
            key,
            format!("`{path}` holds no PEM {}", label.to_ascii_lowercase()),
        ));
    }
    Ok(pem)
}

/// `id` as reqwest's identity, which parses both files: a key or certificate that cannot be
/// used is an error at setup, not a failed handshake at each export.
#[cfg(feature = "tls")]
fn client_identity(id: &ClientIdentity) -> Result<reqwest::Identity, ConfigError> {
    // reqwest takes the key and the chain as one PEM buffer.
    reqwest::Identity::from_pem(&[id.key.as_slice(), b"\n", &id.cert.0].concat()).map_err(|e| {
        ConfigError::new(
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            format!("the client certificate and key are unusable: {e}"),
        )
    })
}

/// The blocking HTTP client of the OTLP/HTTP exporter, trusting the CAs in `ca` besides
/// the system's, and showing `identity` to a collector that asks for a client certificate.
#[cfg(feature = "tls")]
fn https_client(
    timeout: Duration,
    ca: Option<&[u8]>,
    identity: Option<&ClientIdentity>,
) -> Result<reqwest::blocking::Client, SetupError> {
    let bad = |e: reqwest::Error| ConfigError::new(CERTIFICATE, format!("unusable: {e}"));
    let certs = match ca {
        Some(pem) => reqwest::Certificate::from_pem_bundle(pem).map_err(bad)?,
        None => Vec::new(),
    };
    let identity = identity.map(client_identity).transpose()?;
    // The blocking client runs a runtime of its own, which cannot be started from a tokio
    // runtime's thread: build it on a thread of its own, as the exporter does.
    std::thread::spawn(move || {
        let builder = certs
            .into_iter()
            .fold(reqwest::blocking::Client::builder(), |b, c| {
                b.add_root_certificate(c)
            });
        match identity {
            Some(id) => builder.identity(id),
            None => builder,
        }
        .timeout(timeout)
        .build()
    })
    .join()
    .map_err(|_| ConfigError::new(CERTIFICATE, "building the HTTP client panicked"))?
    .map_err(|e| bad(e).into())
}

fn header_error(name: &str) -> ConfigError {
    ConfigError::new(
        "OTEL_EXPORTER_OTLP_HEADERS",
        format!("header `{name}` is not a valid gRPC metadata entry"),
    )
}

fn parse_bool(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(
            key,
            format!("`{v}` is not `true` or `false`"),
        )),
    }
}

fn parse_ratio(v: &str) -> Result<f64, ConfigError> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(ConfigError::new(
            "OTEL_TRACES_SAMPLER_ARG",
            format!("`{v}` is not a ratio between 0 and 1"),
        )),
    }
}

fn parse_sampler(v: &str, arg: Option<&str>) -> Result<SamplerConfig, ConfigError> {
    let ratio = || arg.map_or(Ok(1.0), parse_ratio);
    Ok(match v.trim() {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::Ratio(ratio()?),
        "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerConfig::ParentBasedRatio(ratio()?),
        other => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                format!(
                    "`{other}` is not one of always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
                ),
            ));
        }
    })
}

fn parse_protocol(key: &'static str, v: &str) -> Result<OtlpProtocol, ConfigError> {
    match v.trim() {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        other => Err(ConfigError::new(
            key,
            format!("`{other}` is not supported (use `grpc` or `http/protobuf`)"),
        )),
    }
}

fn check_url(key: &'static str, v: String) -> Result<String, ConfigError> {
    match v.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
            Ok(v)
        }
        _ => Err(ConfigError::new(
            key,
            format!("`{v}` is not an http:// or https:// URL"),
        )),
    }
}

/// `key=value,key=value`, values percent-decoded. `echo` says whether a bad entry may be
/// quoted in the error (not for headers, which carry credentials).
fn parse_pairs(
    key: &'static str,
    v: &str,
    echo: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, entry) in v.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let bad = || {
            ConfigError::new(
                key,
                if echo {
                    format!("entry `{entry}` is not key=value")
                } else {
                    format!("entry {} is not key=value", i + 1)
                },
            )
        };
        let (k, value) = entry.split_once('=').ok_or_else(bad)?;
        let k = k.trim();
        if k.is_empty() {
            return Err(bad());
        }
        let value = percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| bad())?;
        out.push((k.to_owned(), value.into_owned()));
    }
    Ok(out)
}

/// Running tracing: the provider, its tracer, and the shutdown that flushes.
///
/// ```
/// use towerscope_trace::{TraceLayer, TracingConfig};
/// // No endpoint: spans get IDs (for logs and exemplars) and nothing is exported.
/// let tracing = TracingConfig::new("shop").init().expect("local tracing");
/// assert!(!tracing.exporting());
/// let layer = TraceLayer::new(tracing.tracer()).sampler(tracing.sampler());
/// # let _ = layer;
/// tracing.shutdown().expect("flushed");
/// ```
#[derive(Debug, Clone)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    sampler: SamplerConfig,
    propagators: crate::Propagators,
    exporting: bool,
    export_stats: Option<std::sync::Arc<crate::export::ExportStats>>,
}

impl Tracing {
    /// The tracer for [`TraceLayer`](crate::TraceLayer), [`TraceClientLayer`](crate::TraceClientLayer)
    /// and [`tracing_layer`](crate::tracing_layer).
    ///
    /// ```
    /// use towerscope_trace::TracingConfig;
    /// let tracing = TracingConfig::new("shop").init().expect("local tracing");
    /// let layer = towerscope_trace::TraceLayer::new(tracing.tracer());
    /// # let _ = layer;
    /// ```
    pub fn tracer(&self) -> SdkTracer {
        self.tracer.clone()
    }
    /// The sampler the provider was built with (`AlwaysOff` when `OTEL_SDK_DISABLED` is
    /// set), for [`TraceLayer::sampler`](crate::TraceLayer::sampler).
    ///
    /// ```
    /// use towerscope_trace::{SamplerConfig, TraceLayer, TracingConfig};
    /// let tracing = TracingConfig::new("shop").sampler(SamplerConfig::ParentBasedRatio(0.1)).init().unwrap();
    /// assert_eq!(tracing.sampler(), SamplerConfig::ParentBasedRatio(0.1));
    /// let layer = TraceLayer::new(tracing.tracer()).sampler(tracing.sampler());
    /// # let _ = layer;
    /// ```
    pub fn sampler(&self) -> SamplerConfig {
        self.sampler
    }
    /// The propagators configured (`OTEL_PROPAGATORS`), for
    /// [`TraceLayer::propagators`](crate::TraceLayer::propagators) and
    /// [`TraceClientLayer::propagators`](crate::TraceClientLayer::propagators).
    ///
    /// ```
    /// use towerscope_trace::{TraceClientLayer, TraceLayer, TracingConfig};
    /// let tracing = TracingConfig::new("shop")
    ///     .with_vars(|k| (k == "OTEL_PROPAGATORS").then(|| "tracecontext,b3".to_owned()))?
    ///     .init()
    ///     .unwrap();
    /// assert_eq!(tracing.propagators().to_string(), "tracecontext,b3");
    /// let server = TraceLayer::new(tracing.tracer()).propagators(tracing.propagators());
    /// let client = TraceClientLayer::new(tracing.tracer()).propagators(tracing.propagators());
    /// # let _ = (server, client);
    /// # Ok::<(), towerscope_trace::ConfigError>(())
    /// ```
    pub fn propagators(&self) -> crate::Propagators {
        self.propagators
    }
    /// The provider (for more tracers, or to install it as the global one).
    ///
    /// ```
    /// use towerscope_trace::TracingConfig;
    /// let tracing = TracingConfig::new("shop").init().expect("local tracing");
    /// use opentelemetry::trace::TracerProvider as _;
    /// let jobs = tracing.provider().tracer("shop-jobs"); // a second tracer, same pipeline
    /// # let _ = jobs;
    /// ```
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }
    /// Whether spans are exported.
    ///
    /// ```
    /// use towerscope_trace::TracingConfig;
    /// let tracing = TracingConfig::new("shop").init().expect("local tracing");
    /// assert!(!tracing.exporting());
    /// ```
    pub fn exporting(&self) -> bool {
        self.exporting
    }
    /// Registers the exporter's metrics into `registry` (nothing when no exporter is
    /// configured): `otel_sdk_exporter_span_exported_total{otel_component_type}`, spans
    /// exported, and with `error_type` (`timeout`, `_OTHER`) spans whose export failed and
    /// were lost; `otel_sdk_exporter_span_inflight`, spans being exported. The names are
    /// the OpenTelemetry semantic conventions for SDK metrics. When exports start to fail,
    /// one `WARN` line says so (with the error); when they succeed again, one `INFO` line
    /// says how many spans were lost.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use towerscope_trace::{OtlpProtocol, TracingConfig};
    /// let tracing = TracingConfig::new("shop")
    ///     .otlp("http://127.0.0.1:4318/v1/traces", OtlpProtocol::HttpProtobuf)
    ///     .init()
    ///     .unwrap();
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// tracing.metrics(&mut registry);
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains(r#"otel_sdk_exporter_span_exported_total{otel_component_type="otlp_http_span_exporter"} 0"#), "{text}");
    /// # }
    /// ```
    pub fn metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        if let Some(stats) = &self.export_stats {
            registry.register_collector(Box::new(crate::export::ExportMetrics(stats.clone())));
        }
    }
    /// Exports every finished span now.
    ///
    /// ```
    /// use towerscope_trace::TracingConfig;
    /// let tracing = TracingConfig::new("shop").init().expect("local tracing");
    /// tracing.flush().expect("nothing to export is not an error");
    /// ```
    pub fn flush(&self) -> Result<(), SetupError> {
        Ok(self.provider.force_flush()?)
    }
    /// Flushes and stops the exporter. This blocks until the batch is sent (or the export
    /// timeout passes): from async code, call it in `spawn_blocking`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let tracing = towerscope_trace::TracingConfig::new("shop").init().unwrap();
    /// // ... serve; on shutdown, from async code:
    /// tokio::task::spawn_blocking(move || tracing.shutdown()).await.unwrap().unwrap();
    /// # });
    /// ```
    pub fn shutdown(&self) -> Result<(), SetupError> {
        Ok(self.provider.shutdown()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_endpoint_means_no_export() {
        let c = TracingConfig::new("shop").with_vars(vars(&[])).expect("ok");
        assert!(!c.exports());
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
    }

    #[test]
    fn environment_wins_over_code() {
        let c = TracingConfig::new("shop")
            .sampler(SamplerConfig::AlwaysOn)
            .with_vars(vars(&[
                ("OTEL_SERVICE_NAME", "checkout"),
                ("OTEL_RESOURCE_ATTRIBUTES", "team=payments,region=eu%20west"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20s3cret",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ]))
            .expect("ok");
        assert_eq!(c.service_name, "checkout");
        assert_eq!(c.sampler, SamplerConfig::ParentBasedRatio(0.25));
        let otlp = c.otlp.as_ref().expect("exports");
        assert_eq!(otlp.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(otlp.timeout, Duration::from_millis(2500));
        assert_eq!(
            otlp.headers,
            [("authorization".into(), "Bearer s3cret".into())]
        );
        assert!(c.resource.contains(&("region".into(), "eu west".into())));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "header values never reach a log line"
        );
    }

    #[test]
    fn signal_endpoint_is_used_as_is_and_grpc_keeps_the_address() {
        let c = TracingConfig::new("shop")
            .with_vars(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ]))
            .expect("ok");
        assert_eq!(
            c.otlp.as_ref().map(|o| o.endpoint.as_str()),
            Some("http://a:4317")
        );
        let c = TracingConfig::new("shop")
            .with_vars(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
            ]))
            .expect("ok");
        assert_eq!(
            c.otlp.as_ref().map(|o| o.endpoint.as_str()),
            Some("http://b:9999/custom")
        );
        let c = TracingConfig::new("shop")
            .otlp("http://c:4318/v1/traces", OtlpProtocol::HttpProtobuf)
            .with_vars(vars(&[("OTEL_TRACES_EXPORTER", "none")]))
            .expect("ok");
        assert!(!c.exports());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (pairs, key) in [
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")][..],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ][..],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[("OTEL_TRACES_SAMPLER_ARG", "NaN")][..],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")][..],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
                ][..],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
                ][..],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "tokenonly"),
                ][..],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "zipkin")][..],
                "OTEL_TRACES_EXPORTER",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "otlp")][..],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (&[("OTEL_SDK_DISABLED", "yes")][..], "OTEL_SDK_DISABLED"),
        ] {
            let owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let err = TracingConfig::new("shop")
                .with_vars(|k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .expect_err("refused");
            assert_eq!(err.key(), key, "{pairs:?}: {err}");
        }
        let err = TracingConfig::new("shop")
            .with_vars(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "a=b,secretvalue"),
            ]))
            .expect_err("refused");
        assert!(!err.to_string().contains("secretvalue"), "{err}");
    }
}

//! `[health]` and `[synthetics]`: dependency checks and probes from the file.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use towerscope_health::{
    CheckOptions, Criticality, HealthBuilder, HttpCheck, SyntheticsBuilder, TcpCheck,
};

/// `[health]`: `/health` and `/ready`, and the dependency checks `/ready` runs. Each
/// `[[health.checks]]` table is a [`CheckConfig`]; in the file only. They join the checks
/// given in code ([`ObservabilityBuilder::health`](crate::ObservabilityBuilder::health));
/// one with a code check's name replaces it. Checks that need code (a database pool, a
/// queue) stay in code.
///
/// ```toml
/// [[health.checks]]
/// name = "postgres"
/// tcp = "db.internal:5432"
///
/// [[health.checks]]
/// name = "search"
/// url = "http://search.internal:9200/_cluster/health"
/// body_contains = "green"
/// critical = false              # failing makes /ready degraded (200), not unhealthy (503)
/// timeout_ms = 500              # default 2000
/// cache_secs = 10               # a result is reused this long; default 5
/// ```
///
/// ```
/// let config = towerscope::Config::from_sources(
///     Some(("shop.toml", "[[health.checks]]\nname = \"redis\"\ntcp = \"127.0.0.1:6379\"\n")),
///     |_| None,
/// )?;
/// assert_eq!(config.health.checks[0].tcp.as_deref(), Some("127.0.0.1:6379"));
/// assert_eq!(config.health.checks[0].critical, None); // critical, the default
/// # Ok::<(), towerscope::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Whether `/health`, `/ready` and the checks are on.
    pub enabled: bool,
    /// The dependency checks.
    pub checks: Vec<CheckConfig>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            checks: Vec::new(),
        }
    }
}

/// `[synthetics]`: probes of the critical paths, run on a schedule (see
/// [`ObservabilityBuilder::synthetics`](crate::ObservabilityBuilder::synthetics)). Each
/// `[[synthetics.probes]]` table is a [`CheckConfig`], in the file only; the other keys
/// have variables. Probes given in code keep running next to the file's, under the same
/// schedule; `enabled = false` stops both (a developer's machine need not probe production).
///
/// ```toml
/// [synthetics]
/// interval_secs = 30            # between rounds; the code's, else 30
/// first_round_after_secs = 10   # the server listens by then; the code's, else 0
/// timeout_secs = 5              # per run of a probe; the code's, else 10
///
/// [[synthetics.probes]]
/// name = "catalogue"
/// url = "https://shop.example/products"
/// expect_status = [200]         # default 200
/// body_contains = "Add to cart"
/// min_cert_validity_days = 21   # https only: fail while the certificate expires sooner
/// ```
///
/// ```
/// let config = towerscope::Config::from_sources(
///     Some(("shop.toml", "[[synthetics.probes]]\nname = \"home\"\nurl = \"http://127.0.0.1:8080/\"\n")),
///     |var| (var == "TOWERSCOPE_SYNTHETICS_INTERVAL_SECS").then(|| "60".to_owned()),
/// )?;
/// assert_eq!(config.synthetics.interval_secs, Some(60));
/// assert_eq!(config.synthetics.probes[0].name, "home");
/// # Ok::<(), towerscope::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticsConfig {
    /// Whether probes run, the file's and the code's.
    pub enabled: bool,
    /// Seconds between rounds (1 to 86,400); unset: the code's, else 30.
    pub interval_secs: Option<u64>,
    /// Seconds before the first round (0 to 86,400); unset: the code's, else 0.
    pub first_round_after_secs: Option<u64>,
    /// Seconds one run of a probe may take (1 to 3,600); unset: the code's, else 10.
    pub timeout_secs: Option<u64>,
    /// The probes.
    pub probes: Vec<CheckConfig>,
}

impl Default for SyntheticsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: None,
            first_round_after_secs: None,
            timeout_secs: None,
            probes: Vec::new(),
        }
    }
}

/// One `[[health.checks]]` or `[[synthetics.probes]]` table: a TCP connect check
/// (`tcp = "host:port"`), an HTTP check (`url` and the keys after it) or, with the `grpc`
/// feature, a gRPC health check (`grpc`, `service`); one of the three. An
/// HTTP check passes when the answer has an expected status, arrives whole, holds
/// `body_contains` when given, and (with `min_cert_validity_days`) comes with a certificate
/// valid for that long yet. Headers and request bodies are set in code
/// ([`HttpCheck::header`]), where a token can come from a secret store rather than a file.
///
/// ```
/// let e = towerscope::Config::from_sources(
///     Some(("shop.toml", "[[health.checks]]\nname = \"db\"\ntcp = \"db:5432\"\nbody_contains = \"ok\"\n")),
///     |_| None,
/// )
/// .unwrap_err();
/// assert_eq!(e.to_string(), "shop.toml: health.checks[0].body_contains: applies to url checks only");
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// The `check` or `probe` label: 1 to 64 letters, digits, `_`, `-`, `.`, `:` and `/`.
    pub name: String,
    /// A TCP connect check of `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// An HTTP check of this `http://` or `https://` URL. Errors and logs show it without
    /// user information or query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A gRPC check (`grpc.health.v1`) of the server at this `http://` or `https://` URL;
    /// needs this crate's `grpc` feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    /// gRPC: the service to ask about (`package.Service`; default: the server as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// HTTP: the request method, in capitals (default `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// HTTP: the statuses that pass (default `[200]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    /// HTTP: a text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// HTTPS and gRPC over TLS: fail while the server's certificate expires within this
    /// many days (1 to 3,650).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cert_validity_days: Option<u64>,
    /// HTTP: redirects followed (0 to 10, default 0: a redirect fails unless its status
    /// is expected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<usize>,
    /// Health checks: whether a failure makes the service unready (`/ready` 503);
    /// `false`: degraded, still 200 (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    /// Health checks: milliseconds a run may take before it fails (1 to 60,000; default
    /// 2,000). Probes share `[synthetics] timeout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Health checks: seconds a result is reused (0 to 3,600; default 5), so `/ready`
    /// polled every second does not load the dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_secs: Option<u64>,
}

impl std::fmt::Debug for CheckConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckConfig")
            .field("name", &self.name)
            .field("tcp", &self.tcp)
            .field(
                "url",
                &self.url.as_deref().map(towerscope_core::redacted_url),
            )
            .field(
                "grpc",
                &self.grpc.as_deref().map(towerscope_core::redacted_url),
            )
            .field("service", &self.service)
            .field("method", &self.method)
            .field("expect_status", &self.expect_status)
            .field("body_contains", &self.body_contains)
            .field("min_cert_validity_days", &self.min_cert_validity_days)
            .field("follow_redirects", &self.follow_redirects)
            .field("critical", &self.critical)
            .field("timeout_ms", &self.timeout_ms)
            .field("cache_secs", &self.cache_secs)
            .finish()
    }
}

/// A check as the file describes it, ready to be registered.
pub(crate) enum Check {
    Tcp(TcpCheck),
    Http(Box<HttpCheck>),
    #[cfg(feature = "grpc")]
    Grpc(Box<towerscope_health::GrpcCheck>),
}

/// An invalid value: the field it is in, and why.
type Invalid = (&'static str, String);

impl CheckConfig {
    /// Checks the values the types allow but a check does not; the error names the field.
    /// The URL is never repeated: it may hold a password.
    fn validate(&self, health: bool) -> Result<(), Invalid> {
        if !towerscope_health::valid_probe_name(&self.name) {
            return Err((
                "name",
                "must be 1 to 64 letters, digits, `_`, `-`, `.`, `:` and `/`".into(),
            ));
        }
        if !health {
            let health_only = [
                (self.critical.is_some(), "critical"),
                (self.timeout_ms.is_some(), "timeout_ms"),
                (self.cache_secs.is_some(), "cache_secs"),
            ];
            if let Some((_, key)) = health_only.into_iter().find(|(set, _)| *set) {
                return Err((key, "applies to health checks only".into()));
            }
        }
        match (&self.tcp, &self.url, &self.grpc) {
            (Some(addr), None, None) => self.validate_tcp(addr)?,
            (None, Some(url), None) => self.validate_http(url)?,
            (None, None, Some(url)) => self.validate_grpc(url)?,
            (None, None, None) => return Err(("", "needs `tcp`, `url` or `grpc`".into())),
            (tcp, _, grpc) => {
                let second = if tcp.is_some() && grpc.is_none() {
                    "url"
                } else {
                    "grpc"
                };
                return Err((second, "a check has one of `tcp`, `url` and `grpc`".into()));
            }
        }
        if self
            .timeout_ms
            .is_some_and(|ms| !(1..=60_000).contains(&ms))
        {
            return Err(("timeout_ms", "must be 1 to 60000".into()));
        }
        if self.cache_secs.is_some_and(|s| s > 3_600) {
            return Err(("cache_secs", "must be 0 to 3600".into()));
        }
        Ok(())
    }

    /// The first key set that the kind of check given does not take.
    fn foreign_key(&self, tcp: bool, grpc: bool) -> Result<(), Invalid> {
        let http = !tcp && !grpc;
        let keys = [
            (!http && self.method.is_some(), "method", "url"),
            (
                !http && !self.expect_status.is_empty(),
                "expect_status",
                "url",
            ),
            (
                !http && self.body_contains.is_some(),
                "body_contains",
                "url",
            ),
            (
                !http && self.follow_redirects.is_some(),
                "follow_redirects",
                "url",
            ),
            (
                tcp && self.min_cert_validity_days.is_some(),
                "min_cert_validity_days",
                "url and grpc",
            ),
            (!grpc && self.service.is_some(), "service", "grpc"),
        ];
        match keys.into_iter().find(|(set, _, _)| *set) {
            Some((_, key, kinds)) => Err((key, format!("applies to {kinds} checks only"))),
            None => Ok(()),
        }
    }

    fn validate_tcp(&self, addr: &str) -> Result<(), Invalid> {
        self.foreign_key(true, false)?;
        let host_port = addr
            .rsplit_once(':')
            .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
        match host_port {
            Some(_) => Ok(()),
            None => Err(("tcp", format!("`{addr}` is not host:port"))),
        }
    }

    fn validate_http(&self, url: &str) -> Result<(), Invalid> {
        self.foreign_key(false, false)?;
        let uri = web_uri(url).map_err(|reason| ("url", reason))?;
        if let Some(m) = &self.method {
            let capitals = (1..=32).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_uppercase());
            if !capitals {
                return Err((
                    "method",
                    format!("`{m}` is not a method in capitals (GET, HEAD, …)"),
                ));
            }
        }
        if let Some(s) = self
            .expect_status
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            return Err((
                "expect_status",
                format!("{s} is not a status from 100 to 599"),
            ));
        }
        self.validate_cert_window(&uri)?;
        if self.follow_redirects.is_some_and(|n| n > 10) {
            return Err(("follow_redirects", "must be 0 to 10".into()));
        }
        Ok(())
    }

    fn validate_grpc(&self, url: &str) -> Result<(), Invalid> {
        if cfg!(not(feature = "grpc")) {
            return Err(("grpc", "needs the `grpc` feature of towerscope".into()));
        }
        self.foreign_key(false, true)?;
        let uri = web_uri(url).map_err(|reason| ("grpc", reason))?;
        if let Some(service) = &self.service {
            let name =
                (1..=256).contains(&service.len()) && service.bytes().all(|b| b.is_ascii_graphic());
            if !name {
                return Err((
                    "service",
                    "must be 1 to 256 visible ASCII characters".into(),
                ));
            }
        }
        self.validate_cert_window(&uri)
    }

    fn validate_cert_window(&self, uri: &http::Uri) -> Result<(), Invalid> {
        let Some(days) = self.min_cert_validity_days else {
            return Ok(());
        };
        if !(1..=3650).contains(&days) {
            return Err(("min_cert_validity_days", "must be 1 to 3650".into()));
        }
        if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Err((
                "min_cert_validity_days",
                "needs an https:// url: a plain http:// server has no certificate".into(),
            ));
        }
        Ok(())
    }

    /// The check this table describes (validated before).
    pub(crate) fn check(&self) -> Result<Check, String> {
        if let Some(url) = &self.grpc {
            return self.grpc_check(url);
        }
        let Some(url) = &self.url else {
            let addr = self.tcp.clone().ok_or("needs `tcp` or `url`")?;
            return Ok(Check::Tcp(TcpCheck::new(addr)));
        };
        let mut check = HttpCheck::new(web_uri(url)?);
        if let Some(m) = &self.method {
            let method = http::Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string())?;
            check = check.method(method);
        }
        if !self.expect_status.is_empty() {
            let statuses = self
                .expect_status
                .iter()
                .map(|s| http::StatusCode::from_u16(*s).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            check = check.expect_statuses(statuses);
        }
        if let Some(text) = &self.body_contains {
            check = check.expect_body_contains(text.clone());
        }
        if let Some(days) = self.min_cert_validity_days {
            check = check.min_cert_validity(Duration::from_secs(days * 86_400));
        }
        if let Some(n) = self.follow_redirects {
            check = check.follow_redirects(n);
        }
        Ok(Check::Http(Box::new(check)))
    }

    #[cfg(feature = "grpc")]
    fn grpc_check(&self, url: &str) -> Result<Check, String> {
        let mut check = towerscope_health::GrpcCheck::new(web_uri(url)?);
        if let Some(service) = &self.service {
            check = check.service(service.clone());
        }
        if let Some(days) = self.min_cert_validity_days {
            check = check.min_cert_validity(Duration::from_secs(days * 86_400));
        }
        Ok(Check::Grpc(Box::new(check)))
    }

    #[cfg(not(feature = "grpc"))]
    fn grpc_check(&self, _url: &str) -> Result<Check, String> {
        Err("needs the `grpc` feature of towerscope".into())
    }

    /// How `/ready` runs it.
    pub(crate) fn options(&self) -> CheckOptions {
        let mut opts = CheckOptions::default().criticality(match self.critical {
            Some(false) => Criticality::NonCritical,
            _ => Criticality::Critical,
        });
        if let Some(ms) = self.timeout_ms {
            opts = opts.timeout(Duration::from_millis(ms));
        }
        if let Some(secs) = self.cache_secs {
            opts = opts.cache_for(Duration::from_secs(secs));
        }
        opts
    }
}

impl Check {
    /// Registers the check with a health builder.
    pub(crate) fn register(
        self,
        health: HealthBuilder,
        name: String,
        opts: CheckOptions,
    ) -> HealthBuilder {
        match self {
            Check::Tcp(check) => health.check(name, check, opts),
            Check::Http(check) => health.check(name, *check, opts),
            #[cfg(feature = "grpc")]
            Check::Grpc(check) => health.check(name, *check, opts),
        }
    }

    /// Adds the check to a schedule of probes.
    pub(crate) fn probe(self, probes: SyntheticsBuilder, name: String) -> SyntheticsBuilder {
        match self {
            Check::Tcp(check) => probes.probe(name, check),
            Check::Http(check) => probes.probe(name, *check),
            #[cfg(feature = "grpc")]
            Check::Grpc(check) => probes.probe(name, *check),
        }
    }
}

fn web_uri(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL".to_owned())?;
    let web = uri.scheme() == Some(&http::uri::Scheme::HTTP)
        || uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    if !web || uri.host().is_none_or(str::is_empty) {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(uri)
}

/// Checks a list of tables; the error's key names the table by its place
/// (`health.checks[1].url`).
fn validate_list(list: &str, checks: &[CheckConfig], health: bool) -> Result<(), (String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, check) in checks.iter().enumerate() {
        let key = |field: &str| match field {
            "" => format!("{list}[{i}]"),
            field => format!("{list}[{i}].{field}"),
        };
        check
            .validate(health)
            .map_err(|(field, reason)| (key(field), reason))?;
        if !seen.insert(check.name.as_str()) {
            return Err((key("name"), format!("`{}` is used twice", check.name)));
        }
    }
    Ok(())
}

impl HealthConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        validate_list("health.checks", &self.checks, true)
    }
}

impl SyntheticsConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let range = |key: &str, v: Option<u64>, range: std::ops::RangeInclusive<u64>| match v {
            Some(v) if !range.contains(&v) => Err((
                format!("synthetics.{key}"),
                format!("must be {} to {}", range.start(), range.end()),
            )),
            _ => Ok(()),
        };
        range("interval_secs", self.interval_secs, 1..=86_400)?;
        range(
            "first_round_after_secs",
            self.first_round_after_secs,
            0..=86_400,
        )?;
        range("timeout_secs", self.timeout_secs, 1..=3_600)?;
        validate_list("synthetics.probes", &self.probes, false)
    }
}

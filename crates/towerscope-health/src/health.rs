//! [`Health`]: the registry of checks, liveness and readiness.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::check::{CheckOptions, CheckReport, HealthCheck, Registered, Status};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    check: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Default)]
struct Metrics {
    up: Family<CheckLabel, Gauge>,
    duration: Family<CheckLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    status: Family<StatusLabel, Gauge>,
    cert_expiry: Family<CheckLabel, Gauge>,
}

struct Inner {
    version: String,
    started_at: SystemTime,
    started: Instant,
    checks: Vec<Registered>,
    metrics: Option<Metrics>,
    /// The last overall status logged (255 before the first evaluation).
    last_overall: AtomicU8,
    /// The last status logged per check.
    last_check: Mutex<BTreeMap<Arc<str>, Status>>,
    /// Set by [`Health::drain`]: the service is shutting down (a channel, so that the gRPC
    /// health sync hears of it at once).
    draining: tokio::sync::watch::Sender<bool>,
}

/// Liveness and readiness of a service.
///
/// Liveness (`/health`) says the process is up; it never touches a dependency. Readiness
/// (`/ready`) runs the registered checks concurrently, each in its own task under its
/// timeout, and reports `healthy`, `degraded` (a non-critical check fails; HTTP 200) or
/// `unhealthy` (a critical check fails; HTTP 503). A check that panics is `unhealthy` with
/// the panic message; one that hangs is cut off at its timeout; neither holds up the others.
/// Results are cached per check ([`CheckOptions::cache_for`]) and concurrent probes share
/// one run, so a burst of probes does not become a burst of checks.
///
/// Every check's state is exported (`health_check_up{check}`,
/// `health_check_duration_seconds{check}`, `health_status{status}`) and each change of
/// status is logged once.
///
/// ```
/// use std::time::Duration;
/// use towerscope_health::{CheckOptions, Criticality, Health, TcpCheck, check_fn};
/// let mut registry = prometheus_client::registry::Registry::default();
/// let health = Health::builder(env!("CARGO_PKG_VERSION"))
///     .check("database", TcpCheck::new("127.0.0.1:5432"), CheckOptions::default())
///     .check(
///         "recommendations",
///         check_fn(|| async { Ok::<_, std::io::Error>(()) }),
///         CheckOptions::default().criticality(Criticality::NonCritical).timeout(Duration::from_millis(300)),
///     )
///     .metrics(&mut registry)
///     .build();
/// let app: axum::Router = axum::Router::new()
///     .route_service("/health", health.liveness_service())
///     .route_service("/ready", health.readiness_service());
/// ```
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.inner.checks.iter().map(|c| &*c.name).collect();
        f.debug_struct("Health")
            .field("version", &self.inner.version)
            .field("checks", &names)
            .finish()
    }
}

/// Builder for [`Health`].
///
/// ```
/// use towerscope_health::{CheckOptions, Health, check_fn};
/// let health = Health::builder("1.4.2")
///     .check("cache", check_fn(|| async { Ok::<_, std::io::Error>(()) }), CheckOptions::default())
///     .build();
/// assert_eq!(health.liveness().version, "1.4.2");
/// ```
#[must_use]
pub struct HealthBuilder {
    version: String,
    checks: Vec<Registered>,
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for HealthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthBuilder")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl HealthBuilder {
    /// Registers a check. Names must be unique; a repeated name replaces the earlier check.
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status, TcpCheck};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let health = Health::builder("1")
    ///     .check("cache", TcpCheck::new("127.0.0.1:1"), CheckOptions::default()) // nothing listens
    ///     .check("cache", towerscope_health::check_fn(|| async { Ok::<_, std::io::Error>(()) }), CheckOptions::default())
    ///     .build();
    /// let ready = health.readiness().await;
    /// assert_eq!((ready.checks.len(), ready.status), (1, Status::Healthy)); // the second replaced the first
    /// # });
    /// ```
    pub fn check(
        mut self,
        name: impl Into<Arc<str>>,
        check: impl HealthCheck,
        opts: CheckOptions,
    ) -> Self {
        let name = name.into();
        self.checks.retain(|c| c.name != name);
        self.checks.push(Registered {
            name,
            check: Arc::new(check),
            opts,
            last: tokio::sync::Mutex::new(None),
        });
        self
    }

    /// Exports the checks' state into `registry`: `health_check_up{check}` (1 passed, 0
    /// failed), `health_check_duration_seconds{check}` (the last run),
    /// `health_status{status}` (1 for the current overall status), and for a check over
    /// TLS `health_check_tls_cert_expiry_timestamp_seconds{check}` (when the certificate
    /// it was last shown expires, Unix time; see [`HealthCheck::certificate_expiry`]).
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status, TcpCheck};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let health = Health::builder("1")
    ///     .check("db", TcpCheck::new("127.0.0.1:1"), CheckOptions::default())
    ///     .metrics(&mut registry)
    ///     .build();
    /// health.readiness().await;
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("check=\"db\""), "{text}");
    /// # });
    /// ```
    pub fn metrics(mut self, registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register(
            "health_check_up",
            "Whether the check passed at its last run (1) or failed (0)",
            m.up.clone(),
        );
        registry.register(
            "health_check_duration_seconds",
            "Duration of the check's last run",
            m.duration.clone(),
        );
        registry.register(
            "health_status",
            "Overall readiness: 1 for the current status",
            m.status.clone(),
        );
        registry.register_with_unit(
            "health_check_tls_cert_expiry_timestamp",
            "When the server certificate the check was last shown expires (notAfter), Unix time",
            prometheus_client::registry::Unit::Seconds,
            m.cert_expiry.clone(),
        );
        self.metrics = Some(m);
        self
    }

    /// Builds the registry of checks.
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status, TcpCheck};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let health = Health::builder("1").build(); // no checks: always ready
    /// assert_eq!(health.readiness().await.status, Status::Healthy);
    /// # let _ = (CheckOptions::default(), TcpCheck::new("x:1"));
    /// # });
    /// ```
    pub fn build(self) -> Health {
        Health {
            inner: Arc::new(Inner {
                version: self.version,
                started_at: SystemTime::now(),
                started: Instant::now(),
                checks: self.checks,
                metrics: self.metrics,
                last_overall: AtomicU8::new(u8::MAX),
                last_check: Mutex::new(BTreeMap::new()),
                draining: tokio::sync::watch::Sender::new(false),
            }),
        }
    }
}

/// What `/ready` answers.
///
/// ```
/// use towerscope_health::{CheckOptions, Criticality, Health, Status, check_fn};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = Health::builder("1.0.0")
///     .check("db", check_fn(|| async { Ok::<_, std::io::Error>(()) }), CheckOptions::default())
///     .check(
///         "search",
///         check_fn(|| async { Err(std::io::Error::other("connection refused")) }),
///         CheckOptions::default().criticality(Criticality::NonCritical),
///     )
///     .build();
/// let ready = health.readiness().await;
/// assert_eq!(ready.status, Status::Degraded); // a non-critical check failed
/// assert_eq!(ready.checks["db"].status, Status::Healthy);
/// assert!(ready.checks["search"].error.as_deref().unwrap().contains("refused"));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    /// The worst status of the checks; `unhealthy` while draining.
    pub status: Status,
    /// The service is shutting down ([`Health::drain`]): not ready whatever its
    /// dependencies say, and the checks are not run. Serialized only when set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// Each check's report, by name.
    pub checks: BTreeMap<String, CheckReport>,
}

/// What `/health` answers.
///
/// ```
/// use towerscope_health::{Health, Status};
/// let live = towerscope_health::Health::builder("2.0.1").build().liveness();
/// assert_eq!((live.status, live.version.as_str()), (Status::Healthy, "2.0.1"));
/// assert!(live.start_time > 0.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Liveness {
    /// Always `healthy` while the process answers.
    pub status: Status,
    /// The service version.
    pub version: String,
    /// Seconds since the health registry was built.
    pub uptime_seconds: f64,
    /// When it was built, seconds since the Unix epoch.
    pub start_time: f64,
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unhealthy => 2,
    }
}

impl Health {
    /// A builder for a service of `version`.
    ///
    /// ```
    /// let health = towerscope_health::Health::builder(env!("CARGO_PKG_VERSION")).build();
    /// assert_eq!(health.liveness().version, env!("CARGO_PKG_VERSION"));
    /// ```
    pub fn builder(version: impl Into<String>) -> HealthBuilder {
        HealthBuilder {
            version: version.into(),
            checks: Vec::new(),
            metrics: None,
        }
    }

    /// Liveness: never touches a dependency.
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status, TcpCheck};
    /// let health = Health::builder("1").check("db", TcpCheck::new("127.0.0.1:1"), CheckOptions::default()).build();
    /// assert_eq!(health.liveness().status, Status::Healthy); // alive, even with the database down
    /// ```
    pub fn liveness(&self) -> Liveness {
        let i = &self.inner;
        Liveness {
            status: Status::Healthy,
            version: i.version.clone(),
            uptime_seconds: (i.started.elapsed().as_secs_f64() * 1e3).round() / 1e3,
            start_time: i
                .started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    /// Readiness: every check, concurrently.
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status, TcpCheck};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let health = Health::builder("1").check("db", TcpCheck::new("127.0.0.1:1"), CheckOptions::default()).build();
    /// assert_eq!(health.readiness().await.status, Status::Unhealthy); // not ready without the database
    /// # });
    /// ```
    pub async fn readiness(&self) -> Readiness {
        let i = &self.inner;
        if *i.draining.borrow() {
            return Readiness {
                status: Status::Unhealthy,
                draining: true,
                checks: BTreeMap::new(),
            };
        }
        let reports = futures_util::future::join_all(i.checks.iter().map(Registered::report)).await;
        let mut checks = BTreeMap::new();
        let mut overall = Status::Healthy;
        for (reg, (report, ran)) in i.checks.iter().zip(reports) {
            overall = overall.max(report.status);
            if ran {
                self.record(reg, &report);
            }
            checks.insert(reg.name.to_string(), report);
        }
        if let Some(m) = &i.metrics {
            for s in [Status::Healthy, Status::Degraded, Status::Unhealthy] {
                m.status
                    .get_or_create(&StatusLabel { status: s.as_str() })
                    .set(i64::from(s == overall));
            }
        }
        let previous = i.last_overall.swap(status_code(overall), Ordering::Relaxed);
        if previous != status_code(overall) {
            match overall {
                Status::Healthy => tracing::info!(status = overall.as_str(), "readiness changed"),
                _ => tracing::warn!(status = overall.as_str(), "readiness changed"),
            }
        }
        Readiness {
            status: overall,
            draining: false,
            checks,
        }
    }

    /// Marks the service as shutting down: from now on readiness is `unhealthy` with
    /// `"draining": true` (`/ready` answers 503, and `sync_grpc`, feature `grpc`, sets
    /// `NOT_SERVING` at once) while liveness stays `healthy`, so a load balancer stops
    /// sending new requests before the server stops accepting them. Call it when the
    /// shutdown signal comes, then keep serving for a few seconds (longer than the
    /// balancer's probe interval) before the graceful shutdown starts. It cannot be undone.
    ///
    /// ```
    /// use towerscope_health::{Health, Status};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let health = Health::builder("1").build();
    /// assert_eq!(health.readiness().await.status, Status::Healthy);
    /// health.drain();
    /// let ready = health.readiness().await;
    /// assert!(ready.draining && health.is_draining());
    /// assert_eq!(ready.status, Status::Unhealthy);
    /// assert_eq!(health.liveness().status, Status::Healthy, "alive while it drains");
    /// # });
    /// ```
    pub fn drain(&self) {
        if !self.inner.draining.send_replace(true) {
            tracing::info!("draining: readiness is unhealthy from now on");
        }
    }

    /// Whether [`drain`](Self::drain) was called.
    ///
    /// ```
    /// assert!(!towerscope_health::Health::builder("1").build().is_draining());
    /// ```
    pub fn is_draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    /// Completes when [`drain`](Self::drain) is called (at once if it was).
    #[cfg(feature = "grpc")]
    pub(crate) async fn drained(&self) {
        let mut draining = self.inner.draining.subscribe();
        let _ = draining.wait_for(|d| *d).await;
    }

    fn record(&self, reg: &Registered, report: &CheckReport) {
        let i = &self.inner;
        if let Some(m) = &i.metrics {
            let label = CheckLabel {
                check: reg.name.to_string(),
            };
            m.up.get_or_create(&label)
                .set(i64::from(report.status == Status::Healthy));
            m.duration
                .get_or_create(&label)
                .set(report.duration_ms / 1e3);
            if let Some(at) = reg.check.certificate_expiry() {
                m.cert_expiry
                    .get_or_create(&label)
                    .set(crate::check::unix_seconds(at));
            }
        }
        let mut last = i.last_check.lock().unwrap_or_else(PoisonError::into_inner);
        if last.insert(reg.name.clone(), report.status) != Some(report.status) {
            let check = &*reg.name;
            let error = report.error.as_deref();
            match report.status {
                Status::Healthy => {
                    tracing::info!(check, status = "healthy", "health check status changed")
                }
                s => tracing::warn!(
                    check,
                    status = s.as_str(),
                    error,
                    "health check status changed"
                ),
            }
        }
    }

    /// `GET /health` as a tower service (JSON, 200).
    ///
    /// ```
    /// let health = towerscope_health::Health::builder("1").build();
    /// let app: axum::Router = axum::Router::new().route_service("/health", health.liveness_service());
    /// ```
    pub fn liveness_service(&self) -> crate::service::LivenessService {
        crate::service::LivenessService::new(self.clone())
    }

    /// `GET /ready` as a tower service (JSON; 200 healthy or degraded, 503 unhealthy).
    ///
    /// ```
    /// let health = towerscope_health::Health::builder("1").build();
    /// let app: axum::Router = axum::Router::new().route_service("/ready", health.readiness_service());
    /// ```
    pub fn readiness_service(&self) -> crate::service::ReadinessService {
        crate::service::ReadinessService::new(self.clone())
    }
}

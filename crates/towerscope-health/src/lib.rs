//! # towerscope-health
//!
//! Liveness and readiness for tower services.
//!
//! - `/health` ([`Health::liveness_service`]): status, version, uptime, start time. It
//!   never touches a dependency, so an orchestrator does not restart a healthy process
//!   because its database is down.
//! - `/ready` ([`Health::readiness_service`]): the registered checks, each with a name, a
//!   timeout, a [`Criticality`] and a cache interval;
//!   `{"status": ..., "checks": {name: {"status", "duration_ms", "error"}}}`, HTTP 200 when
//!   healthy or degraded, 503 when unhealthy, and 503 with `"draining": true` for good
//!   once [`Health::drain`] says the service is shutting down.
//!
//! Checks: [`TcpCheck`], [`HttpCheck`] (HTTP or HTTPS; status, body text, body size limit,
//! certificate expiry), [`DiskSpaceCheck`], [`MemoryCheck`], `GrpcCheck` (another server's
//! `grpc.health.v1`; feature `grpc`), `SqlxCheck` (feature `sqlx`), `RedisCheck` (feature
//! `redis`), and any closure through [`check_fn`].
//!
//! ```
//! use towerscope_health::{CheckOptions, Health, TcpCheck};
//! let health = Health::builder("1.0.0")
//!     .check("cache", TcpCheck::new("127.0.0.1:6379"), CheckOptions::default())
//!     .build();
//! let app: axum::Router = axum::Router::new()
//!     .route_service("/health", health.liveness_service())
//!     .route_service("/ready", health.readiness_service());
//! ```
//!
//! With the `grpc` feature, `Health::sync_grpc` serves `grpc.health.v1` (through
//! tonic-health) from the same checks.
//!
//! [`Synthetics`] runs checks of the critical paths on a schedule (synthetic monitoring),
//! whether or not anything asks `/ready`, and exports each probe's last run.
//!
//! ## Panics, hangs and bursts
//! Each run happens in its own task: a panicking check is reported `unhealthy` with its
//! message, a hanging one is aborted at its timeout, and neither delays the others. Results
//! are cached per check, and concurrent probes wait for the one run in progress.
//!
//! The metrics layer and the access log leave `/health` and `/ready` out by default.

mod builtin;
mod check;
#[cfg(feature = "grpc")]
mod grpc;
mod health;
mod http_check;
mod service;
mod synthetic;
#[cfg(feature = "tls")]
mod tls;

#[cfg(feature = "redis")]
pub use builtin::RedisCheck;
#[cfg(feature = "sqlx")]
pub use builtin::SqlxCheck;
pub use builtin::TcpCheck;
#[cfg(feature = "system")]
pub use builtin::{DiskSpaceCheck, MemoryCheck};
pub use check::{
    CheckFuture, CheckOptions, CheckReport, Criticality, HealthCheck, Status, check_fn,
};
#[cfg(feature = "grpc")]
pub use grpc::{GrpcCheck, GrpcHealthSync};
pub use health::{Health, HealthBuilder, Liveness, Readiness};
#[cfg(feature = "tls")]
pub use http_check::InvalidPem;
pub use http_check::{DEFAULT_MAX_BODY_BYTES, HTTP_CHECK_USER_AGENT, HttpCheck};
pub use service::{LivenessService, ReadinessService};
pub use synthetic::{
    MAX_PROBE_NAME, MIN_PROBE_INTERVAL, ProbeResult, Synthetics, SyntheticsBuilder,
    SyntheticsError, WeakSynthetics, valid_probe_name,
};

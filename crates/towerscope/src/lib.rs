//! # towerscope
//!
//! Production observability for any tower service (axum, tonic, plain hyper) from one
//! builder: Prometheus request metrics with an in-flight gauge, request IDs in every log
//! line and response, OpenTelemetry server spans propagated across services, structured
//! logs, health checks, alert rules that page someone, a live dashboard and real-user
//! monitoring.
//!
#![cfg_attr(feature = "axum", doc = "```no_run")]
#![cfg_attr(not(feature = "axum"), doc = "```ignore")]
//! use axum::{Router, routing::get};
//! use towerscope::Observability;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let obs = Observability::builder("shop")
//!         .version(env!("CARGO_PKG_VERSION"))
//!         .configure(&towerscope::Config::load(None)?)? // TOWERSCOPE_* and OTEL_* variables
//!         .build()?;
//!     let app = Router::new()
//!         .route("/users/{id}", get(|| async { "user" }))
//!         // Before `.layer`: unknown paths go through the layers too (as `unmatched`).
//!         .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
//!         .layer(obs.layer()) // request ID, span, metrics, access log, panic → 500
//!         .merge(obs.router()); // /metrics, /health, /ready, /dashboard, /rum.js, /api/rum
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     // Connect info: client addresses in the access log, RUM beacons rate limited per client.
//!     let app = app.into_make_service_with_connect_info::<towerscope::core::PeerAddr>();
//!     // Ctrl-C or SIGTERM: /ready turns 503, open requests finish, then the server stops.
//!     let shutdown = obs.drain_on(towerscope::shutdown_signal(), std::time::Duration::ZERO);
//!     match obs.connections() {
//!         Some(tracker) => {
//!             axum::serve(tracker.listener(listener), app).with_graceful_shutdown(shutdown).await?
//!         }
//!         None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await?,
//!     }
//!     obs.shutdown().await; // last alert round, spans exported, logs flushed
//!     Ok(())
//! }
//! ```
//!
//! ## What `obs.layer()` does
//! One layer, in the order the pieces need each other ([`ObservabilityLayer`]):
//! request ID → server span → request metrics (+ in-flight gauge) → access log → panic
//! catching → your service. Each piece can be switched off ([`Piece`]); what is off is passed
//! through, and the stack keeps one type ([`Toggle`]).
//!
//! ## Configuration
//! In code on [`ObservabilityBuilder`], or from a TOML file and `TOWERSCOPE_*` variables
//! ([`Config`]), with the standard `OTEL_*` variables for tracing. Errors name the key.
//!
//! ## The pieces
//! Each piece is its own crate, re-exported here: [`core`], [`metrics`], [`request_id`],
//! [`trace`], [`log`], [`health`], [`perf`], [`alert`], [`dashboard`], [`rum`]. Use them
//! directly when you need a layer alone or a finer order.
//!
//! ## Features
//! - `axum` (default): [`Observability::router`].
//! - `grpc`: `grpc.health.v1` checks of dependencies from the configuration file
//!   (`[[health.checks]] grpc = "…"`, see [`config::CheckConfig`]); towerscope-health's
//!   `grpc` feature.
//! - `tonic`: the client address of each call to a tonic server behind [`Observability::layer`]
//!   (from the connect info tonic puts into its requests) in the access log;
//!   towerscope-core's `tonic` feature.

pub mod config;
pub mod monitoring;
mod ops;
mod signal;
mod stack;
mod toggle;

mod builder;

pub use builder::{BuildError, Observability, ObservabilityBuilder, Piece};
pub use config::{Config, ConfigError};
pub use ops::{OpsFuture, OpsService};
pub use signal::shutdown_signal;
pub use stack::{ObservabilityLayer, ObservabilityService};
pub use toggle::{Toggle, Toggled, ToggledFuture};

pub use prometheus_client;
pub use towerscope_alert as alert;
pub use towerscope_core as core;
pub use towerscope_dashboard as dashboard;
pub use towerscope_health as health;
pub use towerscope_log as log;
pub use towerscope_metrics as metrics;
pub use towerscope_perf as perf;
pub use towerscope_request_id as request_id;
pub use towerscope_rum as rum;
pub use towerscope_trace as trace;

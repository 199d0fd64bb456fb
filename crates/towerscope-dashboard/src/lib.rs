//! # towerscope-dashboard
//!
//! A live dashboard: one self-contained page (HTML, CSS and JavaScript written here and
//! embedded; no CDN, works offline) and the JSON API it reads. Every number comes from the
//! running application: its registry (through `MetricsService`), its performance monitor,
//! its health checks, its alert evaluation and its real-user monitoring. Nothing is
//! hard-coded.
//!
//! | path | what |
//! |---|---|
//! | `/dashboard` | the page |
//! | `/api/dashboard/metrics` | system (CPU, memory, disk %), application (requests per minute, error rate, average and p95 response time, in flight, active users), business (the application's own numbers: [`Stat`]) |
//! | `/api/dashboard/alerts` | active alerts, most severe first |
//! | `/api/dashboard/health` | the readiness report: overall and each check |
//! | `/api/dashboard/history` | one point per interval (default 5 s, the last hour): p50/p95, request rate, error rate; Core Web Vitals p75 per page |
//!
//! The page renders data with `textContent` and SVG elements it creates, never `innerHTML`,
//! so an alert message containing markup shows as text; its content security policy lets
//! only its own script and style (by their hashes) run and apply. A bearer token, if set,
//! protects the API and the page alike (the page carries it as `?token=` only if you open
//! it so).
//!
#![cfg_attr(feature = "axum", doc = "```no_run")]
#![cfg_attr(not(feature = "axum"), doc = "```ignore")]
//! # async fn run(metrics: towerscope_metrics::MetricsService, perf: towerscope_perf::PerfMonitor,
//! #              health: towerscope_health::Health, alerting: towerscope_alert::Alerting, rum: towerscope_rum::Rum) {
//! let dashboard = towerscope_dashboard::Dashboard::builder(metrics)
//!     .perf(perf)
//!     .health(health)
//!     .alerting(alerting)
//!     .rum(rum)
//!     .spawn();
//! let app: axum::Router = axum::Router::new().merge(dashboard.router());
//! # }
//! ```

mod data;
mod service;

pub use data::{AppCard, CurrentMetrics, History, HistoryPoint, Stat, StatValue, SystemCard};
pub use service::{DASHBOARD_HTML, Dashboard, DashboardBuilder, DashboardService};

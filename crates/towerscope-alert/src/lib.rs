//! # towerscope-alert
//!
//! The observability guide's alert manager, built so that an alert reaches someone and is
//! resolved when the condition clears.
//!
//! - [`Rule`]s from code or from YAML/TOML files ([`load_rules`], [`parse_rules`]), with
//!   errors that name the file, the rule and the field.
//! - [`Signal`]s computed from the live registry (through the application's
//!   `MetricsService`) and the performance monitor over each rule's window: request rate,
//!   error rate, average / p95 / p99 response time (overall, per route, or each route),
//!   in-flight requests, memory, CPU and disk use, any counter as a rate or any gauge, and
//!   SLO burn rates.
//! - The guide's four [`default_rules`] and the SRE workbook's multiwindow
//!   [`slo_burn_rate_rules`].
//! - An [`Evaluator`] (inactive → pending → firing → resolved per rule and label set,
//!   re-notification, silences) run on a tokio task by [`Alerting`], which lists active
//!   alerts for the dashboard.
//! - [`to_prometheus_rules`]: the same rules as a Prometheus alerting-rule file;
//!   [`signal_promql`]: one signal as a PromQL expression (a Grafana panel).
//!
//! ```no_run
//! # async fn run(metrics: towerscope_metrics::MetricsService, perf: towerscope_perf::PerfMonitor) {
//! use std::time::Duration;
//! use towerscope_alert::{Alerting, ChannelSink, Sources, default_rules};
//! let (sink, mut notifications) = ChannelSink::new(256);
//! let alerting = Alerting::builder(Sources::new(metrics).perf(perf))
//!     .rules(default_rules())
//!     .interval(Duration::from_secs(15))
//!     .notify(sink)
//!     .spawn();
//! while let Some(n) = notifications.recv().await {
//!     println!("{}: {}", n.alert().name, n.alert().message);
//! }
//! # }
//! ```

mod defaults;
mod delivery;
mod eval;
mod export;
mod file;
mod notifiers;
mod rule;
mod runtime;
mod source;
mod watch;

pub use defaults::{
    certificate_expiry_rules, default_rules, slo_burn_rate_rules, web_vitals_budget_rules,
};
pub use delivery::{
    Delivery, DeliveryBuilder, DeliveryError, DeliveryMetrics, Notifier, SendFuture,
};
pub use eval::{Alert, AlertState, Evaluator, Notification, Sample};
pub use export::{signal_promql, to_prometheus_rules};
pub use file::{MAX_RULE_FILE_BYTES, MAX_RULES, RuleFileError, load_rules, parse_rules};
pub use notifiers::{
    AddressError, AlertmanagerNotifier, EmailNotifier, PagerDutyNotifier, SIGNATURE_HEADER,
    SlackNotifier, WebhookNotifier,
};
pub use rule::{Condition, RouteScope, Rule, Severity, Signal};
pub use runtime::{Alerting, AlertingBuilder, ChannelSink, FlushFuture, Notify, Routed};
pub use source::{MAX_QUANTILE_GROUPS, Sources};
pub use watch::{SeriesNews, SeriesWatch};

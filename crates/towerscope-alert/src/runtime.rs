//! The evaluator on a tokio task, and the handle the application keeps.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt as _;
use tokio::sync::{mpsc, watch};

use crate::eval::{Alert, Evaluator, Notification};
use crate::rule::{Rule, Severity};
use crate::source::Sources;
use crate::watch::{SeriesNews, SeriesWatch};

/// The longest silence taken: an `Instant` a century ahead is in range on every platform.
const MAX_SILENCE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Where notifications go. `notify` must not block: a delivery worker (one per notifier,
/// with its own bounded queue) takes it from there, so a slow receiver never holds up the
/// evaluator.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use towerscope_alert::{Notification, Notify};
/// /// Counts firing notifications (a `Notify` hands work off; it never waits).
/// #[derive(Default)]
/// struct Pages(AtomicU64);
/// impl Notify for Pages {
///     fn notify(&self, n: &Notification) {
///         if !n.is_resolved() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait Notify: Send + Sync + 'static {
    /// Accepts one notification.
    fn notify(&self, notification: &Notification);

    /// Waits, at most `deadline`, until every notification accepted so far is finished
    /// with (delivered, refused, or given up on); how many are not. [`Alerting::shutdown`]
    /// calls it, so what fired just before a restart still goes out. The default has
    /// nothing in flight: it answers 0 at once. A [`Delivery`](crate::Delivery) waits for
    /// its queue and its worker.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Notification, Notify as _};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (sink, _rx) = towerscope_alert::ChannelSink::new(8);
    /// assert_eq!(sink.flush(Duration::from_secs(1)).await, 0); // a channel hands off at once
    /// # });
    /// ```
    fn flush(&self, deadline: Duration) -> FlushFuture<'_> {
        let _ = deadline;
        Box::pin(std::future::ready(0))
    }
}

/// What [`Notify::flush`] returns: the number of notifications not finished with by its
/// deadline.
///
/// ```
/// let done: towerscope_alert::FlushFuture<'static> = Box::pin(std::future::ready(0));
/// # let _ = done;
/// ```
pub type FlushFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send + 'a>>;

/// Notifications into a bounded tokio channel; when it is full the notification is dropped
/// and counted, never waited for.
///
/// ```
/// let (sink, mut rx) = towerscope_alert::ChannelSink::new(64);
/// # let _ = (sink, rx.try_recv());
/// ```
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: mpsc::Sender<Notification>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl ChannelSink {
    /// A sink and its receiver, holding at most `capacity` notifications.
    ///
    /// ```
    /// use towerscope_alert::{ChannelSink, Notify as _};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (sink, mut rx) = ChannelSink::new(8);
    /// # let _ = &mut rx;
    /// # });
    /// ```
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Notification>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx,
                dropped: Arc::default(),
            },
            rx,
        )
    }

    /// Notifications dropped because the channel was full.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{ChannelSink, Condition, Evaluator, Notify as _, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 1.0)], Duration::from_secs(3600));
    /// let n = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(5.0)]).remove(0);
    /// let (sink, _rx) = ChannelSink::new(1);
    /// sink.notify(&n);
    /// sink.notify(&n); // the channel is full: dropped, never waited for
    /// assert_eq!(sink.dropped(), 1);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Notify for ChannelSink {
    fn notify(&self, n: &Notification) {
        if self.tx.try_send(n.clone()).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A route for notifications: passes on to its sink only the alerts it accepts, by
/// severity or by label, as an Alertmanager route does. The guide's escalation paths are
/// routes: critical alerts to the pager, the rest to chat.
///
/// A resolved notification carries the alert as it last fired, so it goes wherever the
/// firing ones went (for a predicate of the alert's severity and labels, which do not
/// change while it fires).
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use towerscope_alert::{ChannelSink, Condition, Evaluator, Notify as _, Routed, Rule, Sample, Severity, Signal};
/// let (pager, mut pages) = ChannelSink::new(8);
/// let (chat, mut messages) = ChannelSink::new(8);
/// let pager = Routed::min_severity(pager, Severity::Critical);
/// let chat = Routed::when(chat, |alert| alert.severity < Severity::Critical);
///
/// let mut eval = Evaluator::new(
///     vec![
///         Rule::new("Down", Signal::InFlight, Condition::Gt, 50.0).severity(Severity::Critical),
///         Rule::new("Slow", Signal::InFlight, Condition::Gt, 5.0).severity(Severity::Medium),
///     ],
///     Duration::from_secs(3600),
/// );
/// for n in eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(80.0)]) {
///     pager.notify(&n);
///     chat.notify(&n);
/// }
/// assert_eq!(pages.try_recv().unwrap().alert().name, "Down");
/// assert!(pages.try_recv().is_err());
/// assert_eq!(messages.try_recv().unwrap().alert().name, "Slow");
/// assert!(messages.try_recv().is_err());
/// ```
pub struct Routed<N> {
    sink: N,
    accept: Box<dyn Fn(&Alert) -> bool + Send + Sync>,
}

impl<N: Notify> Routed<N> {
    /// Passes on the alerts for which `accept` returns `true`.
    ///
    /// ```
    /// use towerscope_alert::{ChannelSink, Routed};
    /// let (sink, _rx) = ChannelSink::new(8);
    /// // The payments team's alerts (a label the rules set).
    /// let payments = Routed::when(sink, |alert| alert.labels.get("team").is_some_and(|t| t == "payments"));
    /// # let _ = payments;
    /// ```
    pub fn when(sink: N, accept: impl Fn(&Alert) -> bool + Send + Sync + 'static) -> Self {
        Self {
            sink,
            accept: Box::new(accept),
        }
    }

    /// Passes on the alerts of `min` severity and above.
    ///
    /// ```
    /// use towerscope_alert::{ChannelSink, Routed, Severity};
    /// let (sink, _rx) = ChannelSink::new(8);
    /// let pager = Routed::min_severity(sink, Severity::High); // high and critical
    /// # let _ = pager;
    /// ```
    pub fn min_severity(sink: N, min: Severity) -> Self {
        Self::when(sink, move |alert| alert.severity >= min)
    }
}

impl<N> std::fmt::Debug for Routed<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routed").finish_non_exhaustive()
    }
}

impl<N: Notify> Notify for Routed<N> {
    fn notify(&self, n: &Notification) {
        if (self.accept)(n.alert()) {
            self.sink.notify(n);
        }
    }

    fn flush(&self, deadline: Duration) -> FlushFuture<'_> {
        self.sink.flush(deadline)
    }
}

/// Builds [`Alerting`].
///
/// ```
/// use std::time::Duration;
/// use towerscope_alert::{Alerting, ChannelSink, Condition, Rule, Signal, Sources, default_rules};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
/// let (sink, _notifications) = ChannelSink::new(64);
/// let alerting = Alerting::builder(Sources::new(metrics))
///     .rules(default_rules())
///     .rules([Rule::new("Busy", Signal::InFlight, Condition::Gt, 500.0)])
///     .interval(Duration::from_secs(15))
///     .renotify_every(Duration::from_secs(4 * 3600))
///     .notify(sink)
///     .spawn();
/// assert!(alerting.rules().iter().any(|r| r.name == "Busy"));
/// # });
/// ```
#[must_use]
pub struct AlertingBuilder {
    sources: Sources,
    rules: Vec<Rule>,
    interval: Duration,
    renotify: Duration,
    missing_after: Duration,
    grace: Duration,
    sinks: Vec<Arc<dyn Notify>>,
}

impl std::fmt::Debug for AlertingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertingBuilder")
            .field("rules", &self.rules.len())
            .field("interval", &self.interval)
            .field("renotify", &self.renotify)
            .field("missing_after", &self.missing_after)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl AlertingBuilder {
    /// Adds rules.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Alerting, ChannelSink, Sources, default_rules};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let (sink, _notifications) = ChannelSink::new(64);
    /// let alerting = Alerting::builder(Sources::new(metrics))
    ///     .rules(default_rules())
    ///     .interval(Duration::from_secs(30))
    ///     .renotify_every(Duration::from_secs(3600))
    ///     .notify(sink)
    ///     .spawn();
    /// assert_eq!(alerting.rules().len(), default_rules().len());
    /// # });
    /// ```
    pub fn rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// How often rules are evaluated (default 15 s; at least 10 ms, at most a day: tokio's
    /// timer cannot schedule much further ahead, and its interval would panic on the way).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Alerting, ChannelSink, Sources, default_rules};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let (sink, _notifications) = ChannelSink::new(64);
    /// let alerting = Alerting::builder(Sources::new(metrics))
    ///     .rules(default_rules())
    ///     .interval(Duration::from_secs(30))
    ///     .renotify_every(Duration::from_secs(3600))
    ///     .notify(sink)
    ///     .spawn();
    /// # drop(alerting);
    /// # });
    /// ```
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every.clamp(Duration::from_millis(10), towerscope_core::MAX_PERIOD);
        self
    }

    /// How often a still-firing alert is sent again (default 4 h).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Alerting, ChannelSink, Sources, default_rules};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let (sink, _notifications) = ChannelSink::new(64);
    /// let alerting = Alerting::builder(Sources::new(metrics))
    ///     .rules(default_rules())
    ///     .interval(Duration::from_secs(30))
    ///     .renotify_every(Duration::from_secs(3600))
    ///     .notify(sink)
    ///     .spawn();
    /// # drop(alerting);
    /// # });
    /// ```
    pub fn renotify_every(mut self, every: Duration) -> Self {
        self.renotify = every;
        self
    }

    /// How long a rule that names a metric (`counter_rate`, `gauge`, `histogram_quantile`,
    /// `seconds_until`) may go without any series of it, with its matchers, before one
    /// `WARN` says so (default 5 minutes from `spawn`). Such a rule sees no data (a
    /// `counter_rate` a rate of 0): the name or a label value is misspelt, or nothing has
    /// recorded the series yet. When the series shows up after the warning, one `INFO`
    /// says so.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let typo = Signal::Gauge { metric: "queue_depht".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(metrics))
    ///     .rules([Rule::new("QueueDeep", typo, Condition::Gt, 100.0)])
    ///     .missing_series_after(Duration::ZERO) // warns at the first evaluation
    ///     .spawn();
    /// # drop(alerting);
    /// # });
    /// ```
    pub fn missing_series_after(mut self, after: Duration) -> Self {
        self.missing_after = after;
        self
    }

    /// How long [`Alerting::shutdown`] waits for the sinks to finish with the notifications
    /// they have accepted (default 5 s): an alert that fired just before a restart still
    /// goes out, and what does not is logged.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Alerting, Sources, default_rules};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let alerting = Alerting::builder(Sources::new(metrics))
    ///     .rules(default_rules())
    ///     .shutdown_grace(Duration::from_secs(10)) // within Kubernetes' 30 s
    ///     .spawn();
    /// alerting.shutdown().await;
    /// # });
    /// ```
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sends notifications to `sink`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Alerting, ChannelSink, Delivery, Sources, SlackNotifier, default_rules};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let (sink, _notifications) = ChannelSink::new(64);
    /// let slack = Delivery::builder(SlackNotifier::new("https://hooks.slack.com/services/T/B/X")).spawn();
    /// let alerting = Alerting::builder(Sources::new(metrics))
    ///     .rules(default_rules())
    ///     .notify(sink) // every sink gets every notification
    ///     .notify(slack)
    ///     .spawn();
    /// # drop(alerting);
    /// # });
    /// ```
    pub fn notify(mut self, sink: impl Notify) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Evaluates once now (the baseline for rates), then every interval on a tokio task
    /// (call inside a runtime).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Alerting, ChannelSink, Delivery, Sources, SlackNotifier, default_rules};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let metrics = towerscope_metrics::MetricsService::new(prometheus_client::registry::Registry::default());
    /// let (sink, _notifications) = ChannelSink::new(64);
    /// let slack = Delivery::builder(SlackNotifier::new("https://hooks.slack.com/services/T/B/X")).spawn();
    /// let alerting = Alerting::builder(Sources::new(metrics))
    ///     .rules(default_rules())
    ///     .notify(sink) // every sink gets every notification
    ///     .notify(slack)
    ///     .spawn();
    /// # drop(alerting);
    /// # });
    /// ```
    pub fn spawn(self) -> Alerting {
        let rule_count = self.rules.len();
        let shared = Arc::new(Shared {
            evaluator: Mutex::new(Evaluator::new(self.rules, self.renotify)),
            sources: Mutex::new(self.sources),
            sinks: self.sinks,
            watch: Mutex::new(SeriesWatch::new(rule_count, self.missing_after)),
            grace: self.grace,
        });
        // The first evaluation records where the counters start; rates need two.
        shared.evaluate();
        let (stop, mut stopped) = watch::channel(false);
        let task_shared = shared.clone();
        let interval = self.interval;
        let task = tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        // A panic must not end the task: no rule would be evaluated again.
                        let run = catch_unwind(AssertUnwindSafe(|| task_shared.evaluate()));
                        if let Err(panic) = run {
                            tracing::error!(
                                panic.message = towerscope_core::panic_message(&*panic),
                                "alert evaluation panicked; evaluating again at the next tick"
                            );
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Alerting {
            shared,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }
}

struct Shared {
    evaluator: Mutex<Evaluator>,
    sources: Mutex<Sources>,
    sinks: Vec<Arc<dyn Notify>>,
    watch: Mutex<SeriesWatch>,
    grace: Duration,
}

impl Shared {
    fn evaluate(&self) -> Vec<Notification> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut evaluator = self
            .evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot = sources.snapshot(now, evaluator.rules());
        let rules = evaluator.rules();
        self.watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(
                now,
                |i| {
                    snapshot
                        .missing_series(&rules[i].signal)
                        .into_iter()
                        .collect()
                },
                |i, news| match news {
                    SeriesNews::Missing { series, waited } => tracing::warn!(
                        rule = %rules[i].name,
                        series = series.join(", "),
                        waited = ?waited,
                        "alert rule reads no series: the registry has had none of this name and \
                         labels since start (a misspelt metric name or label value, or nothing \
                         has recorded one yet); until one appears the rule sees no data, a \
                         counter_rate a rate of 0"
                    ),
                    SeriesNews::Appeared => {
                        tracing::info!(rule = %rules[i].name, "alert rule reads its series now");
                    }
                },
            );
        let sent = evaluator.evaluate(now, wall, |rule| sources.values(&snapshot, rule));
        drop(sources);
        drop(evaluator);
        for n in &sent {
            match n {
                Notification::Firing(a) => {
                    tracing::warn!(alert = %a.name, severity = a.severity.as_str(), value = a.value, "alert firing: {}", a.message)
                }
                Notification::Resolved { alert, .. } => {
                    tracing::info!(alert = %alert.name, "alert resolved")
                }
            }
            for sink in &self.sinks {
                // A sink that panics loses this notification, not the others' nor the
                // evaluations to come.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| sink.notify(n))) {
                    tracing::error!(
                        alert = %n.alert().name,
                        panic.message = towerscope_core::panic_message(&*panic),
                        "an alert sink panicked; it missed this notification"
                    );
                }
            }
        }
        sent
    }
}

/// Running alert evaluation: lists active alerts, silences rules, stops.
///
/// ```no_run
/// # async fn run(metrics: towerscope_metrics::MetricsService) {
/// use towerscope_alert::{Alerting, Sources, default_rules};
/// let (sink, mut notifications) = towerscope_alert::ChannelSink::new(256);
/// let alerting = Alerting::builder(Sources::new(metrics))
///     .rules(default_rules())
///     .notify(sink)
///     .spawn();
/// for alert in alerting.active() {
///     println!("{} {:?}", alert.name, alert.state);
/// }
/// alerting.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Alerting {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting").finish_non_exhaustive()
    }
}

impl Alerting {
    /// Evaluation over `sources`, no rules yet.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let depth = Gauge::<i64>::default();
    /// registry.register("queue_depth", "Jobs waiting", depth.clone());
    /// let backlog = Signal::Gauge { metric: "queue_depth".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(towerscope_metrics::MetricsService::new(registry)))
    ///     .rules([Rule::new("Backlog", backlog, Condition::Gt, 100.0)])
    ///     .spawn();
    /// depth.set(250);
    /// assert_eq!(alerting.evaluate_now().len(), 1);
    /// # });
    /// ```
    pub fn builder(sources: Sources) -> AlertingBuilder {
        AlertingBuilder {
            sources,
            rules: Vec::new(),
            interval: Duration::from_secs(15),
            renotify: Duration::from_secs(4 * 3600),
            missing_after: Duration::from_secs(300),
            grace: Duration::from_secs(5),
            sinks: Vec::new(),
        }
    }

    /// Pending and firing alerts, most severe first (the dashboard's list).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let depth = Gauge::<i64>::default();
    /// registry.register("queue_depth", "Jobs waiting", depth.clone());
    /// let backlog = Signal::Gauge { metric: "queue_depth".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(towerscope_metrics::MetricsService::new(registry)))
    ///     .rules([Rule::new("Backlog", backlog, Condition::Gt, 100.0)])
    ///     .spawn();
    /// depth.set(250);
    /// alerting.evaluate_now();
    /// assert_eq!(alerting.active()[0].name, "Backlog");
    /// # });
    /// ```
    pub fn active(&self) -> Vec<Alert> {
        self.shared
            .evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .active()
    }

    /// The rules being evaluated.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let depth = Gauge::<i64>::default();
    /// registry.register("queue_depth", "Jobs waiting", depth.clone());
    /// let backlog = Signal::Gauge { metric: "queue_depth".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(towerscope_metrics::MetricsService::new(registry)))
    ///     .rules([Rule::new("Backlog", backlog, Condition::Gt, 100.0)])
    ///     .spawn();
    /// depth.set(250);
    /// assert_eq!(alerting.rules()[0].name, "Backlog");
    /// # });
    /// ```
    pub fn rules(&self) -> Vec<Rule> {
        self.shared
            .evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rules()
            .to_vec()
    }

    /// Holds back notifications of `rule` for `duration` (at most a century: "for ever",
    /// `Duration::MAX`, is taken as that). `false` if there is no such rule.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let depth = Gauge::<i64>::default();
    /// registry.register("queue_depth", "Jobs waiting", depth.clone());
    /// let backlog = Signal::Gauge { metric: "queue_depth".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(towerscope_metrics::MetricsService::new(registry)))
    ///     .rules([Rule::new("Backlog", backlog, Condition::Gt, 100.0)])
    ///     .spawn();
    /// depth.set(250);
    /// assert!(alerting.silence("Backlog", Duration::from_secs(3600))); // a deploy is under way
    /// assert!(alerting.evaluate_now().is_empty()); // firing, but silenced
    /// assert!(alerting.active()[0].silenced);
    /// assert!(!alerting.silence("NoSuchRule", Duration::from_secs(60)));
    /// # });
    /// ```
    pub fn silence(&self, rule: &str, duration: Duration) -> bool {
        let until = Instant::now() + duration.min(MAX_SILENCE);
        self.shared
            .evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .silence(rule, until)
    }

    /// Lifts a silence.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let depth = Gauge::<i64>::default();
    /// registry.register("queue_depth", "Jobs waiting", depth.clone());
    /// let backlog = Signal::Gauge { metric: "queue_depth".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(towerscope_metrics::MetricsService::new(registry)))
    ///     .rules([Rule::new("Backlog", backlog, Condition::Gt, 100.0)])
    ///     .spawn();
    /// depth.set(250);
    /// alerting.silence("Backlog", Duration::from_secs(3600));
    /// assert!(alerting.unsilence("Backlog"));
    /// # });
    /// ```
    pub fn unsilence(&self, rule: &str) -> bool {
        self.shared
            .evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unsilence(rule)
    }

    /// Evaluates now, outside the schedule, and returns what was sent.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let depth = Gauge::<i64>::default();
    /// registry.register("queue_depth", "Jobs waiting", depth.clone());
    /// let backlog = Signal::Gauge { metric: "queue_depth".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(towerscope_metrics::MetricsService::new(registry)))
    ///     .rules([Rule::new("Backlog", backlog, Condition::Gt, 100.0)])
    ///     .spawn();
    /// depth.set(250);
    /// let sent = alerting.evaluate_now();
    /// assert_eq!(sent[0].alert().name, "Backlog");
    /// depth.set(0);
    /// assert!(alerting.evaluate_now()[0].is_resolved()); // and it resolves
    /// # });
    /// ```
    pub fn evaluate_now(&self) -> Vec<Notification> {
        self.shared.evaluate()
    }

    /// Stops the evaluation task and waits for it, then gives the sinks up to the
    /// [shutdown grace](AlertingBuilder::shutdown_grace) to finish with what they accepted
    /// (a [`Delivery`](crate::Delivery) sends what is queued and retries what failed); one
    /// `WARN` counts what was left.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prometheus_client::metrics::gauge::Gauge;
    /// use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let depth = Gauge::<i64>::default();
    /// registry.register("queue_depth", "Jobs waiting", depth.clone());
    /// let backlog = Signal::Gauge { metric: "queue_depth".into(), matchers: vec![] };
    /// let alerting = Alerting::builder(Sources::new(towerscope_metrics::MetricsService::new(registry)))
    ///     .rules([Rule::new("Backlog", backlog, Condition::Gt, 100.0)])
    ///     .spawn();
    /// depth.set(250);
    /// alerting.shutdown().await;
    /// # });
    /// ```
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let grace = self.shared.grace;
        // All at once: one receiver that is down does not take the others' time.
        let flushes = self.shared.sinks.iter().map(|sink| async move {
            // A sink of yours that panics counts as having nothing left.
            let Ok(flush) = catch_unwind(AssertUnwindSafe(|| sink.flush(grace))) else {
                return 0;
            };
            AssertUnwindSafe(flush).catch_unwind().await.unwrap_or(0)
        });
        let left: usize = futures_util::future::join_all(flushes)
            .await
            .into_iter()
            .sum();
        if left > 0 {
            tracing::warn!(
                notifications = left,
                grace = ?grace,
                "alert notifications not delivered at shutdown: their receivers did not take \
                 them within the grace period"
            );
        }
    }
}

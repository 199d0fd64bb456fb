//! Delivery that loses nothing: a bounded queue and a worker per notifier, retries with
//! exponential backoff and jitter within a horizon, a timeout per attempt, outcomes counted.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::eval::Notification;
use crate::runtime::{FlushFuture, Notify};

/// Why one delivery attempt failed, and whether another attempt can help.
///
/// ```
/// use std::time::Duration;
/// use towerscope_alert::DeliveryError;
/// // What a notifier returns for a 429 with `Retry-After: 30`, and for a 410.
/// let busy = DeliveryError::Retry { reason: "429".into(), after: Some(Duration::from_secs(30)) };
/// let gone = DeliveryError::Permanent("410: channel archived".into());
/// assert_eq!(busy.to_string(), "retryable: 429");
/// assert_eq!(gone.to_string(), "permanent: 410: channel archived");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later (connection refused, timeout, 429, 5xx); `after` is the receiver's
    /// `Retry-After`, if it gave one.
    #[error("retryable: {reason}")]
    Retry {
        /// What happened.
        reason: String,
        /// The receiver's requested delay.
        after: Option<Duration>,
    },
    /// Trying again cannot help (a 4xx such as Slack's 410 for an archived channel, or a
    /// payload the receiver refuses).
    #[error("permanent: {0}")]
    Permanent(String),
}

impl DeliveryError {
    /// A retryable failure without a requested delay.
    ///
    /// ```
    /// use towerscope_alert::DeliveryError;
    /// assert_eq!(DeliveryError::retry("connection refused"), DeliveryError::Retry { reason: "connection refused".into(), after: None });
    /// ```
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }
}

/// A boxed delivery future.
///
/// ```
/// use towerscope_alert::{DeliveryError, SendFuture};
/// let attempt: SendFuture<'static> = Box::pin(async { Err(DeliveryError::retry("connection refused")) });
/// # let _ = attempt;
/// ```
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// One receiver of notifications (Slack, PagerDuty, a webhook, Alertmanager, email).
/// [`Delivery`] wraps it with a queue, retries and metrics.
///
/// ```
/// use towerscope_alert::{Delivery, Notification, Notifier, SendFuture};
/// /// Writes each notification to standard error.
/// struct Stderr;
/// impl Notifier for Stderr {
///     fn name(&self) -> &str {
///         "stderr"
///     }
///     fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
///         Box::pin(async move {
///             let verb = if n.is_resolved() { "resolved" } else { "firing" };
///             eprintln!("{} {verb}: {}", n.alert().name, n.alert().message);
///             Ok(())
///         })
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let delivery = Delivery::builder(Stderr).spawn(); // a queue, retries and metrics around it
/// # drop(delivery);
/// # });
/// ```
pub trait Notifier: Send + Sync + 'static {
    /// A short name for metrics and logs (`slack`, `pagerduty`, …).
    fn name(&self) -> &str;
    /// One attempt to deliver `notification`.
    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    notifier: String,
    outcome: &'static str,
}

/// The outcomes a delivery counts.
const OUTCOMES: [&str; 5] = ["delivered", "retried", "failed", "expired", "queue_full"];

/// `towerscope_alert_notifications_total{notifier,outcome}`: registered once in a registry,
/// shared by the deliveries counted in it
/// ([`DeliveryBuilder::counted_in`]).
///
/// ```
/// let mut registry = prometheus_client::registry::Registry::default();
/// let metrics = towerscope_alert::DeliveryMetrics::register(&mut registry);
/// # let _ = metrics;
/// ```
#[derive(Clone, Debug)]
pub struct DeliveryMetrics(Family<OutcomeLabels, Counter>);

impl DeliveryMetrics {
    /// Registers the family in `registry`.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let metrics = towerscope_alert::DeliveryMetrics::register(&mut registry);
    /// # let _ = metrics;
    /// ```
    pub fn register(registry: &mut Registry) -> Self {
        let family = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "towerscope_alert_notifications",
            "Alert notification delivery outcomes",
            family.clone(),
        );
        Self(family)
    }
}

/// Outcome counters: this delivery's own, and the shared family.
#[derive(Clone, Debug, Default)]
struct Counters {
    family: Option<Family<OutcomeLabels, Counter>>,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl Counters {
    fn count(&self, notifier: &str, outcome: &'static str) {
        if let Some(f) = &self.family {
            f.get_or_create(&OutcomeLabels {
                notifier: notifier.to_owned(),
                outcome,
            })
            .inc();
        }
        let c = match outcome {
            "delivered" => &self.delivered,
            "retried" => &self.retries,
            "queue_full" | "expired" => &self.dropped,
            _ => &self.failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Notifications accepted and not yet finished with (queued, being sent, or waiting to be
/// tried again), and a wake-up for whoever waits for that to reach zero.
#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Pending {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until nothing is pending, or `deadline` passes; what is still pending.
    async fn wait_idle(&self, deadline: Duration) -> usize {
        let idle = async {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(deadline, idle).await;
        self.count.load(Ordering::Acquire)
    }
}

/// Builds a [`Delivery`].
///
/// ```
/// use std::time::Duration;
/// use towerscope_alert::{Delivery, WebhookNotifier};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut registry = prometheus_client::registry::Registry::default();
/// let delivery = Delivery::builder(WebhookNotifier::new("http://127.0.0.1:9/hooks/alerts"))
///     .queue(500)
///     .timeout(Duration::from_secs(5))
///     .backoff(Duration::from_millis(500), Duration::from_secs(60))
///     .retry_horizon(Duration::from_secs(15 * 60)) // then the notification is dropped, and counted
///     .metrics(&mut registry)
///     .spawn();
/// assert_eq!(delivery.delivered(), 0);
/// # });
/// ```
#[must_use]
pub struct DeliveryBuilder<N> {
    notifier: N,
    queue: usize,
    timeout: Duration,
    horizon: Duration,
    backoff: (Duration, Duration),
    counters: Counters,
}

impl<N: Notifier> DeliveryBuilder<N> {
    /// At most `n` notifications wait (default 1024); beyond, new ones are dropped and
    /// counted (`queue_full`), never waited for.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Delivery, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let delivery = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
    ///     .queue(256)
    ///     .timeout(Duration::from_secs(5))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
    ///     .retry_horizon(Duration::from_secs(30 * 60))
    ///     .metrics(&mut registry)
    ///     .spawn();
    /// assert_eq!(delivery.queued(), 0);
    /// # });
    /// ```
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }

    /// Each attempt is cut off after `t` (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Delivery, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let delivery = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
    ///     .queue(256)
    ///     .timeout(Duration::from_secs(5))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
    ///     .retry_horizon(Duration::from_secs(30 * 60))
    ///     .metrics(&mut registry)
    ///     .spawn();
    /// assert_eq!(delivery.queued(), 0);
    /// # });
    /// ```
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// A notification is retried for at most `h` after it was queued (default 1 h), then
    /// dropped and counted (`expired`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Delivery, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let delivery = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
    ///     .queue(256)
    ///     .timeout(Duration::from_secs(5))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
    ///     .retry_horizon(Duration::from_secs(30 * 60))
    ///     .metrics(&mut registry)
    ///     .spawn();
    /// assert_eq!(delivery.queued(), 0);
    /// # });
    /// ```
    pub fn retry_horizon(mut self, h: Duration) -> Self {
        self.horizon = h;
        self
    }

    /// Backoff between attempts: doubling from `first`, capped at `max`, each with up to
    /// 50 % random jitter (defaults 1 s and 60 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Delivery, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let delivery = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
    ///     .queue(256)
    ///     .timeout(Duration::from_secs(5))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
    ///     .retry_horizon(Duration::from_secs(30 * 60))
    ///     .metrics(&mut registry)
    ///     .spawn();
    /// assert_eq!(delivery.queued(), 0);
    /// # });
    /// ```
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max.max(first));
        self
    }

    /// Counts outcomes in `towerscope_alert_notifications_total{notifier,outcome}` in
    /// `registry` (outcomes: `delivered`, `retried`, `failed`, `expired`, `queue_full`, each a
    /// series at 0 from the start). Once per registry: several deliveries count into one
    /// [`DeliveryMetrics`] with [`counted_in`](Self::counted_in), or the family would be
    /// registered, and written, twice (a scrape Prometheus refuses).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Delivery, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let delivery = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
    ///     .queue(256)
    ///     .timeout(Duration::from_secs(5))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
    ///     .retry_horizon(Duration::from_secs(30 * 60))
    ///     .metrics(&mut registry)
    ///     .spawn();
    /// assert_eq!(delivery.queued(), 0);
    /// # });
    /// ```
    pub fn metrics(self, registry: &mut Registry) -> Self {
        self.counted_in(&DeliveryMetrics::register(registry))
    }

    /// Counts outcomes in `metrics`, shared with the other deliveries of the registry it
    /// was registered in.
    ///
    /// ```
    /// use towerscope_alert::{Delivery, DeliveryMetrics, SlackNotifier, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let metrics = DeliveryMetrics::register(&mut registry);
    /// let pager = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/pager")).counted_in(&metrics).spawn();
    /// let chat = Delivery::builder(SlackNotifier::new("https://hooks.slack.example/T/B/X")).counted_in(&metrics).spawn();
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert_eq!(text.matches("# TYPE towerscope_alert_notifications counter").count(), 1);
    /// assert!(text.contains(r#"towerscope_alert_notifications_total{notifier="slack",outcome="failed"} 0"#));
    /// # drop((pager, chat));
    /// # });
    /// ```
    pub fn counted_in(mut self, metrics: &DeliveryMetrics) -> Self {
        self.counters.family = Some(metrics.0.clone());
        self
    }

    /// Starts the worker (inside a tokio runtime).
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Delivery, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let delivery = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
    ///     .queue(256)
    ///     .timeout(Duration::from_secs(5))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
    ///     .retry_horizon(Duration::from_secs(30 * 60))
    ///     .metrics(&mut registry)
    ///     .spawn();
    /// assert_eq!(delivery.queued(), 0);
    /// # });
    /// ```
    pub fn spawn(self) -> Delivery {
        let (tx, mut rx) = mpsc::channel::<(Notification, Instant)>(self.queue);
        let notifier = Arc::new(self.notifier);
        let name: Arc<str> = Arc::from(notifier.name());
        // Every outcome a series from the start, at 0: the first failure is an increase
        // `rate()` sees, and a rule on it reads a series before anything failed.
        if let Some(family) = &self.counters.family {
            for outcome in OUTCOMES {
                let _ = family.get_or_create(&OutcomeLabels {
                    notifier: name.to_string(),
                    outcome,
                });
            }
        }
        let counters = self.counters.clone();
        let (timeout, horizon, (first, max)) = (self.timeout, self.horizon, self.backoff);
        let worker_name = name.clone();
        let pending = Arc::new(Pending::default());
        let worker_pending = pending.clone();
        let worker = tokio::spawn(async move {
            while let Some((n, queued)) = rx.recv().await {
                let mut delay = first;
                loop {
                    // A notifier that panics (in `send` or while its future runs) fails this
                    // notification; it must not end the worker, or every later one is lost.
                    let attempt =
                        AssertUnwindSafe(async { notifier.send(&n).await }).catch_unwind();
                    let result = match tokio::time::timeout(timeout, attempt).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(panic)) => Err(DeliveryError::Permanent(format!(
                            "the notifier panicked: {}",
                            towerscope_core::panic_message(&*panic)
                        ))),
                        Err(_) => Err(DeliveryError::retry(format!("timed out after {timeout:?}"))),
                    };
                    match result {
                        Ok(()) => {
                            counters.count(&worker_name, "delivered");
                            break;
                        }
                        Err(DeliveryError::Permanent(reason)) => {
                            tracing::error!(notifier = %worker_name, alert = %n.alert().name, %reason, "notification refused");
                            counters.count(&worker_name, "failed");
                            break;
                        }
                        Err(DeliveryError::Retry { reason, after }) => {
                            // A receiver's Retry-After is honoured as given; the horizon
                            // bounds it (any value: one past what a clock holds expires).
                            let wait = after.unwrap_or_else(|| jitter(delay));
                            if queued.elapsed().saturating_add(wait) > horizon {
                                tracing::error!(notifier = %worker_name, alert = %n.alert().name, %reason, "notification expired: receiver down past the retry horizon");
                                counters.count(&worker_name, "expired");
                                break;
                            }
                            tracing::warn!(notifier = %worker_name, alert = %n.alert().name, %reason, retry_in = ?wait, "notification not delivered yet");
                            counters.count(&worker_name, "retried");
                            tokio::time::sleep(wait).await;
                            delay = delay.saturating_mul(2).min(max);
                        }
                    }
                }
                worker_pending.done();
            }
        });
        Delivery {
            tx,
            name,
            counters: self.counters,
            worker: Arc::new(worker),
            pending,
        }
    }
}

/// Up to 50 % random jitter added to `d`, so receivers coming back are not hit in step.
fn jitter(d: Duration) -> Duration {
    // `mul_f64` would panic past `Duration::MAX` (a backoff configured as "for ever").
    Duration::try_from_secs_f64(d.as_secs_f64() * (1.0 + fastrand::f64() / 2.0))
        .unwrap_or(Duration::MAX)
}

/// A notifier behind its own bounded queue and worker: hand it to
/// [`AlertingBuilder::notify`](crate::AlertingBuilder::notify). The evaluator never waits
/// for it, and one failing receiver never delays another.
///
/// ```no_run
/// # async fn run(sources: towerscope_alert::Sources) {
/// use towerscope_alert::{Alerting, Delivery, WebhookNotifier};
/// let webhook = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
///     .retry_horizon(std::time::Duration::from_secs(3600))
///     .spawn();
/// let alerting = Alerting::builder(sources).notify(webhook).spawn();
/// # let _ = alerting; }
/// ```
#[derive(Clone)]
pub struct Delivery {
    tx: mpsc::Sender<(Notification, Instant)>,
    name: Arc<str>,
    counters: Counters,
    worker: Arc<tokio::task::JoinHandle<()>>,
    pending: Arc<Pending>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("notifier", &self.name)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// Delivery through `notifier`, with the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_alert::{Delivery, WebhookNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let delivery = Delivery::builder(WebhookNotifier::new("https://ops.example/hooks/alerts"))
    ///     .queue(256)
    ///     .timeout(Duration::from_secs(5))
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
    ///     .retry_horizon(Duration::from_secs(30 * 60))
    ///     .metrics(&mut registry)
    ///     .spawn();
    /// assert_eq!(delivery.queued(), 0);
    /// # });
    /// ```
    pub fn builder<N: Notifier>(notifier: N) -> DeliveryBuilder<N> {
        DeliveryBuilder {
            notifier,
            queue: 1024,
            timeout: Duration::from_secs(10),
            horizon: Duration::from_secs(3600),
            backoff: (Duration::from_secs(1), Duration::from_secs(60)),
            counters: Counters::default(),
        }
    }

    /// Notifications delivered so far.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Delivery, DeliveryError, Evaluator, Notification, Notifier, Notify as _, Rule, Sample, SendFuture, Signal};
    /// /// A Slack channel that was archived: every attempt gets a 410.
    /// struct Archived;
    /// impl Notifier for Archived {
    ///     fn name(&self) -> &str {
    ///         "archived"
    ///     }
    ///     fn send<'a>(&'a self, _n: &'a Notification) -> SendFuture<'a> {
    ///         Box::pin(async { Err(DeliveryError::Permanent("410: channel archived".into())) })
    ///     }
    /// }
    /// # let mut eval = Evaluator::new(vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 1.0)], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(5.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let delivery = Delivery::builder(Archived).spawn();
    /// delivery.notify(&firing);
    /// for _ in 0..2_000 {
    ///     if delivery.failed() > 0 {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert_eq!(delivery.delivered(), 0);
    /// # });
    /// ```
    pub fn delivered(&self) -> u64 {
        self.counters.delivered.load(Ordering::Relaxed)
    }
    /// Notifications refused for good.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Delivery, DeliveryError, Evaluator, Notification, Notifier, Notify as _, Rule, Sample, SendFuture, Signal};
    /// /// A Slack channel that was archived: every attempt gets a 410.
    /// struct Archived;
    /// impl Notifier for Archived {
    ///     fn name(&self) -> &str {
    ///         "archived"
    ///     }
    ///     fn send<'a>(&'a self, _n: &'a Notification) -> SendFuture<'a> {
    ///         Box::pin(async { Err(DeliveryError::Permanent("410: channel archived".into())) })
    ///     }
    /// }
    /// # let mut eval = Evaluator::new(vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 1.0)], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(5.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let delivery = Delivery::builder(Archived).spawn();
    /// delivery.notify(&firing);
    /// for _ in 0..2_000 {
    ///     if delivery.failed() > 0 {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert_eq!(delivery.failed(), 1);
    /// # });
    /// ```
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }
    /// Failed attempts that were retried.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Delivery, DeliveryError, Evaluator, Notification, Notifier, Notify as _, Rule, Sample, SendFuture, Signal};
    /// /// A Slack channel that was archived: every attempt gets a 410.
    /// struct Archived;
    /// impl Notifier for Archived {
    ///     fn name(&self) -> &str {
    ///         "archived"
    ///     }
    ///     fn send<'a>(&'a self, _n: &'a Notification) -> SendFuture<'a> {
    ///         Box::pin(async { Err(DeliveryError::Permanent("410: channel archived".into())) })
    ///     }
    /// }
    /// # let mut eval = Evaluator::new(vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 1.0)], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(5.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let delivery = Delivery::builder(Archived).spawn();
    /// delivery.notify(&firing);
    /// for _ in 0..2_000 {
    ///     if delivery.failed() > 0 {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert_eq!((delivery.failed(), delivery.retries()), (1, 0)); // a 410 is not retried
    /// # });
    /// ```
    pub fn retries(&self) -> u64 {
        self.counters.retries.load(Ordering::Relaxed)
    }
    /// Notifications dropped (queue full, or expired past the retry horizon).
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Delivery, DeliveryError, Evaluator, Notification, Notifier, Notify as _, Rule, Sample, SendFuture, Signal};
    /// /// A Slack channel that was archived: every attempt gets a 410.
    /// struct Archived;
    /// impl Notifier for Archived {
    ///     fn name(&self) -> &str {
    ///         "archived"
    ///     }
    ///     fn send<'a>(&'a self, _n: &'a Notification) -> SendFuture<'a> {
    ///         Box::pin(async { Err(DeliveryError::Permanent("410: channel archived".into())) })
    ///     }
    /// }
    /// # let mut eval = Evaluator::new(vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 1.0)], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(5.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let delivery = Delivery::builder(Archived).spawn();
    /// delivery.notify(&firing);
    /// for _ in 0..2_000 {
    ///     if delivery.failed() > 0 {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert_eq!((delivery.failed(), delivery.dropped()), (1, 0));
    /// # });
    /// ```
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
    /// Notifications waiting.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Delivery, DeliveryError, Evaluator, Notification, Notifier, Notify as _, Rule, Sample, SendFuture, Signal};
    /// /// A Slack channel that was archived: every attempt gets a 410.
    /// struct Archived;
    /// impl Notifier for Archived {
    ///     fn name(&self) -> &str {
    ///         "archived"
    ///     }
    ///     fn send<'a>(&'a self, _n: &'a Notification) -> SendFuture<'a> {
    ///         Box::pin(async { Err(DeliveryError::Permanent("410: channel archived".into())) })
    ///     }
    /// }
    /// # let mut eval = Evaluator::new(vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 1.0)], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(5.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let delivery = Delivery::builder(Archived).spawn();
    /// delivery.notify(&firing);
    /// for _ in 0..2_000 {
    ///     if delivery.failed() > 0 {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert_eq!((delivery.failed(), delivery.queued()), (1, 0));
    /// # });
    /// ```
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
    /// Whether the worker has stopped (it stops only if the runtime shuts down).
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Delivery, DeliveryError, Evaluator, Notification, Notifier, Notify as _, Rule, Sample, SendFuture, Signal};
    /// /// A Slack channel that was archived: every attempt gets a 410.
    /// struct Archived;
    /// impl Notifier for Archived {
    ///     fn name(&self) -> &str {
    ///         "archived"
    ///     }
    ///     fn send<'a>(&'a self, _n: &'a Notification) -> SendFuture<'a> {
    ///         Box::pin(async { Err(DeliveryError::Permanent("410: channel archived".into())) })
    ///     }
    /// }
    /// # let mut eval = Evaluator::new(vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 1.0)], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(5.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let delivery = Delivery::builder(Archived).spawn();
    /// delivery.notify(&firing);
    /// for _ in 0..2_000 {
    ///     if delivery.failed() > 0 {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert!(!delivery.is_finished());
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.worker.is_finished()
    }
}

impl Notify for Delivery {
    fn notify(&self, n: &Notification) {
        // Counted before the worker can finish with it.
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send((n.clone(), Instant::now())).is_err() {
            self.pending.done();
            tracing::error!(notifier = %self.name, alert = %n.alert().name, "notification queue full: dropped");
            self.counters.count(&self.name, "queue_full");
        }
    }

    fn flush(&self, deadline: Duration) -> FlushFuture<'_> {
        Box::pin(self.pending.wait_idle(deadline))
    }
}

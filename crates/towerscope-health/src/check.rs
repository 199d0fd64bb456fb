//! What a check is, and how a registered check runs: in its own task, under a timeout,
//! with its result cached.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The future a check returns.
///
/// ```
/// use towerscope_health::{CheckFuture, HealthCheck};
/// /// Unhealthy while a maintenance flag is set.
/// struct Maintenance(std::sync::atomic::AtomicBool);
/// impl HealthCheck for Maintenance {
///     fn check(&self) -> CheckFuture<'_> {
///         Box::pin(async move {
///             if self.0.load(std::sync::atomic::Ordering::Relaxed) {
///                 Err("in maintenance".to_owned())
///             } else {
///                 Ok(())
///             }
///         })
///     }
/// }
/// ```
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A dependency check: `Ok(())` when the dependency is usable, `Err(reason)` otherwise.
///
/// Implement it for your own checks, or use [`check_fn`] with a closure.
///
/// ```
/// use towerscope_health::{CheckFuture, HealthCheck};
/// struct AlwaysUp;
/// impl HealthCheck for AlwaysUp {
///     fn check(&self) -> CheckFuture<'_> { Box::pin(async { Ok(()) }) }
/// }
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> CheckFuture<'_>;

    /// When the server certificate this check was last shown expires (its `notAfter`),
    /// for a check that connects over TLS; `None` (the default) for one that does not, or
    /// before its first TLS connection. [`Synthetics`](crate::Synthetics) exports it for
    /// each probe, so that an alert can warn weeks before the certificate runs out.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use towerscope_health::{CheckFuture, HealthCheck};
    /// /// A check of a certificate kept on disk, say.
    /// struct Certificate { expires: SystemTime }
    /// impl HealthCheck for Certificate {
    ///     fn check(&self) -> CheckFuture<'_> { Box::pin(async { Ok(()) }) }
    ///     fn certificate_expiry(&self) -> Option<SystemTime> { Some(self.expires) }
    /// }
    /// let c = Certificate { expires: SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000) };
    /// assert!(c.certificate_expiry().is_some());
    /// ```
    fn certificate_expiry(&self) -> Option<std::time::SystemTime> {
        None
    }
}

/// A check from an async closure whose error is anything displayable.
///
/// ```
/// let check = towerscope_health::check_fn(|| async { Ok::<_, std::io::Error>(()) });
/// # let _ = check;
/// ```
pub fn check_fn<F, Fut, E>(f: F) -> impl HealthCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    CheckFn(f)
}

struct CheckFn<F>(F);

impl<F, Fut, E> HealthCheck for CheckFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn check(&self) -> CheckFuture<'_> {
        let fut = (self.0)();
        Box::pin(async move { fut.await.map_err(|e| towerscope_core::display_text(&e)) })
    }
}

/// Whether a failing check makes the service unready.
///
/// ```
/// assert_eq!(towerscope_health::Criticality::default(), towerscope_health::Criticality::Critical);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Criticality {
    /// A failure makes readiness `unhealthy` (HTTP 503).
    #[default]
    Critical,
    /// A failure makes readiness `degraded` (still HTTP 200).
    NonCritical,
}

/// How a check is run.
///
/// ```
/// use std::time::Duration;
/// use towerscope_health::{CheckOptions, Criticality};
/// let opts = CheckOptions::default()
///     .timeout(Duration::from_millis(500))
///     .criticality(Criticality::NonCritical)
///     .cache_for(Duration::from_secs(10));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    pub(crate) timeout: Duration,
    pub(crate) criticality: Criticality,
    pub(crate) cache: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            criticality: Criticality::Critical,
            cache: Duration::from_secs(5),
        }
    }
}

impl CheckOptions {
    /// Longest a run may take before it counts as failed (default 2 s).
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Criticality, Health, Status, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let health = Health::builder("1")
    ///     .check(
    ///         "slow",
    ///         check_fn(|| async {
    ///             tokio::time::sleep(Duration::from_secs(60)).await;
    ///             Ok::<_, std::io::Error>(())
    ///         }),
    ///         CheckOptions::default().timeout(Duration::from_millis(50)),
    ///     )
    ///     .build();
    /// let ready = health.readiness().await;
    /// assert_eq!(ready.checks["slow"].status, Status::Unhealthy); // a hung dependency fails fast
    /// # });
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Whether a failure makes the service unready (default critical).
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Criticality, Health, Status, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let health = Health::builder("1")
    ///     .check(
    ///         "recommendations",
    ///         check_fn(|| async { Err(std::io::Error::other("down")) }),
    ///         CheckOptions::default().criticality(Criticality::NonCritical),
    ///     )
    ///     .build();
    /// assert_eq!(health.readiness().await.status, Status::Degraded); // still ready: 200
    /// # });
    /// ```
    pub fn criticality(mut self, criticality: Criticality) -> Self {
        self.criticality = criticality;
        self
    }
    /// How long a result is reused, so that a burst of probes runs the check once
    /// (default 5 s; zero runs it for every probe, one run at a time).
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Criticality, Health, Status, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// let runs = Arc::new(AtomicUsize::new(0));
    /// let counter = runs.clone();
    /// let health = Health::builder("1")
    ///     .check(
    ///         "db",
    ///         check_fn(move || {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///             async { Ok::<_, std::io::Error>(()) }
    ///         }),
    ///         CheckOptions::default().cache_for(Duration::from_secs(5)),
    ///     )
    ///     .build();
    /// for _ in 0..10 {
    ///     health.readiness().await;
    /// }
    /// assert_eq!(runs.load(Ordering::Relaxed), 1); // ten probes, one run
    /// # });
    /// ```
    pub fn cache_for(mut self, cache: Duration) -> Self {
        self.cache = cache;
        self
    }
}

/// Health of one check or of the whole service.
///
/// ```
/// use towerscope_health::Status;
/// assert_eq!(serde_json::to_string(&Status::Degraded).unwrap(), "\"degraded\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything works.
    Healthy,
    /// A non-critical check fails.
    Degraded,
    /// A critical check fails.
    Unhealthy,
}

impl Status {
    /// The lower-case name.
    ///
    /// ```
    /// assert_eq!(towerscope_health::Status::Degraded.as_str(), "degraded");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// The outcome of one check, as reported by `/ready`.
///
/// ```
/// use towerscope_health::{CheckOptions, Health, Status, check_fn};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let health = Health::builder("1.0.0")
///     .check("queue", check_fn(|| async { Ok::<_, std::io::Error>(()) }), CheckOptions::default())
///     .build();
/// let report = &health.readiness().await.checks["queue"];
/// assert_eq!((report.status, report.error.as_deref()), (Status::Healthy, None));
/// assert!(report.duration_ms >= 0.0);
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// `healthy`, or `degraded`/`unhealthy` by the check's criticality when it failed.
    pub status: Status,
    /// How long the run took, in milliseconds.
    pub duration_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Seconds as milliseconds to the microsecond, as reports show durations.
pub(crate) fn millis(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e3
}

/// Runs `check` once in a task of its own, under `timeout`: a panic or a hang is a failure
/// with a message, and delays nothing else.
pub(crate) async fn run_once(
    check: &Arc<dyn HealthCheck>,
    timeout: Duration,
) -> Result<(), String> {
    let check = check.clone();
    let mut task = tokio::spawn(async move { check.check().await });
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => Err(format!(
            "check panicked: {}",
            towerscope_core::panic_message(&*join.into_panic())
        )),
        Ok(Err(_)) => Err("check was cancelled".to_owned()),
        Err(_) => {
            task.abort();
            Err(format!("timed out after {} ms", timeout.as_millis()))
        }
    }
}

/// `at` as whole Unix seconds (negative before 1970).
pub(crate) fn unix_seconds(at: std::time::SystemTime) -> i64 {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

pub(crate) struct Registered {
    pub(crate) name: Arc<str>,
    pub(crate) check: Arc<dyn HealthCheck>,
    pub(crate) opts: CheckOptions,
    /// The last result and when it was made; the lock makes concurrent probes wait for one
    /// run instead of starting their own.
    pub(crate) last: tokio::sync::Mutex<Option<(Instant, CheckReport)>>,
}

impl Registered {
    /// The check's report: cached if fresh, otherwise from a new run in its own task, so a
    /// panic is caught and a hang is cut off by the timeout without blocking other checks.
    /// The second value tells whether a run happened.
    pub(crate) async fn report(&self) -> (CheckReport, bool) {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < self.opts.cache {
                return (report.clone(), false);
            }
        }
        let start = Instant::now();
        let outcome = run_once(&self.check, self.opts.timeout).await;
        let failed = match self.opts.criticality {
            Criticality::Critical => Status::Unhealthy,
            Criticality::NonCritical => Status::Degraded,
        };
        let report = CheckReport {
            status: if outcome.is_ok() {
                Status::Healthy
            } else {
                failed
            },
            duration_ms: millis(start.elapsed().as_secs_f64()),
            error: outcome.err(),
        };
        *last = Some((Instant::now(), report.clone()));
        (report, true)
    }
}

//! Synthetic monitoring: checks of the critical paths, run on a schedule whether or not
//! anything asks `/ready`, and exported for alert rules and dashboards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::check::{HealthCheck, millis, run_once, unix_seconds};

/// The shortest interval between rounds; a shorter one is taken as this.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(towerscope_health::MIN_PROBE_INTERVAL, Duration::from_millis(100));
/// let b = towerscope_health::Synthetics::builder().every(Duration::from_millis(1)); // runs every 100 ms
/// # let _ = b;
/// ```
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// The longest a probe name may be.
///
/// ```
/// use towerscope_health::{MAX_PROBE_NAME, valid_probe_name};
/// assert!(valid_probe_name(&"a".repeat(MAX_PROBE_NAME)));
/// assert!(!valid_probe_name(&"a".repeat(MAX_PROBE_NAME + 1)));
/// ```
pub const MAX_PROBE_NAME: usize = 64;

/// Whether `name` may name a probe: 1 to [`MAX_PROBE_NAME`] characters of letters, digits,
/// `_`, `-`, `.`, `:` and `/` (it becomes the `probe` label of every probe metric).
/// [`SyntheticsBuilder::spawn`] refuses any other name; a configuration can check first.
///
/// ```
/// use towerscope_health::valid_probe_name;
/// assert!(valid_probe_name("checkout/v2"));
/// assert!(!valid_probe_name("check out"));
/// assert!(!valid_probe_name(""));
/// ```
pub fn valid_probe_name(name: &str) -> bool {
    (1..=MAX_PROBE_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
}

/// A probe name refused by [`SyntheticsBuilder::spawn`].
///
/// ```
/// use towerscope_health::{Synthetics, SyntheticsError, TcpCheck};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let err = Synthetics::builder().probe("check out", TcpCheck::new("shop:443")).spawn().unwrap_err();
/// assert!(matches!(err, SyntheticsError::InvalidName(_)));
/// # });
/// ```
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyntheticsError {
    /// Not 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`.
    #[error(
        "probe name {0:?} must be 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`"
    )]
    InvalidName(String),
    /// Two probes with one name.
    #[error("two probes are named {0:?}")]
    Duplicate(String),
}

/// The last run of a probe.
///
/// ```
/// use towerscope_health::{Synthetics, check_fn};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let synthetics = Synthetics::builder()
///     .probe("login", check_fn(|| async { Err::<(), _>("401 for the test user") }))
///     .spawn()
///     .unwrap();
/// let results = synthetics.run_now().await;
/// assert!(!results["login"].success);
/// assert_eq!(results["login"].error.as_deref(), Some("401 for the test user"));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProbeResult {
    /// Whether the probe passed.
    pub success: bool,
    /// How long it took, milliseconds.
    pub duration_ms: f64,
    /// Why it failed (the check's error, `timed out after N ms`, `check panicked: …`).
    pub error: Option<String>,
    /// When it finished.
    pub at: SystemTime,
    /// When the server certificate the probe was last shown expires, for a probe that
    /// connects over TLS (an `https://` [`HttpCheck`](crate::HttpCheck)); see
    /// [`HealthCheck::certificate_expiry`].
    pub cert_expiry: Option<SystemTime>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    probe: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Default)]
struct ProbeMetrics {
    success: Family<ProbeLabels, Gauge>,
    duration: Family<ProbeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    runs: Family<RunLabels, Counter>,
    cert_expiry: Family<ProbeLabels, Gauge>,
}

struct Probe {
    name: Arc<str>,
    check: Arc<dyn HealthCheck>,
}

/// Builds [`Synthetics`].
///
/// ```
/// use std::time::Duration;
/// use towerscope_health::{HttpCheck, Synthetics};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut registry = prometheus_client::registry::Registry::default();
/// let synthetics = Synthetics::builder()
///     .probe("catalogue", HttpCheck::new("http://127.0.0.1:8080/products".parse().unwrap()))
///     .every(Duration::from_secs(30))
///     .timeout(Duration::from_secs(5))
///     .metrics(&mut registry)
///     .spawn()
///     .expect("valid probe names");
/// # drop(synthetics);
/// # });
/// ```
#[must_use]
pub struct SyntheticsBuilder {
    probes: Vec<Probe>,
    every: Duration,
    first_after: Duration,
    timeout: Duration,
    metrics: Option<ProbeMetrics>,
}

impl std::fmt::Debug for SyntheticsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticsBuilder")
            .field(
                "probes",
                &self.probes.iter().map(|p| &*p.name).collect::<Vec<_>>(),
            )
            .field("every", &self.every)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SyntheticsBuilder {
    /// Adds a probe: any check. An [`HttpCheck`](crate::HttpCheck) of a page or an API
    /// call a user depends on, or a [`check_fn`](crate::check_fn) that walks a journey
    /// (log in, add to the cart, check out) and fails at the first step that does.
    ///
    /// ```
    /// use towerscope_health::{Synthetics, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let synthetics = Synthetics::builder()
    ///     .probe("checkout", check_fn(|| async {
    ///         // log in, add to the cart, check out: Err at the first step that fails
    ///         Ok::<(), String>(())
    ///     }))
    ///     .spawn()
    ///     .unwrap();
    /// assert!(synthetics.run_now().await["checkout"].success);
    /// # });
    /// ```
    pub fn probe(mut self, name: impl Into<String>, check: impl HealthCheck) -> Self {
        self.probes.push(Probe {
            name: name.into().into(),
            check: Arc::new(check),
        });
        self
    }

    /// How often every probe runs (default 30 s; at least [`MIN_PROBE_INTERVAL`], at most
    /// a day). The first round runs at once unless [`first_round_after`](Self::first_round_after)
    /// says otherwise.
    ///
    /// ```
    /// let b = towerscope_health::Synthetics::builder().every(std::time::Duration::from_secs(60));
    /// # let _ = b;
    /// ```
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Waits `delay` before the first round (default: none): for probes started before
    /// the server they probe listens, so start-up does not log a failure (at most a day).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = towerscope_health::Synthetics::builder()
    ///     .every(Duration::from_secs(30))
    ///     .first_round_after(Duration::from_secs(5));
    /// # let _ = b;
    /// ```
    pub fn first_round_after(mut self, delay: Duration) -> Self {
        self.first_after = delay;
        self
    }

    /// How long one run of a probe may take before it fails as timed out (default 10 s).
    ///
    /// ```
    /// let b = towerscope_health::Synthetics::builder().timeout(std::time::Duration::from_secs(3));
    /// # let _ = b;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Exports every probe's last run: `synthetic_probe_success{probe}` (1 passed, 0
    /// failed), `synthetic_probe_duration_seconds{probe}`,
    /// `synthetic_probe_runs_total{probe, outcome}` (`success`, `failure`), and for a probe
    /// over TLS `synthetic_probe_tls_cert_expiry_timestamp_seconds{probe}`: when the server
    /// certificate it was last shown expires, as Unix time (alert on
    /// towerscope-alert's `Signal::SecondsUntil` of it, or in PromQL on
    /// `… - time() < 14 * 86400`).
    ///
    /// ```
    /// use towerscope_health::{Synthetics, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let synthetics = Synthetics::builder()
    ///     .probe("search", check_fn(|| async { Ok::<(), String>(()) }))
    ///     .metrics(&mut registry)
    ///     .spawn()
    ///     .unwrap();
    /// synthetics.run_now().await;
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("synthetic_probe_success{probe=\"search\"} 1"), "{text}");
    /// # });
    /// ```
    pub fn metrics(mut self, registry: &mut Registry) -> Self {
        let m = ProbeMetrics::default();
        registry.register(
            "synthetic_probe_success",
            "Whether the synthetic probe passed at its last run (1) or failed (0)",
            m.success.clone(),
        );
        registry.register(
            "synthetic_probe_duration_seconds",
            "Duration of the synthetic probe's last run",
            m.duration.clone(),
        );
        registry.register(
            "synthetic_probe_runs",
            "Runs of the synthetic probe, by outcome",
            m.runs.clone(),
        );
        registry.register_with_unit(
            "synthetic_probe_tls_cert_expiry_timestamp",
            "When the server certificate the synthetic probe was last shown expires (notAfter), Unix time",
            prometheus_client::registry::Unit::Seconds,
            m.cert_expiry.clone(),
        );
        self.metrics = Some(m);
        self
    }

    /// Starts the schedule on the current tokio runtime; it stops when the last clone of
    /// the returned handle is dropped.
    ///
    /// # Errors
    /// A probe name that is not 1 to 64 characters of letters, digits, `_`, `-`, `.`,
    /// `:` and `/`, or a name given twice.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use towerscope_health::{Synthetics, SyntheticsError, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let ok = || check_fn(|| async { Ok::<(), String>(()) });
    /// let twice = Synthetics::builder().probe("home", ok()).probe("home", ok()).spawn();
    /// assert_eq!(twice.unwrap_err(), SyntheticsError::Duplicate("home".into()));
    /// # });
    /// ```
    pub fn spawn(self) -> Result<Synthetics, SyntheticsError> {
        let mut seen = std::collections::BTreeSet::new();
        for probe in &self.probes {
            let name = &*probe.name;
            if !valid_probe_name(name) {
                return Err(SyntheticsError::InvalidName(name.to_owned()));
            }
            if !seen.insert(name) {
                return Err(SyntheticsError::Duplicate(name.to_owned()));
            }
        }
        let inner = Arc::new(Inner {
            probes: self.probes,
            timeout: self.timeout,
            metrics: self.metrics,
            last: Mutex::new(BTreeMap::new()),
        });
        let every = self
            .every
            .clamp(MIN_PROBE_INTERVAL, towerscope_core::MAX_PERIOD);
        let first = tokio::time::Instant::now() + self.first_after.min(towerscope_core::MAX_PERIOD);
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(first, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.round().await;
            }
        });
        Ok(Synthetics { inner })
    }
}

struct Inner {
    probes: Vec<Probe>,
    timeout: Duration,
    metrics: Option<ProbeMetrics>,
    last: Mutex<BTreeMap<Arc<str>, ProbeResult>>,
}

impl Inner {
    /// Runs every probe once, at the same time; records and returns the results.
    async fn round(&self) -> BTreeMap<String, ProbeResult> {
        let runs = self.probes.iter().map(|probe| async move {
            let start = Instant::now();
            let outcome = run_once(&probe.check, self.timeout).await;
            let seconds = start.elapsed().as_secs_f64();
            let result = ProbeResult {
                success: outcome.is_ok(),
                duration_ms: millis(seconds),
                error: outcome.err(),
                at: SystemTime::now(),
                cert_expiry: probe.check.certificate_expiry(),
            };
            self.record(&probe.name, &result, seconds);
            (probe.name.to_string(), result)
        });
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .collect()
    }

    fn record(&self, name: &Arc<str>, result: &ProbeResult, seconds: f64) {
        if let Some(m) = &self.metrics {
            let probe = ProbeLabels {
                probe: name.to_string(),
            };
            m.success
                .get_or_create(&probe)
                .set(i64::from(result.success));
            m.duration.get_or_create(&probe).set(seconds);
            m.runs
                .get_or_create(&RunLabels {
                    probe: probe.probe,
                    outcome: if result.success { "success" } else { "failure" },
                })
                .inc();
            if let Some(secs) = result.cert_expiry.map(unix_seconds) {
                m.cert_expiry
                    .get_or_create(&ProbeLabels {
                        probe: name.to_string(),
                    })
                    .set(secs);
            }
        }
        let previous = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), result.clone());
        // Logged when the probe's state changes (and at its first run), not every round.
        if previous.map(|p| p.success) != Some(result.success) {
            match &result.error {
                None => tracing::info!(probe = &**name, "synthetic probe passing"),
                Some(error) => {
                    tracing::warn!(
                        probe = &**name,
                        error = error.as_str(),
                        "synthetic probe failing"
                    );
                }
            }
        }
    }
}

/// Synthetic monitoring: the critical paths of a service (or of the services it depends
/// on) checked on a schedule, as a user would use them, whether or not anything asks
/// `/ready`; each probe's last run in the registry, for alert rules
/// (`synthetic_probe_success == 0`) and dashboards. A probe that hangs fails at its timeout,
/// one that panics fails with the panic's message, and neither holds up the others.
///
/// Probes from inside the process see what the process sees: they reach the service
/// through its own listener (and the network stack), not through the load balancer or DNS
/// in front of it. Probe from another place too (Prometheus' blackbox exporter) for those.
///
/// ```
/// use towerscope_health::{Synthetics, check_fn};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let synthetics = Synthetics::builder()
///     .probe("home", check_fn(|| async { Ok::<(), String>(()) }))
///     .spawn()
///     .unwrap();
/// synthetics.run_now().await;
/// assert!(synthetics.results()["home"].success);
/// # });
/// ```
#[derive(Clone)]
pub struct Synthetics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Synthetics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synthetics")
            .field("results", &self.results())
            .finish_non_exhaustive()
    }
}

impl Synthetics {
    /// A builder: no probes, every 30 s, each run cut off at 10 s.
    ///
    /// ```
    /// let b = towerscope_health::Synthetics::builder();
    /// # let _ = b;
    /// ```
    pub fn builder() -> SyntheticsBuilder {
        SyntheticsBuilder {
            probes: Vec::new(),
            every: Duration::from_secs(30),
            first_after: Duration::ZERO,
            timeout: Duration::from_secs(10),
            metrics: None,
        }
    }

    /// Runs every probe once now (besides the schedule) and returns the results.
    ///
    /// ```
    /// use towerscope_health::{Synthetics, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let synthetics = Synthetics::builder()
    ///     .probe("a", check_fn(|| async { Ok::<(), String>(()) }))
    ///     .probe("b", check_fn(|| async { Err::<(), _>("down") }))
    ///     .spawn()
    ///     .unwrap();
    /// let results = synthetics.run_now().await;
    /// assert!(results["a"].success && !results["b"].success);
    /// # });
    /// ```
    pub async fn run_now(&self) -> BTreeMap<String, ProbeResult> {
        self.inner.round().await
    }

    /// The last result of every probe that has run.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let none = towerscope_health::Synthetics::builder().spawn().unwrap();
    /// assert!(none.results().is_empty());
    /// # });
    /// ```
    pub fn results(&self) -> BTreeMap<String, ProbeResult> {
        self.inner.results()
    }

    /// A handle that reads the results without keeping the schedule running: for a
    /// dashboard or a status page that should not outlive the probes' owner.
    ///
    /// ```
    /// use towerscope_health::{Synthetics, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let synthetics = Synthetics::builder()
    ///     .probe("home", check_fn(|| async { Ok::<(), String>(()) }))
    ///     .spawn()
    ///     .unwrap();
    /// let view = synthetics.downgrade(); // does not keep the probes running
    /// synthetics.run_now().await;
    /// assert!(view.results().expect("running")["home"].success);
    /// # });
    /// ```
    pub fn downgrade(&self) -> WeakSynthetics {
        WeakSynthetics {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

impl Inner {
    fn results(&self) -> BTreeMap<String, ProbeResult> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, result)| (name.to_string(), result.clone()))
            .collect()
    }
}

/// Reads the results of [`Synthetics`] without keeping its schedule running; from
/// [`Synthetics::downgrade`].
///
/// ```
/// let synthetics = towerscope_health::Synthetics::builder();
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// let view: towerscope_health::WeakSynthetics = synthetics.spawn().unwrap().downgrade();
/// assert!(view.results().is_none(), "the only handle was dropped");
/// # });
/// ```
#[derive(Clone)]
pub struct WeakSynthetics {
    inner: std::sync::Weak<Inner>,
}

impl WeakSynthetics {
    /// The last result of every probe that has run, or `None` once every [`Synthetics`]
    /// handle is gone and a round in progress has finished (the schedule has stopped).
    ///
    /// ```
    /// use towerscope_health::{Synthetics, check_fn};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let synthetics = Synthetics::builder()
    ///     .probe("search", check_fn(|| async { Err::<(), _>("503") }))
    ///     .spawn()
    ///     .unwrap();
    /// synthetics.run_now().await;
    /// let results = synthetics.downgrade().results().expect("running");
    /// assert_eq!(results["search"].error.as_deref(), Some("503"));
    /// # });
    /// ```
    pub fn results(&self) -> Option<BTreeMap<String, ProbeResult>> {
        self.inner.upgrade().map(|inner| inner.results())
    }
}

impl std::fmt::Debug for WeakSynthetics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakSynthetics")
            .field("running", &(self.inner.strong_count() > 0))
            .finish()
    }
}

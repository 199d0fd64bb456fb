//! The evaluator: per rule and label set, inactive → pending → firing → resolved.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::rule::{Rule, Severity};

/// One value of a signal: the labels that tell its series apart (empty for an overall
/// signal; `route` for a per-route one) and the value.
///
/// ```
/// use towerscope_alert::Sample;
/// // A per-route signal gives one sample per route: one alert each.
/// let per_route = vec![
///     Sample { labels: vec![("route".into(), "/orders".into())], value: 840.0 },
///     Sample { labels: vec![("route".into(), "/users/{id}".into())], value: 35.0 },
/// ];
/// assert_eq!(per_route[0].labels[0].1, "/orders");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series labels.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A sample without labels.
    ///
    /// ```
    /// assert_eq!(towerscope_alert::Sample::single(3.0).value, 3.0);
    /// ```
    pub fn single(value: f64) -> Self {
        Self {
            labels: Vec::new(),
            value,
        }
    }
}

/// Where an alert is.
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use towerscope_alert::{AlertState, Condition, Evaluator, Rule, Sample, Signal};
/// let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0).for_duration(Duration::from_secs(60));
/// let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
/// eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]);
/// assert_eq!(eval.active()[0].state, AlertState::Pending); // firing after a minute
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds, not yet for the rule's `for` duration.
    Pending,
    /// The condition has held for `for`: notifications go out.
    Firing,
}

/// An alert: a rule whose condition holds for one label set.
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
/// let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
/// let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
/// let t0 = Instant::now();
/// let sent = eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
/// let alert = sent[0].alert();
/// assert_eq!((alert.name.as_str(), alert.value, alert.threshold), ("Busy", 150.0, 100.0));
/// assert_eq!(alert.labels["alertname"], "Busy");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The rule's name.
    pub name: String,
    /// The rule's severity.
    pub severity: Severity,
    /// `alertname`, `severity`, the rule's labels and the series labels.
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations, with `{value}`-style placeholders filled.
    pub annotations: BTreeMap<String, String>,
    /// The rendered message.
    pub message: String,
    /// The latest value.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// Pending or firing.
    pub state: AlertState,
    /// When the condition started to hold (wall clock).
    #[serde(with = "unix_seconds")]
    pub active_since: SystemTime,
    /// When it started firing.
    #[serde(with = "unix_seconds_opt")]
    pub firing_since: Option<SystemTime>,
    /// Whether notifications for it are held back by a silence.
    pub silenced: bool,
    /// A key stable across evaluations, for receivers that de-duplicate (PagerDuty's
    /// `dedup_key`): the rule name and the series labels.
    pub fingerprint: String,
}

impl Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

mod unix_seconds {
    use std::time::SystemTime;
    pub(crate) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        s.serialize_f64(secs)
    }
}

mod unix_seconds_opt {
    use std::time::SystemTime;
    pub(crate) fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::unix_seconds::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

/// What the evaluator asks notifiers to deliver.
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
/// let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
/// let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
/// let t0 = Instant::now();
/// let fired = eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
/// assert!(!fired[0].is_resolved());
/// // The condition clears: the alert resolves (it does not just stop firing).
/// let later = t0 + Duration::from_secs(30);
/// let resolved = eval.evaluate(later, SystemTime::now(), |_| vec![Sample::single(3.0)]);
/// assert!(resolved[0].is_resolved());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// The alert fires (first time, or again after the re-notification interval).
    Firing(Alert),
    /// The alert's condition cleared (or its series disappeared); `ended` is when.
    Resolved {
        /// The alert as it last fired.
        alert: Alert,
        /// When it was resolved.
        ended: SystemTime,
    },
}

impl Notification {
    /// The alert either way.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// let fired = eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
    /// let resolved = eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(10.0)]);
    /// assert_eq!(fired[0].alert().name, resolved[0].alert().name);
    /// ```
    pub fn alert(&self) -> &Alert {
        match self {
            Self::Firing(a) => a,
            Self::Resolved { alert, .. } => alert,
        }
    }
    /// Whether this is a resolution.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// let fired = eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
    /// assert!(!fired[0].is_resolved());
    /// let cleared = eval.evaluate(t0, SystemTime::now(), |_| vec![]); // the series is gone
    /// assert!(cleared[0].is_resolved());
    /// ```
    pub fn is_resolved(&self) -> bool {
        matches!(self, Self::Resolved { .. })
    }
}

#[derive(Debug)]
struct Entry {
    alert: Alert,
    pending_since: Instant,
    /// When a firing notification last went out; `None` until one did.
    notified_at: Option<Instant>,
}

/// Evaluates rules against sampled values and keeps the alerts' states.
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
/// let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)
///     .for_duration(Duration::from_secs(60));
/// let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
/// let t0 = Instant::now();
/// let sent = eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
/// assert!(sent.is_empty(), "pending: the condition must hold for a minute");
/// let sent = eval.evaluate(t0 + Duration::from_secs(61), SystemTime::now(), |_| vec![Sample::single(150.0)]);
/// assert_eq!(sent.len(), 1, "firing");
/// let sent = eval.evaluate(t0 + Duration::from_secs(90), SystemTime::now(), |_| vec![Sample::single(20.0)]);
/// assert!(sent[0].is_resolved());
/// ```
#[derive(Debug)]
pub struct Evaluator {
    rules: Vec<Rule>,
    renotify_every: Duration,
    entries: HashMap<(usize, Vec<(String, String)>), Entry>,
    silences: HashMap<String, Instant>,
    /// Most alerts held at once; beyond it new label sets are not tracked (and counted).
    max_alerts: usize,
    dropped: u64,
}

impl Evaluator {
    /// Evaluates `rules`, re-sending a still-firing alert every `renotify_every`.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// assert_eq!(eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]).len(), 1);
    /// let soon = t0 + Duration::from_secs(60);
    /// assert!(eval.evaluate(soon, SystemTime::now(), |_| vec![Sample::single(150.0)]).is_empty());
    /// let later = t0 + Duration::from_secs(3601);
    /// assert_eq!(eval.evaluate(later, SystemTime::now(), |_| vec![Sample::single(150.0)]).len(), 1); // sent again
    /// ```
    pub fn new(rules: Vec<Rule>, renotify_every: Duration) -> Self {
        Self {
            rules,
            renotify_every,
            entries: HashMap::new(),
            silences: HashMap::new(),
            max_alerts: 10_000,
            dropped: 0,
        }
    }

    /// The rules.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// assert_eq!(eval.rules()[0].name, "Busy");
    /// # let _ = t0;
    /// ```
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Label sets not tracked because `max_alerts` were already active.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
    /// assert_eq!(eval.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Holds back notifications of `rule` until `until` (the alerts are still evaluated and
    /// listed, marked silenced). Returns whether the rule exists.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// assert!(eval.silence("Busy", t0 + Duration::from_secs(600)));
    /// let sent = eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
    /// assert!(sent.is_empty() && eval.active()[0].silenced); // evaluated and listed, not sent
    /// ```
    pub fn silence(&mut self, rule: &str, until: Instant) -> bool {
        if !self.rules.iter().any(|r| r.name == rule) {
            return false;
        }
        self.silences.insert(rule.to_owned(), until);
        true
    }

    /// Lifts a silence.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// eval.silence("Busy", t0 + Duration::from_secs(600));
    /// assert!(eval.unsilence("Busy"));
    /// assert_eq!(eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]).len(), 1);
    /// ```
    pub fn unsilence(&mut self, rule: &str) -> bool {
        self.silences.remove(rule).is_some()
    }

    /// Pending and firing alerts, most severe first.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// eval.evaluate(t0, SystemTime::now(), |_| vec![Sample::single(150.0)]);
    /// assert_eq!(eval.active()[0].value, 150.0);
    /// ```
    pub fn active(&self) -> Vec<Alert> {
        let mut out: Vec<Alert> = self.entries.values().map(|e| e.alert.clone()).collect();
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        out
    }

    /// One evaluation at `now` (`wall` is the same moment on the wall clock, for the
    /// notifications). `values` gives each rule's current samples; a label set that no
    /// longer appears counts as cleared.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// let mut eval = Evaluator::new(
    ///     vec![Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0)],
    ///     Duration::from_secs(3600),
    /// );
    /// let t0 = Instant::now();
    /// // Per-route samples: one alert per label set.
    /// let sent = eval.evaluate(t0, SystemTime::now(), |_| {
    ///     vec![
    ///         Sample { labels: vec![("route".into(), "/a".into())], value: 150.0 },
    ///         Sample { labels: vec![("route".into(), "/b".into())], value: 5.0 },
    ///     ]
    /// });
    /// assert_eq!(sent.len(), 1);
    /// assert_eq!(sent[0].alert().labels["route"], "/a");
    /// ```
    pub fn evaluate(
        &mut self,
        now: Instant,
        wall: SystemTime,
        mut values: impl FnMut(&Rule) -> Vec<Sample>,
    ) -> Vec<Notification> {
        self.silences.retain(|_, until| *until > now);
        let mut out = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let silenced = self.silences.contains_key(&rule.name);
            let samples = values(rule);
            let mut seen: Vec<Vec<(String, String)>> = Vec::new();
            for sample in samples {
                let mut series = sample.labels;
                series.sort();
                if !rule.condition.holds(sample.value, rule.threshold) {
                    continue;
                }
                seen.push(series.clone());
                let key = (index, series);
                if !self.entries.contains_key(&key) {
                    if self.entries.len() >= self.max_alerts {
                        self.dropped += 1;
                        continue;
                    }
                    let alert = new_alert(rule, &key.1, sample.value, wall);
                    self.entries.insert(
                        key.clone(),
                        Entry {
                            alert,
                            pending_since: now,
                            notified_at: None,
                        },
                    );
                }
                let Some(entry) = self.entries.get_mut(&key) else {
                    continue;
                };
                entry.alert.value = sample.value;
                entry.alert.message = rule.render_message(sample.value, &key.1);
                entry.alert.annotations = render_annotations(rule, sample.value, &key.1);
                entry.alert.silenced = silenced;
                if entry.alert.state == AlertState::Pending
                    && now.saturating_duration_since(entry.pending_since) >= rule.for_duration
                {
                    entry.alert.state = AlertState::Firing;
                    entry.alert.firing_since = Some(wall);
                }
                if entry.alert.state == AlertState::Firing && !silenced {
                    let due = match entry.notified_at {
                        None => true,
                        Some(at) => now.saturating_duration_since(at) >= self.renotify_every,
                    };
                    if due {
                        entry.notified_at = Some(now);
                        out.push(Notification::Firing(entry.alert.clone()));
                    }
                }
            }
            // Label sets of this rule whose condition no longer holds, or that vanished.
            let cleared: Vec<_> = self
                .entries
                .keys()
                .filter(|(i, series)| *i == index && !seen.contains(series))
                .cloned()
                .collect();
            for key in cleared {
                if let Some(entry) = self.entries.remove(&key) {
                    // Only what was announced is resolved: a pending alert or one held back
                    // by a silence from the start goes quietly.
                    if entry.notified_at.is_some() {
                        out.push(Notification::Resolved {
                            alert: entry.alert,
                            ended: wall,
                        });
                    }
                }
            }
        }
        out
    }
}

fn new_alert(rule: &Rule, series: &[(String, String)], value: f64, wall: SystemTime) -> Alert {
    let mut labels = rule.labels.clone();
    for (k, v) in series {
        labels.insert(k.clone(), v.clone());
    }
    labels.insert("alertname".into(), rule.name.clone());
    labels.insert("severity".into(), rule.severity.as_str().into());
    let mut fingerprint = rule.name.clone();
    for (k, v) in series {
        fingerprint.push('|');
        fingerprint.push_str(k);
        fingerprint.push('=');
        fingerprint.push_str(v);
    }
    Alert {
        name: rule.name.clone(),
        severity: rule.severity,
        labels,
        annotations: render_annotations(rule, value, series),
        message: rule.render_message(value, series),
        value,
        threshold: rule.threshold,
        state: AlertState::Pending,
        active_since: wall,
        firing_since: None,
        silenced: false,
        fingerprint,
    }
}

fn render_annotations(
    rule: &Rule,
    value: f64,
    series: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, template) in &rule.annotations {
        out.insert(k.clone(), rule.render(template, value, series));
    }
    out
}

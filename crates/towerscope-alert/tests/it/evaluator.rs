//! The state machine: pending, firing, re-notification, resolution, flapping, silences,
//! de-duplication by rule and labels.

use std::time::{Duration, Instant, SystemTime};

use towerscope_alert::{AlertState, Condition, Evaluator, Notification, Rule, Sample, Signal};

fn rule(for_secs: u64) -> Rule {
    Rule::new("Busy", Signal::InFlight, Condition::Gt, 10.0)
        .for_duration(Duration::from_secs(for_secs))
        .message("{value} in flight on {route}")
}

fn at(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn run(eval: &mut Evaluator, now: Instant, value: f64) -> Vec<Notification> {
    eval.evaluate(now, SystemTime::now(), |_| vec![Sample::single(value)])
}

#[test]
fn pending_then_firing_then_renotified_then_resolved() {
    let mut eval = Evaluator::new(vec![rule(60)], Duration::from_secs(600));
    let t0 = Instant::now();
    assert!(run(&mut eval, t0, 20.0).is_empty());
    assert_eq!(eval.active()[0].state, AlertState::Pending);
    assert!(run(&mut eval, at(t0, 30), 20.0).is_empty());
    let fired = run(&mut eval, at(t0, 60), 25.0);
    assert_eq!(fired.len(), 1);
    let Notification::Firing(alert) = &fired[0] else {
        panic!("firing")
    };
    assert_eq!(alert.value, 25.0);
    assert_eq!(alert.labels["alertname"], "Busy");
    assert_eq!(alert.labels["severity"], "medium");
    assert_eq!(eval.active()[0].state, AlertState::Firing);
    // Still firing: quiet until the re-notification interval has passed.
    assert!(run(&mut eval, at(t0, 300), 25.0).is_empty());
    assert_eq!(
        run(&mut eval, at(t0, 660), 30.0).len(),
        1,
        "re-sent after 10 minutes"
    );
    // Cleared: one resolution, then nothing.
    let resolved = run(&mut eval, at(t0, 700), 5.0);
    assert!(matches!(&resolved[..], [Notification::Resolved { .. }]));
    assert!(eval.active().is_empty());
    assert!(run(&mut eval, at(t0, 760), 5.0).is_empty());
}

#[test]
fn a_flapping_signal_with_for_sends_nothing() {
    let mut eval = Evaluator::new(vec![rule(60)], Duration::from_secs(600));
    let t0 = Instant::now();
    let mut sent = 0;
    for i in 0..1000u64 {
        let value = if i % 2 == 0 { 50.0 } else { 1.0 };
        sent += run(&mut eval, at(t0, i * 15), value).len();
    }
    assert_eq!(
        sent, 0,
        "never held for a minute: never fired, never resolved"
    );
}

#[test]
fn a_pending_alert_that_clears_resolves_quietly() {
    let mut eval = Evaluator::new(vec![rule(60)], Duration::from_secs(600));
    let t0 = Instant::now();
    run(&mut eval, t0, 50.0);
    assert!(run(&mut eval, at(t0, 30), 1.0).is_empty());
    assert!(eval.active().is_empty());
}

#[test]
fn silences_hold_notifications_back_and_expire() {
    let mut eval = Evaluator::new(vec![rule(0)], Duration::from_secs(3600));
    let t0 = Instant::now();
    assert!(eval.silence("Busy", at(t0, 100)));
    assert!(!eval.silence("NoSuchRule", at(t0, 100)));
    assert!(run(&mut eval, t0, 50.0).is_empty(), "silenced");
    assert!(eval.active()[0].silenced, "still listed, marked silenced");
    let after = run(&mut eval, at(t0, 101), 50.0);
    assert_eq!(after.len(), 1, "announced once the silence ends");
    assert!(!eval.active()[0].silenced);
    // Resolution of an alert never announced is not sent.
    let mut quiet = Evaluator::new(vec![rule(0)], Duration::from_secs(3600));
    quiet.silence("Busy", at(t0, 100));
    run(&mut quiet, t0, 50.0);
    assert!(run(&mut quiet, at(t0, 10), 1.0).is_empty());
}

#[test]
fn one_alert_per_label_set_and_vanished_series_resolve() {
    let rule = Rule::new("SlowRoute", Signal::InFlight, Condition::Gt, 1.0);
    let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    let t0 = Instant::now();
    let route = |r: &str, v: f64| Sample {
        labels: vec![("route".into(), r.into())],
        value: v,
    };
    let sent = eval.evaluate(t0, SystemTime::now(), |_| {
        vec![route("/a", 5.0), route("/b", 7.0), route("/c", 0.5)]
    });
    assert_eq!(sent.len(), 2);
    // The same label sets again: de-duplicated, nothing new.
    let sent = eval.evaluate(at(t0, 15), SystemTime::now(), |_| {
        vec![route("/a", 6.0), route("/b", 8.0)]
    });
    assert!(sent.is_empty());
    // /b disappears from the data: resolved.
    let sent = eval.evaluate(at(t0, 30), SystemTime::now(), |_| vec![route("/a", 6.0)]);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].is_resolved());
    assert_eq!(sent[0].alert().labels["route"], "/b");
    assert_eq!(eval.active()[0].message, "SlowRoute: 6 (threshold 1)");
}

#[test]
fn nan_never_fires() {
    let mut eval = Evaluator::new(vec![rule(0)], Duration::from_secs(3600));
    assert!(run(&mut eval, Instant::now(), f64::NAN).is_empty());
}

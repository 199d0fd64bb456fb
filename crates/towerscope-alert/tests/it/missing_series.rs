//! A rule that names a metric the registry never has (a typo in a rules file) sees no data
//! and cannot do its job: it is reported once, and again when the series shows up.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use towerscope_alert::{Alerting, Condition, Rule, Signal, Sources};
use towerscope_metrics::MetricsService;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

fn outcome(o: &str) -> Outcome {
    Outcome { outcome: o.into() }
}

fn warnings<'a>(text: &'a str, rule: &str) -> Vec<&'a str> {
    let field = format!("rule={rule} ");
    text.lines()
        .filter(|l| l.contains(" WARN ") && l.contains(&field))
        .collect()
}

/// The registry: a gauge, a labelled counter with one outcome seen so far, a histogram.
fn registry() -> (Registry, Family<Outcome, Counter>) {
    let mut registry = Registry::default();
    let depth = Gauge::<i64>::default();
    depth.set(3);
    registry.register("queue_depth", "Jobs waiting", depth);
    let logins = Family::<Outcome, Counter>::default();
    logins.get_or_create(&outcome("success")).inc();
    registry.register("logins", "Sign-ins", logins.clone());
    let jobs = Histogram::new([0.1, 1.0]);
    jobs.observe(0.5);
    registry.register("job_seconds", "Job durations", jobs);
    (registry, logins)
}

fn rules() -> Vec<Rule> {
    let gauge = |metric: &str| Signal::Gauge {
        metric: metric.into(),
        matchers: vec![],
    };
    let logins = |o: &str| Signal::CounterRate {
        metric: "logins".into(),
        matchers: vec![("outcome".into(), o.into())],
    };
    let p90 = |metric: &str| Signal::HistogramQuantile {
        metric: metric.into(),
        quantile: 0.9,
        matchers: vec![],
        by: None,
    };
    vec![
        Rule::new("QueueDeep", gauge("queue_depth"), Condition::Gt, 100.0),
        Rule::new("QueueDeepTypo", gauge("queue_depht"), Condition::Gt, 100.0),
        Rule::new("LoginsOk", logins("success"), Condition::Lt, 0.0),
        Rule::new("LoginsFailing", logins("failure"), Condition::Gt, 1.0),
        Rule::new("JobsSlow", p90("job_seconds"), Condition::Gt, 5.0),
        Rule::new("JobsSlowTypo", p90("job_second"), Condition::Gt, 5.0),
        Rule::new(
            "Errors",
            Signal::ErrorRate(towerscope_alert::RouteScope::Overall),
            Condition::Gt,
            5.0,
        ),
    ]
}

#[tokio::test]
async fn a_rule_reading_no_series_is_reported_once_and_again_when_it_reads_one() {
    let (logs, _guard) = crate::logs::capture();
    let (registry, logins) = registry();
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules(rules())
        .interval(Duration::from_secs(3600))
        .missing_series_after(Duration::ZERO)
        .spawn();
    for _ in 0..3 {
        alerting.evaluate_now();
    }
    let text = logs.text();
    for (rule, series) in [
        ("QueueDeepTypo", r#"series="queue_depht""#),
        (
            "LoginsFailing",
            r#"series="logins_total{outcome=\"failure\"}""#,
        ),
        ("JobsSlowTypo", r#"series="job_second_bucket""#),
    ] {
        let warned = warnings(&text, rule);
        assert_eq!(warned.len(), 1, "{rule} warned once:\n{text}");
        assert!(warned[0].contains(series), "{rule}: {}", warned[0]);
        assert!(warned[0].contains("misspelt"), "{}", warned[0]);
    }
    for rule in ["QueueDeep", "LoginsOk", "JobsSlow", "Errors"] {
        assert!(warnings(&text, rule).is_empty(), "{rule}:\n{text}");
    }

    // The first failed sign-in: the rule reads its series now, and says so once.
    logins.get_or_create(&outcome("failure")).inc();
    alerting.evaluate_now();
    alerting.evaluate_now();
    let text = logs.text();
    let told: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("reads its series now"))
        .collect();
    assert_eq!(told.len(), 1, "{text}");
    assert!(told[0].contains(" INFO ") && told[0].contains("rule=LoginsFailing"));
    assert_eq!(warnings(&text, "LoginsFailing").len(), 1, "{text}");
    alerting.shutdown().await;
}

#[tokio::test]
async fn a_missing_series_is_not_reported_before_the_wait_is_over() {
    let (logs, _guard) = crate::logs::capture();
    let (registry, _logins) = registry();
    let alerting = Alerting::builder(Sources::new(MetricsService::new(registry)))
        .rules(rules())
        .interval(Duration::from_secs(3600))
        .spawn(); // the default wait: 5 minutes
    for _ in 0..3 {
        alerting.evaluate_now();
    }
    let text = logs.text();
    assert!(!text.contains("misspelt"), "{text}");
    alerting.shutdown().await;
}

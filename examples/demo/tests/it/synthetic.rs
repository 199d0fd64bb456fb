//! The demo's synthetic probes, as `towerscope-demo` runs them: through its own listener,
//! into its registry, with a rule that pages when one keeps failing.

use std::time::{Duration, Instant, SystemTime};

use prometheus_client::registry::Registry;
use towerscope_alert::{Evaluator, Rule, Sample};
use towerscope_demo::{Config, Demo, SYNTHETIC_PROBES};
use towerscope_metrics::Format;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_pass_against_the_serving_demo() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut registry = Registry::default();
    let synthetics = towerscope_demo::synthetic_probes(addr)
        .every(Duration::from_millis(200))
        .metrics(&mut registry);
    let demo = Demo::with_registry(Config::default(), registry)
        .await
        .expect("demo");
    let metrics = demo.metrics().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(demo.serve(listener, async {
        let _ = stopped.await;
    }));
    let synthetics = synthetics.spawn().expect("valid probe names");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics.encode(Format::Prometheus);
        let passing = SYNTHETIC_PROBES.iter().all(|(probe, ..)| {
            text.contains(&format!("synthetic_probe_success{{probe=\"{probe}\"}} 1\n"))
        });
        if passing {
            break;
        }
        assert!(Instant::now() < deadline, "probes did not pass:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(synthetics);
    stop.send(()).expect("serving");
    server.await.expect("joined").expect("served");
}

#[test]
fn a_probe_failing_for_a_minute_fires_its_rule() {
    let rules: Vec<Rule> = towerscope_demo::alert_rules()
        .into_iter()
        .filter(|r| r.name.ends_with("ProbeFailing"))
        .collect();
    assert_eq!(rules.len(), SYNTHETIC_PROBES.len(), "one rule per probe");
    let mut eval = Evaluator::new(rules, Duration::from_secs(3600));
    // The orders probe fails, the user probe passes (what the rule reads from the registry).
    let success = |rule: &Rule| {
        let failing = rule.name == "OrdersProbeFailing";
        vec![Sample::single(if failing { 0.0 } else { 1.0 })]
    };
    let t0 = Instant::now();
    assert!(
        eval.evaluate(t0, SystemTime::now(), success).is_empty(),
        "pending first"
    );
    let fired = eval.evaluate(t0 + Duration::from_secs(61), SystemTime::now(), success);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].alert().name, "OrdersProbeFailing");
    assert!(
        fired[0].alert().message.contains("GET /orders"),
        "{fired:?}"
    );
}

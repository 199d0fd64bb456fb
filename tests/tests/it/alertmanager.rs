//! The demo's evaluator fires and resolves a rule, and a real Alertmanager shows the alert
//! arrive and leave (`GET /api/v2/alerts`).

use std::time::Duration;

use axum::body::Body;
use tower::ServiceExt as _;
use towerscope_alert::{Condition, RouteScope, Rule, Severity, Signal};
use towerscope_demo::{Config, Demo};
use towerscope_tests::{Component, eventually, free_port, require_program};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_and_resolve_there() {
    let Some(alertmanager) = require_program("prometheus-alertmanager") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .expect("config");
    let port = free_port();
    let mut server = Component::start(
        &alertmanager,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ],
        dir.path().join("alertmanager.log"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(30), || {
        let client = client.clone();
        let url = format!("{base}/-/ready");
        async move {
            let r = client.get(url).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
    assert!(
        ready.is_some(),
        "alertmanager did not start:\n{}",
        server.output()
    );

    let demo = Demo::new(Config {
        alertmanager: Some(base.clone()),
        alert_interval: Duration::from_millis(200),
        extra_rules: vec![
            Rule::new(
                "DemoErrorsOnErrorRoute",
                Signal::ErrorRate(RouteScope::Route("/error".into())),
                Condition::Gt,
                50.0,
            )
            .window(Duration::from_secs(2))
            .severity(Severity::Critical)
            .label("team", "shop")
            .message("{value}% of /error fails"),
        ],
        ..Config::default()
    })
    .await
    .expect("demo");
    for _ in 0..5 {
        let resp = demo
            .router()
            .oneshot(
                axum::http::Request::get("/error")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await
            .expect("resp");
        assert_eq!(resp.status(), 500);
        // Read to the end: a response dropped unread counts as cancelled, not failed.
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body");
    }

    let alerts = |client: reqwest::Client| {
        let url = format!("{base}/api/v2/alerts");
        async move {
            let r = client.get(url).send().await.ok()?;
            r.json::<serde_json::Value>().await.ok()
        }
    };
    let ours = |all: &serde_json::Value| -> Option<serde_json::Value> {
        all.as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "DemoErrorsOnErrorRoute")
            .cloned()
    };
    let fired = eventually(Duration::from_secs(30), || {
        let client = client.clone();
        async move { ours(&alerts(client).await?) }
    })
    .await
    .unwrap_or_else(|| panic!("the alert never reached Alertmanager:\n{}", server.output()));
    assert_eq!(fired["status"]["state"], "active");
    assert_eq!(fired["labels"]["severity"], "critical");
    assert_eq!(fired["labels"]["team"], "shop");
    assert_eq!(fired["annotations"]["description"], "100% of /error fails");
    assert_eq!(fired["generatorURL"], "http://127.0.0.1:8080/metrics");
    assert!(
        demo.alerting()
            .expect("alerts on")
            .active()
            .iter()
            .any(|a| a.name == "DemoErrorsOnErrorRoute")
    );

    // No more failures: after the 2 s window the rule resolves, and Alertmanager lets go.
    let gone = eventually(Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            let all = alerts(client).await?;
            ours(&all).is_none().then_some(())
        }
    })
    .await;
    assert!(
        gone.is_some(),
        "the alert stayed in Alertmanager:\n{}",
        server.output()
    );
    assert!(
        demo.alerting()
            .expect("alerts on")
            .active()
            .iter()
            .all(|a| a.name != "DemoErrorsOnErrorRoute")
    );
    assert!(server.running());
}

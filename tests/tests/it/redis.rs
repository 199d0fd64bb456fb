//! The Redis health check against a real redis-server on 127.0.0.1.

use std::time::Duration;

use towerscope_health::{CheckOptions, Health, RedisCheck, Status};
use towerscope_tests::{Component, eventually, free_port, require_program};

#[tokio::test]
async fn redis_check_follows_a_real_server() {
    let Some(redis_server) = require_program("redis-server") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let args = |port: u16| {
        vec![
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            dir.path().display().to_string(),
        ]
    };
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let health = Health::builder("1")
        .check(
            "redis",
            RedisCheck::new(client),
            CheckOptions::default()
                .cache_for(Duration::ZERO)
                .timeout(Duration::from_millis(500)),
        )
        .build();

    let server = Component::start(&redis_server, &args(port), dir.path().join("redis.log"));
    let up = eventually(Duration::from_secs(10), || {
        let health = health.clone();
        async move { (health.readiness().await.status == Status::Healthy).then_some(()) }
    })
    .await;
    assert!(
        up.is_some(),
        "redis never answered PONG:\n{}",
        server.output()
    );

    drop(server); // killed
    let down = eventually(Duration::from_secs(10), || {
        let health = health.clone();
        async move {
            let r = health.readiness().await;
            (r.status == Status::Unhealthy).then_some(r)
        }
    })
    .await
    .expect("redis going away makes readiness unhealthy");
    assert!(down.checks["redis"].error.is_some());
}

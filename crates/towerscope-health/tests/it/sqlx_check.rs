//! The sqlx pool check against a real SQLite database.
#![cfg(feature = "sqlx")]

use std::time::Duration;

use towerscope_health::{CheckOptions, Health, SqlxCheck, Status};

#[tokio::test]
async fn pool_check_follows_the_pool() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect("sqlite::memory:")
        .await
        .expect("sqlite");
    let health = Health::builder("1")
        .check(
            "db",
            SqlxCheck::new(pool.clone()),
            CheckOptions::default().cache_for(Duration::ZERO),
        )
        .build();
    assert_eq!(health.readiness().await.status, Status::Healthy);
    pool.close().await;
    let r = health.readiness().await;
    assert_eq!(r.status, Status::Unhealthy);
    assert!(
        r.checks["db"]
            .error
            .as_deref()
            .expect("error")
            .contains("acquire"),
        "{r:?}"
    );
}

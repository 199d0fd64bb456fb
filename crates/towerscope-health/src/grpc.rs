//! `grpc.health.v1` from the same checks, through tonic-health.

use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::{Health, Status};

/// Keeps a tonic-health reporter in step with readiness; see [`Health::sync_grpc`].
/// Dropping it (or calling [`GrpcHealthSync::shutdown`]) stops the task.
///
/// ```no_run
/// # async fn run(health: towerscope_health::Health) {
/// let (reporter, _health_service) = tonic_health::server::health_reporter();
/// let sync = health.sync_grpc(reporter, ["shop.Orders"], std::time::Duration::from_secs(5));
/// // ... serve; on shutdown:
/// sync.shutdown();
/// # }
/// ```
#[derive(Debug)]
pub struct GrpcHealthSync {
    task: tokio::task::JoinHandle<()>,
}

impl GrpcHealthSync {
    /// Stops updating the reporter.
    ///
    /// ```no_run
    /// # async fn run(health: towerscope_health::Health) {
    /// let (reporter, _service) = tonic_health::server::health_reporter();
    /// let sync = health.sync_grpc(reporter, ["shop.Orders"], std::time::Duration::from_secs(5));
    /// sync.shutdown(); // the reporter keeps its last status
    /// # }
    /// ```
    pub fn shutdown(self) {}
}

impl Drop for GrpcHealthSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn serving(status: Status) -> ServingStatus {
    match status {
        Status::Healthy | Status::Degraded => ServingStatus::Serving,
        Status::Unhealthy => ServingStatus::NotServing,
    }
}

impl Health {
    /// Serves `grpc.health.v1` from the same checks as `/ready`: a task evaluates readiness
    /// now and then every `every` (10 ms to a day), and sets the overall service (`""`) and each name in
    /// `services` to `SERVING` (healthy or degraded) or `NOT_SERVING` (unhealthy). HTTP and
    /// gRPC probes therefore report one truth; the check cache keeps the work to one run
    /// per check per interval. Must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn run(health: towerscope_health::Health) {
    /// use std::time::Duration;
    /// let (reporter, health_service) = tonic_health::server::health_reporter();
    /// let _sync = health.sync_grpc(reporter, ["shop.Orders"], Duration::from_secs(5));
    /// // tonic::transport::Server::builder().add_service(health_service) ...
    /// # drop(health_service);
    /// # }
    /// ```
    pub fn sync_grpc<I, S>(
        &self,
        reporter: HealthReporter,
        services: I,
        every: Duration,
    ) -> GrpcHealthSync
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let health = self.clone();
        let mut names: Vec<String> = vec![String::new()];
        names.extend(services.into_iter().map(Into::into));
        let every = every.clamp(Duration::from_millis(10), towerscope_core::MAX_PERIOD);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let status = serving(health.readiness().await.status);
                for name in &names {
                    reporter.set_service_status(name, status).await;
                }
            }
        });
        GrpcHealthSync { task }
    }
}

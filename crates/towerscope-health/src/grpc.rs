//! `grpc.health.v1` from the same checks, through tonic-health; and a check of another
//! server's `grpc.health.v1`.

use std::sync::OnceLock;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as PbServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;

use crate::check::{CheckFuture, HealthCheck};
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

/// Passes while a gRPC server answers `grpc.health.v1.Health/Check` for a service with
/// `SERVING`: the readiness check (or synthetic probe) of a gRPC dependency, as Kubernetes'
/// gRPC probes and `grpc_health_probe` ask it. `NOT_SERVING`, an unknown service
/// (`NOT_FOUND`) and a server that does not answer all fail, with the reason.
///
/// Its errors name the URI without user information or query string. `https://` URIs
/// connect with rustls and the system's root certificates when the `tls` feature is on
/// (default); for anything else (client certificates, an internal CA, interceptors) pass
/// the application's own channel to [`GrpcCheck::from_channel`].
///
/// ```
/// use towerscope_health::{CheckOptions, GrpcCheck, Health};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let inventory = GrpcCheck::new("http://127.0.0.1:50051".parse().unwrap()).service("shop.Inventory");
/// let health = Health::builder("1").check("inventory", inventory, CheckOptions::default()).build();
/// # });
/// ```
#[derive(Clone)]
pub struct GrpcCheck {
    /// Where to connect; a URI tonic cannot use is reported by every run.
    endpoint: Result<Endpoint, String>,
    /// Made at the first run (inside the runtime: a channel spawns its worker), then
    /// connected on use and reconnected, so a server that is down fails runs, not building.
    client: OnceLock<HealthClient<Channel>>,
    shown: String,
    service: String,
}

impl std::fmt::Debug for GrpcCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcCheck")
            .field("uri", &self.shown)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl GrpcCheck {
    /// A check of the server at `uri`, for the server as a whole (service `""`) until
    /// [`service`](Self::service) names one.
    ///
    /// ```
    /// let check = towerscope_health::GrpcCheck::new("http://inventory.internal:50051".parse().unwrap());
    /// # let _ = check;
    /// ```
    pub fn new(uri: http::Uri) -> Self {
        let shown = crate::http_check::shown(&uri);
        let https = uri.scheme_str() == Some("https");
        let endpoint = Endpoint::from(uri);
        #[cfg(feature = "tls")]
        let endpoint = if https {
            endpoint.tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
        } else {
            Ok(endpoint)
        };
        #[cfg(not(feature = "tls"))]
        let endpoint = if https {
            Err("https needs the `tls` feature of towerscope-health".to_owned())
        } else {
            Ok(endpoint)
        };
        Self {
            endpoint: endpoint.map_err(|e| e.to_string()),
            client: OnceLock::new(),
            shown,
            service: String::new(),
        }
    }

    /// A check over the application's own channel (its TLS, timeouts, load balancing).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
    /// let check = towerscope_health::GrpcCheck::from_channel(channel).service("shop.Inventory");
    /// # let _ = check;
    /// # });
    /// ```
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            endpoint: Err("unused: the channel was given".to_owned()),
            client: OnceLock::from(HealthClient::new(channel)),
            shown: "channel".to_owned(),
            service: String::new(),
        }
    }

    /// The service to ask about, as the server registered it (`package.Service`).
    ///
    /// ```
    /// let check = towerscope_health::GrpcCheck::new("http://127.0.0.1:50051".parse().unwrap())
    ///     .service("shop.orders.v1.Orders");
    /// # let _ = check;
    /// ```
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    async fn run(&self) -> Result<(), String> {
        let fail = |what: String| {
            format!(
                "grpc.health.v1 {} service {:?}: {what}",
                self.shown, self.service
            )
        };
        let mut client = match self.client.get() {
            Some(client) => client.clone(),
            None => {
                let endpoint = self.endpoint.as_ref().map_err(|e| fail(e.clone()))?;
                self.client
                    .get_or_init(|| HealthClient::new(endpoint.connect_lazy()))
                    .clone()
            }
        };
        let request = HealthCheckRequest {
            service: self.service.clone(),
        };
        let response = client.check(request).await.map_err(|status| {
            let mut what = format!("{:?}: {}", status.code(), status.message());
            let mut source = std::error::Error::source(&status);
            while let Some(s) = source {
                // tonic repeats a cause in its message and at several levels of the chain.
                let text = s.to_string();
                if !what.contains(&text) {
                    what.push_str(": ");
                    what.push_str(&text);
                }
                source = s.source();
            }
            fail(what)
        })?;
        match response.into_inner().status() {
            PbServingStatus::Serving => Ok(()),
            other => Err(fail(other.as_str_name().to_owned())),
        }
    }
}

impl HealthCheck for GrpcCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(self.run())
    }
}

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
    /// `services` to `SERVING` (healthy or degraded) or `NOT_SERVING` (unhealthy; at once
    /// when [`drain`](Health::drain) is called). HTTP and gRPC probes therefore report one
    /// truth; the check cache keeps the work to one run per check per interval. Must be
    /// called inside a tokio runtime.
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
            let mut drained = std::pin::pin!(health.drained());
            let mut draining = false;
            loop {
                if draining {
                    ticker.tick().await;
                } else {
                    // Draining is said at once, not at the next tick.
                    let tick = std::pin::pin!(ticker.tick());
                    if let futures_util::future::Either::Right(_) =
                        futures_util::future::select(tick, drained.as_mut()).await
                    {
                        draining = true;
                    }
                }
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
/// connect with rustls when the `tls` feature is on (default): the system's root
/// certificates and any added by [`add_root_pem`](Self::add_root_pem), a new connection
/// and a full handshake each run (no session resumption), so the server certificate's
/// expiry is known at every run ([`HealthCheck::certificate_expiry`], exported as
/// `…_tls_cert_expiry_timestamp_seconds`) and a renewal is seen at the next one; with
/// [`min_cert_validity`](Self::min_cert_validity) a certificate about to expire fails the
/// check. For anything else (client certificates, interceptors, a long-lived connection)
/// pass the application's own channel to [`GrpcCheck::from_channel`].
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
    /// Where to connect; a URI tonic cannot use is reported by every run. For `https://`,
    /// the same host and port as `http://` (the TLS is this check's own), with the
    /// `https://` URI as the requests' origin.
    endpoint: Result<Endpoint, String>,
    /// Made at the first run (inside the runtime: a channel spawns its worker), then
    /// connected on use and reconnected, so a server that is down fails runs, not building.
    /// Not used over TLS, which connects afresh each run.
    client: OnceLock<HealthClient<Channel>>,
    shown: String,
    service: String,
    #[cfg(feature = "tls")]
    tls: TlsParts,
}

/// What a check over TLS keeps between runs.
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
struct TlsParts {
    /// The URI is `https://`: this check makes the TLS connection.
    own: bool,
    roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    min_cert_validity: Option<Duration>,
    seen_expiry: crate::tls::SeenExpiry,
    config: OnceLock<Result<std::sync::Arc<rustls::ClientConfig>, String>>,
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
        let shown = towerscope_core::redacted_uri(&uri);
        let https = uri.scheme_str() == Some("https");
        #[cfg(feature = "tls")]
        let endpoint = if https {
            plain_twin(&uri).map(|twin| Endpoint::from(twin).origin(uri))
        } else {
            Ok(Endpoint::from(uri))
        };
        #[cfg(not(feature = "tls"))]
        let endpoint = if https {
            Err("https needs the `tls` feature of towerscope-health".to_owned())
        } else {
            Ok(Endpoint::from(uri))
        };
        Self {
            endpoint,
            client: OnceLock::new(),
            shown,
            service: String::new(),
            #[cfg(feature = "tls")]
            tls: TlsParts {
                own: https,
                ..TlsParts::default()
            },
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
            #[cfg(feature = "tls")]
            tls: TlsParts::default(),
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

    /// Also trusts the certificates of a PEM text (an internal CA) for `https://`.
    ///
    /// # Errors
    /// A text without a certificate, or one that does not decode.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pem = rcgen::generate_simple_self_signed(vec!["inventory.internal".into()])?.cert.pem();
    /// let check = towerscope_health::GrpcCheck::new("https://inventory.internal:50051".parse()?)
    ///     .add_root_pem(pem.as_bytes())?;
    /// # let _ = check;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, crate::InvalidPem> {
        self.tls.roots.extend(crate::tls::roots_from_pem(pem)?);
        self.tls.config = OnceLock::new();
        Ok(self)
    }

    /// Also fails while the server's certificate expires within `window`. A plain
    /// `http://` URI, or the application's channel, then fails: this check sees no
    /// certificate there.
    ///
    /// ```
    /// use std::time::Duration;
    /// let check = towerscope_health::GrpcCheck::new("https://inventory.internal:50051".parse().unwrap())
    ///     .min_cert_validity(Duration::from_secs(14 * 24 * 3600));
    /// # let _ = check;
    /// ```
    #[cfg(feature = "tls")]
    pub fn min_cert_validity(mut self, window: Duration) -> Self {
        self.tls.min_cert_validity = Some(window);
        self
    }

    fn fail(&self, what: String) -> String {
        format!(
            "grpc.health.v1 {} service {:?}: {what}",
            self.shown, self.service
        )
    }

    async fn run(&self) -> Result<(), String> {
        #[cfg(feature = "tls")]
        if self.tls.own {
            return self.run_tls().await;
        }
        let client = match self.client.get() {
            Some(client) => client.clone(),
            None => {
                let endpoint = self.endpoint.as_ref().map_err(|e| self.fail(e.clone()))?;
                self.client
                    .get_or_init(|| HealthClient::new(endpoint.connect_lazy()))
                    .clone()
            }
        };
        self.ask(client).await?;
        #[cfg(feature = "tls")]
        if self.tls.min_cert_validity.is_some() {
            return Err(self.fail(format!(
                "no TLS certificate to check ({})",
                if self.endpoint.is_ok() {
                    "plain HTTP"
                } else {
                    "the application's channel"
                }
            )));
        }
        Ok(())
    }

    /// A run over a connection of its own: the handshake shows the certificate.
    #[cfg(feature = "tls")]
    async fn run_tls(&self) -> Result<(), String> {
        use std::sync::{Arc, Mutex, PoisonError};
        let endpoint = self.endpoint.as_ref().map_err(|e| self.fail(e.clone()))?;
        let config = self
            .tls
            .config
            .get_or_init(|| {
                crate::tls::client_config(&self.tls.roots, vec![b"h2".to_vec()]).map(Arc::new)
            })
            .clone()
            .map_err(|e| self.fail(format!("client setup: {e}")))?;
        let shown = Arc::new(Mutex::new(None));
        let connector = TlsConnector {
            config,
            shown: shown.clone(),
        };
        let channel = endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| self.fail(error_chain(&e)))?;
        // What the certificate says is known whatever the answer: record it first.
        let leaf = shown.lock().unwrap_or_else(PoisonError::into_inner).take();
        let not_after = leaf
            .map(|der: rustls_pki_types::CertificateDer<'static>| crate::tls::cert_not_after(&der));
        if let Some(Ok(secs)) = &not_after {
            self.tls.seen_expiry.set(*secs);
        }
        self.ask(HealthClient::new(channel)).await?;
        if let Some(window) = self.tls.min_cert_validity {
            let not_after =
                not_after.unwrap_or_else(|| Err("the server showed no certificate".to_owned()));
            crate::tls::valid_for(not_after, window).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Asks the server about the service.
    async fn ask(&self, mut client: HealthClient<Channel>) -> Result<(), String> {
        let request = HealthCheckRequest {
            service: self.service.clone(),
        };
        let response = client.check(request).await.map_err(|status| {
            let what = format!("{:?}: {}", status.code(), status.message());
            self.fail(with_sources(what, &status))
        })?;
        match response.into_inner().status() {
            PbServingStatus::Serving => Ok(()),
            other => Err(self.fail(other.as_str_name().to_owned())),
        }
    }
}

/// `what`, then each source of `e` that it does not already say (tonic repeats a cause in
/// its message and at several levels of the chain).
fn with_sources(mut what: String, e: &dyn std::error::Error) -> String {
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !what.contains(&text) {
            what.push_str(": ");
            what.push_str(&text);
        }
        source = s.source();
    }
    what
}

#[cfg(feature = "tls")]
fn error_chain(e: &dyn std::error::Error) -> String {
    with_sources(e.to_string(), e)
}

/// The `http://` twin of an `https://` URI (the same host and port; 443 when it names
/// none), for tonic's connector, which leaves `http://` to the check's own TLS.
#[cfg(feature = "tls")]
fn plain_twin(uri: &http::Uri) -> Result<http::Uri, String> {
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or("no host in the URI")?;
    let port = uri.port_u16().unwrap_or(443);
    http::Uri::builder()
        .scheme("http")
        .authority(format!("{host}:{port}"))
        .path_and_query("/")
        .build()
        .map_err(|e| e.to_string())
}

/// Connects over TCP, then TLS with the check's configuration, and keeps the server's
/// leaf certificate for the run.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct TlsConnector {
    config: std::sync::Arc<rustls::ClientConfig>,
    shown: std::sync::Arc<std::sync::Mutex<Option<rustls_pki_types::CertificateDer<'static>>>>,
}

#[cfg(feature = "tls")]
impl tower_service::Service<http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, std::io::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        use std::io::{Error, ErrorKind};
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default();
            // An IPv6 address is bracketed in a URI, not in a socket address or a name.
            let bare = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = rustls_pki_types::ServerName::try_from(bare.clone())
                .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
            let tcp = tokio::net::TcpStream::connect((bare.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(name, tcp)
                .await?;
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|der| der.clone().into_owned());
            *this
                .shown
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = leaf;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

impl HealthCheck for GrpcCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(self.run())
    }

    /// The `notAfter` of the leaf certificate of the last `https://` connection (it
    /// stays while later runs fail to connect).
    #[cfg(feature = "tls")]
    fn certificate_expiry(&self) -> Option<std::time::SystemTime> {
        self.tls.seen_expiry.at()
    }
}

//! grpc.health.v1 follows the same checks as /ready.
#![cfg(feature = "grpc")]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use towerscope_health::{CheckOptions, Health, check_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_reports_the_same_truth() {
    let (health, up) = crate::common::toggled_db(CheckOptions::default().cache_for(Duration::ZERO));
    let (addr, reporter) = health_server().await;
    let _sync = health.sync_grpc(reporter, ["shop.Orders"], Duration::from_millis(50));
    let client = health_client(addr).await;
    wait_for(&client, "", ServingStatus::Serving).await;
    wait_for(&client, "shop.Orders", ServingStatus::Serving).await;
    up.store(false, Ordering::SeqCst);
    wait_for(&client, "", ServingStatus::NotServing).await;
    wait_for(&client, "shop.Orders", ServingStatus::NotServing).await;
    up.store(true, Ordering::SeqCst);
    wait_for(&client, "shop.Orders", ServingStatus::Serving).await;
}

/// `drain` reaches gRPC probes at once, not at the next sync (an hour away here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_is_not_serving_at_once() {
    let health = Health::builder("1").build();
    let (addr, reporter) = health_server().await;
    let _sync = health.sync_grpc(reporter, ["shop.Orders"], Duration::from_secs(3600));
    let client = health_client(addr).await;
    wait_for(&client, "shop.Orders", ServingStatus::Serving).await;
    health.drain();
    wait_for(&client, "shop.Orders", ServingStatus::NotServing).await;
}

async fn health_client(addr: std::net::SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

/// Waits up to 2 s for `service` to report `want`.
async fn wait_for(
    client: &HealthClient<tonic::transport::Channel>,
    service: &str,
    want: ServingStatus,
) {
    for _ in 0..100 {
        let status = client
            .clone()
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(want as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{service} never became {want:?}");
}

#[tokio::test(start_paused = true)]
async fn a_sync_interval_past_a_day_syncs_daily() {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let health = Health::builder("1")
        .check(
            "db",
            check_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, String>(()) }
            }),
            CheckOptions::default().cache_for(Duration::ZERO),
        )
        .build();
    let (reporter, _service) = tonic_health::server::health_reporter();
    let _sync = health.sync_grpc(reporter, ["shop.Orders"], Duration::MAX);
    // Before: the task panicked scheduling its second tick ("overflow when adding duration
    // to instant"), and the gRPC status froze at the first one.
    tokio::time::sleep(Duration::from_secs(24 * 3600 + 1)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "now, and a day later");
}

/// A tonic server with a health service; returns its address and the reporter.
async fn health_server() -> (std::net::SocketAddr, tonic_health::server::HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, reporter)
}

#[tokio::test]
async fn a_grpc_check_passes_only_while_the_service_is_serving() {
    use towerscope_health::{GrpcCheck, HealthCheck as _};
    let (addr, reporter) = health_server().await;
    let uri: http::Uri = format!("http://{addr}").parse().expect("uri");
    let orders = GrpcCheck::new(uri.clone()).service("shop.Orders");

    reporter
        .set_service_status("shop.Orders", tonic_health::ServingStatus::Serving)
        .await;
    assert_eq!(orders.check().await, Ok(()));
    assert_eq!(
        GrpcCheck::new(uri.clone()).check().await,
        Ok(()),
        "the server as a whole"
    );

    reporter
        .set_service_status("shop.Orders", tonic_health::ServingStatus::NotServing)
        .await;
    assert_eq!(
        orders.check().await,
        Err(format!(
            "grpc.health.v1 http://{addr}/ service \"shop.Orders\": NOT_SERVING"
        ))
    );

    let unknown = GrpcCheck::new(uri).service("shop.Nothing");
    let err = unknown.check().await.expect_err("not registered");
    assert!(
        err.ends_with("service \"shop.Nothing\": NotFound: service not registered"),
        "{err}"
    );

    // Over the application's own channel.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect_lazy();
    reporter
        .set_service_status("shop.Orders", tonic_health::ServingStatus::Serving)
        .await;
    let over_channel = GrpcCheck::from_channel(channel).service("shop.Orders");
    assert_eq!(over_channel.check().await, Ok(()));
}

#[tokio::test]
async fn a_grpc_check_of_a_server_that_is_not_there_fails_with_the_reason() {
    use towerscope_health::{GrpcCheck, HealthCheck as _};
    let refused = GrpcCheck::new("http://admin:pw@127.0.0.1:1/?token=t".parse().expect("uri"));
    let err = refused.check().await.expect_err("nothing listens there");
    assert!(
        err.starts_with(
            "grpc.health.v1 http://[REDACTED]@127.0.0.1:1/?[REDACTED] service \"\": Unavailable: "
        ),
        "{err}"
    );
    assert!(!err.contains("pw") && !err.contains("token=t"), "{err}");
    assert!(
        err.contains("Connection refused") || err.contains("connect"),
        "{err}"
    );
}

#[test]
fn a_grpc_check_is_built_outside_a_runtime() {
    // A channel spawns its worker; the check makes it at its first run, inside one.
    let check = towerscope_health::GrpcCheck::new("http://127.0.0.1:1".parse().expect("uri"))
        .service("shop.Orders");
    assert!(format!("{check:?}").contains("shop.Orders"));
}

/// gRPC over TLS, the check making its own connection: the certificates it trusts, the
/// expiry of the certificate it was shown (followed across a renewal), and the window.
#[cfg(feature = "tls")]
mod tls {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use tonic_health::ServingStatus;
    use towerscope_health::{CheckOptions, GrpcCheck, Health, HealthCheck as _};

    use crate::common::tls::{Ca, Shown};

    /// A tonic health server over TLS, showing what `shown` holds at each handshake.
    async fn serve_tls(shown: Arc<Shown>) -> (SocketAddr, tonic_health::server::HealthReporter) {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(shown);
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Handshakes one at a time; one that fails (an untrusting client) is skipped.
        let incoming = futures_util::stream::unfold(listener, move |listener| {
            let acceptor = acceptor.clone();
            async move {
                loop {
                    let (tcp, _) = listener.accept().await.ok()?;
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        return Some((Ok::<_, std::io::Error>(tls), listener));
                    }
                }
            }
        });
        let (reporter, service) = tonic_health::server::health_reporter();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );
        (addr, reporter)
    }

    fn seconds(at: std::time::SystemTime) -> u64 {
        at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
    }

    #[tokio::test]
    async fn a_grpc_check_over_tls_knows_the_certificate_and_follows_a_renewal() {
        let ca = Ca::new();
        let (cert, key, in_a_month) = ca.issue(30);
        let shown = Shown::new(cert, key);
        let (addr, reporter) = serve_tls(shown.clone()).await;
        reporter
            .set_service_status("shop.Inventory", ServingStatus::Serving)
            .await;
        let uri: http::Uri = format!("https://{addr}").parse().expect("uri");

        let untrusting = GrpcCheck::new(uri.clone()).service("shop.Inventory");
        let err = untrusting.check().await.expect_err("an unknown CA");
        assert!(err.contains("certificate"), "{err}");
        assert_eq!(untrusting.certificate_expiry(), None);

        let check = GrpcCheck::new(uri.clone())
            .service("shop.Inventory")
            .add_root_pem(ca.pem.as_bytes())
            .expect("a CA certificate");
        assert_eq!(check.check().await, Ok(()));
        let seen = check.certificate_expiry().expect("seen");
        assert_eq!(seconds(seen), seconds(in_a_month));

        // Renewed: the next run connects afresh (no resumed session) and sees it.
        let (cert, key, in_a_year) = ca.issue(365);
        shown.replace(cert, key);
        assert_eq!(check.check().await, Ok(()));
        let seen = check.certificate_expiry().expect("seen");
        assert_eq!(seconds(seen), seconds(in_a_year));

        // A failing answer still records what the handshake showed.
        let (cert, key, in_a_week) = ca.issue(7);
        shown.replace(cert, key);
        reporter
            .set_service_status("shop.Inventory", ServingStatus::NotServing)
            .await;
        let err = check.check().await.expect_err("not serving");
        assert!(err.ends_with("NOT_SERVING"), "{err}");
        assert_eq!(
            seconds(check.certificate_expiry().expect("seen")),
            seconds(in_a_week)
        );
    }

    #[tokio::test]
    async fn a_grpc_certificate_window_fails_a_check_and_is_exported() {
        let ca = Ca::new();
        let (cert, key, in_a_month) = ca.issue(30);
        // The server as a whole (service "") is serving from the start.
        let (addr, _reporter) = serve_tls(Shown::new(cert, key)).await;
        let check = |days: u64| {
            GrpcCheck::new(format!("https://{addr}").parse().expect("uri"))
                .add_root_pem(ca.pem.as_bytes())
                .expect("pem")
                .min_cert_validity(Duration::from_secs(days * 86_400))
        };
        assert_eq!(check(14).check().await, Ok(()));
        let err = check(40).check().await.expect_err("30 days left, 40 asked");
        assert!(
            err.starts_with(&format!(
                "grpc.health.v1 https://{addr}/ service \"\": certificate expires at "
            )),
            "{err}"
        );
        assert!(err.ends_with("under the 40d 0h required"), "{err}");

        let mut registry = prometheus_client::registry::Registry::default();
        let health = Health::builder("1")
            .check("inventory", check(14), CheckOptions::default())
            .metrics(&mut registry)
            .build();
        health.readiness().await;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let sample = format!(
            "health_check_tls_cert_expiry_timestamp_seconds{{check=\"inventory\"}} {}",
            seconds(in_a_month)
        );
        assert!(text.contains(&sample), "{sample} in {text}");
    }

    #[tokio::test]
    async fn a_grpc_certificate_window_without_tls_fails() {
        let (addr, _reporter) = super::health_server().await;
        let plain = GrpcCheck::new(format!("http://{addr}").parse().expect("uri"))
            .min_cert_validity(Duration::from_secs(1));
        assert_eq!(
            plain.check().await,
            Err(format!(
                "grpc.health.v1 http://{addr}/ service \"\": no TLS certificate to check (plain HTTP)"
            ))
        );
    }
}

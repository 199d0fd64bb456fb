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
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);

    let status_of = |service: &'static str| {
        let mut client = client.clone();
        async move {
            client
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .ok()
        }
    };
    let wait_for = |service: &'static str, want: ServingStatus| async move {
        for _ in 0..100 {
            if status_of(service).await == Some(want as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{service} never became {want:?}");
    };
    wait_for("", ServingStatus::Serving).await;
    wait_for("shop.Orders", ServingStatus::Serving).await;
    up.store(false, Ordering::SeqCst);
    wait_for("", ServingStatus::NotServing).await;
    wait_for("shop.Orders", ServingStatus::NotServing).await;
    up.store(true, Ordering::SeqCst);
    wait_for("shop.Orders", ServingStatus::Serving).await;
    let _ = &mut client;
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

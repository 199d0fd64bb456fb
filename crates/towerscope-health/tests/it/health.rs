//! Readiness transitions, containment of bad checks, caching, services and metrics.
//! (The disk and memory checks need the default `system` feature.)
#![cfg(feature = "system")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use tower::ServiceExt;
use towerscope_health::{
    CheckOptions, Criticality, DiskSpaceCheck, Health, HttpCheck, MemoryCheck, Status, TcpCheck,
    check_fn,
};

fn no_cache() -> CheckOptions {
    CheckOptions::default()
        .cache_for(Duration::ZERO)
        .timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn transitions_follow_a_real_listener() {
    let db = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let db_addr = db.local_addr().expect("addr");
    let search = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let search_addr = search.local_addr().expect("addr");
    let health = Health::builder("1.2.3")
        .check("database", TcpCheck::new(db_addr.to_string()), no_cache())
        .check(
            "search",
            TcpCheck::new(search_addr.to_string()),
            no_cache().criticality(Criticality::NonCritical),
        )
        .build();

    assert_eq!(health.readiness().await.status, Status::Healthy);

    drop(search); // the non-critical dependency goes away
    let r = health.readiness().await;
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(r.checks["search"].status, Status::Degraded);
    assert!(
        r.checks["search"]
            .error
            .as_deref()
            .expect("error")
            .contains("connect")
    );
    assert_eq!(r.checks["database"].status, Status::Healthy);

    drop(db); // the critical one too
    let r = health.readiness().await;
    assert_eq!(r.status, Status::Unhealthy);

    // Both come back on the same ports.
    let _db = tokio::net::TcpListener::bind(db_addr)
        .await
        .expect("rebind db");
    let _search = tokio::net::TcpListener::bind(search_addr)
        .await
        .expect("rebind search");
    let r = health.readiness().await;
    assert_eq!(r.status, Status::Healthy, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_and_hanging_checks_are_contained() {
    let health = Health::builder("1")
        .check(
            "panics",
            check_fn(|| async {
                if true {
                    panic!("driver bug");
                }
                Ok::<_, String>(())
            }),
            no_cache(),
        )
        .check(
            "hangs",
            check_fn(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, String>(())
            }),
            no_cache().timeout(Duration::from_millis(100)),
        )
        .check(
            "fine",
            check_fn(|| async { Ok::<_, String>(()) }),
            no_cache(),
        )
        .build();
    let start = Instant::now();
    let r = health.readiness().await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a hanging check held readiness up"
    );
    assert_eq!(r.status, Status::Unhealthy);
    assert_eq!(r.checks["panics"].status, Status::Unhealthy);
    assert!(
        r.checks["panics"]
            .error
            .as_deref()
            .expect("error")
            .contains("driver bug")
    );
    assert_eq!(r.checks["hangs"].status, Status::Unhealthy);
    assert!(
        r.checks["hangs"]
            .error
            .as_deref()
            .expect("error")
            .contains("timed out")
    );
    assert_eq!(r.checks["fine"].status, Status::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_probes_runs_each_check_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let health = Health::builder("1")
        .check(
            "counted",
            check_fn(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, String>(())
                }
            }),
            CheckOptions::default().cache_for(Duration::from_secs(60)),
        )
        .build();
    let probes: Vec<_> = (0..50)
        .map(|_| {
            let h = health.clone();
            tokio::spawn(async move { h.readiness().await })
        })
        .collect();
    for p in probes {
        assert_eq!(p.await.expect("probe").status, Status::Healthy);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A server answering `/ok` with 200 and `/down` with 503; its address.
async fn upstream() -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/down",
            axum::routing::get(|| async { http::StatusCode::SERVICE_UNAVAILABLE }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn http_check_against_a_live_server() {
    let addr = upstream().await;
    let health = Health::builder("1")
        .check(
            "up",
            HttpCheck::new(format!("http://{addr}/ok").parse().expect("uri")),
            no_cache(),
        )
        .check(
            "down",
            HttpCheck::new(format!("http://{addr}/down").parse().expect("uri")),
            no_cache(),
        )
        .check("memory", MemoryCheck::new(100.0), no_cache())
        .build();
    let r = health.readiness().await;
    assert_eq!(r.checks["up"].status, Status::Healthy);
    assert_eq!(r.checks["down"].status, Status::Unhealthy);
    assert!(
        r.checks["down"]
            .error
            .as_deref()
            .expect("error")
            .contains("status 503")
    );
    assert_eq!(r.checks["memory"].status, Status::Healthy);
}

#[tokio::test]
async fn an_http_check_error_shows_no_credentials_or_query() {
    let addr = upstream().await;
    let check = |url: String| HttpCheck::new(url.parse().expect("uri"));
    let down = check(format!("http://admin:s3cret@{addr}/down?token=t0k"));
    assert!(!format!("{down:?}").contains("s3cret"), "{down:?}");
    let health = Health::builder("1")
        .check("down", down, no_cache())
        .check(
            "refused",
            check("http://admin:s3cret@127.0.0.1:1/health?token=t0k".into()),
            no_cache(),
        )
        .build();
    let r = health.readiness().await;
    for (name, place) in [
        ("down", addr.to_string()),
        ("refused", "127.0.0.1:1".into()),
    ] {
        let error = r.checks[name].error.as_deref().expect("an error");
        assert!(
            !error.contains("s3cret") && !error.contains("t0k"),
            "{error}"
        );
        let path = if name == "down" { "/down" } else { "/health" };
        assert!(
            error.contains(&format!("http://[REDACTED]@{place}{path}?[REDACTED]")),
            "{error}"
        );
    }
}

#[tokio::test]
async fn services_answer_json_with_the_right_codes_and_export_metrics() {
    let mut registry = Registry::default();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = healthy.clone();
    let health = Health::builder("9.9.9")
        .check(
            "db",
            check_fn(move || {
                let ok = flag.load(Ordering::SeqCst);
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err("connection refused")
                    }
                }
            }),
            no_cache(),
        )
        .metrics(&mut registry)
        .build();
    let app = axum::Router::new()
        .route_service("/health", health.liveness_service())
        .route_service("/ready", health.readiness_service());
    let get = |path: &'static str| {
        let app = app.clone();
        async move {
            let resp = app
                .oneshot(Request::get(path).body(Body::empty()).expect("req"))
                .await
                .expect("ok");
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
            )
        }
    };
    let (code, live) = get("/health").await;
    assert_eq!(code, 200);
    assert_eq!(live["status"], "healthy");
    assert_eq!(live["version"], "9.9.9");
    assert!(live["uptime_seconds"].as_f64().expect("uptime") >= 0.0);
    assert!(live["start_time"].as_f64().expect("start") > 1.7e9);

    let (code, ready) = get("/ready").await;
    assert_eq!(code, 200);
    assert_eq!(ready["checks"]["db"]["status"], "healthy");

    healthy.store(false, Ordering::SeqCst);
    let (code, ready) = get("/ready").await;
    assert_eq!(code, 503);
    assert_eq!(ready["status"], "unhealthy");
    assert_eq!(ready["checks"]["db"]["error"], "connection refused");
    // Liveness does not follow the dependency.
    assert_eq!(get("/health").await.0, 200);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains("health_check_up{check=\"db\"} 0\n"), "{text}");
    assert!(
        text.contains("health_status{status=\"unhealthy\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("health_status{status=\"healthy\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("health_check_duration_seconds{check=\"db\"}"),
        "{text}"
    );

    // Shutting down: not ready whatever the dependency says, alive all the same.
    healthy.store(true, Ordering::SeqCst);
    assert_eq!(get("/ready").await.0, 200);
    assert!(
        get("/ready").await.1.get("draining").is_none(),
        "said only while draining"
    );
    health.drain();
    let (code, ready) = get("/ready").await;
    assert_eq!(code, 503);
    assert_eq!(
        ready,
        serde_json::json!({"status": "unhealthy", "draining": true, "checks": {}})
    );
    assert_eq!(get("/health").await.0, 200);
}

#[tokio::test]
async fn probes_answer_get_and_head_and_refuse_other_methods_without_checking() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let health = Health::builder("1")
        .check(
            "db",
            check_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok::<(), &str>(()) }
            }),
            no_cache(),
        )
        .build();
    let app = axum::Router::new()
        .route_service("/health", health.liveness_service())
        .route_service("/ready", health.readiness_service());
    let call = |method: http::Method, path: &'static str| {
        let app = app.clone();
        async move {
            let resp = app
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(path)
                        .body(Body::empty())
                        .expect("req"),
                )
                .await
                .expect("ok");
            let status = resp.status().as_u16();
            let allow = resp
                .headers()
                .get("allow")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
            (status, allow, json)
        }
    };
    for path in ["/health", "/ready"] {
        for method in [http::Method::GET, http::Method::HEAD] {
            let (status, allow, json) = call(method.clone(), path).await;
            assert_eq!((status, allow), (200, None), "{method} {path}");
            assert_eq!(json["status"], "healthy", "{method} {path}");
        }
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "/ready checked for GET and HEAD"
    );
    for path in ["/health", "/ready"] {
        for method in [
            http::Method::POST,
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::PATCH,
        ] {
            let (status, allow, json) = call(method.clone(), path).await;
            assert_eq!(status, 405, "{method} {path}");
            assert_eq!(allow.as_deref(), Some("GET, HEAD"), "{method} {path}");
            assert_eq!(json["error"], "method not allowed: use GET or HEAD");
        }
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "no check run for a refused method"
    );
}

#[tokio::test]
async fn disk_space_check_compares_with_its_threshold() {
    let health = Health::builder("1")
        .check("disk-any", DiskSpaceCheck::new("/", 0.0), no_cache())
        .check(
            "disk-impossible",
            DiskSpaceCheck::new("/", 100.1),
            no_cache(),
        )
        .build();
    let r = health.readiness().await;
    assert_eq!(r.checks["disk-any"].status, Status::Healthy, "{r:?}");
    assert_eq!(r.checks["disk-impossible"].status, Status::Unhealthy);
    assert!(
        r.checks["disk-impossible"]
            .error
            .as_deref()
            .expect("error")
            .contains("free")
    );
}

/// Counts events whose message is given.
#[derive(Clone, Default)]
struct CountMessages(Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountMessages {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Msg(String);
        impl tracing::field::Visit for Msg {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut m = Msg(String::new());
        event.record(&mut m);
        self.0.lock().expect("lock").push(m.0);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_status_change_is_logged_once() {
    use tracing_subscriber::layer::SubscriberExt;
    let seen = CountMessages::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
    let (health, up) = crate::common::toggled_db(no_cache());
    for _ in 0..3 {
        health.readiness().await;
    }
    up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        health.readiness().await;
    }
    up.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        health.readiness().await;
    }
    let seen = seen.0.lock().expect("lock").clone();
    let changes = seen
        .iter()
        .filter(|m| *m == "health check status changed")
        .count();
    let readiness = seen.iter().filter(|m| *m == "readiness changed").count();
    assert_eq!(changes, 3, "first status, down, up: {seen:?}");
    assert_eq!(readiness, 3, "{seen:?}");
}

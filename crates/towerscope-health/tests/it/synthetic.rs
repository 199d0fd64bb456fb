//! Synthetic probes against a real HTTP server: run on their schedule, exported, failing
//! and recovering with the server, and cut off when they hang or panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;
use towerscope_health::{HttpCheck, Synthetics, check_fn};

/// `GET /checkout` answers 200 while `up`, 503 otherwise.
async fn shop(up: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/checkout",
        axum::routing::get(move || {
            let up = up.load(Ordering::SeqCst);
            async move {
                if up {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text
}

/// The value of the sample that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn probes_run_on_their_schedule_and_follow_the_server() {
    let up = Arc::new(AtomicBool::new(true));
    let addr = shop(up.clone()).await;
    let mut registry = Registry::default();
    let synthetics = Synthetics::builder()
        .probe(
            "checkout",
            HttpCheck::new(format!("http://{addr}/checkout").parse().expect("uri")),
        )
        .every(Duration::from_millis(100))
        .metrics(&mut registry)
        .spawn()
        .expect("valid names");
    let success = "synthetic_probe_success{probe=\"checkout\"} ";
    let runs = "synthetic_probe_runs_total{probe=\"checkout\",outcome=\"success\"} ";

    // Nobody calls run_now: the schedule alone runs the probe, again and again.
    until("three scheduled runs", || {
        sample(&exposition(&registry), runs).filter(|n| *n >= 3.0)
    })
    .await;
    assert_eq!(sample(&exposition(&registry), success), Some(1.0));
    let duration = sample(
        &exposition(&registry),
        "synthetic_probe_duration_seconds{probe=\"checkout\"} ",
    )
    .expect("a duration");
    assert!(duration > 0.0 && duration < 10.0, "{duration}");

    up.store(false, Ordering::SeqCst); // the checkout breaks
    until("the failure", || {
        sample(&exposition(&registry), success).filter(|v| *v == 0.0)
    })
    .await;
    let result = &synthetics.results()["checkout"];
    assert!(!result.success);
    assert!(
        result.error.as_deref().expect("error").contains("503"),
        "{result:?}"
    );
    assert!(
        sample(
            &exposition(&registry),
            "synthetic_probe_runs_total{probe=\"checkout\",outcome=\"failure\"} "
        )
        .is_some_and(|n| n >= 1.0)
    );

    up.store(true, Ordering::SeqCst); // and is fixed
    until("the recovery", || {
        sample(&exposition(&registry), success).filter(|v| *v == 1.0)
    })
    .await;

    // Dropping the handle stops the schedule.
    drop(synthetics);
    tokio::time::sleep(Duration::from_millis(150)).await; // a round in flight ends
    let stopped = sample(&exposition(&registry), runs);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        sample(&exposition(&registry), runs),
        stopped,
        "no runs after the drop"
    );
}

#[tokio::test]
async fn a_hanging_or_panicking_probe_fails_alone() {
    let synthetics = Synthetics::builder()
        .probe(
            "hangs",
            check_fn(|| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            }),
        )
        .probe(
            "panics",
            check_fn(|| async {
                if true {
                    panic!("journey script bug");
                }
                Ok::<(), String>(())
            }),
        )
        .probe("fine", check_fn(|| async { Ok::<(), String>(()) }))
        .timeout(Duration::from_millis(200))
        .every(Duration::from_secs(3600))
        .spawn()
        .expect("valid names");
    let started = tokio::time::Instant::now();
    let results = synthetics.run_now().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    assert_eq!(
        results["hangs"].error.as_deref(),
        Some("timed out after 200 ms")
    );
    assert_eq!(
        results["panics"].error.as_deref(),
        Some("check panicked: journey script bug")
    );
    assert!(results["fine"].success, "{:?}", results["fine"]);
}

#[tokio::test]
async fn extreme_intervals_and_timeouts_neither_panic_nor_stop_the_schedule() {
    // Duration::MAX as "for ever", zero as "as often as possible": clamped, not a panic in
    // the scheduling task (which would stop the probes for good) or in the caller.
    for (every, timeout) in [
        (Duration::MAX, Duration::MAX),
        (Duration::ZERO, Duration::ZERO),
        (Duration::ZERO, Duration::MAX),
    ] {
        let synthetics = Synthetics::builder()
            .probe("ok", check_fn(|| async { Ok::<(), String>(()) }))
            .every(every)
            .timeout(timeout)
            .spawn()
            .expect("valid names");
        let results = synthetics.run_now().await;
        // With no time at all, a check passes only if it is done at its first poll.
        assert!(timeout.is_zero() || results["ok"].success, "{results:?}");
    }
    // With the shortest interval the schedule keeps running rounds.
    let synthetics = Synthetics::builder()
        .probe("ok", check_fn(|| async { Ok::<(), String>(()) }))
        .every(Duration::ZERO)
        .spawn()
        .expect("valid names");
    until("scheduled rounds", || {
        synthetics.results().get("ok").map(|_| ())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_first_round_waits_when_asked() {
    use std::sync::atomic::AtomicUsize;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let synthetics = Synthetics::builder()
        .probe(
            "home",
            check_fn(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok::<(), String>(()) }
            }),
        )
        .every(Duration::from_secs(30))
        .first_round_after(Duration::from_secs(5))
        .spawn()
        .expect("valid");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the delay");
    assert!(synthetics.results().is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the first round after 5 s");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "then every 30 s");

    // A delay past what the clock holds is taken as a day, without a panic.
    let far = Synthetics::builder()
        .probe("far", check_fn(|| async { Ok::<(), String>(()) }))
        .first_round_after(Duration::MAX)
        .spawn()
        .expect("valid");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(far.results().is_empty());
}

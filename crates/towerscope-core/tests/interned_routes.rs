//! Interned axum route templates (`Route::Static` from `resolve_route`), in a process of
//! their own and one after another: the table they fill is process-wide, and the last
//! check fills it to its cap, which would change what any check after it sees.
#![cfg(feature = "axum")]

use std::sync::{Arc, Mutex};

use http::Request;
use tower::ServiceExt;
use towerscope_core::{Route, resolve_route};

/// At most this many templates are interned per process (documented on `Route::Static`).
const MAX_INTERNED_ROUTES: usize = 1024;
/// Longest template interned, in bytes (documented on `Route::Static`).
const MAX_INTERNED_LEN: usize = 512;

type Seen = Arc<Mutex<Vec<Route>>>;

/// `app` with a middleware that records each request's route into `seen`.
fn recording(app: axum::Router, seen: &Seen) -> axum::Router {
    let seen = seen.clone();
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(resolve_route(&req, None));
                next.run(req).await
            }
        },
    ))
}

/// Routes `/r0` … `/r{n-1}`, recorded into `seen`.
fn numbered(n: usize, seen: &Seen) -> axum::Router {
    let mut app = axum::Router::new();
    for i in 0..n {
        app = app.route(&format!("/r{i}"), axum::routing::get(|| async { "ok" }));
    }
    recording(app, seen)
}

async fn get(app: &axum::Router, path: &str) {
    let req = Request::get(path)
        .body(axum::body::Body::empty())
        .expect("req");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), 200, "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interned_templates() {
    right_however_requests_interleave().await;
    a_nested_router_template_is_found_by_its_text().await;
    right_on_many_threads_at_once().await;
    past_the_cap_routes_are_copied_and_stay_right().await;
}

async fn right_however_requests_interleave() {
    let seen = Seen::default();
    // More routes than a thread remembers, visited in an order that evicts them.
    let app = numbered(20, &seen);
    let order: Vec<usize> = (0..200).map(|k| (k * 7) % 20).collect();
    for &i in &order {
        get(&app, &format!("/r{i}")).await;
    }
    // A second router with the same templates: other allocations, the same text.
    get(&numbered(3, &seen), "/r2").await;
    let seen = seen.lock().expect("lock");
    for (route, &i) in seen.iter().zip(&order) {
        assert_eq!(route.as_str(), format!("/r{i}"));
        assert!(matches!(route, Route::Static(_)), "{route:?}");
    }
    let first_r2 = &seen[order.iter().position(|&i| i == 2).expect("r2")];
    assert_eq!(seen[200].as_str(), "/r2");
    assert!(
        std::ptr::eq(seen[200].as_str(), first_r2.as_str()),
        "one interned text per template"
    );
}

async fn a_nested_router_template_is_found_by_its_text() {
    // axum builds a nested router's template anew for every request.
    let seen = Seen::default();
    let app = axum::Router::new().nest_service("/api", numbered(1, &seen));
    for _ in 0..50 {
        get(&app, "/api/r0").await;
    }
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 50);
    assert_eq!(seen[0].as_str(), "/api/r0");
    assert!(
        seen.iter()
            .all(|r| matches!(r, Route::Static(t) if std::ptr::eq(*t, seen[0].as_str()))),
        "one interned text for the repeated template: {seen:?}"
    );
}

async fn right_on_many_threads_at_once() {
    // Requests on every worker thread at once, each thread with its own recent templates
    // and all of them interning into the one table.
    let seen = Seen::default();
    let app = numbered(20, &seen);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                for k in 0..100 {
                    get(&app, &format!("/r{}", (t * 3 + k * 7) % 20)).await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 800);
    let texts: std::collections::HashSet<*const u8> = seen
        .iter()
        .map(|r| match r {
            Route::Static(t) => t.as_ptr(),
            other => panic!("not interned: {other:?}"),
        })
        .collect();
    assert_eq!(
        texts.len(),
        20,
        "one text per template, whichever thread asked"
    );
    let names: std::collections::BTreeSet<&str> = seen.iter().map(Route::as_str).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("/r{i}")).collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect());
}

async fn past_the_cap_routes_are_copied_and_stay_right() {
    let seen = Seen::default();
    let n = MAX_INTERNED_ROUTES + 100;
    let app = numbered(n, &seen);
    for i in 0..n {
        get(&app, &format!("/r{i}")).await;
    }
    let long = format!("/{}", "x".repeat(MAX_INTERNED_LEN));
    let app_long = recording(
        axum::Router::new().route(&long, axum::routing::get(|| async { "ok" })),
        &seen,
    );
    get(&app_long, &long).await;
    // Again, now that this thread remembers them as not interned.
    get(&app, &format!("/r{}", n - 1)).await;
    get(&app_long, &long).await;

    let seen = seen.lock().expect("lock");
    for (i, route) in seen.iter().take(n).enumerate() {
        assert_eq!(route.as_str(), format!("/r{i}"));
    }
    // "/r0" … "/r19" and "/api/r0" were interned before: 1003 of these fill the table.
    let interned = seen
        .iter()
        .filter(|r| matches!(r, Route::Static(_)))
        .count();
    assert_eq!(interned, MAX_INTERNED_ROUTES - 1, "up to the cap");
    assert!(
        seen[MAX_INTERNED_ROUTES..n]
            .iter()
            .all(|r| matches!(r, Route::Inline(_))),
        "past the cap a route is copied"
    );
    assert_eq!(seen[n].as_str(), long);
    assert!(
        matches!(seen[n], Route::Matched(_)),
        "too long to intern or copy inline"
    );
    assert_eq!(seen[n + 1].as_str(), format!("/r{}", n - 1));
    assert!(matches!(seen[n + 1], Route::Inline(_)));
    assert_eq!(seen[n + 2].as_str(), long);
    assert!(matches!(seen[n + 2], Route::Matched(_)));
}

//! Operational endpoints: with a token, `/metrics`, `/dashboard` and its API refuse every
//! request without exactly that bearer token; probes and the RUM endpoints stay open; and
//! nothing operational is on the application router unless it is merged.

use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt as _;
use towerscope::Observability;

const PROTECTED: [&str; 6] = [
    "/metrics",
    "/dashboard",
    "/api/dashboard/metrics",
    "/api/dashboard/alerts",
    "/api/dashboard/health",
    "/api/dashboard/history",
];

async fn status(app: &axum::Router, path: &str, auth: Option<&str>) -> StatusCode {
    let mut req = Request::get(path);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let req = req.body(Body::empty()).expect("request");
    app.clone().oneshot(req).await.expect("infallible").status()
}

#[tokio::test(flavor = "current_thread")]
async fn a_token_guards_metrics_and_the_dashboard() {
    let token = "0p3rations-t0ken";
    let obs = Observability::builder("ops")
        .without_logging()
        .ops_token(token)
        .build()
        .expect("builds");
    let ops: axum::Router = obs.router();
    let wrong = [
        None,
        Some("Bearer"),
        Some("Bearer "),
        Some("bearer 0p3rations-t0ke"),
        Some("Bearer 0p3rations-t0ken-and-more"),
        Some("Basic MHAzcmF0aW9ucy10MGtlbg=="),
        Some("0p3rations-t0ken"),
    ];
    for path in PROTECTED {
        for auth in wrong {
            assert_eq!(
                status(&ops, path, auth).await,
                StatusCode::UNAUTHORIZED,
                "{path} with {auth:?}"
            );
        }
        assert_eq!(
            status(&ops, path, Some(&format!("Bearer {token}"))).await,
            StatusCode::OK,
            "{path} with the token"
        );
    }
    // Probes and the browser endpoints need no token.
    for path in ["/health", "/ready", "/rum.js"] {
        assert_eq!(status(&ops, path, None).await, StatusCode::OK, "{path}");
    }

    // The same through the plain service.
    let response = obs
        .ops_service()
        .oneshot(
            Request::get("/metrics")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The application router has none of it unless asked.
    let app: axum::Router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "shop" }))
        .layer(obs.layer());
    for path in PROTECTED
        .iter()
        .chain(&["/health", "/ready", "/rum.js", "/api/rum"])
    {
        assert_eq!(
            status(&app, path, None).await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    obs.shutdown().await;
}

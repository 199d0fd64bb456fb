//! # towerscope-hyper-example
//!
//! towerscope on plain hyper 1.x and hyper-util, with no web framework: a small catalogue
//! API whose routes come from a fixed table (so metric labels stay bounded), behind
//! `Observability::layer()`, with the operational endpoints (`/metrics`, `/health`,
//! `/ready`, `/dashboard`, `/api/dashboard/*`, `/rum.js`, `/api/rum`) on a separate admin
//! listener through `Observability::ops_service()`.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /products` | the catalogue as JSON |
//! | `GET /products/{id}` | one product, or 404 |
//! | `GET /fail` | always 503 |
//! | `GET /panic` | panics (caught: 500) |
//!
//! Every route answers `GET` and `HEAD`; any other method gets 405 with `Allow: GET, HEAD`.
//! The accept loops survive accept errors the way `axum::serve` does: an error about one
//! connection (reset, aborted) is skipped, any other (out of file descriptors) is logged
//! and retried after a second, so it neither ends the server nor spins.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let obs = towerscope_hyper_example::observability(towerscope::Observability::builder("catalogue"))?;
//! let app = tokio::net::TcpListener::bind("127.0.0.1:8082").await?;
//! let admin = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
//! towerscope_hyper_example::serve(&obs, app, admin, std::future::pending()).await?;
//! obs.shutdown().await;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use towerscope::core::{PeerAddr, Route, RouteClassifier};
use towerscope::{BuildError, Observability, ObservabilityBuilder};

/// The catalogue.
const PRODUCTS: [(u64, &str, f64); 3] =
    [(1, "kettle", 24.5), (2, "teapot", 18.0), (3, "mug", 6.25)];

/// Route templates for the labels: every path maps to one of these or to `unmatched`.
fn route_of(path: &str) -> Option<Route> {
    match path {
        "/products" => Some(Route::Static("/products")),
        "/fail" => Some(Route::Static("/fail")),
        "/panic" => Some(Route::Static("/panic")),
        p if p
            .strip_prefix("/products/")
            .is_some_and(|id| !id.contains('/')) =>
        {
            Some(Route::Static("/products/{id}"))
        }
        _ => None,
    }
}

/// Builds the observability stack for this service: `builder` with the route table as the
/// classifier.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), towerscope::BuildError> {
/// let obs = towerscope_hyper_example::observability(
///     towerscope::Observability::builder("catalogue").without_logging(),
/// )?;
/// assert!(obs.health().is_some());
/// # Ok(()) }
/// ```
pub fn observability(builder: ObservabilityBuilder) -> Result<Observability, BuildError> {
    builder
        .version(env!("CARGO_PKG_VERSION"))
        .route_classifier(RouteClassifier::new(|req| route_of(req.uri.path())))
        .build()
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The application itself: a plain `async fn` from request to response.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let request = http::Request::get("/products/2").body(()).unwrap();
/// let response = towerscope_hyper_example::handle(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
pub async fn handle<B>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "method not allowed"}),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let path = request.uri().path();
    let response = match path {
        "/products" => json(
            StatusCode::OK,
            PRODUCTS
                .iter()
                .map(
                    |(id, name, price)| serde_json::json!({"id": id, "name": name, "price": price}),
                )
                .collect(),
        ),
        "/fail" => {
            tracing::warn!("the catalogue store is unavailable");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "store unavailable"}),
            )
        }
        "/panic" => panic!("a bug in the catalogue"),
        p => match p.strip_prefix("/products/").map(str::parse::<u64>) {
            Some(Ok(id)) => match PRODUCTS.iter().find(|(i, ..)| *i == id) {
                Some((id, name, price)) => json(
                    StatusCode::OK,
                    serde_json::json!({"id": id, "name": name, "price": price}),
                ),
                None => json(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"error": "no such product"}),
                ),
            },
            _ => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "not found"}),
            ),
        },
    };
    Ok(response)
}

/// Serves the application on `app` (behind `obs.layer()`, connections measured) and the
/// operational endpoints on `admin`, until `shutdown` completes; then drains open
/// connections.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let obs = towerscope_hyper_example::observability(
///     towerscope::Observability::builder("catalogue").without_logging(),
/// )?;
/// let app = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let (shop, ops) = (app.local_addr()?, admin.local_addr()?);
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(async move {
///     towerscope_hyper_example::serve(&obs, app, admin, async { stopped.await.ok(); }).await
/// });
/// let shop_answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
///     use std::io::{Read as _, Write as _};
///     let mut conn = std::net::TcpStream::connect(shop)?;
///     conn.write_all(b"GET /products HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n")?;
///     let mut answer = String::new();
///     conn.read_to_string(&mut answer)?;
///     Ok(answer)
/// }).await??;
/// assert!(shop_answer.starts_with("HTTP/1.1 200"), "{shop_answer}");
/// let ops_answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
///     use std::io::{Read as _, Write as _};
///     let mut conn = std::net::TcpStream::connect(ops)?;
///     conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: ops\r\nconnection: close\r\n\r\n")?;
///     let mut answer = String::new();
///     conn.read_to_string(&mut answer)?;
///     Ok(answer)
/// }).await??;
/// assert!(ops_answer.starts_with("HTTP/1.1 200"), "{ops_answer}");
/// stop.send(()).ok();
/// server.await??;
/// # Ok(()) }
/// ```
pub async fn serve(
    obs: &Observability,
    app: tokio::net::TcpListener,
    admin: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let service = tower::ServiceBuilder::new()
        .layer(obs.layer())
        .service_fn(handle::<Incoming>);
    let ops = obs.ops_service();
    let connections = obs.connections().cloned();
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = accept(&app, "api") => {
                let (stream, peer) = accepted;
                // The peer address, for the access log's `client_addr`.
                let service = tower::ServiceBuilder::new()
                    .map_request(move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(PeerAddr(peer));
                        req
                    })
                    .service(service.clone());
                match &connections {
                    Some(tracker) => spawn_connection(&graceful, tracker.track(stream), service),
                    None => spawn_connection(&graceful, stream, service),
                }
            }
            (stream, _) = accept(&admin, "admin") => {
                spawn_connection(&graceful, stream, ops.clone());
            }
            () = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
    Ok(())
}

/// The next connection on `listener`. An error about that one connection (reset or aborted
/// before it was accepted) is skipped; any other (`EMFILE`: out of file descriptors) is
/// logged and retried after a second, as `axum::serve` does: returning it would end the
/// server, retrying at once would spin and flood the log while the condition lasts.
async fn accept(
    listener: &tokio::net::TcpListener,
    name: &'static str,
) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                tracing::error!(listener = name, error = %e, "accept failed; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2) on a task, watched for graceful shutdown.
fn spawn_connection<IO, S, B>(graceful: &GracefulShutdown, io: IO, service: S)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

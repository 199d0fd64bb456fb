//! # towerscope-interop
//!
//! The service the [W3C Trace Context test suite](https://github.com/w3c/trace-context/tree/main/test)
//! drives. It accepts `POST /test` with a JSON array of `{"url": ..., "arguments": [...]}`
//! and, for each entry in order, POSTs `arguments` as JSON to `url`. The call goes through
//! [`TraceClientLayer`] inside the server span that [`TraceLayer`] opened for `/test`, so
//! the suite sees how towerscope extracts, continues and injects `traceparent` and
//! `tracestate`.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! let app = towerscope_interop::app(&SdkTracerProvider::builder().build());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Only `http://` URLs are called, at most [`MAX_CASES`] per request, each given
//! [`CALL_TIMEOUT`] to answer (then `504`); answers are read to their end and dropped, never
//! held. It is a test fixture that makes requests to addresses its caller names, so bind it
//! to loopback.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde::Deserialize;
use tower::ServiceExt as _;
use towerscope_core::ObserveService;
use towerscope_trace::{TraceClientLayer, TraceLayer};

/// The most entries one `POST /test` may list.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower::ServiceExt as _;
/// use towerscope_interop::MAX_CASES;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let case = serde_json::json!({ "url": "http://127.0.0.1:1/", "arguments": [] });
/// let too_many = serde_json::Value::Array(vec![case; MAX_CASES + 1]);
/// let req = http::Request::post("/test")
///     .header("content-type", "application/json")
///     .body(axum::body::Body::from(too_many.to_string()))?;
/// let resp = towerscope_interop::app(&provider).oneshot(req).await?;
/// assert_eq!(resp.status(), 400); // nothing was called
/// # Ok(()) }
/// ```
pub const MAX_CASES: usize = 256;

/// How long one listed call may take, its answer read to the end, before `POST /test` gives
/// up with `504` (a URL where nothing answers would otherwise hold the suite's request for
/// ever).
///
/// ```
/// assert_eq!(towerscope_interop::CALL_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One entry of the suite's request.
///
/// ```
/// use towerscope_interop::Case;
/// let case: Case = serde_json::from_str(r#"{"url": "http://127.0.0.1:9000/", "arguments": [{"a": 1}]}"#).unwrap();
/// assert_eq!(case.url, "http://127.0.0.1:9000/");
/// assert!(serde_json::from_str::<Case>(r#"{"url": "http://x/", "extra": 1}"#).is_err()); // unknown fields refused
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Where to POST.
    pub url: String,
    /// What to POST, as JSON.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

type TracedClient = ObserveService<Client<HttpConnector, Full<Bytes>>, TraceClientLayer<SdkTracer>>;

#[derive(Clone)]
struct Caller {
    client: TracedClient,
    timeout: Duration,
}

/// The interop service: `POST /test` behind [`TraceLayer`], its calls through
/// [`TraceClientLayer`], both with tracers from `provider`; each call given
/// [`CALL_TIMEOUT`].
///
/// ```
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let app: axum::Router = towerscope_interop::app(&provider);
/// # let _ = app;
/// ```
pub fn app(provider: &SdkTracerProvider) -> Router {
    app_with_timeout(provider, CALL_TIMEOUT)
}

/// [`app`], each listed call given `timeout` instead of [`CALL_TIMEOUT`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower::ServiceExt as _;
/// // Something that accepts connections and never answers.
/// let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let case = serde_json::json!([{ "url": format!("http://{}/", silent.local_addr()?), "arguments": [] }]);
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let app = towerscope_interop::app_with_timeout(&provider, Duration::from_millis(100));
/// let req = http::Request::post("/test").body(axum::body::Body::from(case.to_string()))?;
/// assert_eq!(app.oneshot(req).await?.status(), 504);
/// # Ok(()) }
/// ```
pub fn app_with_timeout(provider: &SdkTracerProvider, timeout: Duration) -> Router {
    use opentelemetry::trace::TracerProvider as _;
    let tracer = provider.tracer("towerscope-interop");
    let client = tower::ServiceBuilder::new()
        .layer(TraceClientLayer::new(tracer.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http());
    Router::new()
        .route("/test", post(test))
        .with_state(Caller { client, timeout })
        .layer(TraceLayer::new(tracer))
}

async fn test(State(caller): State<Caller>, body: Bytes) -> (StatusCode, String) {
    let cases: Vec<Case> = match serde_json::from_slice(&body) {
        Ok(cases) => cases,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid test request: {e}"),
            );
        }
    };
    if cases.len() > MAX_CASES {
        return (
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_CASES} entries per request"),
        );
    }
    for (i, case) in cases.iter().enumerate() {
        let uri: http::Uri = match case.url.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http")) => uri,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("entry {i}: url is not an http:// URL"),
                );
            }
        };
        let body = serde_json::to_vec(&case.arguments).unwrap_or_default();
        let request = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            return (StatusCode::BAD_REQUEST, format!("entry {i}: bad request"));
        };
        let call = async {
            let response = caller.client.clone().oneshot(request).await?;
            // Read the answer to its end, so the client span ends with it, a frame at a
            // time: however long it is, none of it is kept. A body error ends the call
            // like its end (the span records it).
            let mut body = response.into_body();
            while let Some(Ok(_)) = body.frame().await {}
            Ok::<_, hyper_util::client::legacy::Error>(())
        };
        match tokio::time::timeout(caller.timeout, call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return (StatusCode::BAD_GATEWAY, format!("entry {i}: {e}")),
            Err(_) => {
                return (
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("entry {i}: no answer within {:?}", caller.timeout),
                );
            }
        }
    }
    (StatusCode::OK, String::new())
}

//! The inventory service the shop calls when an order is placed: a second service, so
//! every order is a two-hop trace (shop server span → shop client span → inventory server
//! span) and the log lines of both services carry the same `trace_id`.

use std::net::SocketAddr;

use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::trace::SdkTracer;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;
use towerscope_core::ObserveService;
use towerscope_log::AccessLogLayer;
use towerscope_request_id::{RequestIdClient, RequestIdClientLayer, RequestIdLayer};
use towerscope_trace::{TraceClientLayer, TraceLayer};

/// What the shop asks the inventory for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub(crate) user_id: u64,
    pub(crate) amount: f64,
}

/// Starts the inventory service on an ephemeral loopback port, traced with `tracer` (a
/// tracer whose resource names the inventory service).
pub(crate) async fn start(tracer: SdkTracer) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/reservations", post(reserve))
        .layer(AccessLogLayer::new())
        .layer(TraceLayer::new(tracer))
        // The shop sends its request ID; the inventory logs under it. (A separate service
        // has its own registry; this in-process stand-in keeps its metrics to itself.)
        .layer(RequestIdLayer::new(&mut Registry::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "inventory service stopped");
        }
    });
    Ok(addr)
}

#[tracing::instrument(skip_all, fields(user_id = r.user_id))]
async fn reserve(Json(r): Json<Reservation>) -> Json<serde_json::Value> {
    tracing::info!(amount = r.amount, "stock reserved");
    Json(serde_json::json!({ "reserved": true }))
}

/// The shop's client for the inventory: a client span and the request ID on every call.
#[derive(Debug, Clone)]
pub(crate) struct InventoryClient {
    base: String,
    client: ObserveService<
        RequestIdClient<Client<HttpConnector, Full<Bytes>>>,
        TraceClientLayer<SdkTracer>,
    >,
}

/// Why the inventory could not reserve.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InventoryError {
    #[error("inventory unreachable: {0}")]
    Unreachable(#[from] hyper_util::client::legacy::Error),
    #[error("inventory answered {0}")]
    Status(u16),
}

impl InventoryClient {
    pub(crate) fn new(addr: SocketAddr, tracer: SdkTracer) -> Self {
        let client = tower::ServiceBuilder::new()
            .layer(TraceClientLayer::new(tracer))
            .layer(RequestIdClientLayer::new())
            .service(Client::builder(TokioExecutor::new()).build_http());
        Self {
            base: format!("http://{addr}"),
            client,
        }
    }

    pub(crate) async fn reserve(&self, reservation: &Reservation) -> Result<(), InventoryError> {
        let body = serde_json::to_vec(reservation).unwrap_or_default();
        let request = axum::http::Request::post(format!("{}/reservations", self.base))
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| InventoryError::Status(0))?;
        let response = self.client.clone().oneshot(request).await?;
        let status = response.status();
        // Read to the end, which ends the client span.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(InventoryError::Status(status.as_u16()))
        }
    }
}

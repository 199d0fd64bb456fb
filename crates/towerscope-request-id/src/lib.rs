//! # towerscope-request-id
//!
//! Correlation IDs for tower services. [`RequestIdLayer`] gives every request an ID (the
//! client's, when valid, or a new UUID v7), and makes it visible everywhere it is needed:
//!
//! | where | how |
//! |---|---|
//! | handlers | `Extension<RequestId>`, or the `x-request-id` request header |
//! | every log line written while serving the request | the `request_id` field of the `request` span, entered on every poll |
//! | the response | the `x-request-id` header (also on panic and timeout responses made inside) |
//! | calls to other services | [`RequestIdClientLayer`], or [`RequestId::current`] for reqwest |
//!
//! ```
//! use axum::{Router, routing::get};
//! use prometheus_client::registry::Registry;
//! use towerscope_request_id::RequestIdLayer;
//!
//! let mut registry = Registry::default();
//! let app: Router = Router::new()
//!     .route("/", get(|| async { tracing::info!("hello"); "hi" }))
//!     // outermost: everything else runs inside the request span
//!     .layer(RequestIdLayer::new(&mut registry));
//! ```
//!
//! ## Bad input
//! An inbound ID with CR/LF or other control bytes, spaces, quotes, non-ASCII bytes, an
//! empty value, more than 128 bytes, or sent in several headers is replaced by a fresh one,
//! never echoed into a response or a log line, and counted in
//! `towerscope_request_id_rejected_total{reason}`.
//!
//! ## Cancel and panic
//! Nothing is held but the span: dropping the future or body closes it. A panic response
//! produced by `CatchPanicLayer` inside this layer gets the header like any other.

mod client;
mod id;
mod layer;
mod span;

pub use client::{RequestIdClient, RequestIdClientLayer};
pub use id::{Generator, IdRules, Rejection, RequestId, request_id_from};
pub use layer::{
    CORRELATION_ID_HEADER, REQUEST_ID_HEADER, RequestIdBody, RequestIdBuilder, RequestIdLayer,
    RequestIdService, ResponseFuture,
};
pub use span::SPAN_TARGET;

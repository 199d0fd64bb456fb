//! # towerscope-trace
//!
//! Distributed tracing for tower services: [`TraceLayer`] opens an OpenTelemetry server
//! span per request, its parent read by W3C Trace Context (Level 2) done strictly, because
//! the stock OpenTelemetry propagator reads only the first header of each name and keeps
//! only the sampled flag:
//!
//! - [`TraceParent`]: exactly one `traceparent` header; version `ff`, all-zero IDs,
//!   upper-case hex, wrong lengths and extra fields on version `00` are refused (a new trace
//!   starts); future versions are read leniently; the `sampled` and `random` flags are kept.
//! - [`TraceState`]: every `tracestate` header joined; invalid members dropped; more than
//!   32 members or a repeated key discards the list; written back in at most 512 characters.
//!
//! ```
//! use towerscope_trace::{TraceParent, TraceState};
//! let mut headers = http::HeaderMap::new();
//! headers.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
//! headers.insert("tracestate", "rojo=00f067aa0ba902b7".parse().unwrap());
//! let parent = TraceParent::from_headers(&headers).unwrap();
//! let state = TraceState::from_headers(&headers);
//! assert!(parent.sampled());
//! assert_eq!(state.to_string(), "rojo=00f067aa0ba902b7");
//! ```
//!
//! Which formats are read and written is the `OTEL_PROPAGATORS` list ([`Propagators`]):
//! W3C Trace Context and baggage by default, B3 single or multi-header on request, or none.
//!
//! [`TracingConfig`] sets up export (OTLP over gRPC or HTTP, the standard `OTEL_*`
//! variables); [`Tracing::metrics`] counts the spans exported and lost, and a failing
//! collector is logged once when exports start to fail and once when they recover.
//!
//! ## Bad input
//! Nothing here panics or allocates in proportion to hostile input beyond a fixed bound:
//! `tracestate` headers past 8 KiB in total, or with more members than the limit allows,
//! are discarded without reading further.
//!
//! ## Features
//! - `axum` (default): route templates from axum's `MatchedPath`, and
//!   [`TraceLayer::for_axum`], which answers with axum's body type so that a dropped span
//!   costs no body wrapper.
//! - `tls` (default): OTLP export to `https://` collectors, trusting the system's roots and
//!   the CAs named by `OTEL_EXPORTER_OTLP_CERTIFICATE` ([`TracingConfig::otlp_certificate`]),
//!   showing a client certificate to collectors that require one
//!   ([`TracingConfig::otlp_client_identity`], `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
//!   `…_CLIENT_KEY`).

#[cfg(feature = "axum")]
mod axum_body;
mod b3;

/// Header names as constants: a lookup by `&str` parses the name every time.
pub(crate) mod names {
    use http::HeaderName;
    pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static(crate::TRACEPARENT);
    pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static(crate::TRACESTATE);
    pub(crate) const BAGGAGE: HeaderName = HeaderName::from_static(crate::BAGGAGE);
    pub(crate) const B3: HeaderName = HeaderName::from_static("b3");
    /// The request-ID header's name, as text.
    pub(crate) const REQUEST_ID_TEXT: &str = "x-request-id";
    pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_TEXT);
}
mod baggage;
mod bridge;
mod client;
mod export;
mod noop;
mod propagators;
mod record;
mod server;
mod setup;
mod traceparent;
mod tracestate;

#[cfg(feature = "axum")]
pub use axum_body::{AxumTraceFuture, AxumTraceLayer, AxumTraceService};
pub use b3::{B3Format, extract_b3};
pub use baggage::{BAGGAGE, MAX_BAGGAGE_LEN, MAX_BAGGAGE_MEMBERS, parse_baggage};
pub use bridge::tracing_layer;
pub use client::{ClientSpanObserver, TraceClientLayer, inject};
pub use noop::NoopExporter;
pub use propagators::Propagators;
pub use record::record_error;
pub use server::{SpanObserver, TraceLayer, TraceService, parent_context};
pub use setup::{
    ConfigError, MAX_BATCH_QUEUE_SIZE, OtlpProtocol, SamplerConfig, SetupError, Tracing,
    TracingConfig,
};
pub use traceparent::{FLAG_RANDOM, FLAG_SAMPLED, TRACEPARENT, TraceParent, TraceParentError};
pub use tracestate::{MAX_LEN, MAX_MEMBERS, TRACESTATE, TraceState};

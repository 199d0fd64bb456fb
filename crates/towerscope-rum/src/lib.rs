//! # towerscope-rum
//!
//! Real-user monitoring: what the browser tells us.
//!
//! - [`RUM_JS`], served at `/rum.js`: a small collector written here (no dependencies, no
//!   CDN) that reports navigation timing, Core Web Vitals (LCP, INP, CLS) and FCP, JavaScript
//!   errors, and `fetch` timings, batched and sent with `navigator.sendBeacon` as
//!   `text/plain` (no CORS preflight) when the page is hidden or closed, and periodically.
//! - [`Rum`]'s ingestion service at `POST /api/rum`: a 64 KiB body limit, a strict schema
//!   whose refusals name the field ([`parse_beacon`]), a per-client rate limit,
//!   configurable CORS, page and API URLs reduced to route templates ([`PageTemplates`]),
//!   values checked (finite, non-negative, plausible), the browser reduced to a family.
//! - Accepted data becomes Prometheus histograms `rum_lcp_seconds`, `rum_inp_seconds`,
//!   `rum_cls`, `rum_fcp_seconds`, `rum_ttfb_seconds` labelled by `page` and `rating`
//!   (good / needs_improvement / poor by the Core Web Vitals thresholds),
//!   `rum_page_load_seconds`, `rum_api_request_duration_seconds`, `rum_js_errors_total`,
//!   `rum_beacons_total{outcome}`, and a log event per browser error.
//!
#![cfg_attr(feature = "axum", doc = "```")]
#![cfg_attr(not(feature = "axum"), doc = "```ignore")]
//! use prometheus_client::registry::Registry;
//! use towerscope_rum::{PageTemplates, Rum};
//! let mut registry = Registry::default();
//! let rum = Rum::builder()
//!     .pages(PageTemplates::new(["/", "/products/{id}", "/api/orders"]))
//!     .build(&mut registry);
//! let app: axum::Router = axum::Router::new().merge(rum.router());
//! ```
//! and in the page: `<script src="/rum.js" defer></script>`.

mod payload;
mod service;
mod state;

pub use payload::{Beacon, BeaconError, Event, MAX_EVENTS, Vital, parse_beacon, without_queries};
pub use service::{RUM_JS, Rum, RumBuilder, RumService, ScriptService, VitalSummary};
pub use state::{OTHER_PAGE, PageTemplates, browser_family};

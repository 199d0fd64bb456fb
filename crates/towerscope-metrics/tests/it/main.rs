//! The metrics crate's integration tests, one module each, in one test binary: every
//! test binary links the whole dependency tree again, so one binary per package instead of one
//! per file keeps the build of the test suite short (see `docs/testing.md`).

mod accept_props;
mod common;
mod duplicates;
mod grpc;
#[cfg(feature = "axum")]
mod http_metrics;
mod hyper;

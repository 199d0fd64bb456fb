//! The trace crate's integration tests, one module each, in one test binary: every
//! test binary links the whole dependency tree again, so one binary per package instead of one
//! per file keeps the build of the test suite short (see `docs/testing.md`).

mod axum_body;
mod function_tracing;
mod otlp;
mod propagation_props;
mod server;
mod two_services;
mod w3c;

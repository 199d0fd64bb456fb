//! The health crate's integration tests, one module each, in one test binary: every
//! test binary links the whole dependency tree again, so one binary per package instead of one
//! per file keeps the build of the test suite short (see `docs/testing.md`).

#[cfg(any(feature = "system", feature = "grpc", feature = "tls"))] // its users
mod common;
mod grpc_health;
mod health;
mod http_check;
mod sqlx_check;
mod synthetic;

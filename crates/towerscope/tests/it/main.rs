//! The facade's integration tests, one module each, in one test binary: every test binary
//! links the whole dependency tree again, so one binary per package instead of one per file
//! keeps the build of the test suite short (see `docs/testing.md`). Two stay binaries of their
//! own: the cardinality attack (`tests/cardinality.rs`) measures the process's resident
//! memory, which tests running beside it would move, and `tests/faults.rs` installs the
//! process's global log subscriber, as the facade test here does.

mod config_props;
#[cfg(feature = "axum")]
mod facade;
mod monitoring;
#[cfg(feature = "axum")]
mod ops_auth;
mod signal;

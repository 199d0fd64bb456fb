//! The cross-crate tests against real components, one module each, in one test binary: every
//! test binary links the whole dependency tree again, so one binary per package instead of one
//! per file keeps the build of the test suite short (see `docs/testing.md`).

mod alert_rules;
mod alertmanager;
mod browser;
mod prometheus;
mod redis;
mod smtp;

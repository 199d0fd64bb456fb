//! The demo's tests, one module each, in one test binary: every
//! test binary links the whole dependency tree again, so one binary per package instead of one
//! per file keeps the build of the test suite short (see `docs/testing.md`).

mod shop;
mod synthetic;
mod traffic;
mod two_hop;

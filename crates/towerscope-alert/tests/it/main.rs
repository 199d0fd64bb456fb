//! The alert crate's integration tests, one module each, in one test binary: every
//! test binary links the whole dependency tree again, so one binary per package instead of one
//! per file keeps the build of the test suite short (see `docs/testing.md`).

mod evaluator;
mod limits;
mod logs;
mod missing_series;
mod notifiers;
mod panics;
mod routing;
mod rules_file;
mod signals;

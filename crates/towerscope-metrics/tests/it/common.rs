//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;

/// Parses Prometheus text 0.0.4 into `series -> value` (series = name plus label text).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    out
}

/// The value of one series, or 0 when absent.
pub fn value(text: &str, series: &str) -> f64 {
    parse(text).get(series).copied().unwrap_or(0.0)
}

/// How many series of a metric (exact sample name) there are.
pub fn count_series(text: &str, sample_name: &str) -> usize {
    parse(text)
        .keys()
        .filter(|k| k.split('{').next() == Some(sample_name))
        .count()
}

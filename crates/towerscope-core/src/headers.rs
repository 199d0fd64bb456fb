//! Reading a few non-standard header names cheaply.

use http::{HeaderMap, HeaderValue, header::Keys};

/// Most distinct names a header map may hold for [`small_header_names`] to give them.
pub const HEADER_SCAN_LIMIT: usize = 16;

/// The names of a small header map, for finding out which of a few non-standard names it
/// holds in one pass; `None` for a map of more than [`HEADER_SCAN_LIMIT`] names (look those
/// up instead).
///
/// A lookup of a name that is not one of http's standard headers (`traceparent`,
/// `x-request-id`, ...) hashes the name byte by byte before it probes the map: a few hundred
/// instructions for two names, on every request, though most requests (from browsers, from
/// clients outside the traced system) carry none of them. Comparing the text of each name a
/// small map holds costs a fraction of that, and a layer then looks up only the names that
/// are there.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("host", http::HeaderValue::from_static("shop.example"));
/// headers.insert("traceparent", http::HeaderValue::from_static("00-..."));
/// let names = towerscope_core::small_header_names(&headers).expect("two names");
/// let found: Vec<&str> = names.map(|n| n.as_str()).collect();
/// assert_eq!(found, ["host", "traceparent"]);
///
/// for i in 0..20 {
///     headers.insert(http::HeaderName::try_from(format!("x-{i}")).unwrap(), http::HeaderValue::from_static("1"));
/// }
/// assert!(towerscope_core::small_header_names(&headers).is_none()); // look names up instead
/// ```
pub fn small_header_names(headers: &HeaderMap) -> Option<Keys<'_, HeaderValue>> {
    (headers.keys_len() <= HEADER_SCAN_LIMIT).then(|| headers.keys())
}

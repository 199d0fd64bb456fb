//! Reading a few non-standard header names cheaply; showing a URI without its secrets.

use http::{HeaderMap, HeaderValue, Uri, header::Keys};

/// Most distinct names a header map may hold for [`small_header_names`] to give them.
///
/// ```
/// use towerscope_core::{HEADER_SCAN_LIMIT, small_header_names};
/// let mut headers = http::HeaderMap::new();
/// for i in 0..=HEADER_SCAN_LIMIT {
///     headers.insert(http::HeaderName::try_from(format!("x-h{i}")).unwrap(), "1".parse().unwrap());
/// }
/// assert!(small_header_names(&headers).is_none()); // one name too many: look names up
/// ```
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

/// `uri` as errors, logs and `Debug` may show it: without user information or query
/// string, either of which may hold a secret (`https://user:pw@db/x?token=t` shows as
/// `https://[REDACTED]@db/x?[REDACTED]`).
///
/// ```
/// let uri: http::Uri = "https://admin:s3cret@db.internal:8443/health?token=t".parse().unwrap();
/// assert_eq!(
///     towerscope_core::redacted_uri(&uri),
///     "https://[REDACTED]@db.internal:8443/health?[REDACTED]"
/// );
/// let plain: http::Uri = "http://search:9200/_cluster/health".parse().unwrap();
/// assert_eq!(towerscope_core::redacted_uri(&plain), "http://search:9200/_cluster/health");
/// ```
pub fn redacted_uri(uri: &Uri) -> String {
    let mut out = String::new();
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        let authority = authority.as_str();
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("[REDACTED]@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
    }
    out.push_str(uri.path());
    if uri.query().is_some() {
        out.push_str("?[REDACTED]");
    }
    out
}

/// [`redacted_uri`] for an address given as text (a configured URL, a notifier's
/// endpoint); text that is not a URI shows as `[REDACTED]` whole, since which part is the
/// secret cannot be told.
///
/// ```
/// assert_eq!(
///     towerscope_core::redacted_url("http://alerts:s3cret@am:9093"),
///     "http://[REDACTED]@am:9093/"
/// );
/// assert_eq!(towerscope_core::redacted_url("not a url at all"), "[REDACTED]");
/// ```
pub fn redacted_url(text: &str) -> String {
    text.parse::<Uri>()
        .map_or_else(|_| "[REDACTED]".to_owned(), |uri| redacted_uri(&uri))
}

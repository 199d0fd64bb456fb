//! W3C Baggage (`baggage` header): bounded parsing and injection.

use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt as _};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The `baggage` header name.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert(towerscope_trace::BAGGAGE, "tenant=acme".parse().unwrap());
/// assert_eq!(towerscope_trace::parse_baggage(&headers).len(), 1);
/// ```
pub const BAGGAGE: &str = "baggage";
/// At most this many members are read; the rest are dropped (W3C Baggage limit).
///
/// ```
/// use towerscope_trace::{BAGGAGE, MAX_BAGGAGE_MEMBERS, parse_baggage};
/// let members: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
/// let mut headers = http::HeaderMap::new();
/// headers.insert(BAGGAGE, members.join(",").parse().unwrap());
/// assert_eq!(parse_baggage(&headers).len(), MAX_BAGGAGE_MEMBERS);
/// ```
pub const MAX_BAGGAGE_MEMBERS: usize = 64;
/// At most this many bytes of `baggage` headers are read or written (W3C Baggage limit).
///
/// ```
/// use towerscope_trace::{BAGGAGE, MAX_BAGGAGE_LEN, parse_baggage};
/// let members = |len: usize| {
///     let mut headers = http::HeaderMap::new();
///     let value = format!("k={}", "v".repeat(len - 2)); // `len` bytes
///     headers.insert(BAGGAGE, value.parse().unwrap());
///     parse_baggage(&headers).len()
/// };
/// assert_eq!(members(MAX_BAGGAGE_LEN), 1);
/// assert_eq!(members(MAX_BAGGAGE_LEN + 1), 0); // not read at all
/// ```
pub const MAX_BAGGAGE_LEN: usize = 8192;

/// Characters percent-encoded in a baggage value: controls, space, `"`, `,`, `;`, `\`, `%`.
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses every `baggage` header of `headers` into OpenTelemetry [`Baggage`].
///
/// Members with an invalid key or a value that is not valid percent-encoded UTF-8 are
/// dropped; properties are kept as the member's metadata. Headers past
/// [`MAX_BAGGAGE_LEN`] bytes in total and members past [`MAX_BAGGAGE_MEMBERS`] are not read.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("baggage", "user.tier=gold;ttl=60, region=eu%20west, bad key=x".parse().unwrap());
/// let baggage = towerscope_trace::parse_baggage(&headers);
/// assert_eq!(baggage.get("user.tier").map(|v| v.as_str()), Some("gold"));
/// assert_eq!(baggage.get("region").map(|v| v.as_str()), Some("eu west"));
/// assert_eq!(baggage.len(), 2);
/// ```
pub fn parse_baggage(headers: &HeaderMap) -> Baggage {
    let mut baggage = Baggage::new();
    let mut budget = MAX_BAGGAGE_LEN;
    let mut members = 0;
    for value in headers.get_all(crate::names::BAGGAGE) {
        let Some(rest) = budget.checked_sub(value.len()) else {
            break;
        };
        budget = rest;
        let Ok(value) = value.to_str() else {
            continue;
        };
        for member in value.split(',') {
            if members == MAX_BAGGAGE_MEMBERS {
                return baggage;
            }
            let (pair, properties) = match member.split_once(';') {
                Some((pair, props)) => (pair, props.trim()),
                None => (member, ""),
            };
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if !is_token(key) {
                continue;
            }
            let Ok(value) = percent_decode_str(value).decode_utf8() else {
                continue;
            };
            members += 1;
            baggage.insert_with_metadata(key.to_owned(), value.into_owned(), properties.to_owned());
        }
    }
    baggage
}

/// Writes the baggage of `cx` as one `baggage` header (replacing any), members past
/// [`MAX_BAGGAGE_LEN`] bytes dropped; removes the header when there is no baggage.
pub(crate) fn inject(cx: &Context, headers: &mut HeaderMap) {
    let baggage = cx.baggage();
    if baggage.is_empty() {
        return;
    }
    let mut out = String::new();
    for (key, (value, metadata)) in baggage {
        let mut member = format!("{key}={}", utf8_percent_encode(value.as_str(), VALUE));
        if !metadata.as_str().is_empty() {
            member.push(';');
            member.push_str(metadata.as_str());
        }
        let extra = member.len() + usize::from(!out.is_empty());
        if out.len() + extra > MAX_BAGGAGE_LEN {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&member);
    }
    match HeaderValue::try_from(out) {
        Ok(v) => {
            headers.insert(BAGGAGE, v);
        }
        Err(_) => {
            headers.remove(BAGGAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(BAGGAGE, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn members_of_every_header_are_read_and_round_trip() {
        let b = parse_baggage(&headers(&["a=1", "b=two%2Cparts;p=q"]));
        assert_eq!(b.len(), 2);
        let cx = Context::new().with_baggage(b);
        let mut out = HeaderMap::new();
        inject(&cx, &mut out);
        let again = parse_baggage(&out);
        assert_eq!(again.get("b").map(|v| v.as_str()), Some("two,parts"));
        assert_eq!(again.get("a").map(|v| v.as_str()), Some("1"));
    }

    #[test]
    fn hostile_input_is_bounded() {
        let many: Vec<String> = (0..500).map(|i| format!("k{i}=v")).collect();
        let b = parse_baggage(&headers(&[&many.join(",")]));
        assert_eq!(b.len(), MAX_BAGGAGE_MEMBERS);
        let huge = format!("k={}", "x".repeat(MAX_BAGGAGE_LEN + 1));
        assert!(parse_baggage(&headers(&[&huge])).is_empty());
        let b = parse_baggage(&headers(&["=v,k=%ff%fe,;;,k2", "ok=1"]));
        assert_eq!(b.len(), 1);
    }
}

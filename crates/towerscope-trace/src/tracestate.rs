//! `tracestate`: vendor entries, parsed, bounded and written back.

use http::{HeaderMap, HeaderValue};

/// The `tracestate` header name.
///
/// ```
/// use towerscope_trace::{TRACESTATE, TraceState};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(TRACESTATE, "rojo=00f067aa0ba902b7".parse().unwrap());
/// assert_eq!(TraceState::from_headers(&headers).to_string(), "rojo=00f067aa0ba902b7");
/// ```
pub const TRACESTATE: &str = "tracestate";

/// The most members a list may have: a longer one is discarded whole (W3C Trace Context).
///
/// ```
/// use towerscope_trace::{MAX_MEMBERS, TraceState};
/// let list = |n: usize| (0..n).map(|i| format!("v{i}=x")).collect::<Vec<_>>().join(",");
/// assert_eq!(TraceState::parse(&list(MAX_MEMBERS)).members().count(), MAX_MEMBERS);
/// assert_eq!(TraceState::parse(&list(MAX_MEMBERS + 1)).members().count(), 0);
/// ```
pub const MAX_MEMBERS: usize = 32;
/// Longest header value written.
///
/// ```
/// use towerscope_trace::{MAX_LEN, TraceState};
/// let value: Vec<String> = (0..20).map(|i| format!("vendor{i}={}", "x".repeat(40))).collect();
/// let written = TraceState::parse(&value.join(",")).header_value().unwrap();
/// assert!(written.len() <= MAX_LEN);
/// ```
pub const MAX_LEN: usize = 512;
/// Members longer than this are the first dropped when the value must be shortened.
const LONG_MEMBER: usize = 128;

fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
}

/// A valid key: `simple-key` or `tenant@system` (W3C Trace Context).
fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    match k.split_once('@') {
        None => {
            !b.is_empty()
                && b.len() <= 256
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| key_char(c))
        }
    }
}

/// A valid value: up to 256 printable ASCII characters other than `,` and `=`, not ending
/// in a space.
fn valid_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// The `tracestate` of a request: its valid members, in order.
///
/// Members with an invalid key or value are dropped. A list with more than 32 members or
/// a repeated key is discarded whole (its meaning is not clear). Several `tracestate`
/// headers are joined, as HTTP allows.
///
/// ```
/// use towerscope_trace::TraceState;
/// let mut h = http::HeaderMap::new();
/// h.append("tracestate", "congo=t61rcWkgMzE, BAD=x".parse().unwrap());
/// h.append("tracestate", "rojo=00f067aa0ba902b7".parse().unwrap());
/// let ts = TraceState::from_headers(&h);
/// assert_eq!(ts.to_string(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

impl TraceState {
    /// Parses the joined header values.
    ///
    /// ```
    /// use towerscope_trace::TraceState;
    /// // Invalid members are dropped one by one ...
    /// assert_eq!(TraceState::parse("rojo=1, Not A Key=2,congo=3").to_string(), "rojo=1,congo=3");
    /// // ... but a repeated key, or more than 32 members, discards the whole list.
    /// assert!(TraceState::parse("rojo=1,congo=2,rojo=3").is_empty());
    /// let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    /// assert!(TraceState::parse(&many.join(",")).is_empty());
    /// assert_eq!(TraceState::parse(&many[..32].join(",")).members().count(), 32);
    /// ```
    pub fn parse(value: &str) -> Self {
        let mut members: Vec<(String, String)> = Vec::new();
        // Stop reading once the list is certainly too long: no unbounded work on hostile input.
        for raw in value.split(',').take(MAX_MEMBERS * 4 + 1) {
            let raw = raw.trim_matches(|c| c == ' ' || c == '\t');
            if raw.is_empty() {
                continue;
            }
            let Some((k, v)) = raw.split_once('=') else {
                continue;
            };
            if !valid_key(k) || !valid_value(v) {
                continue;
            }
            if members.iter().any(|(key, _)| key == k) {
                return Self::default();
            }
            members.push((k.to_owned(), v.to_owned()));
            if members.len() > MAX_MEMBERS {
                return Self::default();
            }
        }
        Self { members }
    }

    /// The `tracestate` of `headers` (all of them, joined).
    ///
    /// ```
    /// use towerscope_trace::TraceState;
    /// let mut h = http::HeaderMap::new();
    /// h.append("tracestate", "rojo=1".parse().unwrap());
    /// h.append("tracestate", "congo=2".parse().unwrap());
    /// assert_eq!(TraceState::from_headers(&h).to_string(), "rojo=1,congo=2");
    /// // More than 8 KiB of header text is not read at all.
    /// h.append("tracestate", format!("big={}", "x".repeat(8 * 1024)).parse().unwrap());
    /// assert!(TraceState::from_headers(&h).is_empty());
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut joined = String::new();
        for v in headers.get_all(crate::names::TRACESTATE) {
            let Ok(v) = v.to_str() else {
                return Self::default();
            };
            if joined.len() + v.len() > 8 * 1024 {
                return Self::default();
            }
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(v);
        }
        Self::parse(&joined)
    }

    /// The members, in order.
    ///
    /// ```
    /// let ts = towerscope_trace::TraceState::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    /// let members: Vec<_> = ts.members().collect();
    /// assert_eq!(members, [("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")]);
    /// ```
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there is no member.
    ///
    /// ```
    /// use towerscope_trace::TraceState;
    /// assert!(TraceState::parse("").is_empty());
    /// assert!(TraceState::parse("=novalue").is_empty());
    /// assert!(!TraceState::parse("rojo=1").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Sets this vendor's entry: moved to the front, as the spec asks of an updated entry.
    /// Refuses invalid keys or values.
    ///
    /// ```
    /// let mut ts = towerscope_trace::TraceState::parse("a=1,b=2");
    /// assert!(ts.insert("b", "3"));
    /// assert_eq!(ts.to_string(), "b=3,a=1");
    /// ```
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if !valid_key(key) || !valid_value(value) {
            return false;
        }
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        self.members.truncate(MAX_MEMBERS);
        true
    }

    /// The header value, at most 512 characters: if longer, members over 128 characters
    /// are dropped first (from the end), then members from the end. `None` when empty.
    ///
    /// ```
    /// use towerscope_trace::TraceState;
    /// let (a, b) = ("x".repeat(250), "y".repeat(250));
    /// // 513 characters: the last member longer than 128 characters goes first.
    /// let ts = TraceState::parse(&format!("a={a},b={b},c=1,d=2"));
    /// assert_eq!(ts.header_value().unwrap(), format!("a={a},c=1,d=2").as_str());
    /// assert_eq!(TraceState::default().header_value(), None);
    /// ```
    pub fn header_value(&self) -> Option<HeaderValue> {
        let mut members: Vec<&(String, String)> = self.members.iter().collect();
        let len = |m: &[&(String, String)]| {
            m.iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
                .saturating_sub(1)
        };
        while len(&members) > MAX_LEN {
            match members
                .iter()
                .rposition(|(k, v)| k.len() + v.len() + 1 > LONG_MEMBER)
            {
                Some(i) => {
                    members.remove(i);
                }
                None => {
                    members.pop();
                }
            }
        }
        if members.is_empty() {
            return None;
        }
        let text = members
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        HeaderValue::from_str(&text).ok()
    }
}

impl std::fmt::Display for TraceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.header_value() {
            Some(v) => f.write_str(v.to_str().unwrap_or_default()),
            None => Ok(()),
        }
    }
}

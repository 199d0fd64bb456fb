//! `traceparent`: parsing, validation and formatting (W3C Trace Context Level 2).

use http::{HeaderMap, HeaderValue};
use towerscope_core::TraceIds;

/// The `traceparent` header name.
///
/// ```
/// use towerscope_trace::{TRACEPARENT, TraceParent};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(TRACEPARENT, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
/// assert!(TraceParent::from_headers(&headers).unwrap().sampled());
/// ```
pub const TRACEPARENT: &str = "traceparent";

/// Flag bit: the caller may have recorded the trace.
///
/// ```
/// use towerscope_trace::{FLAG_SAMPLED, TraceParent};
/// let p = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
/// assert_eq!(p.flags & FLAG_SAMPLED, FLAG_SAMPLED);
/// ```
pub const FLAG_SAMPLED: u8 = 0x01;
/// Flag bit (Level 2): the trace ID's rightmost 7 bytes are random.
///
/// ```
/// use towerscope_trace::{FLAG_RANDOM, TraceParent};
/// let p = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03").unwrap();
/// assert_eq!(p.flags & FLAG_RANDOM, FLAG_RANDOM); // kept, unlike the stock propagator
/// ```
pub const FLAG_RANDOM: u8 = 0x02;

/// Why a `traceparent` value was refused. A refused parent is ignored: a new trace starts.
///
/// ```
/// use towerscope_trace::{TraceParent, TraceParentError};
/// assert_eq!(TraceParent::parse("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
///            Err(TraceParentError::Version));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Not the expected length or layout.
    #[error("malformed traceparent")]
    Format,
    /// Version `ff`, or not two lower-case hex digits.
    #[error("invalid traceparent version")]
    Version,
    /// A field is not lower-case hex.
    #[error("traceparent field is not lower-case hex")]
    Hex,
    /// The trace ID is all zeros.
    #[error("all-zero trace id")]
    ZeroTraceId,
    /// The parent ID is all zeros.
    #[error("all-zero parent id")]
    ZeroParentId,
    /// More than one `traceparent` header.
    #[error("several traceparent headers")]
    Duplicate,
}

/// A parsed `traceparent`.
///
/// ```
/// use towerscope_trace::TraceParent;
/// let tp = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03").unwrap();
/// assert!(tp.sampled() && tp.random());
/// assert_eq!(tp.to_string(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The version it was received with (written back as `00`).
    pub version: u8,
    /// The trace ID, not all zeros.
    pub trace_id: [u8; 16],
    /// The caller's span ID, not all zeros.
    pub parent_id: [u8; 8],
    /// Trace flags. Of a future version's flags, only the ones this version knows are kept.
    pub flags: u8,
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn parse_hex<const N: usize>(s: &[u8]) -> Result<[u8; N], TraceParentError> {
    if s.len() != 2 * N {
        return Err(TraceParentError::Format);
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = hex_val(pair[0]).ok_or(TraceParentError::Hex)?;
        let lo = hex_val(pair[1]).ok_or(TraceParentError::Hex)?;
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

/// Optional white space around a header value (RFC 9110 OWS).
fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

impl TraceParent {
    /// Parses one header value. Version `00` must be exactly 55 characters; a higher version
    /// is read by the `00` layout and may carry more fields after a `-`.
    ///
    /// ```
    /// use towerscope_trace::{TraceParent, TraceParentError};
    /// let id = "0af7651916cd43dd8448eb211c80319c";
    /// assert!(TraceParent::parse(&format!("00-{id}-b7ad6b7169203331-01")).is_ok());
    /// // Upper-case hex, an all-zero trace ID, and extra fields on version 00 are refused.
    /// assert_eq!(TraceParent::parse(&format!("00-{}-b7ad6b7169203331-01", id.to_uppercase())),
    ///            Err(TraceParentError::Hex));
    /// assert_eq!(TraceParent::parse(&format!("00-{}-b7ad6b7169203331-01", "0".repeat(32))),
    ///            Err(TraceParentError::ZeroTraceId));
    /// assert_eq!(TraceParent::parse(&format!("00-{id}-b7ad6b7169203331-01-extra")),
    ///            Err(TraceParentError::Format));
    /// // A future version may carry more fields.
    /// assert_eq!(TraceParent::parse(&format!("cc-{id}-b7ad6b7169203331-01-extra")).unwrap().version, 0xcc);
    /// ```
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        let v = trim_ows(value).as_bytes();
        if v.len() < 55 {
            return Err(TraceParentError::Format);
        }
        let [version] = parse_hex::<1>(&v[..2]).map_err(|_| TraceParentError::Version)?;
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(TraceParentError::Format);
        }
        match (version, v.get(55)) {
            (0, None) => {}
            (0, Some(_)) => return Err(TraceParentError::Format),
            (_, None | Some(b'-')) => {}
            (_, Some(_)) => return Err(TraceParentError::Format),
        }
        let trace_id = parse_hex::<16>(&v[3..35])?;
        let parent_id = parse_hex::<8>(&v[36..52])?;
        let [flags] = parse_hex::<1>(&v[53..55])?;
        if trace_id == [0; 16] {
            return Err(TraceParentError::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(TraceParentError::ZeroParentId);
        }
        let flags = if version == 0 {
            flags
        } else {
            flags & (FLAG_SAMPLED | FLAG_RANDOM)
        };
        Ok(Self {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The parent of a request: exactly one valid `traceparent` header. Several headers,
    /// or one that is not valid visible ASCII, are refused.
    ///
    /// ```
    /// let mut h = http::HeaderMap::new();
    /// h.append("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
    /// assert!(towerscope_trace::TraceParent::from_headers(&h).is_ok());
    /// h.append("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-01".parse().unwrap());
    /// assert!(towerscope_trace::TraceParent::from_headers(&h).is_err());
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, TraceParentError> {
        let mut all = headers.get_all(crate::names::TRACEPARENT).iter();
        let first = all.next().ok_or(TraceParentError::Format)?;
        if all.next().is_some() {
            return Err(TraceParentError::Duplicate);
        }
        Self::parse(first.to_str().map_err(|_| TraceParentError::Format)?)
    }

    /// Whether the caller sampled the trace.
    ///
    /// ```
    /// use towerscope_trace::TraceParent;
    /// let p = |flags: &str| TraceParent::parse(&format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}")).unwrap();
    /// assert!(p("01").sampled());
    /// assert!(!p("00").sampled());
    /// ```
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Whether the trace ID is marked random (Level 2).
    ///
    /// ```
    /// use towerscope_trace::TraceParent;
    /// let p = |flags: &str| TraceParent::parse(&format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}")).unwrap();
    /// assert!(p("02").random() && !p("02").sampled());
    /// assert!(!p("01").random());
    /// ```
    pub fn random(&self) -> bool {
        self.flags & FLAG_RANDOM != 0
    }

    /// The IDs for request extensions (exemplars, logs), with this parent as span.
    ///
    /// ```
    /// let p = towerscope_trace::TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    /// let ids = p.ids();
    /// assert_eq!(ids.trace_id_hex().to_string(), "0af7651916cd43dd8448eb211c80319c");
    /// assert_eq!(ids.span_id_hex().to_string(), "b7ad6b7169203331");
    /// assert!(ids.sampled);
    /// ```
    pub fn ids(&self) -> TraceIds {
        TraceIds {
            trace_id: self.trace_id,
            span_id: self.parent_id,
            sampled: self.sampled(),
        }
    }

    /// The header value, always written as version `00`.
    ///
    /// ```
    /// // A future version is forwarded as version 00, without its extra fields and unknown flags.
    /// let p = towerscope_trace::TraceParent::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09-extra").unwrap();
    /// assert_eq!(p.header_value(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    /// ```
    pub fn header_value(&self) -> HeaderValue {
        // Lower-case hex and dashes: always a valid header value.
        HeaderValue::from_str(&self.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = self.ids();
        write!(
            f,
            "00-{}-{}-{:02x}",
            ids.trace_id_hex(),
            ids.span_id_hex(),
            self.flags
        )
    }
}

//! gRPC status codes and where to find them in a response.

use http::HeaderMap;

/// A gRPC status code (the 17 canonical codes of `google.rpc.Code`).
///
/// ```
/// use towerscope_core::GrpcCode;
/// assert_eq!(GrpcCode::from_header_value(b"13"), Some(GrpcCode::Internal));
/// assert_eq!(GrpcCode::Internal.as_str(), "INTERNAL");
/// assert!(GrpcCode::Internal.is_server_error());
/// assert!(!GrpcCode::NotFound.is_server_error());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[allow(missing_docs)] // The variants are the canonical code names.
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// Number of codes.
    ///
    /// ```
    /// assert_eq!(towerscope_core::GrpcCode::COUNT, 17);
    /// ```
    pub const COUNT: usize = 17;

    /// The code for a numeric value, if it is one of the 17.
    ///
    /// ```
    /// use towerscope_core::GrpcCode;
    /// assert_eq!(GrpcCode::from_u8(5), Some(GrpcCode::NotFound));
    /// assert_eq!(GrpcCode::from_u8(17), None);
    /// ```
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::Cancelled,
            2 => Self::Unknown,
            3 => Self::InvalidArgument,
            4 => Self::DeadlineExceeded,
            5 => Self::NotFound,
            6 => Self::AlreadyExists,
            7 => Self::PermissionDenied,
            8 => Self::ResourceExhausted,
            9 => Self::FailedPrecondition,
            10 => Self::Aborted,
            11 => Self::OutOfRange,
            12 => Self::Unimplemented,
            13 => Self::Internal,
            14 => Self::Unavailable,
            15 => Self::DataLoss,
            16 => Self::Unauthenticated,
            _ => return None,
        })
    }

    /// Parses a `grpc-status` header value (decimal, no sign, no padding beyond two digits).
    ///
    /// ```
    /// use towerscope_core::GrpcCode;
    /// assert_eq!(GrpcCode::from_header_value(b"0"), Some(GrpcCode::Ok));
    /// assert_eq!(GrpcCode::from_header_value(b"99"), None);
    /// assert_eq!(GrpcCode::from_header_value(b"x"), None);
    /// ```
    pub fn from_header_value(v: &[u8]) -> Option<Self> {
        match v {
            [d] if d.is_ascii_digit() => Self::from_u8(d - b'0'),
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                Self::from_u8((a - b'0') * 10 + (b - b'0'))
            }
            _ => None,
        }
    }

    /// The canonical upper-case name, as OpenTelemetry's `rpc.status_code` uses it.
    ///
    /// ```
    /// assert_eq!(towerscope_core::GrpcCode::DeadlineExceeded.as_str(), "DEADLINE_EXCEEDED");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether a server should treat this code as its own fault.
    ///
    /// These are the codes the OpenTelemetry RPC conventions mark as errors on server spans:
    /// `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`.
    ///
    /// ```
    /// assert!(towerscope_core::GrpcCode::Unavailable.is_server_error());
    /// ```
    pub const fn is_server_error(self) -> bool {
        matches!(
            self,
            Self::Unknown
                | Self::DeadlineExceeded
                | Self::Unimplemented
                | Self::Internal
                | Self::Unavailable
                | Self::DataLoss
        )
    }

    /// Reads `grpc-status` from a header map (response headers of a trailers-only response,
    /// or the trailers). `None` when absent or not a valid code.
    ///
    /// ```
    /// use towerscope_core::GrpcCode;
    /// let mut trailers = http::HeaderMap::new();
    /// trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
    /// assert_eq!(GrpcCode::from_headers(&trailers), Some(GrpcCode::Unavailable));
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get("grpc-status")
            .and_then(|v| Self::from_header_value(v.as_bytes()))
    }
}

impl std::fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a request is a gRPC call: a `POST` (the only method gRPC uses) whose
/// `content-type` is gRPC's ([`is_grpc`]).
///
/// The method is checked first: most requests are not `POST`s, and for them no header is
/// looked up (a lookup hashes the name, a chain of dependent multiplications per request).
///
/// ```
/// let call = http::Request::post("/shop.Orders/Get")
///     .header("content-type", "application/grpc")
///     .body(())
///     .unwrap();
/// assert!(towerscope_core::is_grpc_request(&call));
/// let get = http::Request::get("/shop.Orders/Get")
///     .header("content-type", "application/grpc")
///     .body(())
///     .unwrap();
/// assert!(!towerscope_core::is_grpc_request(&get)); // gRPC is always POST
/// ```
pub fn is_grpc_request<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::POST && is_grpc(req.headers())
}

/// Whether a request or response carries gRPC (`content-type: application/grpc[+proto|...]`).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("content-type", http::HeaderValue::from_static("application/grpc+proto"));
/// assert!(towerscope_core::is_grpc(&h));
/// h.insert("content-type", http::HeaderValue::from_static("application/grpc-web"));
/// assert!(!towerscope_core::is_grpc(&h));
/// ```
pub fn is_grpc(headers: &HeaderMap) -> bool {
    match headers.get(http::header::CONTENT_TYPE) {
        Some(v) => {
            let v = v.as_bytes();
            v.starts_with(b"application/grpc") && matches!(v.get(16), None | Some(b'+' | b';'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for v in 0..GrpcCode::COUNT as u8 {
            let code = GrpcCode::from_u8(v).expect("in range");
            assert_eq!(
                GrpcCode::from_header_value(v.to_string().as_bytes()),
                Some(code)
            );
        }
    }

    #[test]
    fn malformed_values_are_rejected() {
        for raw in [&b""[..], b"-1", b"013", b"1 ", b"17", b"\xff"] {
            assert_eq!(GrpcCode::from_header_value(raw), None, "{raw:?}");
        }
    }
}

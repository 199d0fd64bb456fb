//! HTTP method normalisation into a closed set of label values.

use http::Method;

/// An HTTP request method reduced to the set a metric label may hold.
///
/// The nine methods of RFC 9110 and RFC 5789 keep their names; every other method becomes
/// [`NormalizedMethod::Other`], rendered as `_OTHER` as the OpenTelemetry HTTP semantic
/// conventions prescribe. A client can therefore never create a new label value by inventing
/// a method.
///
/// ```
/// use towerscope_core::NormalizedMethod;
/// let m = NormalizedMethod::from(&http::Method::GET);
/// assert_eq!(m.as_str(), "GET");
/// let odd = http::Method::from_bytes(b"BREW").unwrap();
/// assert_eq!(NormalizedMethod::from(&odd).as_str(), "_OTHER");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum NormalizedMethod {
    /// `GET`
    Get = 0,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, rendered `_OTHER`.
    Other,
}

impl NormalizedMethod {
    /// Number of distinct values, for tables indexed by [`NormalizedMethod::index`].
    ///
    /// ```
    /// assert_eq!(towerscope_core::NormalizedMethod::COUNT, 10);
    /// ```
    pub const COUNT: usize = 10;

    /// Every value, in index order.
    ///
    /// ```
    /// use towerscope_core::NormalizedMethod;
    /// assert_eq!(NormalizedMethod::ALL[3], NormalizedMethod::Put);
    /// ```
    pub const ALL: [NormalizedMethod; Self::COUNT] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Put,
        Self::Delete,
        Self::Connect,
        Self::Options,
        Self::Trace,
        Self::Patch,
        Self::Other,
    ];

    /// The label value: the method name, or `_OTHER`.
    ///
    /// ```
    /// assert_eq!(towerscope_core::NormalizedMethod::Patch.as_str(), "PATCH");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
            Self::Patch => "PATCH",
            Self::Other => "_OTHER",
        }
    }

    /// A dense index in `0..COUNT`.
    ///
    /// ```
    /// assert_eq!(towerscope_core::NormalizedMethod::Other.index(), 9);
    /// ```
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl From<&Method> for NormalizedMethod {
    fn from(method: &Method) -> Self {
        // `Method`'s standard variants compare without touching bytes.
        if method == Method::GET {
            Self::Get
        } else if method == Method::POST {
            Self::Post
        } else if method == Method::HEAD {
            Self::Head
        } else if method == Method::PUT {
            Self::Put
        } else if method == Method::DELETE {
            Self::Delete
        } else if method == Method::PATCH {
            Self::Patch
        } else if method == Method::OPTIONS {
            Self::Options
        } else if method == Method::CONNECT {
            Self::Connect
        } else if method == Method::TRACE {
            Self::Trace
        } else {
            Self::Other
        }
    }
}

impl std::fmt::Display for NormalizedMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_names() {
        for m in NormalizedMethod::ALL {
            if m == NormalizedMethod::Other {
                continue;
            }
            let parsed = Method::from_bytes(m.as_str().as_bytes()).expect("valid method");
            assert_eq!(NormalizedMethod::from(&parsed), m);
            assert_eq!(NormalizedMethod::ALL[m.index()], m);
        }
    }

    #[test]
    fn unknown_and_lowercase_methods_are_other() {
        for raw in ["get", "BREW", "PROPFIND", "X-CUSTOM"] {
            let m = Method::from_bytes(raw.as_bytes()).expect("valid token");
            assert_eq!(NormalizedMethod::from(&m), NormalizedMethod::Other, "{raw}");
        }
    }
}

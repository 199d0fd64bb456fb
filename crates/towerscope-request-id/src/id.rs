//! The ID type, its validation and its generators.

use std::sync::Arc;

use http::HeaderValue;

/// A request's correlation ID: a valid header value, cheap to clone.
///
/// It is in the request extensions once [`RequestIdLayer`](crate::RequestIdLayer) has run,
/// in the response header, and in the `request_id` field of the request's span.
///
/// ```
/// use towerscope_request_id::RequestId;
/// let id = RequestId::new_v7();
/// assert_eq!(id.as_str().len(), 36);
/// assert_eq!(RequestId::new_v7().as_str().len(), 36);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A time-ordered UUID v7 (the default): sortable by creation time (to the
    /// millisecond), random below.
    ///
    /// IDs made on one thread sort in the order they were made (a counter below the
    /// millisecond, as RFC 9562 §6.2 describes); IDs made on different threads within the
    /// same millisecond sort in no particular order. The counter is per thread: uuid's own
    /// `Uuid::now_v7` keeps one behind a process-wide mutex, which every request on every
    /// core would take. The time is [`towerscope_core::unix_now`]: the request clock, set
    /// by the system clock once a second.
    ///
    /// ```
    /// use towerscope_request_id::RequestId;
    /// let (a, b) = (RequestId::new_v7(), RequestId::new_v7());
    /// assert_eq!(&a.as_str()[14..15], "7"); // the version digit
    /// assert!(a.as_str() < b.as_str()); // made on one thread: in order
    /// ```
    pub fn new_v7() -> Self {
        thread_local! {
            static CONTEXT: uuid::ContextV7 = const { uuid::ContextV7::new() };
        }
        let uuid = CONTEXT
            .try_with(|context| {
                let now = towerscope_core::unix_now();
                let stamp = uuid::Timestamp::from_unix(context, now.as_secs(), now.subsec_nanos());
                uuid::Uuid::new_v7(stamp)
            })
            // A thread being torn down has no context left: the shared one still works.
            .unwrap_or_else(|_| uuid::Uuid::now_v7());
        Self::from_uuid(uuid)
    }

    /// A random UUID v4.
    ///
    /// ```
    /// assert_ne!(towerscope_request_id::RequestId::new_v4(), towerscope_request_id::RequestId::new_v4());
    /// ```
    pub fn new_v4() -> Self {
        Self::from_uuid(uuid::Uuid::new_v4())
    }

    fn from_uuid(u: uuid::Uuid) -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        u.hyphenated().encode_lower(&mut buf);
        // One allocation holding the text and its reference count: the ID is cloned into the
        // request, the response and the span, and a `Bytes` copied from a slice would
        // allocate again on its first clone. A hyphenated UUID is ASCII hex and '-': always
        // a valid header value.
        Self(
            HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        )
    }

    /// The ID as text (always visible ASCII).
    ///
    /// ```
    /// let id = towerscope_request_id::RequestId::new_v7();
    /// assert!(id.as_str().bytes().all(|b| b.is_ascii_graphic()));
    /// ```
    pub fn as_str(&self) -> &str {
        // Every constructor checks for visible ASCII.
        self.0.to_str().unwrap_or_default()
    }

    /// The ID as a header value.
    ///
    /// ```
    /// let id = towerscope_request_id::RequestId::new_v7();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-request-id", id.header_value().clone());
    /// assert_eq!(headers["x-request-id"], id.as_str());
    /// ```
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The ID as an owned header value.
    ///
    /// ```
    /// let id = towerscope_request_id::RequestId::new_v7();
    /// assert_eq!(id.clone().into_header_value(), *id.header_value());
    /// ```
    pub fn into_header_value(self) -> HeaderValue {
        self.0
    }

    /// The ID of the request being served on this task: the nearest enclosing span that
    /// [`RequestIdLayer`](crate::RequestIdLayer) made (including spans entered in tasks the
    /// handler spawned with `.instrument(Span::current())`). `None` outside a request, or
    /// when the subscriber is not built on `tracing_subscriber::Registry`.
    ///
    /// ```
    /// assert!(towerscope_request_id::RequestId::current().is_none());
    /// ```
    pub fn current() -> Option<Self> {
        crate::span::current_request_id()
    }

    /// The ID a request span carries (always made from a `RequestId`).
    pub(crate) fn from_span(id: &towerscope_core::SpanRequestId) -> Self {
        Self(id.0.clone())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

/// Why an inbound ID was not accepted; the `reason` label of
/// `towerscope_request_id_rejected_total`.
///
/// ```
/// use towerscope_request_id::{IdRules, Rejection};
/// let rules = IdRules::default();
/// assert_eq!(rules.check(b""), Err(Rejection::Empty));
/// assert_eq!(rules.check(b"ab\r\ncd"), Err(Rejection::InvalidCharacter));
/// assert!(rules.check(b"0190a0c5-7f1e-7000-8000-000000000000").is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    /// The header was present but empty.
    #[error("empty")]
    Empty,
    /// Longer than the configured limit.
    #[error("too long")]
    TooLong,
    /// A byte outside the allowed set (control characters, spaces, quotes, non-ASCII, …).
    #[error("invalid character")]
    InvalidCharacter,
    /// More than one ID header was sent.
    #[error("several values")]
    Multiple,
}

impl Rejection {
    pub(crate) const ALL: [Rejection; 4] = [
        Self::Empty,
        Self::TooLong,
        Self::InvalidCharacter,
        Self::Multiple,
    ];

    /// The label value.
    ///
    /// ```
    /// assert_eq!(towerscope_request_id::Rejection::TooLong.as_str(), "too_long"); // the metric's `reason`
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::InvalidCharacter => "invalid_character",
            Self::Multiple => "multiple",
        }
    }
}

type CharFn = dyn Fn(u8) -> bool + Send + Sync;

/// What an inbound ID must look like to be kept: at most `max_len` bytes (default 128), each
/// an ASCII letter, digit, or one of `-_.:+/=@` (configurable).
///
/// ```
/// use towerscope_request_id::IdRules;
/// let rules = IdRules::default().max_len(8).allowed(|b| b.is_ascii_digit());
/// assert!(rules.check(b"12345678").is_ok());
/// assert!(rules.check(b"123456789").is_err());
/// assert!(rules.check(b"12a").is_err());
/// ```
#[derive(Clone)]
pub struct IdRules {
    max_len: usize,
    allowed: Arc<CharFn>,
}

impl Default for IdRules {
    fn default() -> Self {
        Self {
            max_len: 128,
            allowed: Arc::new(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b)),
        }
    }
}

impl std::fmt::Debug for IdRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdRules")
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl IdRules {
    /// Longest accepted ID, in bytes.
    ///
    /// ```
    /// use towerscope_request_id::{IdRules, Rejection};
    /// let rules = IdRules::default().max_len(8);
    /// assert_eq!(rules.check(b"abc-1234"), Ok(()));
    /// assert_eq!(rules.check(b"abc-12345"), Err(Rejection::TooLong));
    /// ```
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Which bytes an ID may contain. Control characters, space, `"`, `\` and non-ASCII are
    /// always refused, whatever this says.
    ///
    /// ```
    /// use towerscope_request_id::{IdRules, Rejection};
    /// let hex_only = IdRules::default().allowed(|b| b.is_ascii_hexdigit());
    /// assert_eq!(hex_only.check(b"0af7651916cd"), Ok(()));
    /// assert_eq!(hex_only.check(b"req-42"), Err(Rejection::InvalidCharacter));
    /// ```
    pub fn allowed(mut self, f: impl Fn(u8) -> bool + Send + Sync + 'static) -> Self {
        self.allowed = Arc::new(f);
        self
    }

    /// Checks one inbound value.
    ///
    /// ```
    /// use towerscope_request_id::{IdRules, Rejection};
    /// let rules = IdRules::default();
    /// assert_eq!(rules.check(b"0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"), Ok(()));
    /// assert_eq!(rules.check(b"evil\r\nx-admin: 1"), Err(Rejection::InvalidCharacter));
    /// assert_eq!(rules.check(b""), Err(Rejection::Empty));
    /// ```
    pub fn check(&self, value: &[u8]) -> Result<(), Rejection> {
        if value.is_empty() {
            return Err(Rejection::Empty);
        }
        if value.len() > self.max_len {
            return Err(Rejection::TooLong);
        }
        let always_bad = |b: u8| !b.is_ascii_graphic() || b == b'"' || b == b'\\';
        if value.iter().any(|&b| always_bad(b) || !(self.allowed)(b)) {
            return Err(Rejection::InvalidCharacter);
        }
        Ok(())
    }

    pub(crate) fn accept(&self, value: &HeaderValue) -> Result<RequestId, Rejection> {
        self.check(value.as_bytes())
            .map(|()| RequestId(value.clone()))
    }
}

/// How new IDs are made.
///
/// ```
/// use towerscope_request_id::{Generator, RequestId};
/// let g = Generator::custom(|| RequestId::new_v4());
/// assert_eq!(g.generate().as_str().len(), 36);
/// ```
#[derive(Clone, Default)]
pub enum Generator {
    /// UUID v7 (default).
    #[default]
    UuidV7,
    /// UUID v4.
    UuidV4,
    /// Your own function.
    Custom(Arc<dyn Fn() -> RequestId + Send + Sync>),
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UuidV7 => f.write_str("UuidV7"),
            Self::UuidV4 => f.write_str("UuidV4"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Generator {
    /// A generator from a function.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use towerscope_request_id::{Generator, request_id_from};
    /// static NEXT: AtomicU64 = AtomicU64::new(1);
    /// let sequential = Generator::custom(|| {
    ///     request_id_from(&format!("req-{}", NEXT.fetch_add(1, Ordering::Relaxed))).expect("valid text")
    /// });
    /// assert_eq!(sequential.generate().as_str(), "req-1");
    /// ```
    pub fn custom(f: impl Fn() -> RequestId + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// Makes one ID.
    ///
    /// ```
    /// let id = towerscope_request_id::Generator::UuidV4.generate();
    /// assert_eq!(&id.as_str()[14..15], "4");
    /// ```
    pub fn generate(&self) -> RequestId {
        match self {
            Self::UuidV7 => RequestId::new_v7(),
            Self::UuidV4 => RequestId::new_v4(),
            Self::Custom(f) => f(),
        }
    }
}

/// Makes a [`RequestId`] from text of your own (for [`Generator::custom`]), if it is a valid
/// header value of visible ASCII.
///
/// ```
/// use towerscope_request_id::request_id_from;
/// assert!(request_id_from("order-42").is_some());
/// assert!(request_id_from("bad\nid").is_none());
/// ```
pub fn request_id_from(text: &str) -> Option<RequestId> {
    let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| HeaderValue::from_str(text).ok().map(RequestId))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_ids_are_unique_and_sort_in_creation_order_on_one_thread() {
        let ids: Vec<RequestId> = (0..10_000).map(|_| RequestId::new_v7()).collect();
        let made: Vec<&str> = ids.iter().map(RequestId::as_str).collect();
        let mut sorted = made.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, made);
        let uuid = uuid::Uuid::parse_str(made[0]).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 7);
    }

    #[test]
    fn v7_ids_carry_the_current_unix_time() {
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).expect("ms");
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
        };
        for _ in 0..3 {
            let before = millis(now());
            let id = RequestId::new_v7();
            let after = millis(now());
            let uuid = uuid::Uuid::parse_str(id.as_str()).expect("a UUID");
            let (secs, nanos) = uuid.get_timestamp().expect("v7 has a time").to_unix();
            let stamped = secs * 1000 + u64::from(nanos / 1_000_000);
            // The counter may run a millisecond ahead of or behind the system clock.
            assert!(
                stamped + 1 >= before && stamped <= after + 1,
                "{before} <= {stamped} <= {after}"
            );
            std::thread::sleep(std::time::Duration::from_millis(600));
        }
    }

    #[test]
    fn v7_ids_of_many_threads_are_unique() {
        let ids: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..5_000)
                            .map(|_| RequestId::new_v7().to_string())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("worker"))
                .collect()
        });
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 20_000);
    }

    #[test]
    fn hostile_values_are_rejected() {
        let rules = IdRules::default();
        let long = vec![b'a'; 10 * 1024];
        for (value, why) in [
            (&b"a\r\nX-Injected: 1"[..], Rejection::InvalidCharacter),
            (&long[..], Rejection::TooLong),
            ("é".as_bytes(), Rejection::InvalidCharacter),
            (b"a b", Rejection::InvalidCharacter),
            (b"a\"b", Rejection::InvalidCharacter),
            (b"\x1b[31m", Rejection::InvalidCharacter),
            (b"", Rejection::Empty),
        ] {
            assert_eq!(rules.check(value), Err(why), "{value:?}");
        }
        // A permissive rule still cannot let control characters through.
        let lax = IdRules::default().allowed(|_| true);
        assert_eq!(lax.check(b"a\tb"), Err(Rejection::InvalidCharacter));
    }
}

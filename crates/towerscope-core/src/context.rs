//! Request context shared between layers through `http::Extensions`.

/// The trace and span of the current request, put into the request extensions by a tracing
/// layer (towerscope's trace layer, or your own). The metrics layer attaches it to histogram
/// observations as an OpenMetrics exemplar when `sampled` is set.
///
/// ```
/// use towerscope_core::TraceIds;
/// let ids = TraceIds { trace_id: [0xab; 16], span_id: [0xcd; 8], sampled: true };
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ids);
/// assert_eq!(req.extensions().get::<TraceIds>().unwrap().trace_id_hex().as_str().len(), 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceIds {
    /// The W3C trace ID.
    pub trace_id: [u8; 16],
    /// The W3C span ID of the server span.
    pub span_id: [u8; 8],
    /// Whether the trace is sampled (exemplars only point at sampled traces).
    pub sampled: bool,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex<const N: usize, const M: usize>(bytes: &[u8; N]) -> HexId<M> {
    let mut out = [0u8; M];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    HexId(out)
}

/// A lower-case hex rendering of an ID, on the stack.
///
/// ```
/// use towerscope_core::TraceIds;
/// let ids = TraceIds { trace_id: [1; 16], span_id: [2; 8], sampled: true };
/// assert_eq!(ids.span_id_hex().as_str(), "0202020202020202");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexId<const M: usize>([u8; M]);

impl<const M: usize> HexId<M> {
    /// The hex string.
    ///
    /// ```
    /// use towerscope_core::TraceIds;
    /// let ids = TraceIds { trace_id: [0xab; 16], span_id: [0x01; 8], sampled: false };
    /// assert_eq!(ids.trace_id_hex().as_str(), "ab".repeat(16));
    /// ```
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl<const M: usize> std::fmt::Debug for HexId<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const M: usize> std::fmt::Display for HexId<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TraceIds {
    /// The trace ID as 32 lower-case hex digits.
    ///
    /// ```
    /// use towerscope_core::TraceIds;
    /// let mut trace_id = [0; 16];
    /// trace_id[15] = 0x2a;
    /// let ids = TraceIds { trace_id, span_id: [1; 8], sampled: true };
    /// assert_eq!(ids.trace_id_hex().to_string(), "0000000000000000000000000000002a");
    /// ```
    pub fn trace_id_hex(&self) -> HexId<32> {
        hex(&self.trace_id)
    }
    /// The span ID as 16 lower-case hex digits.
    ///
    /// ```
    /// use towerscope_core::TraceIds;
    /// let ids = TraceIds { trace_id: [1; 16], span_id: [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31], sampled: true };
    /// assert_eq!(ids.span_id_hex().as_str(), "b7ad6b7169203331");
    /// ```
    pub fn span_id_hex(&self) -> HexId<16> {
        hex(&self.span_id)
    }
}

/// When the outermost towerscope layer first saw the request. Inner layers read it instead
/// of taking their own clock reading, so every layer measures from the same instant.
///
/// A monotonic reading from [`quanta`]: the CPU's invariant time-stamp counter, scaled to
/// the OS's monotonic clock, where the CPU has one (the OS clock otherwise). Every timed
/// request takes two readings; on the project's benchmark machine the counter cut their cost
/// from about 100 ns a request to about 25 ns (`docs/benchmarks.md`). The clock is calibrated
/// once per process, in the first reading (up to 200 ms, usually about a millisecond); the
/// layers take that reading when they are built, so no request waits for it.
///
/// ```
/// use towerscope_core::RequestStart;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(RequestStart::now());
/// assert!(req.extensions().get::<RequestStart>().is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestStart(u64);

/// The process's request clock: the counter's raw readings are kept, and only a duration
/// is scaled to nanoseconds. `quanta::Instant::now` would scale every reading and look for a
/// per-thread mock clock first (a pair of readings: 38 ns raw against 53 ns here).
fn clock() -> &'static quanta::Clock {
    static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

impl RequestStart {
    /// Now.
    ///
    /// ```
    /// let start = towerscope_core::RequestStart::now();
    /// assert!(start.elapsed() < std::time::Duration::from_secs(60));
    /// ```
    #[inline]
    pub fn now() -> Self {
        Self(clock().raw())
    }

    /// Calibrates the clock now if no reading has yet (see the type's docs). The layers
    /// that time requests call it when they are built.
    ///
    /// ```
    /// towerscope_core::RequestStart::calibrate();
    /// ```
    pub fn calibrate() {
        let _ = clock();
    }

    /// Time since this start (zero if the clock reads earlier, which it does not).
    ///
    /// ```
    /// let start = towerscope_core::RequestStart::now();
    /// std::thread::sleep(std::time::Duration::from_millis(2));
    /// assert!(start.elapsed() >= std::time::Duration::from_millis(2));
    /// ```
    #[inline]
    pub fn elapsed(&self) -> std::time::Duration {
        let clock = clock();
        clock.delta(self.0, clock.raw())
    }

    /// The start recorded in `extensions`, or now when no outer layer recorded one.
    /// Reading never allocates; a layer that wants to share its reading inserts
    /// `RequestStart` itself.
    ///
    /// ```
    /// use towerscope_core::RequestStart;
    /// let mut req = http::Request::new(());
    /// let t0 = RequestStart::now();
    /// req.extensions_mut().insert(t0);
    /// assert_eq!(RequestStart::get_or_now(req.extensions()), t0);
    /// ```
    #[inline]
    pub fn get_or_now(extensions: &http::Extensions) -> Self {
        match extensions.get::<RequestStart>() {
            Some(start) => *start,
            None => Self::now(),
        }
    }
}

/// The longest period of towerscope's background tasks (alert evaluation, Alertmanager
/// re-sends, dashboard sampling, gRPC health syncing): a day. A longer period, up to
/// `Duration::MAX` ("for ever"), is taken as a day: tokio's interval panics scheduling a tick
/// past what its clock holds, and the task would silently stop.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(towerscope_core::MAX_PERIOD, Duration::from_secs(24 * 3600));
/// assert_eq!(Duration::MAX.min(towerscope_core::MAX_PERIOD), towerscope_core::MAX_PERIOD);
/// ```
pub const MAX_PERIOD: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How long a thread trusts the request clock before it reads the system clock again.
const WALL_CLOCK_RESYNC: std::time::Duration = std::time::Duration::from_secs(1);

/// Time since the Unix epoch, from the request clock: the system clock is read once a
/// second per thread, and the counter [`RequestStart`] reads in between.
///
/// For timestamps made on every request (UUID v7 request IDs): a system clock reading
/// costs 30–40 ns on the virtual machine the project measures on, a counter reading about
/// 20. The counter runs at a constant rate, so between two system clock readings the result
/// drifts from the system clock by at most its slew rate (NTP slews at most 500 ppm: half a
/// millisecond a second), and a step of the system clock shows within a second. Log
/// timestamps, which must be the system clock's, do not use it.
///
/// ```
/// use std::time::{SystemTime, UNIX_EPOCH};
/// let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
/// let ours = towerscope_core::unix_now();
/// assert!(ours.abs_diff(system) < std::time::Duration::from_secs(1));
/// ```
pub fn unix_now() -> std::time::Duration {
    use std::cell::Cell;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    thread_local! {
        static ANCHOR: Cell<Option<(u64, Duration)>> = const { Cell::new(None) };
    }
    let system = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    };
    let clock = clock();
    let raw = clock.raw();
    ANCHOR
        .try_with(|anchor| {
            if let Some((at, wall)) = anchor.get() {
                let since = clock.delta(at, raw);
                if since < WALL_CLOCK_RESYNC {
                    return wall + since;
                }
            }
            let wall = system();
            anchor.set(Some((raw, wall)));
            wall
        })
        // A thread being torn down has no anchor left.
        .unwrap_or_else(|_| system())
}

/// The authenticated user of a request, put into the request (or response) extensions by an
/// authentication layer. The access log and the JSON logs report it as `user_id`.
///
/// ```
/// use towerscope_core::UserId;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(UserId::new("u-42"));
/// assert_eq!(req.extensions().get::<UserId>().unwrap().as_str(), "u-42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(std::sync::Arc<str>);

impl UserId {
    /// A user ID.
    ///
    /// ```
    /// use towerscope_core::UserId;
    /// let from_string = UserId::new(String::from("u-42"));
    /// assert_eq!(from_string, UserId::new("u-42"));
    /// assert_eq!(from_string.to_string(), "u-42");
    /// ```
    pub fn new(id: impl Into<std::sync::Arc<str>>) -> Self {
        Self(id.into())
    }
    /// The ID as text.
    ///
    /// ```
    /// let id = towerscope_core::UserId::new("u-42");
    /// assert_eq!(id.as_str(), "u-42");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The request ID as the request span carries it, in the span's extensions (for
/// `tracing-subscriber` registries).
///
/// towerscope-request-id's `request` span stores its ID here instead of as a recorded field
/// value, so that a log layer can write it without formatting and copying it for every
/// span; towerscope-log's JSON layer writes it as `request_id`, and
/// `RequestId::current()` reads it. Other subscribers see the span's `request_id` field as
/// usual.
///
/// ```
/// use towerscope_core::SpanRequestId;
/// let id = SpanRequestId(http::HeaderValue::from_static("0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"));
/// assert_eq!(id.as_str(), "0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRequestId(pub http::HeaderValue);

impl SpanRequestId {
    /// The ID as text (empty if the value is not visible ASCII, which request IDs always are).
    ///
    /// ```
    /// use towerscope_core::SpanRequestId;
    /// assert_eq!(SpanRequestId(http::HeaderValue::from_static("req-1")).as_str(), "req-1");
    /// // Not visible ASCII: no text rather than a lossy one.
    /// let raw = http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
    /// assert_eq!(SpanRequestId(raw).as_str(), "");
    /// ```
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// The peer address of a connection, as connect info for axum with any listener whose
/// address is a `SocketAddr` (including towerscope-metrics' tracked listener, for which
/// axum's own `SocketAddr` connect info is not available). The access log reads it.
///
#[cfg_attr(feature = "axum", doc = "```no_run")]
#[cfg_attr(not(feature = "axum"), doc = "```ignore")]
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// use towerscope_core::PeerAddr;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<PeerAddr>()).await
/// # }
/// ```
/// Plain hyper servers insert it into each request's extensions themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub std::net::SocketAddr);

#[cfg(feature = "axum")]
impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

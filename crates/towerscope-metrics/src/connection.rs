//! [`ConnectionTracker`]: open connections, connections accepted, connection duration.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use towerscope_core::ConnectionObserver;

/// Connection duration buckets, seconds: 10 ms to 1 h.
const CONNECTION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Debug)]
struct Metrics {
    open: Gauge,
    total: Counter,
    duration: Histogram,
}

/// Tracks the connections of a listener:
/// `http_server_open_connections` (gauge), `http_server_connections_total` (counter) and
/// `http_server_connection_duration_seconds` (histogram, observed when the connection
/// closes). OpenTelemetry has no stable HTTP connection metrics; these names follow the
/// shape of its `http.server.*` instruments.
///
/// With axum 0.8, wrap the listener:
#[cfg_attr(feature = "axum", doc = "```no_run")]
#[cfg_attr(not(feature = "axum"), doc = "```ignore")]
/// # async fn run() -> std::io::Result<()> {
/// use prometheus_client::registry::Registry;
/// use towerscope_metrics::ConnectionTracker;
/// let mut registry = Registry::default();
/// let tracker = ConnectionTracker::new(&mut registry);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let app = axum::Router::new();
/// axum::serve(tracker.listener(listener), app).await?;
/// # Ok(()) }
/// ```
/// With tonic (feature `tonic`), the tracked listener's `incoming()` is the stream
/// `serve_with_incoming` takes; it also retries accept errors without spinning and sets
/// `TCP_NODELAY` (towerscope-core's `TrackedIncoming`):
#[cfg_attr(feature = "tonic", doc = "```no_run")]
#[cfg_attr(not(feature = "tonic"), doc = "```ignore")]
/// # async fn run(tracker: towerscope_metrics::ConnectionTracker) -> Result<(), Box<dyn std::error::Error>> {
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// let incoming = tracker.listener(tcp).incoming();
/// # let _ = incoming;
/// // tonic::transport::Server::builder().add_service(...).serve_with_incoming(incoming).await?;
/// # Ok(()) }
/// ```
/// With a hyper-util accept loop, wrap each accepted stream:
/// ```no_run
/// # async fn run(tracker: towerscope_metrics::ConnectionTracker) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, _peer) = match listener.accept().await {
///         Ok(accepted) => accepted,
///         Err(_) => {
///             // Out of file descriptors and the like: pause (as `axum::serve` does), go on.
///             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///             continue;
///         }
///     };
///     let io = hyper_util::rt::TokioIo::new(tracker.track(stream));
///     // hyper::server::conn::http1::Builder::new().serve_connection(io, service) ...
/// #   drop(io);
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionTracker {
    metrics: Arc<Metrics>,
}

impl ConnectionTracker {
    /// Registers the connection metrics into `registry`.
    ///
    /// ```
    /// use towerscope_metrics::{ConnectionTracker, Format, MetricsService};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let tracker = ConnectionTracker::new(&mut registry);
    /// drop(tracker.track(tokio::io::empty())); // one connection opened and closed
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// assert!(text.contains("http_server_connections_total 1"), "{text}");
    /// assert!(text.contains("http_server_open_connections 0"), "{text}");
    /// assert!(text.contains("http_server_connection_duration_seconds_count 1"), "{text}");
    /// ```
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Arc::new(Metrics {
            open: Gauge::default(),
            total: Counter::default(),
            duration: Histogram::new(CONNECTION_BUCKETS),
        });
        registry.register(
            "http_server_open_connections",
            "HTTP server connections open now",
            metrics.open.clone(),
        );
        registry.register(
            "http_server_connections",
            "HTTP server connections accepted",
            metrics.total.clone(),
        );
        registry.register(
            "http_server_connection_duration_seconds",
            "Lifetime of closed HTTP server connections",
            metrics.duration.clone(),
        );
        Self { metrics }
    }

    /// Counts `io` as an open connection until the returned wrapper is dropped.
    ///
    /// ```
    /// use tokio::io::AsyncReadExt as _;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let mut registry = prometheus_client::registry::Registry::default();
    /// let tracker = towerscope_metrics::ConnectionTracker::new(&mut registry);
    /// let mut io = tracker.track(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    /// let mut request = String::new();
    /// io.read_to_string(&mut request).await.unwrap(); // bytes pass through unchanged
    /// assert!(request.starts_with("GET / "));
    /// assert_eq!(tracker.open(), 1);
    /// drop(io);
    /// assert_eq!(tracker.open(), 0);
    /// # });
    /// ```
    pub fn track<IO>(&self, io: IO) -> TrackedIo<IO> {
        towerscope_core::TrackedIo::new(io, self.on_open())
    }

    /// Wraps a listener so that every accepted connection is tracked. With axum, serve it
    /// with `into_make_service_with_connect_info::<towerscope_core::PeerAddr>()` to have
    /// client addresses in the access log.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let mut registry = prometheus_client::registry::Registry::default();
    /// let tracker = towerscope_metrics::ConnectionTracker::new(&mut registry);
    /// let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = tcp.local_addr().unwrap();
    /// let mut listener = tracker.listener(tcp);
    /// let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    /// let (io, _peer) = listener.try_accept().await.unwrap(); // or `axum::serve(listener, app)`
    /// assert_eq!(tracker.open(), 1);
    /// drop(io);
    /// assert_eq!(tracker.open(), 0);
    /// # });
    /// ```
    pub fn listener<L>(&self, listener: L) -> TrackedListener<L> {
        towerscope_core::TrackedListener::new(listener, self.clone())
    }

    /// Connections open now.
    ///
    /// ```
    /// # let mut registry = prometheus_client::registry::Registry::default();
    /// let tracker = towerscope_metrics::ConnectionTracker::new(&mut registry);
    /// let io = tracker.track(tokio::io::empty());
    /// assert_eq!(tracker.open(), 1);
    /// drop(io);
    /// assert_eq!(tracker.open(), 0);
    /// ```
    pub fn open(&self) -> i64 {
        self.metrics.open.get()
    }
}

/// Held by a tracked connection; closing it records the connection's end.
///
/// ```
/// use towerscope_core::ConnectionObserver as _;
/// let mut registry = prometheus_client::registry::Registry::default();
/// let tracker = towerscope_metrics::ConnectionTracker::new(&mut registry);
/// let guard = tracker.on_open(); // what a tracked listener does for each accepted connection
/// assert_eq!(tracker.open(), 1);
/// drop(guard); // the connection closed: its duration is observed
/// assert_eq!(tracker.open(), 0);
/// ```
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    start: Instant,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.open.dec();
        self.metrics
            .duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl ConnectionObserver for ConnectionTracker {
    type Guard = ConnectionGuard;

    fn on_open(&self) -> ConnectionGuard {
        self.metrics.open.inc();
        self.metrics.total.inc();
        ConnectionGuard {
            metrics: self.metrics.clone(),
            start: Instant::now(),
        }
    }
}

/// A connection counted by a [`ConnectionTracker`] until dropped.
///
/// ```
/// let mut registry = prometheus_client::registry::Registry::default();
/// let tracker = towerscope_metrics::ConnectionTracker::new(&mut registry);
/// let io: towerscope_metrics::TrackedIo<tokio::io::Empty> = tracker.track(tokio::io::empty());
/// # drop(io);
/// ```
pub type TrackedIo<IO> = towerscope_core::TrackedIo<IO, ConnectionGuard>;

/// A listener whose connections a [`ConnectionTracker`] counts.
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// let mut registry = prometheus_client::registry::Registry::default();
/// let tracker = towerscope_metrics::ConnectionTracker::new(&mut registry);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let listener: towerscope_metrics::TrackedListener<_> = tracker.listener(listener);
/// axum::serve(listener, app).await
/// # }
/// ```
pub type TrackedListener<L> = towerscope_core::TrackedListener<L, ConnectionTracker>;

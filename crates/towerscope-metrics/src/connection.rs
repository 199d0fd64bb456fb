//! [`ConnectionTracker`]: open connections, connections accepted, connection duration.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
/// ```no_run
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
/// With a hyper-util accept loop, wrap each accepted stream:
/// ```no_run
/// # async fn run(tracker: towerscope_metrics::ConnectionTracker) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, _peer) = listener.accept().await?;
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
    pub fn track<IO>(&self, io: IO) -> TrackedIo<IO> {
        self.metrics.open.inc();
        self.metrics.total.inc();
        TrackedIo {
            io,
            guard: ConnectionGuard {
                metrics: self.metrics.clone(),
                start: Instant::now(),
            },
        }
    }

    /// Wraps a listener so that every accepted connection is tracked.
    pub fn listener<L>(&self, listener: L) -> TrackedListener<L> {
        TrackedListener {
            listener,
            tracker: self.clone(),
        }
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

#[derive(Debug)]
struct ConnectionGuard {
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

pin_project! {
    /// A connection counted by a [`ConnectionTracker`] until dropped. Reads and writes pass
    /// through unchanged.
    #[derive(Debug)]
    pub struct TrackedIo<IO> {
        #[pin]
        io: IO,
        guard: ConnectionGuard,
    }
}

impl<IO> TrackedIo<IO> {
    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead> AsyncRead for TrackedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite> AsyncWrite for TrackedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A listener whose accepted connections are tracked; see [`ConnectionTracker::listener`].
#[derive(Debug)]
pub struct TrackedListener<L> {
    listener: L,
    tracker: ConnectionTracker,
}

impl TrackedListener<tokio::net::TcpListener> {
    /// Accepts one TCP connection, tracked (for hand-written hyper-util accept loops).
    pub async fn try_accept(
        &mut self,
    ) -> io::Result<(TrackedIo<tokio::net::TcpStream>, std::net::SocketAddr)> {
        let (stream, addr) = self.listener.accept().await?;
        Ok((self.tracker.track(stream), addr))
    }
}

#[cfg(feature = "axum")]
impl<L> axum::serve::Listener for TrackedListener<L>
where
    L: axum::serve::Listener,
{
    type Io = TrackedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.listener.accept().await;
        (self.tracker.track(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

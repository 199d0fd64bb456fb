//! Connection lifecycle: a listener wrapper that tells a [`ConnectionObserver`] when each
//! connection opens and closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Told when a connection opens; the returned guard is dropped when it closes.
///
/// ```
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use std::sync::Arc;
/// use towerscope_core::ConnectionObserver;
///
/// #[derive(Clone, Default)]
/// struct Open(Arc<AtomicI64>);
/// struct Closing(Arc<AtomicI64>);
/// impl Drop for Closing {
///     fn drop(&mut self) { self.0.fetch_sub(1, Ordering::Relaxed); }
/// }
/// impl ConnectionObserver for Open {
///     type Guard = Closing;
///     fn on_open(&self) -> Closing { self.0.fetch_add(1, Ordering::Relaxed); Closing(self.0.clone()) }
/// }
/// let open = Open::default();
/// let io = towerscope_core::TrackedIo::new(tokio::io::empty(), open.on_open());
/// assert_eq!(open.0.load(Ordering::Relaxed), 1);
/// drop(io);
/// assert_eq!(open.0.load(Ordering::Relaxed), 0);
/// ```
pub trait ConnectionObserver: Clone + Send + Sync + 'static {
    /// Held for the life of the connection.
    type Guard: Send + 'static;
    /// A connection was accepted.
    fn on_open(&self) -> Self::Guard;
}

pin_project! {
    /// A connection that holds its observer's guard until dropped. Reads and writes pass
    /// through unchanged.
    #[derive(Debug)]
    ///
    /// ```
    /// use tokio::io::AsyncReadExt as _;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut io = towerscope_core::TrackedIo::new(&b"ping"[..], "the guard");
    /// let mut read = String::new();
    /// io.read_to_string(&mut read).await.unwrap(); // reads pass through unchanged
    /// assert_eq!(read, "ping");
    /// # });
    /// ```
    pub struct TrackedIo<IO, G> {
        #[pin]
        io: IO,
        guard: G,
    }
}

impl<IO, G> TrackedIo<IO, G> {
    /// Wraps `io`, holding `guard`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let guard = Arc::new(()); // anything whose drop marks the close
    /// let io = towerscope_core::TrackedIo::new(tokio::io::empty(), guard.clone());
    /// assert_eq!(Arc::strong_count(&guard), 2);
    /// drop(io); // the connection closed: its guard is dropped with it
    /// assert_eq!(Arc::strong_count(&guard), 1);
    /// ```
    pub fn new(io: IO, guard: G) -> Self {
        Self { io, guard }
    }

    /// The wrapped connection.
    ///
    /// ```
    /// let io = towerscope_core::TrackedIo::new(&b"ping"[..], ());
    /// assert_eq!(*io.get_ref(), b"ping");
    /// ```
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead, G> AsyncRead for TrackedIo<IO, G> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite, G> AsyncWrite for TrackedIo<IO, G> {
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

/// A listener whose accepted connections are observed. With axum 0.8 it is a
/// `serve::Listener`, and [`PeerAddr`](crate::PeerAddr) works as connect info with it.
///
/// ```no_run
/// # async fn run(app: axum::Router, observer: impl towerscope_core::ConnectionObserver) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let listener = towerscope_core::TrackedListener::new(listener, observer);
/// axum::serve(listener, app).await
/// # }
/// ```
#[derive(Debug)]
pub struct TrackedListener<L, O> {
    pub(crate) listener: L,
    pub(crate) observer: O,
}

impl<L, O: ConnectionObserver> TrackedListener<L, O> {
    /// Wraps `listener`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use towerscope_core::{ConnectionObserver, TrackedListener};
    /// #[derive(Clone, Default)]
    /// struct Accepted(Arc<AtomicUsize>);
    /// impl ConnectionObserver for Accepted {
    ///     type Guard = ();
    ///     fn on_open(&self) { self.0.fetch_add(1, Ordering::Relaxed); }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = tcp.local_addr().unwrap();
    /// let mut listener = TrackedListener::new(tcp, Accepted::default());
    /// let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    /// let (_io, _peer) = listener.try_accept().await.unwrap();
    /// assert_eq!(listener.observer().0.load(Ordering::Relaxed), 1);
    /// # });
    /// ```
    pub fn new(listener: L, observer: O) -> Self {
        Self { listener, observer }
    }

    /// The observer.
    ///
    /// ```
    /// use towerscope_core::{ConnectionObserver, TrackedListener};
    /// #[derive(Clone)]
    /// struct Named(&'static str);
    /// impl ConnectionObserver for Named {
    ///     type Guard = ();
    ///     fn on_open(&self) {}
    /// }
    /// let listener = TrackedListener::new((), Named("public port"));
    /// assert_eq!(listener.observer().0, "public port");
    /// ```
    pub fn observer(&self) -> &O {
        &self.observer
    }
}

impl<O: ConnectionObserver> TrackedListener<tokio::net::TcpListener, O> {
    /// Accepts one TCP connection, observed (for hand-written hyper-util accept loops).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use towerscope_core::{ConnectionObserver, TrackedListener};
    /// /// Open connections: the guard's reference count, less the observer's own.
    /// #[derive(Clone, Default)]
    /// struct Open(Arc<()>);
    /// impl ConnectionObserver for Open {
    ///     type Guard = Arc<()>;
    ///     fn on_open(&self) -> Arc<()> { self.0.clone() }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = tcp.local_addr().unwrap();
    /// let mut listener = TrackedListener::new(tcp, Open::default());
    /// let open = listener.observer().clone();
    /// let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    /// let (io, peer) = listener.try_accept().await.unwrap();
    /// assert_eq!(peer, client.local_addr().unwrap());
    /// assert_eq!(Arc::strong_count(&open.0) - 2, 1);
    /// // A hyper-util accept loop would hand `io` (through `TokioIo`) to a connection task.
    /// drop(io);
    /// assert_eq!(Arc::strong_count(&open.0) - 2, 0);
    /// # });
    /// ```
    pub async fn try_accept(
        &mut self,
    ) -> io::Result<(
        TrackedIo<tokio::net::TcpStream, O::Guard>,
        std::net::SocketAddr,
    )> {
        let (stream, addr) = self.listener.accept().await?;
        Ok((TrackedIo::new(stream, self.observer.on_open()), addr))
    }
}

#[cfg(feature = "axum")]
impl<L, O> axum::serve::Listener for TrackedListener<L, O>
where
    L: axum::serve::Listener,
    O: ConnectionObserver,
{
    type Io = TrackedIo<L::Io, O::Guard>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.listener.accept().await;
        (TrackedIo::new(io, self.observer.on_open()), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(feature = "axum")]
impl<L, O>
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TrackedListener<L, O>>>
    for crate::PeerAddr
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    O: ConnectionObserver,
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TrackedListener<L, O>>) -> Self {
        Self(*stream.remote_addr())
    }
}

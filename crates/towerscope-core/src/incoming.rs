//! [`TrackedIncoming`]: a tracked TCP listener as the stream of connections tonic's
//! `serve_with_incoming` takes.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::{ConnectionObserver, TrackedIo, TrackedListener};

/// How long accepting pauses after an error that is not about one connection.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// The connections of a [`TrackedListener`], each observed, as a stream for tonic's
/// `Server::serve_with_incoming` (from [`TrackedListener::incoming`]).
///
/// It does what tonic's own `TcpIncoming` leaves out:
///
/// - **Accept errors neither end nor spin the server.** An error about one connection
///   (reset or aborted before it was accepted) is skipped; any other (`EMFILE`, out of file
///   descriptors) is logged and accepting pauses for a second, as `axum::serve` does.
///   tonic's loop skips every error at once, so while descriptors are exhausted it spins
///   a core on the connection still waiting in the backlog.
/// - **`TCP_NODELAY`** is set on every connection, as tonic's `serve` does and a stream of
///   plain `TcpStream`s does not: without it small HTTP/2 frames wait on Nagle's
///   algorithm.
///
/// Each item is `Ok`: errors never reach tonic, which would only skip them.
///
/// ```no_run
/// # async fn run(observer: impl towerscope_core::ConnectionObserver) -> Result<(), Box<dyn std::error::Error>> {
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// let incoming = towerscope_core::TrackedListener::new(tcp, observer).incoming();
/// tonic::transport::Server::builder()
///     // .layer(obs.layer()).add_service(...)
///     # .add_routes(tonic::service::Routes::default())
///     .serve_with_incoming(incoming)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TrackedIncoming<O> {
    listener: tokio::net::TcpListener,
    observer: O,
    /// While accepting pauses after an error.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

// No field is pinned: the pause is boxed, the observer only cloned from.
impl<O> Unpin for TrackedIncoming<O> {}

impl<O: ConnectionObserver> TrackedListener<tokio::net::TcpListener, O> {
    /// The accepted connections as a stream, for tonic's `serve_with_incoming`: each one
    /// observed, `TCP_NODELAY` set, accept errors retried (see [`TrackedIncoming`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use towerscope_core::{ConnectionObserver, TrackedListener};
    /// use futures_core::Stream;
    /// #[derive(Clone, Default)]
    /// struct Open(Arc<()>);
    /// impl ConnectionObserver for Open {
    ///     type Guard = Arc<()>;
    ///     fn on_open(&self) -> Arc<()> { self.0.clone() }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = tcp.local_addr().unwrap();
    /// let open = Open::default();
    /// let mut incoming = Box::pin(TrackedListener::new(tcp, open.clone()).incoming());
    /// let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    /// let io = std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx)).await.unwrap().unwrap();
    /// assert!(io.get_ref().nodelay().unwrap());
    /// // Ours, the stream's, and the open connection's.
    /// assert_eq!(Arc::strong_count(&open.0), 3, "one connection open");
    /// drop(io);
    /// assert_eq!(Arc::strong_count(&open.0), 2);
    /// # });
    /// ```
    pub fn incoming(self) -> TrackedIncoming<O> {
        TrackedIncoming {
            listener: self.listener,
            observer: self.observer,
            pause: None,
        }
    }
}

/// Whether an accept error concerns only the connection being accepted (the next one may
/// well succeed), as `axum::serve` tells them apart.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl<O: ConnectionObserver> futures_core::Stream for TrackedIncoming<O> {
    type Item = io::Result<TrackedIo<tokio::net::TcpStream, O::Guard>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = &mut this.pause {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            match ready!(this.listener.poll_accept(cx)) {
                Ok((stream, _peer)) => {
                    // Best effort: a socket that refuses it still works.
                    let _ = stream.set_nodelay(true);
                    let io = TrackedIo::new(stream, this.observer.on_open());
                    return Poll::Ready(Some(Ok(io)));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; retrying in 1 s");
                    this.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_PAUSE)));
                }
            }
        }
    }
}

impl<IO, G> tonic::transport::server::Connected for TrackedIo<IO, G>
where
    IO: tonic::transport::server::Connected,
{
    type ConnectInfo = IO::ConnectInfo;

    /// The wrapped connection's: a tracked `TcpStream` gives tonic's `TcpConnectInfo`.
    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tonic::transport::server::Connected as _;

    #[derive(Clone, Default)]
    struct Open(Arc<()>);
    impl ConnectionObserver for Open {
        type Guard = Arc<()>;
        fn on_open(&self) -> Arc<()> {
            self.0.clone()
        }
    }

    async fn next(
        incoming: &mut Pin<Box<TrackedIncoming<Open>>>,
    ) -> TrackedIo<tokio::net::TcpStream, Arc<()>> {
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(incoming.as_mut(), cx))
            .await
            .expect("the stream does not end")
            .expect("items are Ok")
    }

    /// Every connection comes out observed, with `TCP_NODELAY` and the peer as tonic's
    /// connect info; a client that is gone by the time it is accepted does not end the
    /// stream.
    #[tokio::test]
    async fn connections_come_out_observed_with_their_connect_info() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let open = Open::default();
        let mut incoming = Box::pin(TrackedListener::new(tcp, open.clone()).incoming());
        drop(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let first = next(&mut incoming).await;
        let second = next(&mut incoming).await;
        // Ours, the stream's, and one per open connection.
        assert_eq!(Arc::strong_count(&open.0), 4, "two connections open");
        assert!(second.get_ref().nodelay().expect("nodelay"));
        assert_eq!(
            second.connect_info().remote_addr(),
            Some(client.local_addr().expect("addr"))
        );
        drop((first, second));
        assert_eq!(Arc::strong_count(&open.0), 2);
    }
}

//! Bodies for tests: a scripted stream of frames (data, trailers, errors) and one that
//! panics when polled past its script. They make streaming and gRPC cases testable without a
//! network, as tower-http's test helpers do.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame};

use crate::panic::BoxError;

/// One scripted frame.
///
/// ```
/// use towerscope_core::test_body::{ScriptedFrame, frame_data, frame_trailers};
/// // A gRPC response body: one message, then the status in trailers.
/// let frames: Vec<ScriptedFrame> = vec![frame_data("message"), frame_trailers("grpc-status", "0")];
/// assert_eq!(frames.len(), 2);
/// ```
pub type ScriptedFrame = Result<Frame<Bytes>, BoxError>;

/// A data frame.
///
/// ```
/// let f = towerscope_core::test_body::frame_data("abc");
/// assert_eq!(f.unwrap().into_data().unwrap(), "abc");
/// ```
pub fn frame_data(data: &'static str) -> ScriptedFrame {
    Ok(Frame::data(Bytes::from_static(data.as_bytes())))
}

/// A trailers frame with one header.
///
/// ```
/// let f = towerscope_core::test_body::frame_trailers("grpc-status", "0");
/// assert_eq!(f.unwrap().into_trailers().unwrap()["grpc-status"], "0");
/// ```
pub fn frame_trailers(name: &'static str, value: &'static str) -> ScriptedFrame {
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
    Ok(Frame::trailers(map))
}

/// A body that yields its frames in order, each on its own poll, then ends.
///
/// ```
/// use towerscope_core::test_body::{StreamBody, frame_data};
/// let body = StreamBody::new(vec![frame_data("a"), frame_data("b")]);
/// # let _ = body;
/// ```
#[derive(Debug, Default)]
pub struct StreamBody {
    frames: VecDeque<ScriptedFrame>,
    yield_between: bool,
    yielded: bool,
}

impl StreamBody {
    /// A body with the given frames.
    ///
    /// ```
    /// use http_body::Body as _;
    /// use towerscope_core::test_body::{StreamBody, frame_data, frame_trailers};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let body = StreamBody::new(vec![frame_data("a"), frame_trailers("grpc-status", "0")]);
    /// assert!(!body.is_end_stream());
    /// let collected = http_body_util::BodyExt::collect(body).await.unwrap();
    /// assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    /// assert_eq!(collected.to_bytes(), "a");
    /// # });
    /// ```
    pub fn new(frames: Vec<ScriptedFrame>) -> Self {
        Self {
            frames: frames.into(),
            yield_between: false,
            yielded: false,
        }
    }

    /// Returns `Pending` once before each frame (waking itself), as a real stream does.
    ///
    /// ```
    /// use std::task::{Context, Poll};
    /// use http_body::Body;
    /// use towerscope_core::test_body::{StreamBody, frame_data};
    /// let mut body = std::pin::pin!(StreamBody::new(vec![frame_data("a")]).pending_between_frames());
    /// let mut cx = Context::from_waker(std::task::Waker::noop());
    /// assert!(body.as_mut().poll_frame(&mut cx).is_pending());
    /// assert!(matches!(body.as_mut().poll_frame(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// assert!(matches!(body.as_mut().poll_frame(&mut cx), Poll::Ready(None)));
    /// ```
    pub fn pending_between_frames(mut self) -> Self {
        self.yield_between = true;
        self
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.yield_between && !self.yielded && !self.frames.is_empty() {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Poll::Ready(self.frames.pop_front())
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}

/// A body that yields its frames, then panics on the next poll.
///
/// ```
/// use towerscope_core::test_body::{PanicAfter, frame_data};
/// let body = PanicAfter::new(vec![frame_data("a")]);
/// # let _ = body;
/// ```
#[derive(Debug)]
pub struct PanicAfter(StreamBody);

impl PanicAfter {
    /// A body with the given frames before the panic.
    ///
    /// ```
    /// use towerscope_core::test_body::{PanicAfter, frame_data};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let body = PanicAfter::new(vec![frame_data("a")]);
    /// let read = tokio::spawn(http_body_util::BodyExt::collect(body));
    /// assert!(read.await.unwrap_err().is_panic()); // after the scripted frames
    /// # });
    /// ```
    pub fn new(frames: Vec<ScriptedFrame>) -> Self {
        Self(StreamBody::new(frames))
    }
}

impl Body for PanicAfter {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.0).poll_frame(cx) {
            Poll::Ready(None) => panic!("scripted body panic"),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }
}

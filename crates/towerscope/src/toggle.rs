//! A layer that is either applied or not, decided when the stack is built.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// A layer switched on or off at build time; off, requests go straight to the inner
/// service. Both cases have one type, so a stack whose pieces are chosen by configuration
/// still has one type.
///
/// The response body is [`http_body_util::Either`]: `Left` when the layer is on.
///
/// ```
/// use towerscope::Toggle;
/// use towerscope::core::CatchPanicLayer;
/// let on = Toggle::new(Some(CatchPanicLayer::new()));
/// let off: Toggle<CatchPanicLayer> = Toggle::off();
/// assert!(on.is_on() && !off.is_on());
/// ```
#[derive(Debug, Clone)]
pub struct Toggle<L> {
    layer: Option<L>,
}

impl<L> Toggle<L> {
    /// `Some(layer)`: on; `None`: off.
    ///
    /// ```
    /// let toggle = towerscope::Toggle::new(Some(towerscope::core::CatchPanicLayer::new()));
    /// assert!(toggle.is_on());
    /// ```
    pub fn new(layer: Option<L>) -> Self {
        Self { layer }
    }

    /// A toggle that is off.
    ///
    /// ```
    /// assert!(!towerscope::Toggle::<towerscope::core::CatchPanicLayer>::off().is_on());
    /// ```
    pub fn off() -> Self {
        Self { layer: None }
    }

    /// Whether the layer is applied.
    ///
    /// ```
    /// assert!(towerscope::Toggle::new(Some(towerscope::core::CatchPanicLayer::new())).is_on());
    /// ```
    pub fn is_on(&self) -> bool {
        self.layer.is_some()
    }

    /// The layer, when on.
    ///
    /// ```
    /// let toggle = towerscope::Toggle::<towerscope::core::CatchPanicLayer>::off();
    /// assert!(toggle.get().is_none());
    /// ```
    pub fn get(&self) -> Option<&L> {
        self.layer.as_ref()
    }
}

impl<L: Layer<S>, S> Layer<S> for Toggle<L> {
    type Service = Toggled<L::Service, S>;

    fn layer(&self, inner: S) -> Self::Service {
        match &self.layer {
            Some(layer) => Toggled::On {
                service: layer.layer(inner),
            },
            None => Toggled::Off { service: inner },
        }
    }
}

/// The service [`Toggle`] makes: the layered service, or the inner one unchanged.
///
/// ```
/// use tower::Layer as _;
/// use towerscope::{Toggle, Toggled};
/// use towerscope::core::CatchPanicLayer;
/// let inner = tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let off = Toggle::<CatchPanicLayer>::off().layer(inner);
/// assert!(matches!(off, Toggled::Off { .. }));
/// ```
#[derive(Debug, Clone)]
pub enum Toggled<A, B> {
    /// The layer is on.
    On {
        /// The layered service.
        service: A,
    },
    /// The layer is off.
    Off {
        /// The inner service.
        service: B,
    },
}

impl<A, B, ReqB, BodyA, BodyB> Service<Request<ReqB>> for Toggled<A, B>
where
    A: Service<Request<ReqB>, Response = Response<BodyA>>,
    B: Service<Request<ReqB>, Response = Response<BodyB>, Error = A::Error>,
{
    type Response = Response<Either<BodyA, BodyB>>;
    type Error = A::Error;
    type Future = ToggledFuture<A::Future, B::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::On { service } => service.poll_ready(cx),
            Self::Off { service } => service.poll_ready(cx),
        }
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        match self {
            Self::On { service } => ToggledFuture::On {
                future: service.call(request),
            },
            Self::Off { service } => ToggledFuture::Off {
                future: service.call(request),
            },
        }
    }
}

// pin-project-lite takes no documentation on enum fields.
#[allow(missing_docs)]
mod future {
    use super::*;
    pin_project! {
        /// The response future of [`Toggled`]: the layered service's or the inner one's.
        ///
        /// ```
        /// use tower::{Layer as _, Service as _};
        /// use towerscope::{Toggle, ToggledFuture};
        /// use towerscope::core::CatchPanicLayer;
        /// let mut svc = Toggle::<CatchPanicLayer>::off().layer(tower::service_fn(|_: http::Request<()>| async {
        ///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
        /// }));
        /// let future = svc.call(http::Request::new(()));
        /// assert!(matches!(future, ToggledFuture::Off { .. }));
        /// ```
        #[project = ToggledProj]
        pub enum ToggledFuture<A, B> {
            /// The layer is on.
            On {
                #[pin]
                future: A,
            },
            /// The layer is off.
            Off {
                #[pin]
                future: B,
            },
        }
    }
}
pub use future::ToggledFuture;
use future::ToggledProj;

impl<A, B, BodyA, BodyB, E> Future for ToggledFuture<A, B>
where
    A: Future<Output = Result<Response<BodyA>, E>>,
    B: Future<Output = Result<Response<BodyB>, E>>,
{
    type Output = Result<Response<Either<BodyA, BodyB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match self.project() {
            ToggledProj::On { future } => ready!(future.poll(cx)).map(|r| r.map(Either::Left)),
            ToggledProj::Off { future } => ready!(future.poll(cx)).map(|r| r.map(Either::Right)),
        })
    }
}

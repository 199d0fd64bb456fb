//! # towerscope-grpc-example
//!
//! A tonic service (`shop.orders.v1.Orders`) with every towerscope layer from one
//! [`towerscope::Observability`], in the order the architecture gives:
//!
//! ```text
//! RequestIdLayer ─► TraceLayer ─► HttpMetricsLayer (+ in-flight) ─► AccessLogLayer ─► CatchPanicLayer ─► Orders
//! ```
//!
//! - request IDs from `x-request-id` metadata (or new), echoed in the response metadata;
//! - a server span per call with the RPC semantic conventions, its parent read from
//!   `traceparent` metadata;
//! - `rpc_server_*` and `http_server_*` metrics with gRPC status labels, and the in-flight
//!   gauge;
//! - one access-log line per call;
//! - a panic in a handler answered as `INTERNAL`, trailers-only;
//! - `grpc.health.v1` from the same checks as the HTTP probes.
//!
//! `/metrics`, `/health`, `/ready` and the dashboard are served over HTTP on a second port
//! (`obs.router()`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use opentelemetry::trace::TracerProvider as _;
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let example = towerscope_grpc_example::Example::new(provider.tracer("orders"));
//! let grpc = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! let http = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
//! example.serve(grpc, http, std::future::pending()).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::trace::SdkTracer;
use tonic::{Request, Response, Status};
use towerscope::Observability;
use towerscope::health::{CheckOptions, Health, MemoryCheck};

/// The generated protobuf and tonic code for `proto/orders.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("shop.orders.v1");
}

use pb::orders_server::{Orders, OrdersServer};
use pb::{GetOrderRequest, Order, PlaceOrderRequest};

/// The order ID whose lookup panics, to show the panic layer at work.
///
/// ```
/// use towerscope_grpc_example::pb::GetOrderRequest;
/// use towerscope_grpc_example::pb::orders_server::Orders as _;
/// use towerscope_grpc_example::{OrderBook, PANIC_ORDER_ID};
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let lookup = std::panic::catch_unwind(|| {
///     rt.block_on(OrderBook::default().get_order(tonic::Request::new(GetOrderRequest { id: PANIC_ORDER_ID })))
/// });
/// assert!(lookup.is_err(), "the handler panics (the panic layer turns it into INTERNAL)");
/// ```
pub const PANIC_ORDER_ID: u64 = 666;

/// The orders service: an in-memory order book.
///
/// ```
/// use towerscope_grpc_example::OrderBook;
/// use towerscope_grpc_example::pb::orders_server::Orders as _;
/// use towerscope_grpc_example::pb::{GetOrderRequest, PlaceOrderRequest};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let book = OrderBook::default();
/// let placed = book.place_order(tonic::Request::new(PlaceOrderRequest { user_id: 7, amount: 42.5 })).await.unwrap();
/// let id = placed.get_ref().id;
/// let found = book.get_order(tonic::Request::new(GetOrderRequest { id })).await.unwrap();
/// assert_eq!(found.get_ref().amount, 42.5);
/// let refused = book.place_order(tonic::Request::new(PlaceOrderRequest { user_id: 7, amount: -1.0 })).await;
/// assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
/// # });
/// ```
#[derive(Debug, Default, Clone)]
pub struct OrderBook {
    orders: Arc<Mutex<Vec<Order>>>,
}

#[tonic::async_trait]
impl Orders for OrderBook {
    #[tracing::instrument(skip_all, fields(order.id = request.get_ref().id), err)]
    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let id = request.get_ref().id;
        if id == PANIC_ORDER_ID {
            panic!("order {id} trips a bug");
        }
        let orders = self
            .orders
            .lock()
            .map_err(|_| Status::internal("order book poisoned"))?;
        orders
            .iter()
            .find(|o| o.id == id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no order {id}")))
    }

    #[tracing::instrument(skip_all, fields(user.id = request.get_ref().user_id), err)]
    async fn place_order(
        &self,
        request: Request<PlaceOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let PlaceOrderRequest { user_id, amount } = *request.get_ref();
        if !amount.is_finite() || amount <= 0.0 {
            return Err(Status::invalid_argument("amount must be a positive number"));
        }
        let mut orders = self
            .orders
            .lock()
            .map_err(|_| Status::internal("order book poisoned"))?;
        let order = Order {
            id: orders.len() as u64 + 1,
            user_id,
            amount,
        };
        orders.push(order);
        towerscope_log::business_event!("order_placed", order_id = order.id, amount);
        Ok(Response::new(order))
    }
}

/// The example: the gRPC server with its layers, and the HTTP operational endpoints.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let example = towerscope_grpc_example::Example::new(provider.tracer("orders"));
/// // `example.serve(grpc_listener, http_listener, shutdown)`: see `Example::serve`.
/// # let _ = example;
/// ```
#[derive(Debug)]
pub struct Example {
    tracer: SdkTracer,
    orders: OrderBook,
    drain: Duration,
    registry: prometheus_client::registry::Registry,
}

impl Example {
    /// The example with server spans from `tracer`.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let example = towerscope_grpc_example::Example::new(provider.tracer("orders"));
    /// # let _ = example;
    /// ```
    pub fn new(tracer: SdkTracer) -> Self {
        Self {
            tracer,
            orders: OrderBook::default(),
            drain: Duration::ZERO,
            registry: prometheus_client::registry::Registry::default(),
        }
    }

    /// When the shutdown future completes, say `NOT_SERVING` (and 503 on `/ready`) at once
    /// and keep serving for `delay` before the listeners close, so load balancers stop
    /// sending calls first (`Observability::drain_on`). Default: no delay.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let example = towerscope_grpc_example::Example::new(provider.tracer("orders"))
    ///     .drain_for(std::time::Duration::from_secs(5));
    /// # let _ = example;
    /// ```
    pub fn drain_for(mut self, delay: Duration) -> Self {
        self.drain = delay;
        self
    }

    /// The registry the example's metrics go into, with metrics of the caller's already in
    /// it (the binary's span exporter: `Tracing::metrics`). Default: a new one.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let jobs = prometheus_client::metrics::counter::Counter::<u64>::default();
    /// registry.register("jobs", "Jobs run", jobs.clone());
    /// let example = towerscope_grpc_example::Example::new(provider.tracer("orders")).registry(registry);
    /// # let _ = example;
    /// ```
    pub fn registry(mut self, registry: prometheus_client::registry::Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Serves gRPC on `grpc` and `/metrics`, `/health`, `/ready` on `http` until
    /// `shutdown` completes (and the [drain delay](Self::drain_for) after it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use opentelemetry::trace::TracerProvider as _;
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let example = towerscope_grpc_example::Example::new(provider.tracer("orders"));
    /// let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let ops = http.local_addr()?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let server = tokio::spawn(example.serve(grpc, http, async { stopped.await.ok(); }));
    /// let ops_answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
    ///     use std::io::{Read as _, Write as _};
    ///     let mut conn = std::net::TcpStream::connect(ops)?;
    ///     conn.write_all(b"GET /ready HTTP/1.1\r\nhost: ops\r\nconnection: close\r\n\r\n")?;
    ///     let mut answer = String::new();
    ///     conn.read_to_string(&mut answer)?;
    ///     Ok(answer)
    /// }).await??;
    /// assert!(ops_answer.starts_with("HTTP/1.1 200"), "{ops_answer}");
    /// stop.send(()).ok();
    /// server.await??;
    /// # Ok(()) }
    /// ```
    pub async fn serve(
        self,
        grpc: tokio::net::TcpListener,
        http: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // One builder for the whole stack; the logging is the binary's (or the test's).
        let obs = Observability::builder("towerscope-grpc-example")
            .registry(self.registry)
            .version(env!("CARGO_PKG_VERSION"))
            .tracer(self.tracer)
            .without_logging()
            .health(Health::builder(env!("CARGO_PKG_VERSION")).check(
                "memory",
                MemoryCheck::new(95.0),
                CheckOptions::default(),
            ))
            .build()?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let _sync = obs.health().map(|health| {
            health.sync_grpc(reporter, ["shop.orders.v1.Orders"], Duration::from_secs(5))
        });
        let ops = obs.router();

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut http_stop = stop_rx.clone();
        let http_server = tokio::spawn(async move {
            axum::serve(http, ops)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|s| *s).await;
                })
                .await
        });
        let mut grpc_stop = stop_rx;
        // Health says NOT_SERVING when the signal comes; the listeners close after the delay.
        let drained = obs.drain_on(shutdown, self.drain);
        tokio::spawn(async move {
            drained.await;
            let _ = stop_tx.send(true);
        });
        // Connections counted and timed; accept errors retried, TCP_NODELAY set.
        let incoming = obs
            .connections()
            .ok_or("connection metrics are on by default")?
            .listener(grpc)
            .incoming();
        tonic::transport::Server::builder()
            .layer(obs.layer())
            .add_service(health_service)
            .add_service(OrdersServer::new(self.orders))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            })
            .await?;
        http_server.await??;
        obs.shutdown().await;
        Ok(())
    }
}

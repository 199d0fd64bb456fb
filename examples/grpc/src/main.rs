//! `towerscope-grpc-example`: the orders gRPC service on 127.0.0.1:50051 and its
//! operational endpoints on 127.0.0.1:9464.

use anyhow::Context as _;
use clap::Parser;
use towerscope_log::Logging;
use towerscope_trace::TracingConfig;

/// A tonic service with every towerscope layer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: std::net::SocketAddr,
    /// Address of /metrics, /health and /ready.
    #[arg(long, default_value = "127.0.0.1:9464")]
    ops_addr: std::net::SocketAddr,
    /// On Ctrl-C or SIGTERM, say NOT_SERVING and keep serving this many seconds before
    /// closing.
    #[arg(long, default_value_t = 0)]
    drain_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An error ends the process with its message and causes (anyhow's report), exit code 1.
    let args = Args::parse();
    let tracing = TracingConfig::new("towerscope-grpc-example")
        .version(env!("CARGO_PKG_VERSION"))
        .with_env()?
        .init()?;
    let _logging = Logging::builder()
        .with_layer(towerscope_trace::tracing_layer(tracing.tracer()))
        .init()?;
    let grpc = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let ops = tokio::net::TcpListener::bind(args.ops_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.ops_addr))?;
    // Caught from before the service says it listens: a SIGTERM that comes at once is a
    // clean shutdown, not the default action.
    let signal = towerscope::shutdown_signal();
    tracing::info!(grpc = %grpc.local_addr()?, ops = %ops.local_addr()?, "orders service listening");
    // The span exporter's metrics (spans exported, and lost) beside the example's own.
    let mut registry = prometheus_client::registry::Registry::default();
    tracing.metrics(&mut registry);
    towerscope_grpc_example::Example::new(tracing.tracer())
        .registry(registry)
        .drain_for(std::time::Duration::from_secs(args.drain_secs))
        .serve(grpc, ops, signal)
        .await
        .map_err(anyhow::Error::from_boxed)?;
    tokio::task::spawn_blocking(move || tracing.shutdown()).await??;
    Ok(())
}

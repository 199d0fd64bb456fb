//! `towerscope-grpc-example`: the orders gRPC service on 127.0.0.1:50051 and its
//! operational endpoints on 127.0.0.1:9464.

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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let tracing = TracingConfig::new("towerscope-grpc-example")
        .version(env!("CARGO_PKG_VERSION"))
        .with_env()?
        .init()?;
    let _logging = Logging::builder()
        .with_layer(towerscope_trace::tracing_layer(tracing.tracer()))
        .init()?;
    let grpc = tokio::net::TcpListener::bind(args.addr).await?;
    let ops = tokio::net::TcpListener::bind(args.ops_addr).await?;
    tracing::info!(grpc = %grpc.local_addr()?, ops = %ops.local_addr()?, "orders service listening");
    towerscope_grpc_example::Example::new(tracing.tracer())
        .serve(grpc, ops, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    tokio::task::spawn_blocking(move || tracing.shutdown()).await??;
    Ok(())
}

//! `towerscope-hyper-example`: the catalogue API on 127.0.0.1:8082 (or `--addr`), its
//! operational endpoints on 127.0.0.1:9465 (or `--admin-addr`).

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use towerscope::{Config, Observability};

/// towerscope on plain hyper: a catalogue API with every piece switched on.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8082")]
    addr: SocketAddr,
    /// Address of /metrics, /health, /ready, /dashboard and the RUM endpoints.
    #[arg(long, default_value = "127.0.0.1:9465")]
    admin_addr: SocketAddr,
    /// A towerscope configuration file (TOML); `TOWERSCOPE_*` and `OTEL_*` variables win.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An error ends the process with its message and causes (anyhow's report), exit code 1.
    let args = Args::parse();
    let config = Config::load(args.config.as_deref())?;
    let obs = towerscope_hyper_example::observability(
        Observability::builder("towerscope-hyper-example").configure(&config)?,
    )?;
    let app = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let admin = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.admin_addr))?;
    // Caught from before the service says it listens: a SIGTERM that comes at once is a
    // clean shutdown, not the default action.
    let signal = towerscope::shutdown_signal();
    tracing::info!(
        api = %app.local_addr()?,
        admin = %admin.local_addr()?,
        "catalogue listening: try /products/1, and /metrics on the admin address"
    );
    // Ctrl-C or SIGTERM: readiness turns 503, then open connections drain.
    let shutdown = obs.drain_on(signal, std::time::Duration::ZERO);
    towerscope_hyper_example::serve(&obs, app, admin, shutdown).await?;
    obs.shutdown().await;
    Ok(())
}

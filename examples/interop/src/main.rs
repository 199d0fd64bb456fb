//! `towerscope-interop --addr 127.0.0.1:8081`: serve the W3C Trace Context test service.

use anyhow::Context as _;
use clap::Parser;

/// Serves `POST /test` for the W3C Trace Context test suite.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An error ends the process with its message and causes (anyhow's report), exit code 1.
    let args = Args::parse();
    // Spans are recorded (so IDs are real and sampling follows the caller) but not
    // exported: the suite checks headers, not a backend.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    eprintln!(
        "towerscope-interop listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, towerscope_interop::app(&provider))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

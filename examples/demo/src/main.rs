//! `towerscope-demo`: runs the demo shop on 127.0.0.1:8080 (or `--addr`).

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use prometheus_client::registry::Registry;
use towerscope_demo::{Config, Demo};
use towerscope_log::{LogFormat, Logging};
use towerscope_trace::TracingConfig;

/// The towerscope demo: an axum shop API with metrics switched on.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "TOWERSCOPE_ADDR")]
    addr: SocketAddr,
    /// Deployment environment reported in `app_info`.
    #[arg(long, default_value = "development", env = "TOWERSCOPE_ENVIRONMENT")]
    environment: String,
    /// Require this bearer token on /metrics.
    #[arg(long, env = "TOWERSCOPE_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// The shop's SQLite database.
    #[arg(long, default_value = "sqlite::memory:", env = "TOWERSCOPE_DATABASE")]
    database: String,
    /// Log format: `json` or `pretty` (default: json in production, pretty otherwise).
    #[arg(long, env = "TOWERSCOPE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// More alert rules, from a YAML or TOML file.
    #[arg(long, env = "TOWERSCOPE_RULES")]
    rules: Option<std::path::PathBuf>,
    /// Generate background traffic against the demo (a mix of reads, orders, sign-ins,
    /// slow calls, errors and the odd panic) so the dashboard moves.
    #[arg(long, env = "TOWERSCOPE_TRAFFIC")]
    traffic: bool,
    /// Requests per second of the background traffic (0.1 to 10000).
    #[arg(long, default_value_t = 10.0, env = "TOWERSCOPE_TRAFFIC_RATE", value_parser = traffic_rate)]
    traffic_rate: f64,
    /// Serve the shop's routes without towerscope's request-path layers (for load
    /// comparisons only; the operational endpoints stay).
    #[arg(long, hide = true)]
    no_request_layers: bool,
    /// Send alerts to this Alertmanager (`http://127.0.0.1:9093`; basic auth as
    /// `http://user:password@host:9093`).
    #[arg(long, env = "TOWERSCOPE_ALERTMANAGER", hide_env_values = true)]
    alertmanager: Option<String>,
    /// On SIGTERM or Ctrl-C, answer /ready with 503 and keep serving this many seconds
    /// before closing the listener (a load balancer's probe interval, or more).
    #[arg(long, default_value_t = 0, env = "TOWERSCOPE_DRAIN_SECS")]
    drain_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the demo's alert rules as a Prometheus alerting-rule file (for
    /// `promtool check rules` and a Prometheus server's `rule_files`).
    ExportRules,
    /// Print a Grafana dashboard (JSON) for the demo's metrics, its business numbers
    /// first, to import into Grafana.
    ExportDashboard,
}

/// A rate the traffic generator keeps: from 0.1 to 10,000 requests per second.
fn traffic_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.1..=10_000.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a number of requests per second from 0.1 to 10000"
        )),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An error ends the process with its message and causes (anyhow's report), exit code 1.
    let args = Args::parse();
    if let Some(Command::ExportDashboard) = args.command {
        print!(
            "{}",
            towerscope::monitoring::grafana_dashboard_with_stats(
                "towerscope-demo",
                &towerscope_metrics::MetricNames::otel(),
                &towerscope_metrics::SystemNames::system(),
                &towerscope_demo::business_stats(),
            )
        );
        return Ok(());
    }
    if let Some(Command::ExportRules) = args.command {
        let mut rules = towerscope_demo::alert_rules();
        if let Some(path) = &args.rules {
            rules.extend(towerscope_alert::load_rules(path)?);
        }
        let (yaml, skipped) = towerscope_alert::to_prometheus_rules(
            "towerscope-demo",
            &rules,
            &towerscope_metrics::MetricNames::otel(),
            &towerscope_metrics::SystemNames::system(),
        );
        print!("{yaml}");
        for name in skipped {
            eprintln!("rule {name} has no PromQL equivalent with these metric names");
        }
        return Ok(());
    }
    // Ctrl-C and SIGTERM are caught from here on: one that comes while the demo starts
    // (a rolling update stopping it at once) shuts it down cleanly once it serves.
    let signal = towerscope::shutdown_signal();
    let format = args
        .log_format
        .unwrap_or(if args.environment == "production" {
            LogFormat::Json
        } else {
            LogFormat::Pretty
        });
    // Tracing from the standard OTEL_* variables: with OTEL_EXPORTER_OTLP_ENDPOINT set,
    // spans go to that collector; without, they get IDs for logs and exemplars only.
    let shop_tracing = TracingConfig::new("towerscope-demo")
        .version(env!("CARGO_PKG_VERSION"))
        .environment(args.environment.clone())
        .with_env()?
        .init()?;
    let inventory_tracing = TracingConfig::new("towerscope-inventory")
        .version(env!("CARGO_PKG_VERSION"))
        .environment(args.environment.clone())
        .with_env()?
        .init()?;
    let mut registry = Registry::default();
    // The shop's exporter: spans exported, and lost to a failing collector. (The inventory
    // service stands for another process, which would report on its own /metrics.)
    shop_tracing.metrics(&mut registry);
    let _logging = Logging::builder()
        .format(format)
        .metrics(&mut registry)
        .with_layer(towerscope_trace::tracing_layer(shop_tracing.tracer()))
        .init()?;
    let extra_rules = match &args.rules {
        Some(path) => towerscope_alert::load_rules(path)?,
        None => Vec::new(),
    };
    let config = Config {
        environment: args.environment,
        metrics_token: args.metrics_token,
        database: args.database,
        tracer: Some(shop_tracing.tracer()),
        inventory_tracer: Some(inventory_tracing.tracer()),
        extra_rules,
        alertmanager: args.alertmanager,
        request_layers: !args.no_request_layers,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    // The shop's critical paths, probed through its own listener every 15 s (from when
    // it serves).
    let synthetics = towerscope_demo::synthetic_probes(addr).metrics(&mut registry);
    let demo = Demo::with_registry(config, registry).await?;
    let synthetics = synthetics.spawn()?;
    if let Some(dashboard) = demo.observability().dashboard() {
        dashboard.show_synthetics(&synthetics);
    }

    tracing::info!(%addr, "towerscope demo listening: try http://{addr}/, http://{addr}/dashboard and http://{addr}/metrics");
    let traffic = args.traffic.then(|| {
        tracing::info!(rate = args.traffic_rate, "sending background traffic");
        towerscope_demo::spawn_traffic(addr, args.traffic_rate)
    });
    let drained = demo
        .observability()
        .drain_on(signal, std::time::Duration::from_secs(args.drain_secs));
    let alerting = demo.observability().alerting().cloned();
    demo.serve(listener, async move {
        drained.await;
        if let Some(traffic) = traffic {
            traffic.abort();
        }
    })
    .await?;
    // The listener is closed: probing it now would only report a failure.
    drop(synthetics);
    // Alerts that fired before the signal still reach Alertmanager (within its grace).
    if let Some(alerting) = alerting {
        alerting.shutdown().await;
    }
    // Export what is still batched before the process ends.
    tokio::task::spawn_blocking(move || {
        for tracing in [shop_tracing, inventory_tracing] {
            if let Err(e) = tracing.shutdown() {
                eprintln!("trace export on shutdown failed: {e}");
            }
        }
    })
    .await?;
    tracing::info!("shut down");
    Ok(())
}

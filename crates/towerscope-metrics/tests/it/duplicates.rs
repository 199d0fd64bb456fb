//! A family registered twice in one registry is written twice in one scrape, which
//! Prometheus refuses: the service says so, once per family.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use towerscope_metrics::{Format, MetricsService};

#[test]
fn a_family_registered_twice_is_reported_once() {
    let logs = towerscope_log::CaptureWriter::new();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish(),
    );
    let mut registry = Registry::default();
    // The same family twice (as two layers built on one registry do), and one once.
    for _ in 0..2 {
        let jobs = Counter::<u64>::default();
        jobs.inc();
        registry.register("jobs", "Jobs run", jobs);
    }
    let fine = Counter::<u64>::default();
    fine.inc();
    registry.register("fine", "Registered once", fine);
    let metrics = MetricsService::new(registry);
    for format in [Format::Prometheus, Format::OpenMetrics, Format::Prometheus] {
        let text = metrics.encode(format);
        assert_eq!(text.matches("# TYPE jobs").count(), 2, "{text}");
    }
    let logged = logs.text();
    let warned: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("written twice in one scrape"))
        .collect();
    assert_eq!(warned.len(), 1, "{logged}");
    assert!(
        warned[0].contains(" WARN ") && warned[0].contains("family=\"jobs\""),
        "{}",
        warned[0]
    );
}

//! Monitoring as code: the Grafana dashboard and the Prometheus alert rules kept in
//! `docs/monitoring/` are exactly what the code generates, and every metric the dashboard
//! queries is one the stack exports. Run with `TOWERSCOPE_BLESS=1` to rewrite the files
//! after an intended change.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};

use towerscope::alert::{
    Signal, certificate_expiry_rules, default_rules, slo_burn_rate_rules, to_prometheus_rules,
    web_vitals_budget_rules,
};
use towerscope::metrics::{Format, MetricNames, SystemNames};
use towerscope::monitoring::{dashboard_queries, grafana_dashboard};
use towerscope::{Observability, Piece};

fn docs(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/monitoring")
        .join(file)
}

/// Compares `generated` with the file, or writes it when blessing.
fn check_generated(file: &str, generated: &str) {
    let path = docs(file);
    if std::env::var_os("TOWERSCOPE_BLESS").is_some() {
        std::fs::write(&path, generated).expect("write");
        return;
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (generate it with TOWERSCOPE_BLESS=1)",
            path.display()
        )
    });
    assert!(
        kept == generated,
        "{} differs from what the code generates; rerun with TOWERSCOPE_BLESS=1 and review the diff",
        path.display()
    );
}

/// The dashboard for the default metric names.
pub fn default_dashboard() -> String {
    grafana_dashboard("towerscope", &MetricNames::otel(), &SystemNames::system())
}

#[test]
fn the_kept_dashboard_is_the_generated_one() {
    check_generated("grafana-dashboard.json", &default_dashboard());
}

#[test]
fn the_kept_rules_are_the_generated_ones() {
    let mut rules = default_rules();
    rules.extend(slo_burn_rate_rules("Availability", 0.999));
    rules.extend(web_vitals_budget_rules());
    rules.extend(certificate_expiry_rules());
    let (yaml, skipped) = to_prometheus_rules(
        "towerscope",
        &rules,
        &MetricNames::otel(),
        &SystemNames::system(),
    );
    assert!(
        skipped.is_empty(),
        "every default rule has PromQL: {skipped:?}"
    );
    check_generated("alert-rules.yml", &yaml);
}

/// Metric names in a PromQL query: identifiers followed by a selector.
fn metric_names(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = query.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        match (ident, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if b == b'{' {
                    out.push(query[s..i].to_owned());
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// The family a sample name belongs to (`x_bucket` → `x`, `x_total` → `x`).
fn family(name: &str) -> &str {
    ["_bucket", "_count", "_sum", "_total"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

#[tokio::test(flavor = "current_thread")]
async fn every_metric_the_dashboard_queries_is_exported() {
    /// A probe over TLS, as far as the metrics go: its certificate's expiry is known.
    struct Tls;
    impl towerscope::health::HealthCheck for Tls {
        fn check(&self) -> towerscope::health::CheckFuture<'_> {
            Box::pin(async { Ok(()) })
        }
        fn certificate_expiry(&self) -> Option<std::time::SystemTime> {
            Some(std::time::SystemTime::now() + std::time::Duration::from_secs(86_400))
        }
    }
    let probes = towerscope::health::Synthetics::builder()
        .probe("storefront", Tls)
        .first_round_after(std::time::Duration::from_secs(3600));
    let obs = Observability::builder("monitoring-test")
        .without_logging()
        .disable(Piece::Tracing)
        .synthetics(probes)
        .build()
        .expect("builds");
    obs.synthetics().expect("probes").run_now().await;
    // Families with labels appear once they have a series: one HTTP request, one gRPC
    // call, one RUM beacon, one probe's run.
    use tower::{Layer as _, ServiceExt as _};
    let app = obs.layer().layer(tower::service_fn(
        |req: http::Request<Empty<Bytes>>| async move {
            let mut response = http::Response::new(Empty::<Bytes>::new());
            if req.headers().contains_key("content-type") {
                response
                    .headers_mut()
                    .insert("content-type", "application/grpc".parse().expect("ascii"));
                response
                    .headers_mut()
                    .insert("grpc-status", "0".parse().expect("ascii"));
            }
            Ok::<_, std::convert::Infallible>(response)
        },
    ));
    let http_request = http::Request::get("/users/1")
        .body(Empty::new())
        .expect("request");
    let grpc_request = http::Request::post("/shop.Orders/Get")
        .header("content-type", "application/grpc")
        .body(Empty::new())
        .expect("request");
    for request in [http_request, grpc_request] {
        let response = app.clone().oneshot(request).await.expect("infallible");
        response.into_body().collect().await.expect("body");
    }
    let beacon = r#"{"session":"s1","page":"/","events":[{"type":"vital","name":"LCP","value":1800},{"type":"vital","name":"INP","value":90},{"type":"vital","name":"CLS","value":0.01}]}"#;
    let response = obs
        .ops_service()
        .oneshot(
            http::Request::post("/api/rum")
                .header("content-type", "text/plain;charset=UTF-8")
                .body(Full::new(Bytes::from_static(beacon.as_bytes())))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), 204);
    let text = obs.metrics_service().encode(Format::OpenMetrics);
    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(family)
        .collect();
    // Prometheus' own series, not the application's.
    let prometheus_own = ["up", "ALERTS"];
    let mut missing = Vec::new();
    let queries = dashboard_queries(&default_dashboard()).expect("json");
    assert!(queries.len() >= 15, "{queries:?}");
    for query in &queries {
        for name in metric_names(query) {
            if !prometheus_own.contains(&name.as_str()) && !exported.contains(family(&name)) {
                missing.push(format!("{name} (in {query})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:#?}\nexported: {exported:?}"
    );
    // The performance budgets read RUM's histograms by their names.
    for rule in web_vitals_budget_rules() {
        let Signal::HistogramQuantile { metric, by, .. } = &rule.signal else {
            panic!("{} is a histogram quantile", rule.name);
        };
        assert!(
            text.contains(&format!("# TYPE {metric} histogram")),
            "{}: no histogram {metric}",
            rule.name
        );
        let page = by.as_deref().expect("per page");
        let bucket = format!("{metric}_bucket{{");
        let label = format!("{page}=\"");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&bucket) && l.contains(&label)),
            "{}: {metric} has no `{page}` label",
            rule.name
        );
    }
    obs.shutdown().await;
}

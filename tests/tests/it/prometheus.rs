//! The demo scraped by a real Prometheus server; its exposition checked by promtool.

use std::time::Duration;

use towerscope_demo::{Config, Demo};
use towerscope_metrics::Format;
use towerscope_tests::{Component, eventually, free_port, require_program, serve_demo};

async fn start_demo() -> (std::net::SocketAddr, Demo) {
    serve_demo(Config::default()).await
}

/// A real Prometheus scraping `target` every second (job `job`), its data in `dir`; and
/// its port.
fn start_prometheus(
    prometheus: &std::path::Path,
    dir: &std::path::Path,
    job: &str,
    target: std::net::SocketAddr,
    extra_args: &[&str],
) -> (Component, u16) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let mut args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    args.extend(extra_args.iter().map(|a| (*a).to_owned()));
    let server = Component::start(&prometheus.to_path_buf(), &args, dir.join("prometheus.log"));
    (server, port)
}

/// The result of an instant query, when it has one.
async fn query(client: &reqwest::Client, port: u16, q: &str) -> Option<Vec<serde_json::Value>> {
    let resp = client
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = resp.json().await.ok()?;
    let result = body["data"]["result"].as_array()?.clone();
    (!result.is_empty()).then_some(result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_demo() {
    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    let (demo_addr, _demo) = start_demo().await;
    let client = reqwest::Client::new();
    for i in 1..=3 {
        let r = client
            .get(format!("http://{demo_addr}/users/{i}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, port) = start_prometheus(
        &prometheus,
        dir.path(),
        "demo",
        demo_addr,
        &["--enable-feature=exemplar-storage"],
    );
    let query = |q: &'static str| query(&client, port, q);

    let up = eventually(Duration::from_secs(30), || query("up{job=\"demo\"} == 1")).await;
    assert!(
        up.is_some(),
        "target never up; prometheus said:\n{}",
        server.output()
    );
    let series = eventually(Duration::from_secs(15), || {
        query("http_server_request_duration_seconds_count{http_route=\"/users/{id}\",http_response_status_code=\"200\"} >= 3")
    })
    .await
    .unwrap_or_else(|| panic!("request series not found; prometheus said:\n{}", server.output()));
    let metric = &series[0]["metric"];
    assert_eq!(metric["http_request_method"], "GET");
    assert_eq!(metric["job"], "demo");
    // Histogram buckets made it through intact.
    let buckets =
        query("count(http_server_request_duration_seconds_bucket{http_route=\"/users/{id}\"})")
            .await
            .expect("buckets");
    assert_eq!(buckets[0]["value"][1], "15", "14 bounds plus +Inf");

    // Every query of the kept Grafana dashboard runs in this Prometheus; the ones for
    // what the demo has already served return data.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/monitoring/grafana-dashboard.json"
    ))
    .expect("the kept dashboard");
    let mut queries = towerscope::monitoring::dashboard_queries(&dashboard).expect("json");
    // And the demo's own dashboard's business panels (the live card's numbers as PromQL).
    let business = towerscope::monitoring::grafana_dashboard_with_stats(
        "towerscope-demo",
        &towerscope::metrics::MetricNames::otel(),
        &towerscope::metrics::SystemNames::system(),
        &towerscope_demo::business_stats(),
    );
    let business = towerscope::monitoring::dashboard_queries(&business).expect("json");
    let added = business.iter().filter(|q| !queries.contains(q)).count();
    assert_eq!(added, 5, "one query per business number");
    for q in business {
        if !queries.contains(&q) {
            queries.push(q);
        }
    }
    let with_data = [
        "app_order_value_dollars_sum",
        "app_user_registrations_total",
        "sum by (http_route) (rate(http_server_requests_total",
        "histogram_quantile(0.95, sum by (le) (",
        "sum(http_server_active_requests",
        "sum(http_server_open_connections",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "system_disk_usage_percent",
        "system_network_io_bytes_total",
        "up{",
    ];
    for q in &queries {
        let must_have_data = with_data.iter().any(|w| q.contains(w));
        let answer = eventually(Duration::from_secs(15), || {
            let client = client.clone();
            let q = q.clone();
            async move {
                let resp = client
                    .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                    .query(&[("query", q.as_str())])
                    .send()
                    .await
                    .ok()?;
                let body: serde_json::Value = resp.json().await.ok()?;
                let ok = body["status"] == "success";
                let empty = body["data"]["result"].as_array().is_none_or(Vec::is_empty);
                (ok && !(must_have_data && empty)).then_some(body)
            }
        })
        .await;
        assert!(
            answer.is_some(),
            "dashboard query failed or stayed empty: {q}\nprometheus said:\n{}",
            server.output()
        );
    }
    assert!(
        with_data
            .iter()
            .all(|w| queries.iter().any(|q| q.contains(w))),
        "the dashboard lost a golden-signal panel"
    );
    assert!(server.running(), "prometheus exited:\n{}", server.output());
}

#[tokio::test]
async fn exposition_passes_promtool_lint() {
    let Some(promtool) = require_program("promtool") else {
        return;
    };
    let (demo_addr, demo) = start_demo().await;
    let client = reqwest::Client::new();
    for path in ["/users/1", "/users/99", "/error", "/panic", "/nope"] {
        client
            .get(format!("http://{demo_addr}{path}"))
            .send()
            .await
            .expect("request");
    }
    let text = demo.metrics().encode(Format::Prometheus);
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).await.expect("write");
    }
    let out = child.wait_with_output().await.expect("promtool output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n---\n{text}"
    );
}

/// `registry` served at `/metrics` on a free port; its service and address.
async fn serve_registry(
    registry: prometheus_client::registry::Registry,
) -> (towerscope_metrics::MetricsService, std::net::SocketAddr) {
    let metrics = towerscope_metrics::MetricsService::new(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = listener.local_addr().expect("addr");
    let app = axum::Router::new().route_service("/metrics", metrics.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (metrics, target)
}

/// A `histogram_quantile` rule gives the same value in-process as its exported PromQL in a
/// real Prometheus over the same observations: the two places a rule can be evaluated
/// agree (interpolation, `+Inf`, grouping `by` a label, matchers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_histogram_quantile_rule_agrees_with_prometheus() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use towerscope_alert::{Alerting, ChannelSink, Condition, Rule, Signal, Sources};
    use towerscope_metrics::{MetricNames, SystemNames};

    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Page {
        page: String,
        device: String,
    }
    let family = Family::<Page, Histogram>::new_with_constructor(|| {
        Histogram::new([0.5, 1.0, 2.5, 4.0, 10.0])
    });
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register("shop_page_seconds", "Page load", family.clone());
    let (metrics, target) = serve_registry(registry).await;

    let rule = Rule::new(
        "PageBudget",
        Signal::HistogramQuantile {
            metric: "shop_page_seconds".into(),
            quantile: 0.75,
            matchers: vec![("device".into(), "mobile".into())],
            by: Some("page".into()),
        },
        Condition::Ge,
        0.0,
    )
    .window(Duration::from_secs(3600));
    let (yaml, skipped) = towerscope_alert::to_prometheus_rules(
        "g",
        std::slice::from_ref(&rule),
        &MetricNames::otel(),
        &SystemNames::system(),
    );
    assert!(skipped.is_empty());
    let file: serde_json::Value = serde_saphyr::from_str(&yaml).expect("yaml");
    let expr = file["groups"][0]["rules"][0]["expr"]
        .as_str()
        .expect("expr")
        .to_owned();
    let (sink, _rx) = ChannelSink::new(16);
    let alerting = Alerting::builder(Sources::new(metrics))
        .rules(vec![rule])
        .interval(Duration::from_secs(3600))
        .notify(sink)
        .spawn();

    // The series exist (at zero) before Prometheus' first scrape, so its rate() sees every
    // observation, as the evaluator's window does.
    let pages = ["/", "/search", "/checkout"];
    for page in pages {
        for device in ["mobile", "desktop"] {
            // Creating the series is the point; the guard is released at once.
            drop(family.get_or_create(&Page {
                page: page.into(),
                device: device.into(),
            }));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, port) = start_prometheus(&prometheus, dir.path(), "shop", target, &[]);
    let client = reqwest::Client::new();
    let query = |q: String| {
        let client = client.clone();
        async move { query(&client, port, &q).await }
    };
    let zeros = eventually(Duration::from_secs(30), || {
        query("count(shop_page_seconds_count == 0) == 6".into())
    })
    .await;
    assert!(zeros.is_some(), "no scrape at zero:\n{}", server.output());

    // Spread over buckets, one page past every finite bound, desktop (not matched) slow.
    let observe = |page: &str, device: &str, values: &[f64]| {
        let h = family.get_or_create(&Page {
            page: page.into(),
            device: device.into(),
        });
        for v in values {
            h.observe(*v);
        }
    };
    observe("/", "mobile", &[0.2, 0.3, 0.7, 0.9, 1.2, 3.0]);
    observe(
        "/search",
        "mobile",
        &[0.4, 2.0, 2.2, 3.5, 3.9, 6.0, 7.0, 9.0, 9.5],
    );
    observe("/checkout", "mobile", &[12.0, 15.0, 30.0]);
    observe("/", "desktop", &[9.0; 20]);
    let seen = eventually(Duration::from_secs(30), || {
        query("sum(shop_page_seconds_count{device=\"mobile\"}) == 18".into())
    })
    .await;
    assert!(
        seen.is_some(),
        "observations not scraped:\n{}",
        server.output()
    );
    // One scrape more: rate() needs the counts to be the same as the evaluator reads.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    alerting.evaluate_now();
    let ours: std::collections::BTreeMap<String, f64> = alerting
        .active()
        .into_iter()
        .map(|a| (a.labels["page"].clone(), a.value))
        .collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
    let theirs = eventually(Duration::from_secs(15), || query(expr.clone()))
        .await
        .unwrap_or_else(|| panic!("{expr} returned nothing:\n{}", server.output()));
    let theirs: std::collections::BTreeMap<String, f64> = theirs
        .iter()
        .map(|s| {
            let page = s["metric"]["page"].as_str().expect("page").to_owned();
            let value: f64 = s["value"][1].as_str().expect("value").parse().expect("f64");
            (page, value)
        })
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (page, value) in &ours {
        assert!(
            (value - theirs[page]).abs() < 1e-9,
            "{page}: in-process {value}, Prometheus {}",
            theirs[page]
        );
    }
    assert_eq!(
        theirs["/checkout"], 10.0,
        "past every bound: the highest one"
    );
    assert!(server.running(), "prometheus exited:\n{}", server.output());
}

/// The certificate-expiry rule (`seconds_until`, grouped by probe) gives the same time left
/// in-process as its exported PromQL in a real Prometheus scraping the same gauges, and
/// fires for the same probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seconds_until_rule_agrees_with_prometheus() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use towerscope_alert::{Alerting, ChannelSink, Rule, Sources};
    use towerscope_metrics::{MetricNames, SystemNames};

    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Probe {
        probe: String,
        instance_zone: String,
    }
    // As towerscope-health's `Synthetics` registers it.
    let expiry = Family::<Probe, Gauge>::default();
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_with_unit(
        "synthetic_probe_tls_cert_expiry_timestamp",
        "When the certificate expires",
        prometheus_client::registry::Unit::Seconds,
        expiry.clone(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let day = 86_400;
    // `shop` twice (two zones, the earlier one counts), `api` far off, `admin` in 3 days.
    for (probe, zone, days) in [
        ("shop", "a", 30),
        ("shop", "b", 10),
        ("api", "a", 90),
        ("admin", "a", 3),
    ] {
        expiry
            .get_or_create(&Probe {
                probe: probe.into(),
                instance_zone: zone.into(),
            })
            .set(i64::try_from(now + days * day).expect("fits"));
    }
    let (metrics, target) = serve_registry(registry).await;

    let rule: Rule = towerscope_alert::certificate_expiry_rules()
        .into_iter()
        .next()
        .expect("a rule");
    let (yaml, skipped) = towerscope_alert::to_prometheus_rules(
        "certificates",
        std::slice::from_ref(&rule),
        &MetricNames::otel(),
        &SystemNames::system(),
    );
    assert!(skipped.is_empty());
    let file: serde_json::Value = serde_saphyr::from_str(&yaml).expect("yaml");
    let expr = file["groups"][0]["rules"][0]["expr"]
        .as_str()
        .expect("expr")
        .to_owned();
    assert_eq!(
        expr,
        "min by (probe) (synthetic_probe_tls_cert_expiry_timestamp_seconds) - time() < 1814400"
    );
    let (sink, _rx) = ChannelSink::new(16);
    let alerting = Alerting::builder(Sources::new(metrics))
        .rules(vec![rule.for_duration(Duration::ZERO)])
        .interval(Duration::from_secs(3600))
        .notify(sink)
        .spawn();

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, port) = start_prometheus(&prometheus, dir.path(), "shop", target, &[]);
    let client = reqwest::Client::new();
    let theirs = eventually(Duration::from_secs(30), || query(&client, port, &expr))
        .await
        .unwrap_or_else(|| panic!("{expr} returned nothing:\n{}", server.output()));
    alerting.evaluate_now();
    let ours: std::collections::BTreeMap<String, f64> = alerting
        .active()
        .into_iter()
        .map(|a| (a.labels["probe"].clone(), a.value))
        .collect();
    let theirs: std::collections::BTreeMap<String, f64> = theirs
        .iter()
        .map(|s| {
            let probe = s["metric"]["probe"].as_str().expect("probe").to_owned();
            let value: f64 = s["value"][1].as_str().expect("value").parse().expect("f64");
            (probe, value)
        })
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        ["admin", "shop"],
        "{ours:?}"
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (probe, value) in &ours {
        // The two read the clock a moment apart.
        assert!(
            (value - theirs[probe]).abs() < 30.0,
            "{probe}: in-process {value}, Prometheus {}",
            theirs[probe]
        );
    }
    let ten_days = 10.0 * 86_400.0;
    assert!(
        (ten_days - 60.0..=ten_days).contains(&ours["shop"]),
        "the earlier of shop's two: {}",
        ours["shop"]
    );
    assert!(server.running(), "prometheus exited:\n{}", server.output());
}

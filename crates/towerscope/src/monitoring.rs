//! Monitoring as code: a Grafana dashboard for the metrics this stack exports, generated
//! from the same metric names the layers use, so it cannot drift from them.
//!
//! The alert-rule half is [`to_prometheus_rules`](towerscope_alert::to_prometheus_rules):
//! the rules the process evaluates, as a Prometheus rule file.
//!
//! The repository keeps both, generated for the default names, in `docs/monitoring/`; a
//! test regenerates them and fails when they differ, and another loads every panel query
//! into a real Prometheus.

use serde_json::{Value, json};
use towerscope_dashboard::Stat;
use towerscope_metrics::{MetricNames, SystemNames};

/// Metric names the dashboard does not take from [`MetricNames`]: they are fixed.
const OPEN_CONNECTIONS: &str = "http_server_open_connections";
const OVERFLOW: &str = "towerscope_series_overflow_total";

/// The matcher every query starts with: the services the `job` variable selects.
const JOB: &str = "job=~\"$job\"";

/// `name{job=~"$job",extra}`.
fn sel(name: &str, extra: &str) -> String {
    if extra.is_empty() {
        format!("{name}{{{JOB}}}")
    } else {
        format!("{name}{{{JOB},{extra}}}")
    }
}

/// A panel: title, unit, and its queries as `(legend, PromQL)`.
type PanelSpec<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);

struct Panels {
    panels: Vec<Value>,
    next_id: u64,
    y: u64,
}

impl Panels {
    fn row(&mut self, title: &str) {
        self.panels.push(json!({
            "id": self.next_id, "type": "row", "title": title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": [],
        }));
        self.next_id += 1;
        self.y += 1;
    }

    /// One row of panels of equal width; each is `(title, unit, [(legend, expr)])`.
    fn line(&mut self, kind: &str, panels: &[PanelSpec<'_>]) {
        let width = 24 / panels.len() as u64;
        for (i, (title, unit, targets)) in panels.iter().enumerate() {
            let targets: Vec<Value> = targets
                .iter()
                .zip(['A', 'B', 'C', 'D'])
                .map(|((legend, expr), ref_id)| {
                    json!({
                        "refId": ref_id.to_string(),
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        "expr": expr,
                        "legendFormat": legend,
                    })
                })
                .collect();
            self.panels.push(json!({
                "id": self.next_id,
                "type": kind,
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": width, "x": width * i as u64, "y": self.y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {},
                "targets": targets,
            }));
            self.next_id += 1;
        }
        self.y += 8;
    }
}

/// A Grafana dashboard (JSON model, schema 39) for one service's metrics with these names:
/// the four golden signals (traffic, errors, latency, saturation), errors by type, gRPC
/// calls, process and system resources, real-user Core Web Vitals, label-cap overflow,
/// scrape health and firing alerts. A `job` variable selects the service; a `datasource`
/// variable the Prometheus.
///
/// ```
/// use towerscope::metrics::{MetricNames, SystemNames};
/// let json = towerscope::monitoring::grafana_dashboard("shop", &MetricNames::otel(), &SystemNames::system());
/// let dashboard: serde_json::Value = serde_json::from_str(&json).unwrap();
/// assert_eq!(dashboard["title"], "shop");
/// assert!(json.contains("http_server_request_duration_seconds_bucket"));
/// ```
pub fn grafana_dashboard(title: &str, names: &MetricNames, system: &SystemNames) -> String {
    grafana_dashboard_with_stats(title, names, system, &[])
}

/// [`grafana_dashboard`] with a first row of the application's business numbers: each
/// [`Stat`] of the live dashboard's business card as a Grafana stat panel over the same
/// PromQL ([`Stat::promql`]), so both show the same number, filtered by the `job`
/// variable like every other panel.
///
/// ```
/// use towerscope::alert::Signal;
/// use towerscope::dashboard::Stat;
/// use towerscope::metrics::{MetricNames, SystemNames};
/// let rate = |metric: &str| Signal::CounterRate { metric: metric.into(), matchers: vec![] };
/// let stats = [Stat::new("Revenue / min", rate("shop_order_value_dollars_sum")).scale(60.0).unit(" $")];
/// let json = towerscope::monitoring::grafana_dashboard_with_stats("shop", &MetricNames::otel(), &SystemNames::system(), &stats);
/// assert!(json.contains(r#"(sum(rate(shop_order_value_dollars_sum{job=~\"$job\"}[5m]))) * 60"#));
/// ```
pub fn grafana_dashboard_with_stats(
    title: &str,
    names: &MetricNames,
    system: &SystemNames,
    stats: &[Stat],
) -> String {
    let route: &str = &names.route_label;
    let duration: &str = &names.request_duration;
    let requests = match &names.requests {
        Some(n) => format!("{n}_total"),
        None => format!("{duration}_count"),
    };
    let rate = |name: &str, extra: &str| format!("rate({}[$__rate_interval])", sel(name, extra));
    let not_cancelled = format!("{}!=\"cancelled\"", names.error_type_label);
    let error_ratio = match &names.errors {
        Some(errors) => format!(
            "sum({}) / sum({})",
            rate(&format!("{errors}_total"), &not_cancelled),
            rate(&requests, "")
        ),
        None => format!(
            "sum({}) / sum({})",
            rate(&requests, &format!("{}=~\"5..\"", names.status_label)),
            rate(&requests, "")
        ),
    };
    let quantile = |q: &str, by: &str| {
        format!(
            "histogram_quantile({q}, sum by ({by}) ({}))",
            rate(&format!("{duration}_bucket"), "")
        )
    };
    let by_route = format!("le, {route}");
    // Grafana legends name labels as `{{label}}`.
    let route_legend = format!("{{{{{route}}}}}");
    let error_legend = format!("{{{{{}}}}}", names.error_type_label);
    let mut p = Panels {
        panels: Vec::new(),
        next_id: 1,
        y: 0,
    };

    if !stats.is_empty() {
        p.row("Business");
        for four in stats.chunks(4) {
            let first = p.panels.len();
            let specs: Vec<(&str, String, Option<String>)> = four
                .iter()
                .map(|stat| {
                    let (unit, _) = stat.display();
                    let unit = if unit.is_empty() {
                        "none".to_owned()
                    } else {
                        format!("suffix:{unit}")
                    };
                    (stat.label(), unit, stat.promql(names, system, JOB))
                })
                .collect();
            let panels: Vec<PanelSpec<'_>> = specs
                .iter()
                .map(|(label, unit, expr)| {
                    let targets = expr.iter().map(|e| ("", e.clone())).collect();
                    (*label, unit.as_str(), targets)
                })
                .collect();
            p.line("stat", &panels);
            for (panel, stat) in p.panels[first..].iter_mut().zip(four) {
                if let (_, Some(places)) = stat.display() {
                    panel["fieldConfig"]["defaults"]["decimals"] = json!(places);
                }
            }
        }
    }

    p.row("Golden signals");
    p.line(
        "timeseries",
        &[
            (
                "Traffic by route",
                "reqps",
                vec![(
                    route_legend.as_str(),
                    format!("sum by ({route}) ({})", rate(&requests, "")),
                )],
            ),
            ("Error ratio", "percentunit", vec![("errors", error_ratio)]),
            (
                "Latency",
                "s",
                vec![
                    ("p50", quantile("0.5", "le")),
                    ("p95", quantile("0.95", "le")),
                    ("p99", quantile("0.99", "le")),
                ],
            ),
            (
                "Saturation",
                "short",
                vec![
                    (
                        "in-flight requests",
                        format!("sum({})", sel(&names.in_flight, "")),
                    ),
                    (
                        "open connections",
                        format!("sum({})", sel(OPEN_CONNECTIONS, "")),
                    ),
                ],
            ),
        ],
    );

    p.row("Requests");
    let mut request_panels = vec![(
        "p95 latency by route",
        "s",
        vec![(route_legend.as_str(), quantile("0.95", &by_route))],
    )];
    if let Some(errors) = &names.errors {
        request_panels.push((
            "Errors by type",
            "reqps",
            vec![(
                error_legend.as_str(),
                format!(
                    "sum by ({}) ({})",
                    names.error_type_label,
                    rate(&format!("{errors}_total"), "")
                ),
            )],
        ));
    }
    if let Some(rpc) = &names.rpc_duration {
        request_panels.push((
            "gRPC calls by method and status",
            "reqps",
            vec![(
                "{{rpc_method}} {{rpc_status_code}}",
                format!(
                    "sum by (rpc_method, rpc_status_code) ({})",
                    rate(&format!("{rpc}_count"), "")
                ),
            )],
        ));
    }
    p.line("timeseries", &request_panels);

    p.row("Resources");
    p.line(
        "timeseries",
        &[
            (
                "CPU",
                "percent",
                vec![
                    (
                        "process",
                        format!("100 * {}", rate("process_cpu_seconds_total", "")),
                    ),
                    ("system", format!("max({})", sel(&system.cpu, ""))),
                ],
            ),
            (
                "Memory",
                "bytes",
                vec![
                    ("process resident", sel("process_resident_memory_bytes", "")),
                    (
                        "system used",
                        format!("max({})", sel(&system.memory_used, "")),
                    ),
                ],
            ),
            (
                "Disk used",
                "percent",
                vec![("disk", format!("max({})", sel(&system.disk_percent, "")))],
            ),
            (
                "Network I/O",
                "Bps",
                vec![(
                    "{{network_io_direction}}",
                    format!(
                        "sum by (network_io_direction) ({})",
                        rate(&format!("{}_total", system.network_io), "")
                    ),
                )],
            ),
            (
                "Open file descriptors",
                "short",
                vec![("open", sel("process_open_fds", ""))],
            ),
        ],
    );

    p.row("Real users (p75, the Core Web Vitals threshold)");
    let p75 = |name: &str| {
        format!(
            "histogram_quantile(0.75, sum by (le, page) ({}))",
            rate(&format!("{name}_bucket"), "")
        )
    };
    p.line(
        "timeseries",
        &[
            ("LCP", "s", vec![("{{page}}", p75("rum_lcp_seconds"))]),
            ("INP", "s", vec![("{{page}}", p75("rum_inp_seconds"))]),
            ("CLS", "short", vec![("{{page}}", p75("rum_cls"))]),
        ],
    );

    p.row("Synthetic probes");
    p.line(
        "timeseries",
        &[
            (
                "Probes passing (1) or failing (0)",
                "short",
                vec![("{{probe}}", sel("synthetic_probe_success", ""))],
            ),
            (
                "Probe duration",
                "s",
                vec![("{{probe}}", sel("synthetic_probe_duration_seconds", ""))],
            ),
            (
                "Certificate time left",
                "s",
                vec![(
                    "{{probe}}",
                    format!(
                        "min by (probe) ({}) - time()",
                        sel("synthetic_probe_tls_cert_expiry_timestamp_seconds", "")
                    ),
                )],
            ),
        ],
    );

    p.row("The monitoring itself");
    p.line(
        "timeseries",
        &[
            (
                "Label sets sent to overflow (cap reached)",
                "short",
                vec![(
                    "{{family}}",
                    format!("sum by (family) ({})", rate(OVERFLOW, "")),
                )],
            ),
            ("Scrape up", "short", vec![("{{instance}}", sel("up", ""))]),
        ],
    );
    p.line(
        "table",
        &[(
            "Firing alerts",
            "short",
            vec![(
                "",
                "sum by (alertname, severity) (ALERTS{alertstate=\"firing\"})".to_owned(),
            )],
        )],
    );

    let dashboard = json!({
        "title": title,
        "uid": format!("towerscope-{}", title.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-")),
        "description": "Generated by towerscope::monitoring::grafana_dashboard for the metric names the service exports.",
        "tags": ["towerscope"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [
            {
                "name": "datasource", "label": "Prometheus", "type": "datasource",
                "query": "prometheus", "current": {},
            },
            {
                "name": "job", "label": "Job", "type": "query",
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "query": {"query": format!("label_values({}, job)", requests), "refId": "jobs"},
                "definition": format!("label_values({}, job)", requests),
                "includeAll": true, "multi": true, "current": {}, "refresh": 2,
            },
        ]},
        "panels": p.panels,
    });
    let mut text = serde_json::to_string_pretty(&dashboard).unwrap_or_default();
    text.push('\n');
    text
}

/// Every PromQL query of a dashboard made by [`grafana_dashboard`], with `$job` and
/// `$__rate_interval` replaced so that a Prometheus can run them (`.*`, `1m`).
///
/// ```
/// use towerscope::metrics::{MetricNames, SystemNames};
/// let json = towerscope::monitoring::grafana_dashboard("shop", &MetricNames::otel(), &SystemNames::system());
/// let queries = towerscope::monitoring::dashboard_queries(&json).unwrap();
/// assert!(queries.iter().all(|q| !q.contains('$')));
/// ```
pub fn dashboard_queries(dashboard: &str) -> Result<Vec<String>, serde_json::Error> {
    let value: Value = serde_json::from_str(dashboard)?;
    let mut out = Vec::new();
    if let Some(panels) = value["panels"].as_array() {
        for panel in panels {
            if let Some(targets) = panel["targets"].as_array() {
                for t in targets {
                    if let Some(expr) = t["expr"].as_str() {
                        out.push(
                            expr.replace("$__rate_interval", "1m")
                                .replace("\"$job\"", "\".*\""),
                        );
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_names_give_a_dashboard_of_the_guide_metrics() {
        let json = grafana_dashboard("shop", &MetricNames::guide(), &SystemNames::guide());
        assert!(json.contains("app_requests_total"), "{json}");
        assert!(json.contains("app_request_duration_seconds_bucket"));
        assert!(json.contains("app_cpu_usage_percent"));
        assert!(!json.contains("http_server_request_duration"), "{json}");
    }

    #[test]
    fn panels_do_not_overlap() {
        let json = grafana_dashboard("shop", &MetricNames::otel(), &SystemNames::system());
        let value: Value = serde_json::from_str(&json).expect("json");
        let mut cells = std::collections::HashSet::new();
        for panel in value["panels"].as_array().expect("panels") {
            let g = &panel["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().expect("x"),
                g["y"].as_u64().expect("y"),
                g["w"].as_u64().expect("w"),
                g["h"].as_u64().expect("h"),
            );
            assert!(x + w <= 24, "{panel}");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "overlap at {cx},{cy}: {panel}");
                }
            }
        }
        let ids: std::collections::HashSet<_> = value["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .map(|p| p["id"].as_u64())
            .collect();
        assert_eq!(ids.len(), value["panels"].as_array().expect("panels").len());
    }
}

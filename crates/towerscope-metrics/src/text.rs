//! Exposition text: the two formats, the writer our own families use, and the
//! OpenMetrics → Prometheus text 0.0.4 transcoder for everything else in the registry.
//!
//! prometheus-client writes only OpenMetrics text and gives collectors no way to emit an
//! exemplar of their own. [`MetricsService`](crate::MetricsService) therefore encodes in two
//! passes: the registry through prometheus-client (our HTTP families step aside while a
//! capture is open on this thread, and hand themselves over), then our HTTP families
//! directly into the same output buffer, in the negotiated format, with exemplars in
//! OpenMetrics. Outside a capture (a user encoding the registry with prometheus-client) our
//! families encode through prometheus-client's API, without exemplars.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;

/// An exposition format.
///
/// ```
/// use towerscope_metrics::Format;
/// assert_eq!(Format::Prometheus.content_type(), "text/plain; version=0.0.4; charset=utf-8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The classic Prometheus text format 0.0.4 (what `promtool check metrics` reads).
    Prometheus,
    /// OpenMetrics 1.0 text (exemplars, `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    ///
    /// ```
    /// use towerscope_metrics::Format;
    /// assert_eq!(Format::OpenMetrics.content_type(), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    /// assert!(Format::Prometheus.content_type().starts_with("text/plain; version=0.0.4"));
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family set that writes its own exposition text (in either format, with
/// exemplars in OpenMetrics).
pub(crate) trait WriteText: Send + Sync {
    fn write_text(&self, format: Format, out: &mut String);
}

thread_local! {
    static CAPTURE: RefCell<Option<Vec<Arc<dyn WriteText>>>> = const { RefCell::new(None) };
}

/// Runs `f` with a capture open on this thread; returns `f`'s result and the families that
/// stepped aside (to be written by the caller, straight into its output buffer).
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<Arc<dyn WriteText>>) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CAPTURE.with(|c| c.borrow_mut().take());
        }
    }
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let reset = Reset;
    let r = f();
    let captured = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    (r, captured)
}

/// If a capture is open on this thread, hands `families` to it and returns `true`.
pub(crate) fn step_aside(families: &Arc<dyn WriteText>) -> bool {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(list) => {
            list.push(families.clone());
            true
        }
        None => false,
    })
}

/// A float as exposition text (`+Inf`, `-Inf`, `NaN`, or the shortest round-trip form).
pub(crate) fn render_f64(v: f64) -> String {
    let mut s = String::new();
    push_f64(&mut s, v);
    s
}

pub(crate) fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        out.push_str(dtoa::Buffer::new().format_finite(v));
    }
}

pub(crate) fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends `name="value"` with the value escaped, after a comma unless first.
pub(crate) fn push_label(out: &mut String, first: bool, name: &str, value: &str) {
    if !first {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `# HELP` and `# TYPE` (and `# UNIT` in OpenMetrics) for a family. For counters
/// `name` is the family name without `_total`.
pub(crate) fn push_header(
    out: &mut String,
    format: Format,
    name: &str,
    help: &str,
    kind: &str,
    unit: Option<&str>,
) {
    let suffix = if kind == "counter" && format == Format::Prometheus {
        "_total"
    } else {
        ""
    };
    let _ = write!(out, "# HELP {name}{suffix} ");
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    let _ = writeln!(out, "\n# TYPE {name}{suffix} {kind}");
    if let (Format::OpenMetrics, Some(unit)) = (format, unit) {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
}

/// One exemplar: the trace that produced an observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) value: f64,
}

impl Exemplar {
    fn push(&self, out: &mut String) {
        let ids = towerscope_core::TraceIds {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: true,
        };
        out.push_str(" # {trace_id=\"");
        out.push_str(ids.trace_id_hex().as_str());
        out.push_str("\",span_id=\"");
        out.push_str(ids.span_id_hex().as_str());
        out.push_str("\"} ");
        push_f64(out, self.value);
    }
}

/// One histogram series to write: `labels` is the rendered label list without braces (may
/// be empty); `counts` are per bucket (not cumulative), `+Inf` last, matching `le`.
pub(crate) struct HistogramLines<'a> {
    pub(crate) labels: &'a str,
    pub(crate) le: &'a [Box<str>],
    pub(crate) counts: &'a [u64],
    pub(crate) sum: f64,
    pub(crate) exemplars: Option<&'a [Option<Exemplar>]>,
}

/// Writes the samples of one histogram series.
pub(crate) fn push_histogram_series(
    out: &mut String,
    format: Format,
    name: &str,
    h: &HistogramLines<'_>,
) {
    let HistogramLines {
        labels,
        le,
        counts,
        sum,
        exemplars,
    } = *h;
    let mut cumulative = 0u64;
    for (i, (le, count)) in le.iter().zip(counts).enumerate() {
        cumulative += count;
        out.push_str(name);
        out.push_str("_bucket{");
        if !labels.is_empty() {
            out.push_str(labels);
            out.push(',');
        }
        out.push_str("le=\"");
        out.push_str(le);
        out.push_str("\"} ");
        push_u64(out, cumulative);
        if format == Format::OpenMetrics {
            if let Some(Some(ex)) = exemplars.and_then(|e| e.get(i)) {
                ex.push(out);
            }
        }
        out.push('\n');
    }
    for (suffix, is_sum) in [("_sum", true), ("_count", false)] {
        out.push_str(name);
        out.push_str(suffix);
        if !labels.is_empty() {
            out.push('{');
            out.push_str(labels);
            out.push('}');
        }
        out.push(' ');
        if is_sum {
            push_f64(out, sum);
        } else {
            push_u64(out, cumulative);
        }
        out.push('\n');
    }
}

/// Writes one counter sample (`name` without `_total`).
pub(crate) fn push_counter_sample(out: &mut String, name: &str, labels: &str, value: u64) {
    out.push_str(name);
    out.push_str("_total");
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    push_u64(out, value);
    out.push('\n');
}

/// Rewrites OpenMetrics text (as prometheus-client writes it) as Prometheus text 0.0.4:
/// counter and info families are renamed to their sample names, `info`/`stateset` become
/// `gauge` and `unknown` becomes `untyped`, `# UNIT`, `# EOF`, exemplars and counters'
/// `_created` samples are dropped, and sample timestamps go from seconds to milliseconds.
pub(crate) fn openmetrics_to_prometheus(input: &str, out: &mut String) {
    let mut pending_help: Option<&str> = None;
    let mut family_kind = "";
    for line in input.split('\n') {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = pending_help.replace(rest) {
                let _ = writeln!(out, "# HELP {h}");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, classic_kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "stateset" => ("", "gauge"),
                "gauge" | "histogram" | "summary" => ("", kind),
                _ => ("", "untyped"),
            };
            if let Some(h) = pending_help.take() {
                let text = h
                    .strip_prefix(name)
                    .map_or(h, |t| t.trim_start_matches(' '));
                let _ = writeln!(out, "# HELP {name}{suffix} {text}");
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {classic_kind}");
            family_kind = kind;
            continue;
        }
        if line.starts_with('#') {
            continue; // # UNIT, # EOF, comments
        }
        if let Some(h) = pending_help.take() {
            let _ = writeln!(out, "# HELP {h}");
        }
        push_sample_line(line, family_kind, out);
    }
    if let Some(h) = pending_help {
        let _ = writeln!(out, "# HELP {h}");
    }
}

fn push_sample_line(line: &str, family_kind: &str, out: &mut String) {
    let series_end = series_end(line);
    let series = &line[..series_end];
    let name_end = series.find('{').unwrap_or(series.len());
    if family_kind == "counter" && series[..name_end].ends_with("_created") {
        return;
    }
    let mut rest = line[series_end..].split(' ').filter(|t| !t.is_empty());
    let Some(value) = rest.next() else {
        return;
    };
    out.push_str(series);
    out.push(' ');
    out.push_str(value);
    if let Some(ts) = rest.next().filter(|t| *t != "#") {
        if let Ok(seconds) = ts.parse::<f64>() {
            if seconds.is_finite() {
                out.push(' ');
                let _ = write!(out, "{}", (seconds * 1000.0).round() as i64);
            }
        }
    }
    out.push('\n');
}

/// Byte index where the series (name and label set) of a sample line ends.
fn series_end(line: &str) -> usize {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'{' && bytes[i] != b' ' {
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'{' {
        let mut in_quotes = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b'}' if !in_quotes => return i + 1,
                _ => {}
            }
            i += 1;
        }
    }
    i.min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcodes_prometheus_client_output() {
        use prometheus_client::metrics::{counter::Counter, gauge::Gauge, info::Info};
        let mut registry = prometheus_client::registry::Registry::default();
        let c: Counter = Counter::default();
        c.inc_by(3);
        registry.register("jobs", "Jobs \"done\"", c);
        let g: Gauge = Gauge::default();
        g.set(-2);
        registry.register_with_unit(
            "queue_age",
            "Age",
            prometheus_client::registry::Unit::Seconds,
            g,
        );
        registry.register("build", "Build", Info::new(vec![("version", "1.2")]));
        let mut om = String::new();
        prometheus_client::encoding::text::encode(&mut om, &registry).expect("encode");
        let mut classic = String::new();
        openmetrics_to_prometheus(&om, &mut classic);
        assert_eq!(
            classic,
            "# HELP jobs_total Jobs \"done\".\n# TYPE jobs_total counter\njobs_total 3\n\
             # HELP queue_age_seconds Age.\n# TYPE queue_age_seconds gauge\nqueue_age_seconds -2\n\
             # HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{version=\"1.2\"} 1\n"
        );
    }

    #[test]
    fn drops_exemplars_and_converts_timestamps() {
        let om = "# TYPE x counter\nx_total{a=\"b # {c}\"} 1 1700000000.5 # {trace_id=\"ab\"} 1\nx_created 17\n# EOF\n";
        let mut classic = String::new();
        openmetrics_to_prometheus(om, &mut classic);
        assert_eq!(
            classic,
            "# TYPE x_total counter\nx_total{a=\"b # {c}\"} 1 1700000000500\n"
        );
    }

    #[test]
    fn escapes_label_values() {
        let mut s = String::new();
        push_label(&mut s, true, "route", "/a\"b\\c\nd");
        assert_eq!(s, r#"route="/a\"b\\c\nd""#);
    }

    #[test]
    fn capture_is_scoped_to_the_thread_and_closure() {
        struct Nothing;
        impl WriteText for Nothing {
            fn write_text(&self, _: Format, out: &mut String) {
                out.push('x');
            }
        }
        let fam: Arc<dyn WriteText> = Arc::new(Nothing);
        assert!(!step_aside(&fam));
        let ((), captured) = capture(|| assert!(step_aside(&fam)));
        assert_eq!(captured.len(), 1);
        assert!(!step_aside(&fam));
    }
}

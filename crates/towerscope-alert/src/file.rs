//! Rules from YAML or TOML files, with errors that name the file, the rule and the field.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::rule::{Condition, RouteScope, Rule, Severity, Signal};

/// Why a rule file was refused: the file, the rule (its name, or `#N` when it has none),
/// the field, and what is wrong.
///
/// ```
/// let err = towerscope_alert::parse_rules("rules.yaml", "rules:\n  - name: A\n    signal: cpu\n    condition: gt\n    threshold: high\n").unwrap_err();
/// assert_eq!(err.to_string(), "rules.yaml: rule A: threshold: expected a number");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{}{message}", .rule.as_ref().map(|r| format!("rule {r}: ")).unwrap_or_default(), .field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct RuleFileError {
    /// The file.
    pub file: String,
    /// The rule, if the problem is inside one.
    pub rule: Option<String>,
    /// The field, if the problem is one field.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Most rules one file may hold.
///
/// ```
/// use towerscope_alert::{MAX_RULES, parse_rules};
/// let rules = |n: usize| -> String {
///     let rule = |i| format!("  - name: R{i}\n    signal: in_flight\n    condition: gt\n    threshold: 1\n");
///     format!("rules:\n{}", (0..n).map(rule).collect::<String>())
/// };
/// assert_eq!(parse_rules("rules.yaml", &rules(MAX_RULES)).unwrap().len(), MAX_RULES);
/// let err = parse_rules("rules.yaml", &rules(MAX_RULES + 1)).unwrap_err();
/// assert!(err.to_string().contains("10000"), "{err}");
/// ```
pub const MAX_RULES: usize = 10_000;

/// Reads rules from a `.yaml`/`.yml` or `.toml` file.
///
/// ```no_run
/// let rules = towerscope_alert::load_rules("alerts.yaml")?;
/// # Ok::<(), towerscope_alert::RuleFileError>(())
/// ```
pub fn load_rules(path: impl AsRef<Path>) -> Result<Vec<Rule>, RuleFileError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let error = |message: String| RuleFileError {
        file: name.clone(),
        rule: None,
        field: None,
        message,
    };
    let bytes =
        towerscope_core::read_capped(path, MAX_RULE_FILE_BYTES).map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => error(e.to_string()),
            _ => error(format!("cannot read: {e}")),
        })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| error("cannot read: stream did not contain valid UTF-8".to_owned()))?;
    parse_rules(&name, &text)
}

/// The largest rule file [`load_rules`] reads (8 MiB: [`MAX_RULES`] rules with room for
/// their annotations).
///
/// ```
/// let err = towerscope_alert::load_rules("/dev/zero").unwrap_err();
/// assert_eq!(err.to_string(), "/dev/zero: larger than 8388608 bytes");
/// ```
pub const MAX_RULE_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Parses rules from text; `file` names it in errors and picks the format (`.toml` is TOML,
/// anything else YAML).
///
/// The format: a top-level `rules` list; each rule has `name`, `signal`, `condition`,
/// `threshold`, and optionally `for`, `window`, `severity`, `message`, `labels`,
/// `annotations`, plus the signal's own fields (`route`, `metric`, `matchers`, `objective`,
/// `long_window`, `short_window`). Durations are `30s`, `5m`, `1h30m`, `3d` or seconds.
///
/// ```
/// let rules = towerscope_alert::parse_rules("alerts.toml", r#"
/// [[rules]]
/// name = "SlowCheckout"
/// signal = "p95_response_time"
/// route = "/checkout"
/// condition = "gt"
/// threshold = 800
/// for = "2m"
/// severity = "high"
/// "#).unwrap();
/// assert_eq!(rules[0].name, "SlowCheckout");
/// ```
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, RuleFileError> {
    let err = |message: String| RuleFileError {
        file: file.to_owned(),
        rule: None,
        field: None,
        message,
    };
    let doc: Value = if file.ends_with(".toml") {
        toml::from_str(text).map_err(|e| err(format!("invalid TOML: {e}")))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| err(format!("invalid YAML: {e}")))?
    };
    let Value::Object(top) = doc else {
        return Err(err("expected a mapping with a `rules` list".into()));
    };
    if let Some(key) = top.keys().find(|k| *k != "rules") {
        return Err(err(format!("unknown top-level key `{}`", cut(key))));
    }
    let Some(Value::Array(items)) = top.get("rules") else {
        return Err(err("expected a `rules` list".into()));
    };
    if items.len() > MAX_RULES {
        return Err(err(format!("more than {MAX_RULES} rules")));
    }
    let mut names = HashSet::new();
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let label = item
            .get("name")
            .and_then(Value::as_str)
            .map(|n| cut(n).to_owned())
            .unwrap_or_else(|| format!("#{}", i + 1));
        let rule = parse_rule(item).map_err(|(field, message)| RuleFileError {
            file: file.to_owned(),
            rule: Some(label.clone()),
            field: field.map(str::to_owned),
            message,
        })?;
        if !names.insert(rule.name.clone()) {
            return Err(RuleFileError {
                file: file.to_owned(),
                rule: Some(label),
                field: Some("name".into()),
                message: "another rule has this name".into(),
            });
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Long user strings are shortened in messages.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

type FieldError = (Option<&'static str>, String);

const FIELDS: &[&str] = &[
    "name",
    "signal",
    "condition",
    "threshold",
    "for",
    "window",
    "severity",
    "message",
    "labels",
    "annotations",
    "route",
    "metric",
    "quantile",
    "by",
    "matchers",
    "objective",
    "long_window",
    "short_window",
];

fn field<'a>(m: &'a Map<String, Value>, name: &'static str) -> Option<&'a Value> {
    m.get(name)
}

fn string(m: &Map<String, Value>, name: &'static str) -> Result<Option<String>, FieldError> {
    match field(m, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err((Some(name), "expected a string".into())),
    }
}

fn required_string(m: &Map<String, Value>, name: &'static str) -> Result<String, FieldError> {
    string(m, name)?.ok_or((Some(name), "missing".into()))
}

fn number(m: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, FieldError> {
    match field(m, name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err((Some(name), "expected a finite number".into())),
        },
        Some(_) => Err((Some(name), "expected a number".into())),
    }
}

fn duration(m: &Map<String, Value>, name: &'static str) -> Result<Option<Duration>, FieldError> {
    match field(m, name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if (0.0..1e9).contains(&v) => Ok(Some(Duration::from_secs_f64(v))),
            _ => Err((Some(name), "expected seconds between 0 and 1e9".into())),
        },
        Some(Value::String(s)) => parse_duration(s).map(Some).ok_or((
            Some(name),
            format!("`{}` is not a duration like 30s, 5m, 1h30m", cut(s)),
        )),
        Some(_) => Err((Some(name), "expected a duration".into())),
    }
}

fn map(m: &Map<String, Value>, name: &'static str) -> Result<BTreeMap<String, String>, FieldError> {
    match field(m, name) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                _ => Err((Some(name), format!("`{}` must be a string", cut(k)))),
            })
            .collect(),
        Some(_) => Err((Some(name), "expected a mapping of strings".into())),
    }
}

/// `30s`, `5m`, `1h30m`, `2d`, `500ms`, or a plain number of seconds.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "w" => Duration::from_secs(n.checked_mul(604_800)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn scope(m: &Map<String, Value>) -> Result<RouteScope, FieldError> {
    Ok(match string(m, "route")?.as_deref() {
        None => RouteScope::Overall,
        Some("*") => RouteScope::EachRoute,
        Some(r) if r.starts_with('/') => RouteScope::Route(r.to_owned()),
        Some(_) => {
            return Err((
                Some("route"),
                "expected a route template starting with `/`, or `*` for each route".into(),
            ));
        }
    })
}

fn matchers(m: &Map<String, Value>) -> Result<Vec<(String, String)>, FieldError> {
    Ok(map(m, "matchers")?.into_iter().collect())
}

fn metric_name(m: &Map<String, Value>) -> Result<String, FieldError> {
    let name = required_string(m, "metric")?;
    if crate::rule::is_metric_name(&name) {
        Ok(name)
    } else {
        Err((Some("metric"), "not a Prometheus metric name".into()))
    }
}

/// The optional label a signal groups by (one alert per value).
fn group_by(m: &Map<String, Value>) -> Result<Option<String>, FieldError> {
    let by = string(m, "by")?;
    if by
        .as_deref()
        .is_some_and(|b| !crate::rule::is_label_name(b))
    {
        return Err((
            Some("by"),
            "not a label name to group by (letters, digits, `_`; not `le`)".into(),
        ));
    }
    Ok(by)
}

fn parse_rule(item: &Value) -> Result<Rule, FieldError> {
    let Value::Object(m) = item else {
        return Err((None, "expected a mapping".into()));
    };
    if let Some(unknown) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err((None, format!("unknown field `{}`", cut(unknown))));
    }
    let name = required_string(m, "name")?;
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err((Some("name"), "must be 1 to 200 printable characters".into()));
    }
    let kind = required_string(m, "signal")?;
    let signal = match kind.as_str() {
        "request_rate" => Signal::RequestRate(scope(m)?),
        "error_rate" => Signal::ErrorRate(scope(m)?),
        "avg_response_time" => Signal::AvgResponseTime(scope(m)?),
        "p95_response_time" => Signal::P95ResponseTime(scope(m)?),
        "p99_response_time" => Signal::P99ResponseTime(scope(m)?),
        "in_flight" => Signal::InFlight,
        "memory" => Signal::MemoryPercent,
        "cpu" => Signal::CpuPercent,
        "disk" => Signal::DiskPercent,
        "counter_rate" => Signal::CounterRate {
            metric: metric_name(m)?,
            matchers: matchers(m)?,
        },
        "gauge" => Signal::Gauge {
            metric: metric_name(m)?,
            matchers: matchers(m)?,
        },
        "histogram_quantile" => {
            let quantile = number(m, "quantile")?.ok_or((Some("quantile"), "missing".into()))?;
            if !(0.0..=1.0).contains(&quantile) {
                return Err((
                    Some("quantile"),
                    "must be between 0 and 1 (0.75 for p75)".into(),
                ));
            }
            let by = group_by(m)?;
            Signal::HistogramQuantile {
                metric: metric_name(m)?,
                quantile,
                matchers: matchers(m)?,
                by,
            }
        }
        "seconds_until" => Signal::SecondsUntil {
            metric: metric_name(m)?,
            matchers: matchers(m)?,
            by: group_by(m)?,
        },
        "burn_rate" => {
            let objective = number(m, "objective")?.ok_or((Some("objective"), "missing".into()))?;
            if !(objective > 0.0 && objective < 1.0) {
                return Err((
                    Some("objective"),
                    "must be between 0 and 1 (0.999 for 99.9%)".into(),
                ));
            }
            let long =
                duration(m, "long_window")?.ok_or((Some("long_window"), "missing".into()))?;
            let short =
                duration(m, "short_window")?.ok_or((Some("short_window"), "missing".into()))?;
            if short.is_zero() || short >= long {
                return Err((
                    Some("short_window"),
                    "must be positive and shorter than long_window".into(),
                ));
            }
            Signal::BurnRate {
                objective,
                long,
                short,
            }
        }
        other => {
            return Err((
                Some("signal"),
                format!(
                    "`{}` is not one of request_rate, error_rate, avg_response_time, \
                     p95_response_time, p99_response_time, in_flight, memory, cpu, disk, \
                     counter_rate, gauge, histogram_quantile, burn_rate",
                    cut(other)
                ),
            ));
        }
    };
    let condition_text = required_string(m, "condition")?;
    let condition = Condition::parse(&condition_text).ok_or((
        Some("condition"),
        format!(
            "`{}` is not one of gt, ge, lt, le, eq, ne",
            cut(&condition_text)
        ),
    ))?;
    let threshold = number(m, "threshold")?.ok_or((Some("threshold"), "missing".into()))?;
    let mut rule = Rule::new(name, signal, condition, threshold);
    if let Some(d) = duration(m, "for")? {
        rule.for_duration = d;
    }
    if let Some(d) = duration(m, "window")? {
        if d.is_zero() {
            return Err((Some("window"), "must be positive".into()));
        }
        rule.window = d;
    }
    if let Some(s) = string(m, "severity")? {
        rule.severity = Severity::parse(&s).ok_or((
            Some("severity"),
            format!("`{}` is not one of low, medium, high, critical", cut(&s)),
        ))?;
    }
    if let Some(msg) = string(m, "message")? {
        rule.message = msg;
    }
    rule.labels = map(m, "labels")?;
    for key in rule.labels.keys() {
        let valid = !key.is_empty()
            && !key.starts_with("__")
            && key.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit())
            });
        if !valid {
            return Err((
                Some("labels"),
                format!("`{}` is not a label name", cut(key)),
            ));
        }
        if key == "alertname" || key == "severity" {
            return Err((Some("labels"), format!("`{key}` is set by the rule itself")));
        }
    }
    rule.annotations = map(m, "annotations")?;
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("3d"), Some(Duration::from_secs(259_200)));
        for bad in ["", "m", "5x", "1.5h", "-5s", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

//! The beacon's schema, checked strictly: every refusal names the field.

use serde_json::Value;

/// Most events one beacon may carry.
///
/// ```
/// use towerscope_rum::{MAX_EVENTS, parse_beacon};
/// let beacon = |n: usize| {
///     let events = vec![r#"{"type":"click"}"#; n].join(",");
///     format!(r#"{{"session":"s1","page":"/","events":[{events}]}}"#)
/// };
/// assert_eq!(parse_beacon(beacon(MAX_EVENTS).as_bytes()).unwrap().events.len(), MAX_EVENTS);
/// assert_eq!(parse_beacon(beacon(MAX_EVENTS + 1).as_bytes()).unwrap_err().field, "events");
/// ```
pub const MAX_EVENTS: usize = 200;

/// A Core Web Vital or navigation metric the collector reports.
///
/// ```
/// use towerscope_rum::Vital;
/// assert_eq!(Vital::Inp.as_str(), "INP"); // INP, which replaced FID
/// assert_eq!(Vital::Lcp.rating(2_000.0), "good");
/// assert_eq!(Vital::Cls.rating(0.3), "poor");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vital {
    /// Largest Contentful Paint, milliseconds.
    Lcp,
    /// Interaction to Next Paint, milliseconds.
    Inp,
    /// Cumulative Layout Shift, unitless.
    Cls,
    /// First Contentful Paint, milliseconds.
    Fcp,
    /// Time to First Byte, milliseconds.
    Ttfb,
}

impl Vital {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "LCP" => Self::Lcp,
            "INP" => Self::Inp,
            "CLS" => Self::Cls,
            "FCP" => Self::Fcp,
            "TTFB" => Self::Ttfb,
            _ => return None,
        })
    }

    /// `LCP`, `INP`, `CLS`, `FCP` or `TTFB`.
    ///
    /// ```
    /// use towerscope_rum::{Event, Vital, parse_beacon};
    /// let b = parse_beacon(br#"{"session":"s","page":"/","events":[{"type":"vital","name":"CLS","value":0.02}]}"#).unwrap();
    /// let Event::Vital { vital, .. } = &b.events[0] else { unreachable!() };
    /// assert_eq!(vital.as_str(), "CLS");
    /// assert_eq!(Vital::Inp.as_str(), "INP");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lcp => "LCP",
            Self::Inp => "INP",
            Self::Cls => "CLS",
            Self::Fcp => "FCP",
            Self::Ttfb => "TTFB",
        }
    }

    /// The Core Web Vitals thresholds (good up to the first, needs improvement up to the
    /// second, poor above), in the metric's own unit (milliseconds; CLS unitless).
    ///
    /// ```
    /// use towerscope_rum::Vital;
    /// assert_eq!(Vital::Lcp.thresholds(), (2500.0, 4000.0)); // ms: good, needs improvement
    /// assert_eq!(Vital::Inp.thresholds(), (200.0, 500.0));
    /// assert_eq!(Vital::Cls.thresholds(), (0.1, 0.25)); // unitless
    /// ```
    pub fn thresholds(self) -> (f64, f64) {
        match self {
            Self::Lcp => (2500.0, 4000.0),
            Self::Inp => (200.0, 500.0),
            Self::Cls => (0.1, 0.25),
            Self::Fcp => (1800.0, 3000.0),
            Self::Ttfb => (800.0, 1800.0),
        }
    }

    /// The largest value believed: beyond it a value is refused as implausible.
    ///
    /// ```
    /// use towerscope_rum::{Vital, parse_beacon};
    /// assert_eq!(Vital::Inp.max(), 60_000.0);
    /// let beacon = |value: f64| format!(r#"{{"session":"s","page":"/","events":[{{"type":"vital","name":"INP","value":{value}}}]}}"#);
    /// assert!(parse_beacon(beacon(60_000.0).as_bytes()).is_ok());
    /// let err = parse_beacon(beacon(60_001.0).as_bytes()).unwrap_err();
    /// assert_eq!(err.field, "events[0].value");
    /// ```
    pub fn max(self) -> f64 {
        match self {
            Self::Cls => 100.0,
            Self::Inp => 60_000.0,
            _ => 300_000.0,
        }
    }

    /// `good`, `needs_improvement` or `poor` for `value`.
    ///
    /// ```
    /// use towerscope_rum::Vital;
    /// assert_eq!(Vital::Lcp.rating(2500.0), "good");
    /// assert_eq!(Vital::Inp.rating(350.0), "needs_improvement");
    /// assert_eq!(Vital::Cls.rating(0.3), "poor");
    /// ```
    pub fn rating(self, value: f64) -> &'static str {
        let (good, poor) = self.thresholds();
        if value <= good {
            "good"
        } else if value <= poor {
            "needs_improvement"
        } else {
            "poor"
        }
    }
}

/// One checked event.
///
/// ```
/// use towerscope_rum::{Event, Vital, parse_beacon};
/// let b = parse_beacon(br#"{"session":"s1","page":"/","events":[
///     {"type":"vital","name":"TTFB","value":120},
///     {"type":"api","url":"/api/cart","method":"GET","status":200,"duration":87}]}"#).unwrap();
/// assert_eq!(b.events[0], Event::Vital { vital: Vital::Ttfb, value: 120.0 });
/// assert!(matches!(&b.events[1], Event::Api { status: 200, .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A Core Web Vital.
    Vital {
        /// Which.
        vital: Vital,
        /// Milliseconds (CLS unitless).
        value: f64,
    },
    /// Navigation timing, milliseconds from navigation start.
    Navigation {
        /// DOMContentLoaded.
        dom_content_loaded: Option<f64>,
        /// load.
        load: Option<f64>,
    },
    /// A JavaScript error or unhandled rejection.
    Error {
        /// The message (truncated).
        message: String,
        /// Script URL (truncated).
        source: Option<String>,
        /// Line.
        line: Option<u32>,
        /// The stack (truncated).
        stack: Option<String>,
    },
    /// A `fetch` the page made.
    Api {
        /// The path requested (normalised later).
        url: String,
        /// The HTTP status, 0 for a network failure.
        status: u16,
        /// Milliseconds.
        duration: f64,
    },
    /// A click (opt-in on the page).
    Click,
}

/// A checked beacon.
///
/// ```
/// let b = towerscope_rum::parse_beacon(br#"{"session":"tab-1","page":"/cart?x=1","events":[]}"#).unwrap();
/// assert_eq!((b.session.as_str(), b.page.as_str(), b.events.len()), ("tab-1", "/cart?x=1", 0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Beacon {
    /// The tab session's ID.
    pub session: String,
    /// The page URL as sent (normalised before it becomes a label).
    pub page: String,
    /// The events.
    pub events: Vec<Event>,
}

/// Why a beacon was refused: the field and what is wrong with it.
///
/// ```
/// let err = towerscope_rum::parse_beacon(br#"{"session":"s1","page":"/","events":[{"type":"vital","name":"LCP","value":-1}]}"#).unwrap_err();
/// assert_eq!(err.field, "events[0].value");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BeaconError {
    /// The path of the bad field (`events[3].value`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> BeaconError {
    BeaconError {
        field: field.into(),
        message: message.into(),
    }
}

/// `text` with the query and fragment of every `http://` or `https://` URL in it removed,
/// keeping a stack frame's `:line:column` after them.
///
/// ```
/// let text = "at reset (https://shop.example/reset?token=s3cret#t=1:12:5)\n\
///             at https://shop.example/app.js?v=7:3:1";
/// assert_eq!(
///     towerscope_rum::without_queries(text),
///     "at reset (https://shop.example/reset:12:5)\nat https://shop.example/app.js:3:1"
/// );
/// assert_eq!(towerscope_rum::without_queries("Failed to fetch http://api/x?key=k (4)"), "Failed to fetch http://api/x (4)");
/// // Text that only looks like a URL, in any script, is left as it is.
/// for text in ["é://x?y", "ü:// https", "file:///tmp/a?b", "://", "ftp://h/p?q"] {
///     assert_eq!(towerscope_rum::without_queries(text), text);
/// }
/// assert_eq!(towerscope_rum::without_queries("日本https://h/p?q#f"), "日本https://h/p");
/// ```
pub fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The URL runs to the first character no URL in a message or a stack holds.
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>'))
            .map_or(rest.len(), |i| at + i);
        let url = &rest[..end];
        let scheme_start = rest[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let is_web = matches!(&rest[scheme_start..at], "http" | "https");
        match url[at..].find(['?', '#']).filter(|_| is_web) {
            Some(q) => {
                out.push_str(&url[..at + q]);
                out.push_str(line_column(&url[at + q..]));
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A stack frame's `:line:column` (or `:line`) at the end of `tail`, else nothing.
fn line_column(tail: &str) -> &str {
    let digits_before = |s: &str| {
        let trimmed = s.trim_end_matches(|c: char| c.is_ascii_digit());
        (trimmed.len() < s.len() && trimmed.ends_with(':')).then(|| trimmed.len() - 1)
    };
    match digits_before(tail) {
        Some(col) => match digits_before(&tail[..col]) {
            Some(line) => &tail[line..],
            None => &tail[col..],
        },
        None => "",
    }
}

/// Truncates at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn string(v: &Value, field: &str, max: usize) -> Result<String, BeaconError> {
    match v {
        Value::String(s) => Ok(cut(s, max)),
        _ => Err(err(field, "must be a string")),
    }
}

fn number(v: &Value, field: &str, max: f64) -> Result<f64, BeaconError> {
    match v.as_f64() {
        Some(n) if n.is_finite() && (0.0..=max).contains(&n) => Ok(n),
        Some(_) => Err(err(
            field,
            format!("must be a finite number between 0 and {max}"),
        )),
        None => Err(err(field, "must be a number")),
    }
}

fn opt_number(
    o: &serde_json::Map<String, Value>,
    key: &str,
    field: &str,
    max: f64,
) -> Result<Option<f64>, BeaconError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => number(v, &format!("{field}.{key}"), max).map(Some),
    }
}

fn check_keys(
    o: &serde_json::Map<String, Value>,
    allowed: &[&str],
    field: &str,
) -> Result<(), BeaconError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(format!("{field}.{}", cut(k, 40)), "unknown field")),
        None => Ok(()),
    }
}

/// Parses and checks a beacon body (the collector's JSON, sent as `text/plain`).
///
/// The shape: `{"session": "<id>", "page": "<url>", "events": [...]}` where each event has a
/// `type`: `vital` (`name`: LCP, INP, CLS, FCP or TTFB; `value`), `navigation`
/// (`dcl`, `load`), `error` (`message`, `source`, `line`, `stack`), `api` (`url`,
/// `status`, `duration`) or `click`. Unknown fields are refused; numbers must be finite,
/// non-negative and plausible; strings are truncated.
///
/// ```
/// let b = towerscope_rum::parse_beacon(br#"{"session":"abc","page":"/cart","events":[{"type":"vital","name":"INP","value":180}]}"#).unwrap();
/// assert_eq!(b.events.len(), 1);
/// ```
pub fn parse_beacon(body: &[u8]) -> Result<Beacon, BeaconError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| err("body", format!("not valid JSON: {e}")))?;
    let Value::Object(o) = v else {
        return Err(err("body", "must be a JSON object"));
    };
    check_keys(&o, &["session", "page", "events"], "body")
        .map_err(|e| err(e.field.trim_start_matches("body."), e.message))?;
    let session = string(
        o.get("session").ok_or_else(|| err("session", "missing"))?,
        "session",
        128,
    )?;
    if session.is_empty()
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(err("session", "must be letters, digits and dashes"));
    }
    let page = string(
        o.get("page").ok_or_else(|| err("page", "missing"))?,
        "page",
        2048,
    )?;
    let Some(Value::Array(items)) = o.get("events") else {
        return Err(err("events", "must be a list"));
    };
    if items.len() > MAX_EVENTS {
        return Err(err(
            "events",
            format!("at most {MAX_EVENTS} events per beacon"),
        ));
    }
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("events[{i}]");
        let Value::Object(e) = item else {
            return Err(err(field, "must be an object"));
        };
        let kind = string(
            e.get("type")
                .ok_or_else(|| err(format!("{field}.type"), "missing"))?,
            &format!("{field}.type"),
            32,
        )?;
        let event = match kind.as_str() {
            "vital" => {
                check_keys(e, &["type", "name", "value", "id"], &field)?;
                let name = string(
                    e.get("name")
                        .ok_or_else(|| err(format!("{field}.name"), "missing"))?,
                    &format!("{field}.name"),
                    16,
                )?;
                let vital = Vital::parse(&name).ok_or_else(|| {
                    err(
                        format!("{field}.name"),
                        "must be LCP, INP, CLS, FCP or TTFB",
                    )
                })?;
                let value = number(
                    e.get("value")
                        .ok_or_else(|| err(format!("{field}.value"), "missing"))?,
                    &format!("{field}.value"),
                    vital.max(),
                )?;
                Event::Vital { vital, value }
            }
            "navigation" => {
                check_keys(e, &["type", "dcl", "load"], &field)?;
                Event::Navigation {
                    dom_content_loaded: opt_number(e, "dcl", &field, 300_000.0)?,
                    load: opt_number(e, "load", &field, 300_000.0)?,
                }
            }
            "error" => {
                check_keys(
                    e,
                    &["type", "message", "source", "line", "col", "stack"],
                    &field,
                )?;
                let message = string(
                    e.get("message")
                        .ok_or_else(|| err(format!("{field}.message"), "missing"))?,
                    &format!("{field}.message"),
                    512,
                )?;
                let source = match e.get("source") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(string(v, &format!("{field}.source"), 512)?),
                };
                let line = opt_number(e, "line", &field, 10_000_000.0)?.map(|l| l as u32);
                opt_number(e, "col", &field, 10_000_000.0)?;
                let stack = match e.get("stack") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(string(v, &format!("{field}.stack"), 2048)?),
                };
                // Logged as sent: URLs in them keep their paths, not their queries and
                // fragments (a page's reset token, an API key in a failed call's address).
                Event::Error {
                    message: without_queries(&message),
                    source: source.as_deref().map(without_queries),
                    line,
                    stack: stack.as_deref().map(without_queries),
                }
            }
            "api" => {
                check_keys(e, &["type", "url", "method", "status", "duration"], &field)?;
                let url = string(
                    e.get("url")
                        .ok_or_else(|| err(format!("{field}.url"), "missing"))?,
                    &format!("{field}.url"),
                    2048,
                )?;
                if let Some(m) = e.get("method") {
                    string(m, &format!("{field}.method"), 16)?;
                }
                let status = number(
                    e.get("status")
                        .ok_or_else(|| err(format!("{field}.status"), "missing"))?,
                    &format!("{field}.status"),
                    599.0,
                )? as u16;
                let duration = number(
                    e.get("duration")
                        .ok_or_else(|| err(format!("{field}.duration"), "missing"))?,
                    &format!("{field}.duration"),
                    600_000.0,
                )?;
                Event::Api {
                    url,
                    status,
                    duration,
                }
            }
            "click" => {
                check_keys(e, &["type", "target"], &field)?;
                Event::Click
            }
            _ => {
                return Err(err(
                    format!("{field}.type"),
                    "must be vital, navigation, error, api or click",
                ));
            }
        };
        events.push(event);
    }
    Ok(Beacon {
        session,
        page,
        events,
    })
}

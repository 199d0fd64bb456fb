//! [`Propagators`]: which context formats the layers read and write (`OTEL_PROPAGATORS`).

use std::fmt;

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;

use crate::{B3Format, ConfigError};

/// Which propagation formats [`TraceLayer`](crate::TraceLayer) reads from requests and
/// [`TraceClientLayer`](crate::TraceClientLayer) writes into outgoing ones: the
/// OpenTelemetry `OTEL_PROPAGATORS` list. The default is the specification's,
/// `tracecontext,baggage`.
///
/// | name | the server reads | the client writes |
/// |---|---|---|
/// | `tracecontext` | `traceparent`, `tracestate` | `traceparent`, `tracestate` |
/// | `baggage` | `baggage` | `baggage` |
/// | `b3` | `b3`, else `X-B3-*` | `b3` |
/// | `b3multi` | `b3`, else `X-B3-*` | `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled` |
/// | `none` | nothing | nothing |
///
/// A request that carries both a valid `traceparent` and B3 headers continues the W3C
/// context, whatever the order of the list (the same service sent both). `jaeger`, `xray`
/// and `ottrace` are not supported and are refused, not ignored: a service that expected
/// them would otherwise break every trace without a word.
///
/// ```
/// use towerscope_trace::Propagators;
/// let zipkin_too: Propagators = "tracecontext,baggage,b3multi".parse()?;
/// assert!(zipkin_too.b3());
/// assert_eq!(zipkin_too.to_string(), "tracecontext,baggage,b3multi");
/// assert_eq!(Propagators::default().to_string(), "tracecontext,baggage");
/// let err = "tracecontext,jaeger".parse::<Propagators>().unwrap_err();
/// assert!(err.to_string().contains("`jaeger` is not supported"), "{err}");
/// # Ok::<(), towerscope_trace::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Propagators {
    trace_context: bool,
    baggage: bool,
    b3_single: bool,
    b3_multi: bool,
}

impl Default for Propagators {
    fn default() -> Self {
        Self {
            trace_context: true,
            baggage: true,
            b3_single: false,
            b3_multi: false,
        }
    }
}

impl Propagators {
    /// No propagation (`none`): every request starts a new trace, and outgoing requests
    /// carry no context.
    ///
    /// ```
    /// use towerscope_trace::Propagators;
    /// assert_eq!("none".parse::<Propagators>().unwrap(), Propagators::NONE);
    /// assert_eq!(Propagators::NONE.to_string(), "none");
    /// ```
    pub const NONE: Self = Self {
        trace_context: false,
        baggage: false,
        b3_single: false,
        b3_multi: false,
    };

    /// Whether W3C Trace Context (`traceparent`, `tracestate`) is read and written.
    ///
    /// ```
    /// assert!(towerscope_trace::Propagators::default().trace_context());
    /// ```
    pub fn trace_context(self) -> bool {
        self.trace_context
    }

    /// Whether W3C `baggage` is read and written.
    ///
    /// ```
    /// let p: towerscope_trace::Propagators = "tracecontext".parse().unwrap();
    /// assert!(!p.baggage());
    /// ```
    pub fn baggage(self) -> bool {
        self.baggage
    }

    /// Whether B3 is read (either form) and written (the forms listed).
    ///
    /// ```
    /// let p: towerscope_trace::Propagators = "b3".parse().unwrap();
    /// assert!(p.b3() && !p.trace_context());
    /// ```
    pub fn b3(self) -> bool {
        self.b3_single || self.b3_multi
    }

    /// These propagators with B3 `format` also written (and B3 read).
    ///
    /// ```
    /// use towerscope_trace::{B3Format, Propagators};
    /// let p = Propagators::default().with_b3(B3Format::Single);
    /// assert_eq!(p.to_string(), "tracecontext,baggage,b3");
    /// ```
    #[must_use]
    pub fn with_b3(mut self, format: B3Format) -> Self {
        match format {
            B3Format::Single => self.b3_single = true,
            B3Format::Multi => self.b3_multi = true,
        }
        self
    }

    /// The context a request's headers carry, read in the formats listed: its baggage,
    /// and its remote parent from `traceparent` (when valid) or else B3.
    ///
    /// ```
    /// use opentelemetry::trace::TraceContextExt as _;
    /// use towerscope_trace::Propagators;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
    /// assert!(Propagators::default().extract(&headers).has_active_span());
    /// assert!(!Propagators::NONE.extract(&headers).has_active_span());
    /// ```
    pub fn extract(self, headers: &HeaderMap) -> Context {
        let cx = crate::server::parent_with(
            headers,
            self.trace_context && headers.contains_key(crate::names::TRACEPARENT),
            self.baggage && headers.contains_key(crate::names::BAGGAGE),
        );
        if !self.b3() || cx.has_active_span() {
            return cx;
        }
        match crate::extract_b3(headers) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx,
        }
    }

    /// Writes the span context and baggage of `cx` into `headers` in the formats listed
    /// (replacing headers of those names); nothing for a context without a valid span,
    /// and no baggage when there is none.
    ///
    /// ```
    /// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
    /// use towerscope_trace::Propagators;
    /// let sc = SpanContext::new(
    ///     TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
    ///     SpanId::from_hex("b7ad6b7169203331").unwrap(),
    ///     TraceFlags::SAMPLED, false, TraceState::default(),
    /// );
    /// let cx = opentelemetry::Context::new().with_remote_span_context(sc);
    /// let mut headers = http::HeaderMap::new();
    /// "b3multi".parse::<Propagators>().unwrap().inject(&cx, &mut headers);
    /// assert_eq!(headers["x-b3-traceid"], "0af7651916cd43dd8448eb211c80319c");
    /// assert!(!headers.contains_key("traceparent"));
    /// ```
    pub fn inject(self, cx: &Context, headers: &mut HeaderMap) {
        if self.trace_context {
            crate::client::inject_trace_context(cx, headers);
        }
        if self.baggage {
            crate::baggage::inject(cx, headers);
        }
        if self.b3() {
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                if self.b3_single {
                    crate::b3::inject_b3(sc, B3Format::Single, headers);
                }
                if self.b3_multi {
                    crate::b3::inject_b3(sc, B3Format::Multi, headers);
                }
            }
        }
    }

    /// Parses an `OTEL_PROPAGATORS` list; errors name `key`.
    pub(crate) fn parse_for(key: &'static str, list: &str) -> Result<Self, ConfigError> {
        let mut out = Self::NONE;
        let mut none = false;
        let mut any = false;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            any = true;
            match name.to_ascii_lowercase().as_str() {
                "tracecontext" => out.trace_context = true,
                "baggage" => out.baggage = true,
                "b3" => out.b3_single = true,
                "b3multi" => out.b3_multi = true,
                "none" => none = true,
                _ => {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "`{}` is not supported (use tracecontext, baggage, b3, b3multi \
                             or none)",
                            crate::server::cut(name, 64)
                        ),
                    ));
                }
            }
        }
        if !any {
            return Err(ConfigError::new(key, "names no propagator (use `none`)"));
        }
        if none && out != Self::NONE {
            return Err(ConfigError::new(
                key,
                "`none` cannot be combined with other propagators",
            ));
        }
        Ok(out)
    }
}

impl std::str::FromStr for Propagators {
    type Err = ConfigError;

    /// Parses an `OTEL_PROPAGATORS` list (`tracecontext,baggage,b3multi`); errors name
    /// `OTEL_PROPAGATORS`.
    fn from_str(list: &str) -> Result<Self, ConfigError> {
        Self::parse_for(crate::setup::PROPAGATORS, list)
    }
}

impl fmt::Display for Propagators {
    /// The `OTEL_PROPAGATORS` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.trace_context, "tracecontext"),
            (self.baggage, "baggage"),
            (self.b3_single, "b3"),
            (self.b3_multi, "b3multi"),
        ];
        let mut first = true;
        for (_, name) in names.iter().filter(|(on, _)| *on) {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::baggage::BaggageExt as _;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().expect("value"));
        }
        m
    }

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const B3: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";

    fn parent_trace(cx: &Context) -> Option<String> {
        cx.has_active_span()
            .then(|| cx.span().span_context().trace_id().to_string())
    }

    #[test]
    fn lists_parse_in_any_order_and_case_and_print_in_one() {
        for (list, printed) in [
            ("tracecontext,baggage", "tracecontext,baggage"),
            (" baggage , TraceContext ,", "tracecontext,baggage"),
            ("b3multi,tracecontext,b3", "tracecontext,b3,b3multi"),
            ("tracecontext,tracecontext", "tracecontext"),
            ("none", "none"),
        ] {
            let p: Propagators = list.parse().expect(list);
            assert_eq!(p.to_string(), printed, "{list}");
            assert_eq!(printed.parse::<Propagators>().expect(printed), p);
        }
        for (list, says) in [
            ("tracecontext,jaeger", "`jaeger` is not supported"),
            ("xray", "`xray` is not supported"),
            (" , ", "names no propagator"),
            ("none,b3", "`none` cannot be combined"),
        ] {
            let err = list.parse::<Propagators>().expect_err(list);
            assert_eq!(err.key(), "OTEL_PROPAGATORS");
            assert!(err.to_string().contains(says), "{list}: {err}");
        }
        let long = "x".repeat(10_000);
        let err = long.parse::<Propagators>().expect_err("unknown");
        assert!(err.to_string().len() < 200, "the name is cut");
    }

    #[test]
    fn extract_reads_only_the_formats_listed() {
        let both = headers(&[("traceparent", TP), ("b3", B3), ("baggage", "tenant=acme")]);
        let w3c = Some("0af7651916cd43dd8448eb211c80319c".to_owned());
        let b3 = Some("80f198ee56343ba864fe8b2a57d3eff7".to_owned());
        let read = |list: &str| {
            let cx = list.parse::<Propagators>().expect(list).extract(&both);
            let tenant = cx.baggage().get("tenant").map(|v| v.as_str().to_string());
            (parent_trace(&cx), tenant)
        };
        assert_eq!(
            read("tracecontext,baggage"),
            (w3c.clone(), Some("acme".into()))
        );
        assert_eq!(read("tracecontext"), (w3c.clone(), None));
        assert_eq!(read("baggage"), (None, Some("acme".into())));
        assert_eq!(read("b3"), (b3.clone(), None));
        assert_eq!(read("b3multi,tracecontext"), (w3c, None), "W3C wins");
        assert_eq!(read("none"), (None, None));
        // An invalid traceparent falls back to B3 when B3 is read.
        let bad = headers(&[("traceparent", "00-00-00-00"), ("b3", B3)]);
        let cx = "tracecontext,b3"
            .parse::<Propagators>()
            .expect("list")
            .extract(&bad);
        assert_eq!(parent_trace(&cx), b3);
    }

    #[test]
    fn inject_writes_only_the_formats_listed() {
        let sc = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex"),
            SpanId::from_hex("b7ad6b7169203331").expect("hex"),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = Context::new()
            .with_baggage([opentelemetry::KeyValue::new("tenant", "acme")])
            .with_remote_span_context(sc);
        let written = |list: &str| {
            let mut h = headers(&[("x-b3-traceid", "stale"), ("b3", "stale")]);
            list.parse::<Propagators>().expect(list).inject(&cx, &mut h);
            let mut names: Vec<String> = h
                .iter()
                .filter(|(_, v)| *v != "stale")
                .map(|(k, _)| k.as_str().to_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(written("tracecontext,baggage"), ["baggage", "traceparent"]);
        assert_eq!(written("tracecontext"), ["traceparent"]);
        assert_eq!(written("b3"), ["b3"]);
        assert_eq!(
            written("b3multi"),
            ["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]
        );
        assert!(written("none").is_empty());
        // No valid span: nothing but the baggage.
        let mut h = HeaderMap::new();
        "tracecontext,baggage,b3"
            .parse::<Propagators>()
            .expect("list")
            .inject(
                &Context::new().with_baggage([opentelemetry::KeyValue::new("k", "v")]),
                &mut h,
            );
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["baggage"]);
    }
}

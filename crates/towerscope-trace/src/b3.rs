//! B3 propagation (Zipkin): the single `b3` header and the multi-header `X-B3-*` form.

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Which B3 form [`TraceClientLayer`](crate::TraceClientLayer) writes, besides
/// `traceparent`.
///
/// ```
/// use towerscope_trace::B3Format;
/// assert_ne!(B3Format::Single, B3Format::Multi);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3Format {
    /// `b3: {trace}-{span}-{sampled}`.
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    Multi,
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A trace ID of 16 or 32 lower-case hex digits (a 64-bit ID is left-padded), not zero.
fn trace_id(s: &str) -> Option<TraceId> {
    let bytes = match s.len() {
        16 => {
            let low: [u8; 8] = hex(s)?;
            let mut b = [0u8; 16];
            b[8..].copy_from_slice(&low);
            b
        }
        _ => hex::<16>(s)?,
    };
    (bytes != [0; 16]).then(|| TraceId::from_bytes(bytes))
}

fn span_id(s: &str) -> Option<SpanId> {
    let bytes: [u8; 8] = hex(s)?;
    (bytes != [0; 8]).then(|| SpanId::from_bytes(bytes))
}

fn sampled(s: &str) -> Option<bool> {
    match s {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn one(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok().map(str::trim)
}

/// Reads a B3 parent: the single `b3` header if present, else `X-B3-TraceId` and
/// `X-B3-SpanId` (with `X-B3-Sampled` / `X-B3-Flags`). Malformed, zero or repeated IDs give
/// `None`, as does a `b3: 0` (sampling decision only, no parent).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse().unwrap());
/// let parent = towerscope_trace::extract_b3(&headers).unwrap();
/// assert!(parent.is_sampled());
/// assert_eq!(parent.span_id().to_string(), "e457b5a2e4d86bd1");
/// ```
pub fn extract_b3(headers: &HeaderMap) -> Option<SpanContext> {
    let (trace, span, sampled) = if let Some(single) = one(headers, crate::names::B3) {
        let mut parts = single.split('-');
        let trace = trace_id(parts.next()?)?;
        let span = span_id(parts.next()?)?;
        let sampled = match parts.next() {
            Some(s) => Some(sampled(s)?),
            None => None,
        };
        if let Some(parent) = parts.next() {
            span_id(parent)?;
        }
        if parts.next().is_some() {
            return None;
        }
        (trace, span, sampled)
    } else {
        let trace = trace_id(one(headers, "x-b3-traceid")?)?;
        let span = span_id(one(headers, "x-b3-spanid")?)?;
        let sampled = if one(headers, "x-b3-flags") == Some("1") {
            Some(true)
        } else {
            match one(headers, "x-b3-sampled") {
                Some(s) => Some(sampled(s)?),
                None => None,
            }
        };
        (trace, span, sampled)
    };
    // No decision: leave it to our sampler's root rule by marking the parent sampled
    // (B3's "defer"); parent-based samplers then record, as Zipkin instrumentation does.
    let flags = if sampled.unwrap_or(true) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        trace,
        span,
        flags,
        true,
        TraceState::default(),
    ))
}

/// Writes `sc` in B3 `format` (replacing B3 headers of that form).
pub(crate) fn inject_b3(sc: &SpanContext, format: B3Format, headers: &mut HeaderMap) {
    let sampled = if sc.is_sampled() { "1" } else { "0" };
    match format {
        B3Format::Single => {
            let value = format!("{}-{}-{sampled}", sc.trace_id(), sc.span_id());
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.insert("b3", v);
            }
        }
        B3Format::Multi => {
            for (name, value) in [
                ("x-b3-traceid", sc.trace_id().to_string()),
                ("x-b3-spanid", sc.span_id().to_string()),
                ("x-b3-sampled", sampled.to_owned()),
            ] {
                if let Ok(v) = HeaderValue::try_from(value) {
                    headers.insert(name, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().expect("value"));
        }
        m
    }

    #[test]
    fn single_and_multi_forms() {
        let sc = extract_b3(&h(&[(
            "b3",
            "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0-05e3ac9a4f6e3b90",
        )]))
        .expect("64-bit trace id");
        assert_eq!(
            sc.trace_id().to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert!(!sc.is_sampled());
        let sc = extract_b3(&h(&[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-flags", "1"),
        ]))
        .expect("multi");
        assert!(sc.is_sampled() && sc.is_remote());
        let mut out = HeaderMap::new();
        inject_b3(&sc, B3Format::Single, &mut out);
        inject_b3(&sc, B3Format::Multi, &mut out);
        assert_eq!(
            out["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
        );
        assert_eq!(extract_b3(&out).map(|s| s.span_id()), Some(sc.span_id()));
    }

    #[test]
    fn malformed_b3_is_ignored() {
        for bad in [
            "0",
            "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1",
            "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
            "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-zz",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-extra",
            "80f198ee56343ba8",
            "80f198ee56343ba864fe8b2a57d3ef-e457b5a2e4d86bd1",
            "é",
        ] {
            assert!(extract_b3(&h(&[("b3", bad)])).is_none(), "{bad}");
        }
        assert!(
            extract_b3(&h(&[
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-spanid", "e457b5a2e4d86bd2"),
            ]))
            .is_none(),
            "repeated header"
        );
    }
}

//! Jaeger `uber-trace-id` propagation (feature `jaeger`).
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use opentelemetry::trace::TraceContextExt;
//! use telltale_trace::propagation::TelltalePropagator;
//!
//! let propagator = TelltalePropagator::new().with_jaeger();
//! let mut headers = HeaderMap::new();
//! headers.insert("uber-trace-id", HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736:f067aa0ba902b7:0:1"));
//! let cx = propagator.extract_headers(&headers);
//! let sc = cx.span().span_context().clone();
//! assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
//! assert!(sc.is_sampled());
//! ```

use http::HeaderName;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::traceparent::{trim_ows, write_hex};

/// `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`.
pub const UBER_TRACE_ID: HeaderName = HeaderName::from_static("uber-trace-id");

/// Hex of either case, 1 to `max` digits (Jaeger drops leading zeroes).
fn hex_any(v: &[u8], max: usize) -> Option<u128> {
    if v.is_empty() || v.len() > max {
        return None;
    }
    v.iter().try_fold(0u128, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some((acc << 4) | u128::from(d))
    })
}

/// Parses an `uber-trace-id` value. The colons may arrive URL-encoded (`%3A`), as some
/// Jaeger clients send them. Flag bit 0 (sampled) and bit 1 (debug) both mean sampled.
/// Jaeger's `uberctx-*` baggage headers are not read.
pub fn parse(value: &[u8]) -> Option<SpanContext> {
    let v = trim_ows(value);
    if v.len() > 128 {
        return None;
    }
    let mut buf = [0u8; 128];
    let mut n = 0;
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && v.get(i + 1) == Some(&b'3') && matches!(v.get(i + 2), Some(b'a' | b'A')) {
            buf[n] = b':';
            i += 3;
        } else {
            buf[n] = v[i];
            i += 1;
        }
        n += 1;
    }
    let mut parts = buf[..n].split(|&b| b == b':');
    let trace = hex_any(parts.next()?, 32).filter(|&t| t != 0)?;
    let span = hex_any(parts.next()?, 16).filter(|&s| s != 0)?;
    hex_any(parts.next()?, 16)?;
    let flags = hex_any(parts.next()?, 2)? as u8;
    if parts.next().is_some() {
        return None;
    }
    let flags = if flags & 0x03 != 0 {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::NOT_SAMPLED
    };
    Some(SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span as u64),
        flags,
        true,
        TraceState::NONE,
    ))
}

/// `{32 hex}:{16 hex}:0:{01|00}`.
pub(crate) fn value(sc: &SpanContext) -> [u8; 54] {
    let mut out = [b':'; 54];
    write_hex(u128::from_be_bytes(sc.trace_id().to_bytes()), &mut out[..32]);
    write_hex(
        u128::from(u64::from_be_bytes(sc.span_id().to_bytes())),
        &mut out[33..49],
    );
    out[50] = b'0';
    out[52] = b'0';
    out[53] = if sc.is_sampled() { b'1' } else { b'0' };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_encoded_ids() {
        let sc = parse(b"abc%3Adef%3a0%3A1").unwrap();
        assert_eq!(sc.trace_id(), TraceId::from(0xabcu128));
        assert_eq!(sc.span_id(), SpanId::from(0xdefu64));
        assert!(sc.is_sampled());
        assert_eq!(
            &value(&sc)[..],
            b"00000000000000000000000000000abc:0000000000000def:0:01"
        );
    }

    #[test]
    fn rejects_bad_values() {
        for v in [
            &b""[..],
            b"0:def:0:1",
            b"abc:0:0:1",
            b"abc:def:0",
            b"abc:def:0:1:2",
            b"abc:def:0:100",
            b"xyz:def:0:1",
            b"abc-def-0-1",
        ] {
            assert!(parse(v).is_none(), "{}", String::from_utf8_lossy(v));
        }
    }
}

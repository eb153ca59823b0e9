//! Zipkin B3 propagation (feature `b3`): single `b3` header and multiple `X-B3-*` headers.
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use opentelemetry::trace::TraceContextExt;
//! use telltale_trace::propagation::{B3Encoding, TelltalePropagator};
//!
//! let propagator = TelltalePropagator::new().with_b3(B3Encoding::Multi);
//! let mut headers = HeaderMap::new();
//! // A 64-bit trace id from an older Zipkin service.
//! headers.insert("b3", HeaderValue::from_static("64fe8b2a57d3eff7-e457b5a2e4d86bd1-1"));
//! let cx = propagator.extract_headers(&headers);
//! assert_eq!(cx.span().span_context().trace_id().to_string(), "000000000000000064fe8b2a57d3eff7");
//!
//! let mut out = HeaderMap::new();
//! propagator.inject_headers(&cx, &mut out);
//! assert_eq!(out["x-b3-traceid"], "000000000000000064fe8b2a57d3eff7");
//! assert_eq!(out["x-b3-sampled"], "1");
//! assert!(out.contains_key("traceparent")); // W3C is always sent too
//! ```

use http::HeaderName;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::traceparent::{parse_hex_lc, trim_ows, write_hex};

/// The single B3 header, `b3: {traceid}-{spanid}-{sampled}-{parentspanid}`.
pub const B3: HeaderName = HeaderName::from_static("b3");
/// Multi-header B3 trace id (16 or 32 lowercase hex digits).
pub const X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// Multi-header B3 span id.
pub const X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// Multi-header B3 parent span id (read, validated, not used).
pub const X_B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// Multi-header B3 sampling decision, `1` or `0`.
pub const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// Multi-header B3 debug flag, `1` means sampled.
pub const X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which B3 headers to **inject**. Extraction always accepts both forms (single first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum B3Encoding {
    /// The single `b3` header (the default, what current Zipkin tracers prefer).
    #[default]
    Single,
    /// The `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled` headers.
    Multi,
    /// Both forms.
    SingleAndMulti,
}

impl B3Encoding {
    pub(crate) fn single(self) -> bool {
        matches!(self, B3Encoding::Single | B3Encoding::SingleAndMulti)
    }
    pub(crate) fn multi(self) -> bool {
        matches!(self, B3Encoding::Multi | B3Encoding::SingleAndMulti)
    }
}

/// A 64-bit (16 hex) or 128-bit (32 hex) non-zero trace id; 64-bit ids are left-padded.
fn trace_id(v: &[u8]) -> Option<TraceId> {
    if v.len() != 16 && v.len() != 32 {
        return None;
    }
    parse_hex_lc(v).filter(|&id| id != 0).map(TraceId::from)
}

fn span_id(v: &[u8]) -> Option<SpanId> {
    if v.len() != 16 {
        return None;
    }
    parse_hex_lc(v)
        .filter(|&id| id != 0)
        .map(|id| SpanId::from(id as u64))
}

fn context(trace: TraceId, span: SpanId, sampled: bool) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::NOT_SAMPLED
    };
    SpanContext::new(trace, span, flags, true, TraceState::NONE)
}

/// Parses a single `b3` header. A sampling-only value (`0`, `1`, `d`) carries no ids and
/// gives `None`. A missing sampling state (deferred) is read as "not sampled".
pub fn parse_single(value: &[u8]) -> Option<SpanContext> {
    let v = trim_ows(value);
    let mut parts = v.split(|&b| b == b'-');
    let trace = trace_id(parts.next()?)?;
    let span = span_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => false,
        Some(b"1" | b"d") => true,
        Some(b"0") => false,
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(context(trace, span, sampled))
}

/// Parses the multi-header form from the values of `X-B3-TraceId`, `X-B3-SpanId`,
/// `X-B3-Sampled` (`1`/`0`, also the legacy `true`/`false`) and `X-B3-Flags` (`1` =
/// debug, implies sampled).
pub fn parse_multi(
    trace: &[u8],
    span: &[u8],
    sampled: Option<&[u8]>,
    flags: Option<&[u8]>,
) -> Option<SpanContext> {
    let trace = trace_id(trim_ows(trace))?;
    let span = span_id(trim_ows(span))?;
    let debug = flags.map(trim_ows) == Some(b"1");
    let sampled = match sampled.map(trim_ows) {
        None => false,
        Some(b"1" | b"true") => true,
        Some(b"0" | b"false") => false,
        Some(_) => return None,
    };
    Some(context(trace, span, sampled || debug))
}

/// `{32 hex trace id}-{16 hex span id}-{1|0}`.
pub(crate) fn single_value(sc: &SpanContext) -> [u8; 51] {
    let mut out = [b'-'; 51];
    write_hex(u128::from_be_bytes(sc.trace_id().to_bytes()), &mut out[..32]);
    write_hex(
        u128::from(u64::from_be_bytes(sc.span_id().to_bytes())),
        &mut out[33..49],
    );
    out[50] = if sc.is_sampled() { b'1' } else { b'0' };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_round_trips() {
        let v = b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
        let sc = parse_single(v).unwrap();
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(&single_value(&sc)[..], &v[..51]);
    }

    #[test]
    fn single_64_bit_trace_id_is_left_padded() {
        let sc = parse_single(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-d").unwrap();
        assert_eq!(sc.trace_id(), TraceId::from(0x64fe8b2a57d3eff7u128));
        assert!(sc.is_sampled());
    }

    #[test]
    fn single_rejects_bad_values() {
        for v in [
            &b"0"[..],
            b"1",
            b"d",
            b"",
            b"80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
            b"80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
            b"00000000000000000000000000000000-e457b5a2e4d86bd1-1",
            b"80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1-1",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x",
        ] {
            assert!(parse_single(v).is_none(), "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn multi_reads_debug_flag_as_sampled() {
        let sc = parse_multi(b"64fe8b2a57d3eff7", b"e457b5a2e4d86bd1", None, Some(b"1")).unwrap();
        assert!(sc.is_sampled());
        let sc = parse_multi(b"64fe8b2a57d3eff7", b"e457b5a2e4d86bd1", Some(b"0"), None).unwrap();
        assert!(!sc.is_sampled());
        assert!(parse_multi(b"64fe8b2a57d3eff7", b"e457b5a2e4d86bd1", Some(b"yes"), None).is_none());
    }
}

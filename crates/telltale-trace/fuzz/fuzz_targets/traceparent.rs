//! `traceparent` parsing, alone and through the propagator (with B3 and Jaeger on, all
//! header values from the input), plus re-injection: never a panic, and what we send
//! is always valid.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::TraceContextExt;
use telltale_trace::propagation::{B3Encoding, TelltalePropagator, TraceParent};

fuzz_target!(|data: &[u8]| {
    if let Ok(tp) = TraceParent::parse(data) {
        // A parsed value formats to a valid version-00 value with the same ids.
        let again = TraceParent::parse(&tp.to_bytes()).expect("formatted traceparent parses");
        assert_eq!(again.trace_id, tp.trace_id);
        assert_eq!(again.parent_id, tp.parent_id);
    }

    let mut headers = HeaderMap::new();
    // Split the input into up to two traceparent values and the B3/Jaeger headers.
    for (i, part) in data.split(|&b| b == b'\n').take(6).enumerate() {
        let Ok(v) = HeaderValue::from_bytes(part) else {
            continue;
        };
        let name = [
            "traceparent",
            "traceparent",
            "b3",
            "x-b3-traceid",
            "x-b3-spanid",
            "uber-trace-id",
        ][i];
        headers.append(name, v);
    }
    let p = TelltalePropagator::new()
        .with_b3(B3Encoding::SingleAndMulti)
        .with_jaeger();
    let cx = p.extract_headers(&headers);
    if cx.has_active_span() {
        assert!(cx.span().span_context().is_valid());
    }
    let mut out = HeaderMap::new();
    p.inject_headers(&cx, &mut out);
    if let Some(v) = out.get("traceparent") {
        assert!(TraceParent::parse(v.as_bytes()).is_ok());
    }
});

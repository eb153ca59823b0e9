//! Trace and span ids for spans we start: a fast thread-local generator, no syscall per id.

use opentelemetry::trace::{SpanId, TraceFlags, TraceId};

use super::traceparent::TRACE_FLAG_RANDOM;

/// A fresh trace id for a trace we start, with the flags to start it with: the Trace
/// Context Level 2 `random` flag set (all 128 bits come from the generator, so the
/// right-most 7 bytes the flag speaks for are random), `sampled` left to the sampler.
///
/// Uses `fastrand`'s thread-local wyrand generator, seeded once per thread: no
/// `getrandom(2)` per id. The ids are unpredictable enough for tracing, not for secrets.
///
/// ```
/// use telltale_trace::propagation::{new_root_trace_id, TRACE_FLAG_RANDOM};
/// use opentelemetry::trace::TraceId;
///
/// let (id, flags) = new_root_trace_id();
/// assert_ne!(id, TraceId::INVALID);
/// assert_eq!(flags.to_u8(), TRACE_FLAG_RANDOM);
/// assert!(!flags.is_sampled());
/// ```
pub fn new_root_trace_id() -> (TraceId, TraceFlags) {
    (
        TraceId::from(fastrand::u128(1..)),
        TraceFlags::new(TRACE_FLAG_RANDOM),
    )
}

/// A fresh, non-zero span id from the same thread-local generator.
///
/// ```
/// use telltale_trace::propagation::new_span_id;
/// assert_ne!(new_span_id(), opentelemetry::trace::SpanId::INVALID);
/// ```
pub fn new_span_id() -> SpanId {
    SpanId::from(fastrand::u64(1..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_and_non_zero() {
        let mut traces = HashSet::new();
        let mut spans = HashSet::new();
        for _ in 0..10_000 {
            let (t, f) = new_root_trace_id();
            assert_ne!(t, TraceId::INVALID);
            assert_eq!(f.to_u8(), TRACE_FLAG_RANDOM);
            assert!(traces.insert(t));
            let s = new_span_id();
            assert_ne!(s, SpanId::INVALID);
            spans.insert(s);
        }
        assert!(spans.len() > 9_990);
    }

    #[test]
    fn ids_differ_across_threads() {
        let a = std::thread::spawn(new_span_id).join().unwrap();
        let b = std::thread::spawn(new_span_id).join().unwrap();
        assert_ne!(a, b);
    }
}

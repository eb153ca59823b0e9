//! Sampling: parent-based head sampling with a consistent trace-id ratio, plus
//! keep-errors / keep-slow tail decisions.
//!
//! ```
//! use std::time::Duration;
//! use telltale_trace::sampling::Sampling;
//!
//! let sampling = Sampling::ratio(0.05)
//!     .keep_errors()
//!     .keep_slower_than(Duration::from_millis(500));
//! assert!(sampling.validate().is_ok());
//! assert!(Sampling::ratio(1.7).validate().is_err()); // an error at build time, never a panic
//! ```
//!
//! # What is decided where
//!
//! - **Head decision** (at the start of a local root span): when the request carries a
//!   valid `traceparent`, its `sampled` flag is honoured (parent-based). A root trace is
//!   sampled when the 56 random low bits of its trace id `R` satisfy `R >= T` with
//!   `T = (1 - ratio) * 2^56`: the *consistent probability sampling* rule of
//!   OpenTelemetry (the `th` threshold). Every service applying the same ratio to the same
//!   trace id reaches the same decision, so for the ratio share traces stay whole across
//!   services even if a proxy loses the flag. telltale sets the W3C `random` flag and makes
//!   the low 56 bits random for the traces it starts.
//! - **The `sampled` flag propagated** downstream is the head decision only. A tail
//!   decision (error, slow) is taken when the local root ends, after the downstream calls
//!   were made, so it cannot travel in `traceparent`.
//! - **Tail decision** (when `keep_errors` or `keep_slower_than` is set): spans of a
//!   trace that was *not* head-sampled are recorded anyway and held in memory, in a
//!   bounded buffer, until the local root span (the server span) ends. The whole local
//!   trace is then exported if the root was an error or slower than the threshold, and
//!   dropped otherwise.
//!
//! # Errors across services
//!
//! For a trace that was not head-sampled, each telltale service decides on its own local
//! part: the service whose server span is a 5xx (or slow) exports its whole local subtree
//! (its server span, its client spans, its internal spans). A caller that sees that error
//! as a failed client call (and usually returns a 5xx itself) keeps its part as well. So a
//! user gets, for every error, the local traces of the services on the failure path, sharing
//! one trace id and correctly parented; services on the path that succeeded (e.g. a sibling
//! call that returned 200) are not in the trace. Head-sampled traces are always whole.
//!
//! # Bounds
//!
//! The tail buffer holds at most `max_traces_held` traces (default 1024) of at most
//! `max_spans_per_trace` spans (default 64) for at most `max_trace_age` (default 30 s).
//! A held span takes roughly 0.5–1 KB, so the defaults bound the buffer to about 64 MB in
//! the worst case; a trace is normally held only while its request runs (at 1,000
//! requests/s of 100 ms, about 100 traces).
//! On overflow the *new* span is dropped (never a held one), and counted in
//! [`TAIL_SPANS_OVERFLOW`](crate::names::TAIL_SPANS_OVERFLOW) with the reason. The local
//! root span itself is never held (it is built when it ends), so an error is exported even
//! when its children overflowed. Spans that end after their local root (e.g. a task spawned
//! by the handler that outlives the request) are held until `max_trace_age` and then
//! dropped (reason `max_age`). Two concurrent local roots of the same trace in one process
//! share one buffer entry: the first to end takes the spans held so far.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

/// 2^56: the threshold that samples nothing.
const NEVER: u64 = 1 << 56;
const LOW_56: u128 = (1 << 56) - 1;

/// Sampling configuration. See the [module docs](self).
///
/// Defaults: ratio 1.0 (everything), parent-based, no tail sampling, tail bounds
/// 1024 traces × 64 spans × 30 s.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub(crate) ratio: f64,
    pub(crate) parent_based: bool,
    pub(crate) keep_errors: bool,
    pub(crate) keep_slower_than: Option<Duration>,
    pub(crate) max_traces: usize,
    pub(crate) max_spans_per_trace: usize,
    pub(crate) max_age: Duration,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling::ratio(1.0)
    }
}

impl Sampling {
    /// Sample this share of root traces (0.0 ..= 1.0). Validated by [`Sampling::validate`]
    /// (and so by every `build()` that takes a `Sampling`).
    pub const fn ratio(ratio: f64) -> Self {
        Sampling {
            ratio,
            parent_based: true,
            keep_errors: false,
            keep_slower_than: None,
            max_traces: 1024,
            max_spans_per_trace: 64,
            max_age: Duration::from_secs(30),
        }
    }

    /// Sample every trace.
    pub const fn always() -> Self {
        Sampling::ratio(1.0)
    }

    /// Sample no trace (tail rules still apply if added).
    pub const fn never() -> Self {
        Sampling::ratio(0.0)
    }

    /// Also export every local trace whose root span is an error (5xx, handler failure,
    /// panic, gRPC server error), whatever the ratio said.
    pub const fn keep_errors(mut self) -> Self {
        self.keep_errors = true;
        self
    }

    /// Also export every local trace whose root span took at least `threshold`.
    pub const fn keep_slower_than(mut self, threshold: Duration) -> Self {
        self.keep_slower_than = Some(threshold);
        self
    }

    /// Ignore the upstream `sampled` flag and decide by trace id alone (the
    /// `traceidratio` sampler of `OTEL_TRACES_SAMPLER`). Default: parent-based.
    pub const fn ignore_parent(mut self) -> Self {
        self.parent_based = false;
        self
    }

    /// The most local traces the tail buffer holds at once (default 1024).
    pub const fn max_traces_held(mut self, n: usize) -> Self {
        self.max_traces = n;
        self
    }

    /// The most spans held for one trace (default 64).
    pub const fn max_spans_per_trace(mut self, n: usize) -> Self {
        self.max_spans_per_trace = n;
        self
    }

    /// How long a trace may be held waiting for its local root to end (default 30 s).
    pub const fn max_trace_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Whether spans of unsampled traces must be recorded for a tail decision.
    pub const fn has_tail(&self) -> bool {
        self.keep_errors || self.keep_slower_than.is_some()
    }

    /// Checks the values: ratio within 0..=1, non-zero bounds.
    pub fn validate(&self) -> Result<(), SamplingError> {
        if !(0.0..=1.0).contains(&self.ratio) {
            return Err(SamplingError::Ratio(self.ratio));
        }
        if self.has_tail() {
            if self.max_traces == 0 {
                return Err(SamplingError::ZeroBound("max_traces_held"));
            }
            if self.max_spans_per_trace == 0 {
                return Err(SamplingError::ZeroBound("max_spans_per_trace"));
            }
            if self.max_age.is_zero() {
                return Err(SamplingError::ZeroBound("max_trace_age"));
            }
        }
        Ok(())
    }

    /// The head sampler for this configuration (after [`validate`](Self::validate)).
    pub(crate) fn head(&self) -> HeadSampler {
        HeadSampler {
            threshold: threshold(self.ratio),
            parent_based: self.parent_based,
            record_unsampled: self.has_tail(),
        }
    }
}

/// A sampling configuration that makes no sense.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SamplingError {
    /// The ratio is not within 0.0 ..= 1.0.
    Ratio(f64),
    /// A tail-sampling bound is zero.
    ZeroBound(&'static str),
}

impl fmt::Display for SamplingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplingError::Ratio(r) => write!(
                f,
                "sampling ratio {r} is not a share: use a value from 0.0 (none) to 1.0 (all), e.g. Sampling::ratio(0.05)"
            ),
            SamplingError::ZeroBound(what) => {
                write!(f, "tail sampling bound `{what}` is zero: nothing could be kept")
            }
        }
    }
}

impl std::error::Error for SamplingError {}

fn threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        0
    } else if ratio <= 0.0 || ratio.is_nan() {
        NEVER
    } else {
        ((1.0 - ratio) * NEVER as f64).round() as u64
    }
}

/// The consistent ratio decision for a trace id: the low 56 bits compared with the threshold.
pub(crate) fn ratio_decision(trace_id: TraceId, threshold: u64) -> bool {
    let r = (u128::from_be_bytes(trace_id.to_bytes()) & LOW_56) as u64;
    r >= threshold
}

/// Head decision, shared by telltale's own spans and the SDK sampler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadSampler {
    threshold: u64,
    parent_based: bool,
    /// Record spans of unsampled traces (tail sampling on).
    pub(crate) record_unsampled: bool,
}

impl HeadSampler {
    /// Whether a span in `trace_id` with this (possibly invalid) parent is sampled.
    pub(crate) fn sampled(&self, parent: &SpanContext, trace_id: TraceId) -> bool {
        if self.parent_based && parent.is_valid() {
            parent.is_sampled()
        } else {
            ratio_decision(trace_id, self.threshold)
        }
    }
}

/// An OpenTelemetry SDK sampler applying telltale's rules to spans created through the
/// OpenTelemetry API (or `tracing-opentelemetry`): parent-based, consistent ratio, and
/// `RecordOnly` (recorded for the tail decision, not sampled) when tail sampling is on.
#[derive(Debug, Clone)]
pub struct TelltaleSampler(pub(crate) HeadSampler);

impl ShouldSample for TelltaleSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        let (sampled, trace_state) = match parent_context {
            Some(cx) if cx.has_active_span() => {
                let span = cx.span();
                let psc = span.span_context();
                (self.0.sampled(psc, trace_id), psc.trace_state().clone())
            }
            _ => (self.0.sampled(&SpanContext::NONE, trace_id), TraceState::NONE),
        };
        let decision = if sampled {
            SamplingDecision::RecordAndSample
        } else if self.0.record_unsampled {
            SamplingDecision::RecordOnly
        } else {
            SamplingDecision::Drop
        };
        SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags};

    #[test]
    fn ratio_outside_zero_one_is_an_error() {
        assert!(matches!(
            Sampling::ratio(1.7).validate(),
            Err(SamplingError::Ratio(_))
        ));
        assert!(Sampling::ratio(-0.1).validate().is_err());
        assert!(Sampling::ratio(f64::NAN).validate().is_err());
        assert!(Sampling::ratio(0.0).validate().is_ok());
        assert!(Sampling::ratio(1.0).validate().is_ok());
        assert!(
            Sampling::ratio(0.1)
                .keep_errors()
                .max_traces_held(0)
                .validate()
                .is_err()
        );
        assert!(
            Sampling::ratio(1.7)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("0.0 (none) to 1.0 (all)")
        );
    }

    #[test]
    fn ratio_decision_is_a_pure_function_of_the_trace_id() {
        let t = threshold(0.25);
        let mut n = 0;
        for i in 0..20_000u128 {
            let id = TraceId::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            let a = ratio_decision(id, t);
            assert_eq!(a, ratio_decision(id, t));
            n += usize::from(a);
        }
        // 25% ± 2%
        assert!((4_600..=5_400).contains(&n), "{n}");
        assert!(ratio_decision(TraceId::from(0), threshold(1.0)));
        assert!(!ratio_decision(TraceId::from(u128::MAX), threshold(0.0)));
    }

    #[test]
    fn parent_flag_is_honoured_unless_ignored() {
        let parent = SpanContext::new(
            TraceId::from(1),
            SpanId::from(1),
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        );
        assert!(Sampling::never().head().sampled(&parent, TraceId::from(1)));
        assert!(
            !Sampling::never()
                .ignore_parent()
                .head()
                .sampled(&parent, TraceId::from(1))
        );
    }
}

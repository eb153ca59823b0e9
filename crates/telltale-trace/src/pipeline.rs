//! The span pipeline: head decision, the bounded tail-sampling buffer, and the
//! downstream processor (batch exporter) every telltale span goes to.
//!
//! ```
//! use telltale_trace::pipeline::SpanPipeline;
//! use telltale_trace::sampling::Sampling;
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//!
//! // Spans go nowhere here; a real set-up passes a batch processor (see `TracingConfig`).
//! let pipeline = SpanPipeline::disabled();
//! // Spans made through the OpenTelemetry API get the same sampling and tail buffer:
//! let provider = SdkTracerProvider::builder()
//!     .with_sampler(pipeline.sampler())
//!     .with_span_processor(pipeline.processor())
//!     .build();
//! # drop(provider);
//! let p = SpanPipeline::new(&Sampling::ratio(0.1).keep_errors(), opentelemetry_sdk::trace::SimpleSpanProcessor::new(
//!     opentelemetry_stdout::SpanExporter::default())).unwrap();
//! assert_eq!(p.stats().kept_traces, 0);
//! ```
//!
//! telltale's server and client layers build their spans as plain data and hand them to
//! the pipeline only when they end and only when they will be exported (or must be held
//! for a tail decision), so a dropped request never allocates an SDK span. Spans made
//! through the OpenTelemetry SDK reach the same pipeline through
//! [`SpanPipeline::processor`]. See [`sampling`](crate::sampling) for the rules.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, Status, TraceId};
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::names;
use crate::sampling::{HeadSampler, Sampling, SamplingError, TelltaleSampler};

/// Counts kept by a [`SpanPipeline`] (also exported through the `metrics` facade, see
/// [`crate::names`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Spans handed to the downstream processor.
    pub forwarded_spans: u64,
    /// Local traces kept by the tail rules (error or slow) although not head-sampled.
    pub kept_traces: u64,
    /// Local traces (not head-sampled) dropped when their root ended.
    pub dropped_traces: u64,
    /// Spans the tail buffer refused or expired (overflow).
    pub overflow_spans: u64,
    /// Traces held in the tail buffer now.
    pub held_traces: usize,
    /// Spans held in the tail buffer now.
    pub held_spans: usize,
}

/// Why a not-head-sampled local trace is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepReason {
    Error,
    Slow,
}

impl KeepReason {
    fn label(self) -> &'static str {
        match self {
            KeepReason::Error => "error",
            KeepReason::Slow => "slow",
        }
    }
}

/// Where telltale's spans go. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct SpanPipeline(Arc<Inner>);

struct Inner {
    head: HeadSampler,
    keep_errors: bool,
    keep_slower_than: Option<Duration>,
    tail: Option<TailBuffer>,
    downstream: Option<Box<dyn SpanProcessor>>,
    scope: InstrumentationScope,
    forwarded: AtomicU64,
    kept: AtomicU64,
    dropped: AtomicU64,
    overflow: AtomicU64,
    shut_down: AtomicBool,
}

impl fmt::Debug for SpanPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanPipeline")
            .field("head", &self.0.head)
            .field("tail", &self.0.tail.is_some())
            .field("exports", &self.0.downstream.is_some())
            .finish()
    }
}

impl SpanPipeline {
    /// A pipeline applying `sampling` and handing finished spans to `downstream` (a batch
    /// processor in production). Fails when `sampling` is nonsense (e.g. a ratio of 1.7).
    pub fn new(sampling: &Sampling, downstream: impl SpanProcessor + 'static) -> Result<Self, SamplingError> {
        Self::with_downstream(sampling, Some(Box::new(downstream)))
    }

    /// A pipeline that exports nothing: ids are still made and propagated, and logs still
    /// carry them. Used when no exporter is configured or `OTEL_SDK_DISABLED=true`.
    pub fn disabled() -> Self {
        Self::with_downstream(&Sampling::never(), None).unwrap_or_else(|_| unreachable_pipeline())
    }

    pub(crate) fn with_downstream(
        sampling: &Sampling,
        downstream: Option<Box<dyn SpanProcessor>>,
    ) -> Result<Self, SamplingError> {
        sampling.validate()?;
        let tail = (sampling.has_tail() && downstream.is_some()).then(|| TailBuffer {
            map: Mutex::new(TailMap {
                traces: HashMap::new(),
                last_sweep: Instant::now(),
                spans: 0,
            }),
            held: AtomicUsize::new(0),
            held_gauge: OnceLock::new(),
            max_traces: sampling.max_traces,
            max_spans: sampling.max_spans_per_trace,
            max_age: sampling.max_age,
        });
        let mut head = sampling.head();
        head.record_unsampled = tail.is_some();
        Ok(SpanPipeline(Arc::new(Inner {
            head,
            keep_errors: sampling.keep_errors,
            keep_slower_than: sampling.keep_slower_than,
            tail,
            downstream,
            scope: InstrumentationScope::builder("telltale-trace")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            forwarded: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        })))
    }

    /// The SDK sampler applying the same rules, for an `SdkTracerProvider`.
    pub fn sampler(&self) -> TelltaleSampler {
        TelltaleSampler(self.0.head)
    }

    /// A span processor feeding this pipeline, for an `SdkTracerProvider`: spans made
    /// through the OpenTelemetry API share the tail buffer and the exporter.
    pub fn processor(&self) -> PipelineProcessor {
        PipelineProcessor(self.clone())
    }

    /// Counts so far.
    pub fn stats(&self) -> PipelineStats {
        let (held_traces, held_spans) = match &self.0.tail {
            Some(t) => {
                let m = t.lock();
                (m.traces.len(), m.spans)
            }
            None => (0, 0),
        };
        PipelineStats {
            forwarded_spans: self.0.forwarded.load(Ordering::Relaxed),
            kept_traces: self.0.kept.load(Ordering::Relaxed),
            dropped_traces: self.0.dropped.load(Ordering::Relaxed),
            overflow_spans: self.0.overflow.load(Ordering::Relaxed),
            held_traces,
            held_spans,
        }
    }

    /// Asks the downstream processor to export what it has now.
    pub fn force_flush(&self) -> OTelSdkResult {
        match &self.0.downstream {
            Some(d) => d.force_flush(),
            None => Ok(()),
        }
    }

    /// Flushes and shuts the downstream processor down (once; later calls do nothing).
    pub fn shutdown(&self) -> OTelSdkResult {
        if self.0.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match &self.0.downstream {
            Some(d) => d.shutdown_with_timeout(Duration::from_secs(5)),
            None => Ok(()),
        }
    }

    pub(crate) fn head(&self) -> &HeadSampler {
        &self.0.head
    }

    /// Whether spans of unsampled traces are recorded (tail rules on and an exporter).
    pub(crate) fn records_unsampled(&self) -> bool {
        self.0.tail.is_some()
    }

    pub(crate) fn scope(&self) -> &InstrumentationScope {
        &self.0.scope
    }

    pub(crate) fn keep_reason(&self, error: bool, elapsed: Duration) -> Option<KeepReason> {
        if error && self.0.keep_errors {
            Some(KeepReason::Error)
        } else if self.0.keep_slower_than.is_some_and(|t| elapsed >= t) {
            Some(KeepReason::Slow)
        } else {
            None
        }
    }

    /// Hands a sampled span to the exporter.
    pub(crate) fn forward(&self, span: SpanData) {
        if let Some(d) = &self.0.downstream {
            self.0.forwarded.fetch_add(1, Ordering::Relaxed);
            d.on_end(span);
        }
    }

    /// A span of an unsampled trace that is not its local root: hold it for the tail decision.
    pub(crate) fn hold(&self, span: SpanData) {
        let Some(tail) = &self.0.tail else { return };
        let held = tail.hold(span);
        tail.report_held(held.traces);
        let lost = held.dropped + held.expired;
        if lost > 0 {
            self.0.overflow.fetch_add(lost, Ordering::Relaxed);
        }
        // Each lost span counted once, under the reason it was lost for.
        if held.dropped > 0 {
            metrics::counter!(names::TAIL_SPANS_OVERFLOW, names::LABEL_REASON => held.reason)
                .increment(held.dropped);
        }
        if held.expired > 0 {
            metrics::counter!(names::TAIL_SPANS_OVERFLOW, names::LABEL_REASON => "max_age")
                .increment(held.expired);
        }
    }

    /// The local root of an unsampled trace ended: export its held spans and itself if
    /// `keep`, else drop them. `root` is only built when kept.
    pub(crate) fn end_local_root(
        &self,
        trace_id: TraceId,
        keep: Option<KeepReason>,
        root: impl FnOnce() -> SpanData,
    ) {
        let Some(tail) = &self.0.tail else { return };
        let held = tail.take(trace_id);
        if held.is_some() {
            tail.report_held(tail.held.load(Ordering::Relaxed));
        }
        match keep {
            Some(reason) => {
                self.0.kept.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::TAIL_TRACES_KEPT, names::LABEL_REASON => reason.label())
                    .increment(1);
                for span in held.into_iter().flatten() {
                    self.forward(mark_sampled(span));
                }
                self.forward(mark_sampled(root()));
            }
            None => {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn unreachable_pipeline() -> SpanPipeline {
    // `Sampling::never()` always validates; keep a total function anyway.
    SpanPipeline(Arc::new(Inner {
        head: Sampling::never().head(),
        keep_errors: false,
        keep_slower_than: None,
        tail: None,
        downstream: None,
        scope: InstrumentationScope::builder("telltale-trace").build(),
        forwarded: AtomicU64::new(0),
        kept: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        overflow: AtomicU64::new(0),
        shut_down: AtomicBool::new(false),
    }))
}

fn mark_sampled(mut span: SpanData) -> SpanData {
    let sc = &span.span_context;
    span.span_context = SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().with_sampled(true),
        sc.is_remote(),
        sc.trace_state().clone(),
    );
    span
}

// === impl TailBuffer ===

/// What [`TailBuffer::hold`] did.
struct Held {
    /// 1 if the span itself found no room, else 0.
    dropped: u64,
    /// Why it found no room (`max_traces` or `max_spans_per_trace`).
    reason: &'static str,
    /// Spans of traces that expired (`max_age`) in this call's sweep.
    expired: u64,
    /// Traces held after the call.
    traces: usize,
}

struct TailBuffer {
    map: Mutex<TailMap>,
    /// Traces held, readable without the lock (fast path: nothing held).
    held: AtomicUsize,
    /// The `TAIL_TRACES_HELD` gauge, resolved on first use, not per span.
    held_gauge: OnceLock<metrics::Gauge>,
    max_traces: usize,
    max_spans: usize,
    max_age: Duration,
}

struct TailMap {
    traces: HashMap<u128, HeldTrace>,
    last_sweep: Instant,
    spans: usize,
}

struct HeldTrace {
    since: Instant,
    spans: Vec<SpanData>,
}

fn key(trace_id: TraceId) -> u128 {
    u128::from_be_bytes(trace_id.to_bytes())
}

impl TailBuffer {
    fn report_held(&self, traces: usize) {
        self.held_gauge
            .get_or_init(|| metrics::gauge!(names::TAIL_TRACES_HELD))
            .set(traces as f64);
    }

    fn lock(&self) -> MutexGuard<'_, TailMap> {
        // A panic while holding this lock leaves a consistent map; keep going.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `span` if there is room, and sweeps out expired traces when due.
    fn hold(&self, span: SpanData) -> Held {
        let now = Instant::now();
        let mut expired = 0u64;
        let mut m = self.lock();
        // Sweep expired traces every half max-age, or sooner (but at most every 500 ms, so a
        // flood of spans into a full buffer does not scan it for each span) when full.
        let since_sweep = now.duration_since(m.last_sweep);
        let full = m.traces.len() >= self.max_traces;
        if since_sweep >= self.max_age / 2
            || (full && since_sweep >= (self.max_age / 8).min(Duration::from_millis(500)))
        {
            let max_age = self.max_age;
            let before = m.spans;
            m.traces.retain(|_, t| now.duration_since(t.since) < max_age);
            let after: usize = m.traces.values().map(|t| t.spans.len()).sum();
            m.spans = after;
            expired = (before - after) as u64;
            m.last_sweep = now;
        }
        let k = key(span.span_context.trace_id());
        let room = m.traces.len() < self.max_traces;
        let (dropped, reason) = match m.traces.get_mut(&k) {
            Some(t) if t.spans.len() < self.max_spans => {
                t.spans.push(span);
                m.spans += 1;
                (0, "")
            }
            Some(_) => (1, "max_spans_per_trace"),
            None if room => {
                let mut spans = Vec::with_capacity(4);
                spans.push(span);
                m.traces.insert(k, HeldTrace { since: now, spans });
                m.spans += 1;
                (0, "")
            }
            None => (1, "max_traces"),
        };
        let traces = m.traces.len();
        self.held.store(traces, Ordering::Relaxed);
        Held {
            dropped,
            reason,
            expired,
            traces,
        }
    }

    fn take(&self, trace_id: TraceId) -> Option<Vec<SpanData>> {
        if self.held.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut m = self.lock();
        let t = m.traces.remove(&key(trace_id))?;
        m.spans -= t.spans.len();
        self.held.store(m.traces.len(), Ordering::Relaxed);
        Some(t.spans)
    }
}

// === impl PipelineProcessor ===

/// An OpenTelemetry [`SpanProcessor`] feeding a [`SpanPipeline`] (see
/// [`SpanPipeline::processor`]). Sampled spans go to the exporter; recorded-only spans
/// wait in the tail buffer for their local root.
#[derive(Debug, Clone)]
pub struct PipelineProcessor(SpanPipeline);

impl SpanProcessor for PipelineProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.forward(span);
            return;
        }
        let local_root =
            span.parent_span_id == opentelemetry::trace::SpanId::INVALID || span.parent_span_is_remote;
        if local_root {
            let error = matches!(span.status, Status::Error { .. });
            let elapsed = span.end_time.duration_since(span.start_time).unwrap_or_default();
            let keep = self.0.keep_reason(error, elapsed);
            let trace_id = span.span_context.trace_id();
            self.0.end_local_root(trace_id, keep, move || span);
        } else {
            self.0.hold(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.0.shutdown()
    }
}

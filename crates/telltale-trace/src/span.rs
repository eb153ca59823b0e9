//! The spans telltale makes itself: plain data while the request runs, turned into an
//! OpenTelemetry `SpanData` only when it ends and will be exported or held.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use http::HeaderMap;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use telltale_core::trace_ids::TraceIds;
use tracing_subscriber::registry::LookupSpan;

use crate::pipeline::SpanPipeline;

// --- The seam to the propagation module. ---

fn propagator() -> crate::propagation::TelltalePropagator {
    // No allocation: the default propagator has no own tracestate entry.
    crate::propagation::TelltalePropagator::new()
}

/// The incoming parent span context (invalid when absent or malformed) and the context to
/// build the request's context on (carrying the baggage, if any).
///
/// Without a `baggage` header the base is an empty context, so extraction allocates no
/// context of its own (the request's context is then one allocation), unless the caller's
/// trace needs the mark that keeps its missing `random` flag missing on outgoing calls
/// (see `propagation::upstream_context`) or its `tracestate` has entries OpenTelemetry's
/// `TraceState` cannot hold.
pub(crate) fn extract(headers: &HeaderMap) -> (SpanContext, Context) {
    let p = propagator();
    if telltale_core::headers::contains(headers, &telltale_core::headers::BAGGAGE) {
        let cx = p.extract_headers(headers);
        let sc = cx.span().span_context().clone();
        (sc, cx)
    } else {
        p.extract_parent(headers)
    }
}

/// Injects `cx`'s span context (and baggage) into outgoing request headers.
pub(crate) fn inject(cx: &Context, headers: &mut HeaderMap) {
    propagator().inject_headers(cx, headers)
}

pub(crate) use crate::propagation::{new_root_trace_id, new_span_id};

// --- Span data ---

/// The start of one telltale span.
pub(crate) struct SpanStart {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_remote: bool,
    pub(crate) flags: TraceFlags,
    pub(crate) trace_state: TraceState,
    /// Monotonic start, only taken when the span is recorded. The wall-clock start is
    /// derived at the end (end wall clock minus the monotonic duration): one clock read
    /// at the start instead of two, and a duration that a wall-clock step cannot bend.
    pub(crate) start: Option<Instant>,
}

impl SpanStart {
    /// Starts a span as a child of `parent` (or as a new root when `parent` is invalid).
    pub(crate) fn begin(pipeline: &SpanPipeline, parent: &SpanContext) -> Self {
        let (trace_id, base_flags, parent_span_id, parent_remote, trace_state) = if parent.is_valid() {
            (
                parent.trace_id(),
                parent.trace_flags(),
                parent.span_id(),
                parent.is_remote(),
                parent.trace_state().clone(),
            )
        } else {
            let (id, flags) = new_root_trace_id();
            (id, flags, SpanId::INVALID, false, TraceState::NONE)
        };
        let sampled = pipeline.head().sampled(parent, trace_id);
        let flags = base_flags.with_sampled(sampled);
        let start = (sampled || pipeline.records_unsampled()).then(Instant::now);
        SpanStart {
            trace_id,
            span_id: new_span_id(),
            parent_span_id,
            parent_remote,
            flags,
            trace_state,
            start,
        }
    }

    /// Whether this span's data must be captured (it will be exported or held).
    pub(crate) fn recording(&self) -> bool {
        self.start.is_some()
    }

    /// The span context children (and outgoing requests) see.
    pub(crate) fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            self.flags,
            false,
            self.trace_state.clone(),
        )
    }

    /// The ids as plain data for logs.
    pub(crate) fn trace_ids(&self) -> TraceIds {
        TraceIds::new(
            u128::from_be_bytes(self.trace_id.to_bytes()),
            u64::from_be_bytes(self.span_id.to_bytes()),
            self.flags.is_sampled(),
        )
    }

    /// Ends the span: exports it, holds it for the tail decision, or drops it.
    pub(crate) fn finish(
        self,
        pipeline: &SpanPipeline,
        error: bool,
        build: impl FnOnce(SpanParts) -> SpanData,
    ) {
        let Some(started) = self.start else {
            return;
        };
        let elapsed = started.elapsed();
        let local_root = self.parent_span_id == SpanId::INVALID || self.parent_remote;
        let sampled = self.flags.is_sampled();
        let trace_id = self.trace_id;
        // Only a span that is kept reads the wall clock.
        let parts = move || {
            let end = opentelemetry::time::now();
            SpanParts {
                span_context: SpanContext::new(
                    self.trace_id,
                    self.span_id,
                    self.flags,
                    false,
                    self.trace_state,
                ),
                parent_span_id: self.parent_span_id,
                parent_remote: self.parent_remote,
                start: end.checked_sub(elapsed).unwrap_or(end),
                end,
            }
        };
        if sampled {
            pipeline.forward(build(parts()));
        } else if local_root {
            let keep = pipeline.keep_reason(error, elapsed);
            pipeline.end_local_root(trace_id, keep, || build(parts()));
        } else {
            pipeline.hold(build(parts()));
        }
    }
}

/// What a builder needs to make the `SpanData`.
pub(crate) struct SpanParts {
    span_context: SpanContext,
    parent_span_id: SpanId,
    parent_remote: bool,
    start: SystemTime,
    end: SystemTime,
}

impl SpanParts {
    pub(crate) fn into_span_data(
        self,
        pipeline: &SpanPipeline,
        kind: SpanKind,
        name: Cow<'static, str>,
        attributes: Vec<KeyValue>,
        events: Vec<Event>,
        status: Status,
    ) -> SpanData {
        SpanData {
            span_context: self.span_context,
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_remote,
            span_kind: kind,
            name,
            start_time: self.start,
            end_time: self.end,
            attributes,
            dropped_attributes_count: 0,
            events: {
                let mut e = SpanEvents::default();
                e.events = events;
                e
            },
            links: SpanLinks::default(),
            status,
            instrumentation_scope: pipeline.scope().clone(),
        }
    }

    pub(crate) fn end(&self) -> SystemTime {
        self.end
    }
}

/// Puts `ids` into the `tracing` span's extensions, where telltale-log finds them.
pub(crate) fn attach_ids(span: &tracing::Span, ids: TraceIds) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>()
            && let Some(data) = registry.span(id)
        {
            data.extensions_mut().replace(ids);
        }
    });
}

/// The context children of `start` run in: `parent_cx` (keeps baggage) with our span.
pub(crate) fn child_context(parent_cx: &Context, start: &SpanStart) -> Context {
    parent_cx.with_remote_span_context(start.span_context())
}

/// The panic payload as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// An OpenTelemetry `exception` event.
pub(crate) fn exception_event(at: SystemTime, kind: &'static str, message: String) -> Event {
    Event::new(
        "exception",
        at,
        vec![
            KeyValue::new(crate::names::attr::EXCEPTION_TYPE, kind),
            KeyValue::new(crate::names::attr::EXCEPTION_MESSAGE, message),
        ],
        0,
    )
}

/// Redacts sensitive query parameter values (`token`, `password`, `secret`, `key`,
/// `signature`, …) as `REDACTED`, the OpenTelemetry convention.
pub(crate) fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) if is_sensitive(k) => {
                out.push_str(k);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

fn is_sensitive(key: &str) -> bool {
    const WORDS: [&str; 11] = [
        "token",
        "password",
        "passwd",
        "secret",
        "key",
        "signature",
        "auth",
        "credential",
        "session",
        "jwt",
        "code",
    ];
    let lower = key.to_ascii_lowercase();
    lower == "sig" || lower == "pwd" || WORDS.iter().any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_query_values_are_redacted() {
        assert_eq!(
            redact_query("q=shoes&access_token=abc&page=2&X-Goog-Signature=zz&sig=1&apiKey=k"),
            "q=shoes&access_token=REDACTED&page=2&X-Goog-Signature=REDACTED&sig=REDACTED&apiKey=REDACTED"
        );
        assert_eq!(redact_query("flag&password=p"), "flag&password=REDACTED");
    }

    #[test]
    fn root_ids_carry_the_random_flag() {
        let (id, flags) = new_root_trace_id();
        assert_ne!(id, TraceId::INVALID);
        assert_eq!(flags.to_u8() & 0x02, 0x02);
        assert_ne!(new_span_id(), SpanId::INVALID);
    }
}

//! Trace-context propagation: W3C `traceparent`/`tracestate`, W3C Baggage (and B3 and
//! Jaeger behind features).
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use opentelemetry::baggage::BaggageExt;
//! use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
//! use opentelemetry::Context;
//! use telltale_trace::propagation::{new_span_id, TelltalePropagator};
//!
//! let propagator = TelltalePropagator::new();
//!
//! // Server side: the parent context of the request.
//! let mut inbound = HeaderMap::new();
//! inbound.insert("traceparent", HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"));
//! inbound.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
//! inbound.insert("baggage", HeaderValue::from_static("tenant=acme,user=J%C3%BCrgen"));
//! let parent = propagator.extract_headers(&inbound);
//! let remote = parent.span().span_context().clone();
//! assert!(remote.is_remote() && remote.is_sampled());
//! assert_eq!(remote.trace_flags().to_u8(), 0x03); // the Level 2 `random` flag is kept
//! assert_eq!(parent.baggage().get("user").map(|v| v.as_str()), Some("Jürgen"));
//!
//! // Client side: the current span (normally the client span the span layer opened)
//! // is the parent of the outbound call.
//! let client_span = SpanContext::new(
//!     remote.trace_id(), new_span_id(), remote.trace_flags(), false, remote.trace_state().clone(),
//! );
//! let cx = parent.with_remote_span_context(client_span.clone());
//! let mut outbound = HeaderMap::new();
//! propagator.inject_headers(&cx, &mut outbound);
//! assert_eq!(outbound["traceparent"], format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-03", client_span.span_id()));
//! assert_eq!(outbound["tracestate"], "congo=t61rcWkgMzE");
//! assert_eq!(outbound["baggage"], "tenant=acme,user=J%C3%BCrgen");
//!
//! // Anything invalid starts a new trace: no span context, never a panic.
//! let mut bad = HeaderMap::new();
//! bad.insert("traceparent", HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
//! assert!(!propagator.extract_headers(&bad).has_active_span());
//! ```
//!
//! [`TelltalePropagator`] also implements OpenTelemetry's [`TextMapPropagator`], so it can
//! be installed with `opentelemetry::global::set_text_map_propagator` for code that
//! propagates through the global API.
//!
//! # What the extractor does
//!
//! - **`traceparent`**: exactly one header. Two or more `traceparent` headers, a value
//!   that fails [`TraceParent::parse`] (wrong lengths, uppercase hex, all-zero ids,
//!   version `ff`, extra fields on version 00, bytes that are not ASCII) all mean
//!   "start a new trace": the returned context is the parent given (an empty one for
//!   [`TelltalePropagator::extract_headers`]), with no remote span context. Higher
//!   versions are read by the version-00 layout with extra `-`-prefixed fields ignored.
//!   Flags: `sampled` and the Level 2 `random` flag are kept; reserved bits are dropped.
//! - **`tracestate`** is only read when `traceparent` is valid (otherwise discarded, as
//!   the specification requires). All `tracestate` headers are combined in order. It is
//!   validated strictly, and an invalid header is dropped whole (see [`TraceState`] for
//!   why). A valid one is truncated to [`TRACESTATE_MAX_LEN`] (512) characters by whole
//!   entries, entries over 128 characters first, then from the right. Entries OpenTelemetry's `TraceState` cannot
//!   hold (14-character system ids, see [`TraceState::to_otel`]) travel in the context
//!   beside the span context and are injected again for the same trace.
//! - **`baggage`** is independent of trace context (its own W3C specification): it is
//!   extracted even when `traceparent` is missing or invalid. See [`Baggage`] for the
//!   limits (64 members, 8,192 bytes) and the per-member error handling.
//! - **B3 / Jaeger** (features `b3`, `jaeger`, enabled per propagator with
//!   `TelltalePropagator::with_b3` / `TelltalePropagator::with_jaeger`) are only
//!   consulted when **no** `traceparent` header is present: W3C wins when both are
//!   present, and a present but invalid `traceparent` still starts a new trace rather than
//!   falling back (the W3C processing model says to restart).
//!
//! Through OpenTelemetry's [`Extractor`] (the [`TextMapPropagator`] path) the propagator
//! sees what the carrier's `get_all` reports, so it can only refuse two `traceparent`
//! headers the carrier shows it. Extractors that do not implement `get_all` report one
//! value, and opentelemetry-http's `HeaderExtractor` leaves out values that are not
//! visible ASCII; a carrier whose `get` and `get_all` disagree about the first value is
//! taken to hide one and starts a new trace. For an `http::HeaderMap`, use
//! [`TelltalePropagator::extract_headers`] or [`HeaderMapExtractor`], which report every
//! value.
//!
//! # What the injector does
//!
//! From the context's current span (the client span, so each outbound call carries that
//! span's id as parent-id): `traceparent` version 00 with the span's `sampled` flag and
//! the Level 2 `random` flag — kept as the caller sent it when continuing a trace, set
//! when the trace started here (see
//! [`TelltalePropagator::without_random_flag_on_local_roots`]). The span's own flags are
//! not enough for `random`: opentelemetry_sdk 0.33 clears all flags on spans its sampler
//! drops and starts root spans with no flags, so extraction leaves a small marker (the
//! upstream trace id and flags) in the context and injection reads it.
//!
//! `tracestate` is passed on (re-validated, our own entry if configured moved to the
//! front, truncated to 512 characters; removed when empty rather than sent empty), and
//! `baggage` within the same limits, values percent-encoded. Existing
//! `traceparent`/`tracestate`/`baggage` headers are replaced, never duplicated, so the
//! carrier's `tracestate` always belongs to the `traceparent` written: one already in
//! the carrier is removed when the state to send is empty. OpenTelemetry's [`Injector`]
//! cannot remove, so on that path the stale value is overwritten with an empty
//! `tracestate` (valid, and equal to none); [`HeaderMapInjector`] turns that into a
//! removal. Nothing is written for a context without a valid span context (the carrier
//! is left as it is), and no `baggage` without baggage.
//!
//! # Why not opentelemetry_sdk's propagators
//!
//! We use OpenTelemetry's types (`SpanContext`, `TraceState`, `Baggage`, `Context`) and
//! its `TextMapPropagator` trait, but not the SDK's `TraceContextPropagator` and
//! `BaggagePropagator` (0.33.1), which deviate from the specifications:
//!
//! | rule | `opentelemetry_sdk` 0.33 | here |
//! |---|---|---|
//! | field lengths | ids parsed with `from_str_radix`: `00-1-2-01` and `+`-prefixed ids accepted | exact lengths, lowercase hex digits only |
//! | version 00 extra data | `00-…-01-` (trailing dash) accepted | invalid |
//! | two `traceparent` headers | first one used | new trace |
//! | `random` flag (Level 2) | masked off on extract and inject | kept |
//! | multiple `tracestate` headers | only the first read | combined in order |
//! | `tracestate` > 32 members | first 32 kept silently | invalid, discarded |
//! | `tracestate` keys/values | any key may start with a digit; values only checked for `,`/`=` (control characters, trailing spaces, empty values pass); duplicates kept | Level 2 grammar; duplicates invalid |
//! | `tracestate` 14-character system id | the whole header dropped (`TraceState` off by one) | kept and propagated |
//! | `tracestate` size | not limited | 512 characters, whole entries, long ones first |
//! | empty `tracestate` | injected as an empty header | not sent |
//! | multiple `baggage` headers | only the first read | all read, limits across them |
//! | `baggage` over 8,192 bytes | the **whole** header dropped | members past the limit dropped whole |
//! | `baggage` value with `=` | cut at the second `=` (a partial member) | kept (`=` is a `baggage-octet`) |
//! | invalid UTF-8 after decoding | member dropped | U+FFFD, as the spec says |
//! | baggage keys | percent-decoded | tokens, not decoded |
//! | baggage injection | no byte limit on the encoded header, HashMap order | limits applied, sorted by key |
//!
//! # Ids
//!
//! [`new_root_trace_id`] and [`new_span_id`] draw from a thread-local generator (no
//! syscall per id); a root trace id comes with the `random` flag set.

mod baggage;
mod carrier;
mod ids;
mod traceparent;
mod tracestate;

#[cfg(feature = "b3")]
pub mod b3;
#[cfg(feature = "jaeger")]
pub mod jaeger;

use std::sync::{Arc, LazyLock};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId};

#[cfg(feature = "b3")]
pub use self::b3::B3Encoding;
pub use self::baggage::{
    BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, Baggage, BaggageMember, is_valid_baggage_key,
};
pub use self::carrier::{HeaderMapExtractor, HeaderMapInjector};
pub use self::ids::{new_root_trace_id, new_span_id};
pub use self::traceparent::{
    KNOWN_TRACE_FLAGS, TRACE_FLAG_RANDOM, TRACE_FLAG_SAMPLED, TRACEPARENT_LEN, TraceParent, TraceParentError,
};
pub use self::tracestate::{
    TRACESTATE_LONG_ENTRY, TRACESTATE_MAX_LEN, TRACESTATE_MAX_MEMBERS, TraceState, TraceStateError,
    is_valid_key as is_valid_tracestate_key, is_valid_value as is_valid_tracestate_value,
};

// Statics (not consts) so that `&NAME` is `&'static`.
static TRACEPARENT: HeaderName = telltale_core::headers::TRACEPARENT;
static TRACESTATE: HeaderName = telltale_core::headers::TRACESTATE;
static BAGGAGE: HeaderName = telltale_core::headers::BAGGAGE;

/// Composite propagator: W3C `traceparent`/`tracestate` + W3C baggage (+ B3 / Jaeger
/// when enabled). Cheap to clone. See the [module docs](self) for the exact rules.
#[derive(Clone, Debug, Default)]
pub struct TelltalePropagator {
    /// Our own `tracestate` entry, put in front on every injection.
    own_entry: Option<Arc<(String, String)>>,
    /// Do not set the `random` flag on traces started in this process.
    no_random_local_roots: bool,
    #[cfg(feature = "b3")]
    b3: Option<B3Encoding>,
    #[cfg(feature = "jaeger")]
    jaeger: bool,
}

/// Put into the extracted context: the trace id and flags the caller sent. Context
/// values survive into the contexts of child spans, so injection can tell a trace that
/// came from upstream (keep its `random` flag) from one started here (set it).
#[derive(Clone, Copy, Debug)]
struct UpstreamTrace {
    trace_id: TraceId,
    flags: u8,
}

/// Put into the extracted context when the received `tracestate` has entries that
/// OpenTelemetry's `TraceState` cannot hold (see [`TraceState::to_otel`]): the whole
/// state as received (validated, truncated), for injection to put them back while the
/// trace is the same. Absent in the common case, so it costs nothing there.
#[derive(Clone, Debug)]
struct ExtractedTraceState {
    trace_id: TraceId,
    state: Arc<TraceState>,
}

/// A remote parent read from the headers, and the state to keep beside it, if any.
type RemoteParent = (SpanContext, Option<ExtractedTraceState>);

/// The context to build on for an upstream span context extracted without baggage. It
/// carries the [`UpstreamTrace`] marker only when injection needs it: when the caller did
/// not set the `random` flag, which must then not be invented downstream. (A caller that
/// set it, or no caller, is what injection assumes without a marker.) So a request from a
/// Level 2 caller, or with no `traceparent`, allocates nothing here.
fn upstream_context(sc: &SpanContext) -> Context {
    let flags = sc.trace_flags().to_u8();
    if sc.is_valid() && flags & TRACE_FLAG_RANDOM == 0 {
        Context::new().with_value(UpstreamTrace {
            trace_id: sc.trace_id(),
            flags,
        })
    } else {
        Context::new()
    }
}

// === header access, shared by the `HeaderMap` and the OpenTelemetry carrier paths ===

/// A header that must appear at most once (`traceparent`).
enum Single<'a> {
    Absent,
    One(&'a [u8]),
    /// Twice or more, or present but unreadable: invalid, and not "absent".
    Invalid,
}

trait HeaderLookup {
    type Values<'a>: Iterator<Item = &'a [u8]>
    where
        Self: 'a;
    fn values(&self, name: &HeaderName) -> Self::Values<'_>;
    fn single(&self, name: &HeaderName) -> Single<'_> {
        let mut values = self.values(name);
        match (values.next(), values.next()) {
            (None, _) => Single::Absent,
            (Some(v), None) => Single::One(v),
            (Some(_), Some(_)) => Single::Invalid,
        }
    }
    #[cfg(any(feature = "b3", feature = "jaeger"))]
    fn first(&self, name: &HeaderName) -> Option<&[u8]> {
        self.values(name).next()
    }
}

type AsBytes<'a> = fn(&'a HeaderValue) -> &'a [u8];

impl HeaderLookup for HeaderMap {
    // A scan for small maps, not a hash of each wanted name: `headers::SCAN_UP_TO`.
    type Values<'a> = std::iter::Map<telltale_core::headers::Values<'a>, AsBytes<'a>>;
    #[inline]
    fn values(&self, name: &HeaderName) -> Self::Values<'_> {
        telltale_core::headers::values(self, name).map(HeaderValue::as_bytes as AsBytes<'_>)
    }
}

struct ExtractorLookup<'e>(&'e dyn Extractor);

type StrAsBytes<'a> = fn(&'a str) -> &'a [u8];

impl HeaderLookup for ExtractorLookup<'_> {
    type Values<'a>
        = std::iter::Map<std::vec::IntoIter<&'a str>, StrAsBytes<'a>>
    where
        Self: 'a;
    fn values(&self, name: &HeaderName) -> Self::Values<'_> {
        self.0
            .get_all(name.as_str())
            .unwrap_or_default()
            .into_iter()
            .map(str::as_bytes as StrAsBytes<'_>)
    }
    fn single(&self, name: &HeaderName) -> Single<'_> {
        match self.0.get_all(name.as_str()).as_deref() {
            None => Single::Absent,
            // `get_all` only shows what the carrier can show as text. A carrier whose
            // `get` disagrees with it about the first value (opentelemetry-http's
            // `HeaderExtractor` when the first of two values is not visible ASCII) holds a
            // value `get_all` left out: more than one, or one that cannot be read.
            Some([one]) if self.0.get(name.as_str()) == Some(*one) => Single::One(one.as_bytes()),
            Some(_) => Single::Invalid,
        }
    }
}

trait HeaderSink {
    /// `value` is always visible ASCII.
    fn set(&mut self, name: &HeaderName, value: &[u8]);
    fn remove(&mut self, name: &HeaderName);
}

impl HeaderSink for HeaderMap {
    fn set(&mut self, name: &HeaderName, value: &[u8]) {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            self.insert(name.clone(), v);
        }
    }
    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
}

struct InjectorSink<'i>(&'i mut dyn Injector);

impl HeaderSink for InjectorSink<'_> {
    fn set(&mut self, name: &HeaderName, value: &[u8]) {
        self.0
            .set(name.as_str(), String::from_utf8_lossy(value).into_owned());
    }
    fn remove(&mut self, name: &HeaderName) {
        // OpenTelemetry's `Injector` cannot remove, and cannot tell whether the carrier
        // already holds a value (e.g. a `tracestate` copied from another request). An
        // empty value overwrites it and means "no entries" (receivers must accept it);
        // `HeaderMapInjector` removes the header instead.
        self.0.set(name.as_str(), String::new());
    }
}

// === impl TelltalePropagator ===

impl TelltalePropagator {
    /// W3C trace context + W3C baggage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also extract B3 (both single and multi header forms) when no `traceparent` is
    /// present, and inject B3 in the given form next to the W3C headers.
    #[cfg(feature = "b3")]
    pub fn with_b3(mut self, mode: B3Encoding) -> Self {
        self.b3 = Some(mode);
        self
    }

    /// Also extract Jaeger's `uber-trace-id` when no `traceparent` (and no B3) is present,
    /// and inject it next to the W3C headers.
    #[cfg(feature = "jaeger")]
    pub fn with_jaeger(mut self) -> Self {
        self.jaeger = true;
        self
    }

    /// Adds our own `tracestate` entry, put in front (left) of the list on every
    /// injection, replacing an entry with the same key (the specification's "update key
    /// value" mutation). None by default. Errors if the key or value is not valid.
    ///
    /// ```
    /// use telltale_trace::propagation::TelltalePropagator;
    /// assert!(TelltalePropagator::new().with_tracestate_entry("telltale", "1").is_ok());
    /// assert!(TelltalePropagator::new().with_tracestate_entry("Bad Key", "1").is_err());
    /// ```
    pub fn with_tracestate_entry(mut self, key: &str, value: &str) -> Result<Self, TraceStateError> {
        let mut probe = TraceState::new();
        probe.insert_front(key, value)?;
        self.own_entry = Some(Arc::new((key.to_owned(), value.to_owned())));
        Ok(self)
    }

    /// Do not set the Level 2 `random` flag on traces started in this process. By default
    /// it is set, because their trace ids come from a random generator
    /// ([`new_root_trace_id`], and also opentelemetry_sdk's `RandomIdGenerator`); turn
    /// it off if you install an id generator whose trace ids do not end in 7 random bytes.
    pub fn without_random_flag_on_local_roots(mut self) -> Self {
        self.no_random_local_roots = true;
        self
    }

    /// The parent context of an inbound request: a remote span context and the baggage,
    /// or an empty context when there is nothing valid (the server starts a new trace).
    pub fn extract_headers(&self, headers: &HeaderMap) -> Context {
        self.extract_headers_with(&Context::new(), headers)
    }

    /// Like [`extract_headers`](Self::extract_headers), on top of `parent`: a valid remote
    /// span context replaces `parent`'s span, baggage replaces `parent`'s baggage;
    /// otherwise `parent` is returned as it is.
    pub fn extract_headers_with(&self, parent: &Context, headers: &HeaderMap) -> Context {
        self.extract_from(parent, headers)
    }

    /// Writes `traceparent`, `tracestate` and `baggage` (and B3/Jaeger when enabled) for
    /// `cx`'s current span and baggage into `headers`, replacing any already there.
    pub fn inject_headers(&self, cx: &Context, headers: &mut HeaderMap) {
        self.inject_into(cx, headers);
    }

    /// The remote span context carried by `headers`, if valid (see the module docs).
    ///
    /// A span context alone cannot carry `tracestate` entries OpenTelemetry's `TraceState`
    /// refuses (see [`TraceState::to_otel`]); [`extract_headers`](Self::extract_headers)
    /// keeps them in the context it returns.
    pub fn extract_span_context(&self, headers: &HeaderMap) -> Option<SpanContext> {
        self.remote_parent(headers).map(|(sc, _)| sc)
    }

    /// The parent span context of a request and the context to build its span's context
    /// on, for a request without `baggage` (the server and job spans): an empty context
    /// unless injection needs a mark from the caller (see [`upstream_context`]) or the
    /// received `tracestate` has entries OpenTelemetry's `TraceState` cannot hold.
    pub(crate) fn extract_parent(&self, headers: &HeaderMap) -> (SpanContext, Context) {
        match self.remote_parent(headers) {
            Some((sc, extracted)) => {
                let base = upstream_context(&sc);
                let base = match extracted {
                    Some(state) => base.with_value(state),
                    None => base,
                };
                (sc, base)
            }
            None => (SpanContext::empty_context(), Context::new()),
        }
    }

    fn extract_from<H: HeaderLookup + ?Sized>(&self, parent: &Context, h: &H) -> Context {
        let mut cx = match self.remote_parent(h) {
            Some((sc, extracted)) => {
                let upstream = UpstreamTrace {
                    trace_id: sc.trace_id(),
                    flags: sc.trace_flags().to_u8(),
                };
                let cx = parent.with_value(upstream);
                let cx = match extracted {
                    Some(state) => cx.with_value(state),
                    None => cx,
                };
                cx.with_remote_span_context(sc)
            }
            None => parent.clone(),
        };
        let mut values = h.values(&BAGGAGE).peekable();
        if values.peek().is_some() {
            let baggage = Baggage::parse(values);
            if !baggage.is_empty() {
                cx = cx.with_baggage(baggage.into_otel());
            }
        }
        cx
    }

    fn remote_parent<H: HeaderLookup + ?Sized>(&self, h: &H) -> Option<RemoteParent> {
        match h.single(&TRACEPARENT) {
            Single::Absent => {}
            // Two or more (`TraceParentError::MultipleHeaders`), or one the carrier hides.
            Single::Invalid => return None,
            Single::One(value) => {
                let tp = TraceParent::parse(value).ok()?;
                let mut values = h.values(&TRACESTATE).peekable();
                let (trace_state, whole) = if values.peek().is_some() {
                    tracestate::otel_from_headers(values)
                } else {
                    (opentelemetry::trace::TraceState::NONE, None)
                };
                let extracted = whole.map(|state| ExtractedTraceState {
                    trace_id: tp.trace_id,
                    state: Arc::new(state),
                });
                let sc = SpanContext::new(tp.trace_id, tp.parent_id, tp.known_flags(), true, trace_state);
                return Some((sc, extracted));
            }
        }
        #[cfg(feature = "b3")]
        if self.b3.is_some() {
            if let Some(sc) = h.first(&b3::B3).and_then(b3::parse_single) {
                return Some((sc, None));
            }
            if let (Some(trace), Some(span)) = (h.first(&b3::X_B3_TRACE_ID), h.first(&b3::X_B3_SPAN_ID))
                && let Some(sc) =
                    b3::parse_multi(trace, span, h.first(&b3::X_B3_SAMPLED), h.first(&b3::X_B3_FLAGS))
            {
                return Some((sc, None));
            }
        }
        #[cfg(feature = "jaeger")]
        if self.jaeger
            && let Some(sc) = h.first(&jaeger::UBER_TRACE_ID).and_then(jaeger::parse)
        {
            return Some((sc, None));
        }
        None
    }

    fn inject_into<S: HeaderSink + ?Sized>(&self, cx: &Context, sink: &mut S) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let tp = TraceParent::new(sc.trace_id(), sc.span_id(), self.outbound_flags(cx, sc));
            sink.set(&TRACEPARENT, &tp.to_bytes());

            let mut ts = TraceState::from_otel(sc.trace_state());
            if let Some(extracted) = cx.get::<ExtractedTraceState>()
                && extracted.trace_id == sc.trace_id()
            {
                ts.restore_unheld(&extracted.state);
            }
            if let Some(own) = &self.own_entry {
                // Validated in `with_tracestate_entry`.
                let _ = ts.insert_front(&own.0, &own.1);
            }
            ts.truncate_to(TRACESTATE_MAX_LEN);
            if ts.is_empty() {
                sink.remove(&TRACESTATE);
            } else {
                sink.set(&TRACESTATE, ts.to_string().as_bytes());
            }

            #[cfg(feature = "b3")]
            if let Some(mode) = self.b3 {
                if mode.single() {
                    sink.set(&b3::B3, &b3::single_value(sc));
                }
                if mode.multi() {
                    let single = b3::single_value(sc);
                    sink.set(&b3::X_B3_TRACE_ID, &single[..32]);
                    sink.set(&b3::X_B3_SPAN_ID, &single[33..49]);
                    sink.set(&b3::X_B3_SAMPLED, &single[50..]);
                }
            }
            #[cfg(feature = "jaeger")]
            if self.jaeger {
                sink.set(&jaeger::UBER_TRACE_ID, &jaeger::value(sc));
            }
        }

        let baggage = cx.baggage();
        if !baggage.is_empty() {
            let encoded = Baggage::from_otel(baggage);
            if !encoded.is_empty() {
                let mut s = String::new();
                baggage::encode_into(&encoded, &mut s);
                sink.set(&BAGGAGE, s.as_bytes());
            }
        }
    }

    /// The flags to send: the span's `sampled` flag, and the `random` flag as the trace
    /// had it when it reached us (opentelemetry_sdk 0.33 drops it for spans its sampler
    /// drops and never sets it on root spans, so the span's own flags cannot be trusted
    /// for it).
    fn outbound_flags(&self, cx: &Context, sc: &SpanContext) -> TraceFlags {
        let mut flags = sc.trace_flags().to_u8() & KNOWN_TRACE_FLAGS;
        match cx.get::<UpstreamTrace>() {
            Some(up) if up.trace_id == sc.trace_id() => flags |= up.flags & TRACE_FLAG_RANDOM,
            _ if !self.no_random_local_roots => flags |= TRACE_FLAG_RANDOM,
            _ => {}
        }
        TraceFlags::new(flags)
    }

    fn field_names(&self) -> &'static [String] {
        static FIELDS: LazyLock<[Vec<String>; 4]> = LazyLock::new(|| {
            let w3c = ["traceparent", "tracestate", "baggage"];
            let b3 = ["b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"];
            let jaeger = ["uber-trace-id"];
            let list = |parts: &[&[&str]]| -> Vec<String> {
                parts
                    .iter()
                    .flat_map(|p| p.iter().map(|s| (*s).to_owned()))
                    .collect()
            };
            [
                list(&[&w3c]),
                list(&[&w3c, &b3]),
                list(&[&w3c, &jaeger]),
                list(&[&w3c, &b3, &jaeger]),
            ]
        });
        #[cfg(feature = "b3")]
        let b3 = self.b3.is_some();
        #[cfg(not(feature = "b3"))]
        let b3 = false;
        #[cfg(feature = "jaeger")]
        let jaeger = self.jaeger;
        #[cfg(not(feature = "jaeger"))]
        let jaeger = false;
        &FIELDS[usize::from(b3) + 2 * usize::from(jaeger)]
    }
}

impl TextMapPropagator for TelltalePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inject_into(cx, &mut InjectorSink(injector));
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.extract_from(cx, &ExtractorLookup(extractor))
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.field_names())
    }
}

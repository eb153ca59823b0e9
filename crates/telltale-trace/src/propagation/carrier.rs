//! OpenTelemetry carriers over `http::HeaderMap` that keep what the W3C rules need: every
//! value of a repeated header on extraction, and removal on injection.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};

/// What [`HeaderMapExtractor::get_all`] reports for a value that is not UTF-8: not valid
/// in any propagation header, so it is counted and then rejected like other bad input.
const UNREADABLE: &str = "\u{FFFD}";

/// OpenTelemetry [`Extractor`] over an `http::HeaderMap`, for code that extracts through
/// the [`TextMapPropagator`](opentelemetry::propagation::TextMapPropagator) API (the
/// global propagator, other libraries) rather than
/// [`TelltalePropagator::extract_headers`](super::TelltalePropagator::extract_headers).
///
/// Unlike opentelemetry-http's `HeaderExtractor`, nothing is hidden:
///
/// - [`get_all`](Extractor::get_all) reports **every** value of the header, one that is
///   not UTF-8 as `U+FFFD`, so two `traceparent` headers are always seen as two (W3C:
///   the request then has no valid parent) and an unreadable one is never mistaken for
///   none;
/// - [`get`](Extractor::get) answers only for a header sent once: a propagator that reads
///   one value cannot tell which of several is meant, so it gets none rather than the
///   first.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use opentelemetry::Context;
/// use opentelemetry::propagation::{Extractor, TextMapPropagator};
/// use opentelemetry::trace::TraceContextExt;
/// use telltale_trace::propagation::{HeaderMapExtractor, TelltalePropagator};
///
/// let tp = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// let mut headers = HeaderMap::new();
/// headers.append("traceparent", tp.clone());
/// let cx = TelltalePropagator::new().extract_with_context(&Context::new(), &HeaderMapExtractor(&headers));
/// assert!(cx.has_active_span());
///
/// // A second `traceparent`, even one that is not text: a new trace.
/// headers.append("traceparent", HeaderValue::from_bytes(b"\xff").unwrap());
/// assert_eq!(HeaderMapExtractor(&headers).get_all("traceparent").unwrap().len(), 2);
/// assert_eq!(HeaderMapExtractor(&headers).get("traceparent"), None);
/// let cx = TelltalePropagator::new().extract_with_context(&Context::new(), &HeaderMapExtractor(&headers));
/// assert!(!cx.has_active_span());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct HeaderMapExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderMapExtractor<'_> {
    /// The value of `key` if the header was sent exactly once and is UTF-8.
    fn get(&self, key: &str) -> Option<&str> {
        let mut values = self.0.get_all(key).iter();
        match (values.next(), values.next()) {
            (Some(one), None) => std::str::from_utf8(one.as_bytes()).ok(),
            _ => None,
        }
    }

    /// The header names, each once.
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    /// Every value of `key` in order (one that is not UTF-8 as `U+FFFD`); `None` when
    /// the header is absent.
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let mut values = self.0.get_all(key).iter().peekable();
        values.peek()?;
        Some(
            values
                .map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or(UNREADABLE))
                .collect(),
        )
    }
}

/// OpenTelemetry [`Injector`] over an `http::HeaderMap` that replaces what the carrier
/// held, for code that injects through the
/// [`TextMapPropagator`](opentelemetry::propagation::TextMapPropagator) API rather than
/// [`TelltalePropagator::inject_headers`](super::TelltalePropagator::inject_headers).
///
/// [`set`](Injector::set) replaces every value the header had. An empty value, or one
/// that cannot be a header value, **removes** the header instead: OpenTelemetry's
/// `Injector` has no removal, so propagators (telltale's, and opentelemetry_sdk's for an
/// empty trace state) write an empty value to clear one, and W3C asks not to send an
/// empty `tracestate`. Either way a value left from elsewhere never stays next to the
/// injected `traceparent`.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use opentelemetry::Context;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
/// use telltale_trace::propagation::{HeaderMapInjector, TelltalePropagator};
///
/// // Headers copied from another request, with its tracestate.
/// let mut headers = HeaderMap::new();
/// headers.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
///
/// let sc = SpanContext::new(TraceId::from(1), SpanId::from(2), TraceFlags::SAMPLED, false, TraceState::NONE);
/// let cx = Context::new().with_remote_span_context(sc);
/// TelltalePropagator::new().inject_context(&cx, &mut HeaderMapInjector(&mut headers));
/// assert!(headers.contains_key("traceparent"));
/// assert!(!headers.contains_key("tracestate")); // not the other request's
/// ```
#[derive(Debug)]
pub struct HeaderMapInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderMapInjector<'_> {
    /// Replaces the header `key` with `value`, or removes it when `value` is empty or
    /// not a valid header value. Does nothing if `key` is not a valid header name.
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            return;
        };
        match HeaderValue::try_from(value) {
            Ok(value) if !value.is_empty() => {
                self.0.insert(name, value);
            }
            _ => {
                self.0.remove(name);
            }
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

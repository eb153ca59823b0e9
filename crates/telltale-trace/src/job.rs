//! Background jobs: the trace context and request id of the request that enqueued a job,
//! carried into the run that handles it later, and one consumer span per run.
//!
//! ```
//! use telltale_trace::job::{JobContext, JobTrace};
//! use telltale_trace::pipeline::SpanPipeline;
//!
//! // Enqueuing, inside the request: capture its context and store it with the job.
//! let stored: String = JobContext::current().encode();
//!
//! // Running it, in the worker (normally `tracing.job("fulfil_order")`):
//! let jobs = JobTrace::new(SpanPipeline::disabled(), "fulfil_order");
//! let span = jobs.start(&JobContext::decode(&stored));
//! span.in_scope(|| tracing::info!("fulfilling")); // this line carries trace_id and span_id
//! span.end_ok();
//! ```
//!
//! - [`JobContext`] is what travels with the job: `traceparent`, `tracestate` and
//!   `baggage` (W3C, the same propagator as HTTP), the request id, and when the job was
//!   enqueued. [`JobContext::encode`] writes it as a few `name: value` lines, for a text
//!   column or a message header; [`JobContext::decode`] reads it back and never fails:
//!   a malformed part is dropped, exactly as a malformed HTTP header is (an invalid
//!   `traceparent` starts a new trace, an invalid request id is not carried). `baggage`
//!   is kept as one header within the W3C limits (64 members, 8,192 bytes, whole
//!   members only), however it arrived, so what a job sends on is always valid.
//! - [`JobTrace::start`] opens the run's span: kind **consumer**, named
//!   `process {queue}`, with the OpenTelemetry messaging attributes
//!   (`messaging.operation.type = process`, `messaging.destination.name`,
//!   `messaging.system`) and `request_id`. Its parent is the span that was current when
//!   the job was enqueued, so the request and the job it caused are one trace. Sampling
//!   follows that parent, and a job that fails is kept under "keep errors" like a request.
//! - [`JobSpan::scope`] runs a future with the span's OpenTelemetry context attached and
//!   its `tracing` span entered: client calls made by the job are its children, and
//!   every log line carries `trace_id`, `span_id` and `request_id`.
//! - A [`JobSpan`] dropped without [`end_ok`](JobSpan::end_ok) or
//!   [`end_error`](JobSpan::end_error) ends as an error: `error.type = panic` while
//!   unwinding, `cancelled` otherwise (the run's future was dropped, e.g. at shutdown).
//!
//! The facade's `telltale::job::Job` adds the job's RED metrics and a completion log line
//! on top of this.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;
use telltale_core::RequestId;
use telltale_core::headers::X_REQUEST_ID;

use crate::names::{self, attr};
use crate::pipeline::SpanPipeline;
use crate::propagation::Baggage;
use crate::span::{self, SpanStart};

/// Header-style name of the enqueue time (Unix milliseconds) in an encoded [`JobContext`].
pub const ENQUEUED_AT: &str = "enqueued-at";

/// Longest encoded context [`JobContext::decode`] reads; the rest is ignored. W3C caps
/// `tracestate` at 512 and `baggage` at 8,192 bytes; this leaves room for both. A line
/// the cap cuts is never read cut short: a `tracestate` or `baggage` line keeps the
/// list members that end before the cap, any other line is dropped.
pub const MAX_ENCODED_LEN: usize = 16 * 1024;

/// The names an encoded context may carry; any other line is ignored.
const CARRIED: [&str; 5] = [
    "traceparent",
    "tracestate",
    "baggage",
    "x-request-id",
    ENQUEUED_AT,
];

/// What a job carries from the code that enqueued it: trace context, request id and
/// enqueue time. See the [module docs](self).
#[derive(Clone, Default)]
pub struct JobContext {
    headers: HeaderMap,
}

impl JobContext {
    /// Captures the current context: the OpenTelemetry context attached now (inside a
    /// request handled by telltale's server layer, the request's span), the current
    /// request id, and the time.
    pub fn current() -> Self {
        let mut headers = HeaderMap::new();
        span::inject(&Context::current(), &mut headers);
        if let Some(id) = telltale_core::current_request_id() {
            headers.insert(X_REQUEST_ID, id.into());
        }
        let mut cx = JobContext { headers };
        cx.set_enqueued_at(SystemTime::now());
        cx
    }

    /// A context with nothing in it: the job's span starts a new trace.
    pub fn empty() -> Self {
        JobContext::default()
    }

    /// Reads the context carried by incoming headers (e.g. a message's headers). Every
    /// value is kept, as HTTP extraction reads them: `tracestate` values are combined,
    /// and two `traceparent` values start a new trace. All `baggage` values become one
    /// `baggage` header within the W3C limits, as [`Baggage::parse`] reads them
    /// (malformed members and members past 64 or 8,192 bytes dropped whole), so
    /// [`headers`](Self::headers) never sends on more than a hop may.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut out = HeaderMap::new();
        for name in CARRIED {
            for v in headers.get_all(name) {
                out.append(HeaderName::from_static(name), v.clone());
            }
        }
        normalise_baggage(&mut out);
        JobContext { headers: out }
    }

    /// The context as headers, to put on an outgoing message.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Sets when the job was enqueued (captured by [`current`](Self::current)).
    pub fn set_enqueued_at(&mut self, at: SystemTime) {
        let ms = at.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        self.headers
            .insert(HeaderName::from_static(ENQUEUED_AT), HeaderValue::from(ms as u64));
    }

    /// When the job was enqueued, if known.
    pub fn enqueued_at(&self) -> Option<SystemTime> {
        let ms: u64 = self.headers.get(ENQUEUED_AT)?.to_str().ok()?.parse().ok()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }

    /// How long the job waited between enqueue and `now` (`None` if unknown, or if the
    /// enqueue time is in the future: clocks of different hosts disagree).
    pub fn waited(&self, now: SystemTime) -> Option<Duration> {
        now.duration_since(self.enqueued_at()?).ok()
    }

    /// The request id carried, if it was valid.
    pub fn request_id(&self) -> Option<RequestId> {
        RequestId::from_header(self.headers.get(X_REQUEST_ID)?).ok()
    }

    /// The parent span context carried (invalid when none or malformed).
    pub fn parent(&self) -> SpanContext {
        span::extract(&self.headers).0
    }

    /// Encodes the context as `name: value` lines, for a text column or a queue message.
    ///
    /// ```
    /// use telltale_trace::job::JobContext;
    ///
    /// let cx = JobContext::decode("traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\nx-request-id: order-7f3a\n");
    /// assert_eq!(cx.parent().span_id().to_string(), "b7ad6b7169203331");
    /// assert_eq!(JobContext::decode(&cx.encode()).request_id().unwrap().as_str(), "order-7f3a");
    /// ```
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(160);
        for name in CARRIED {
            for v in self.headers.get_all(name) {
                // Header values are visible ASCII or tab (HeaderValue guarantees no line
                // breaks); a value that is not valid UTF-8 cannot be written as text and
                // is left out.
                if let Ok(v) = v.to_str() {
                    out.push_str(name);
                    out.push_str(": ");
                    out.push_str(v);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Reads an encoded context back. Never fails: unknown names, malformed lines and
    /// values that are not valid header values are skipped, and what is kept is
    /// validated when used (an invalid `traceparent` gives a new trace, an invalid
    /// request id none). `baggage` is kept as [`from_headers`](Self::from_headers) keeps
    /// it.
    ///
    /// Input past [`MAX_ENCODED_LEN`] bytes is ignored, and a line the cap cuts is not
    /// read cut short: of a `tracestate` or `baggage` line only the list members that end
    /// before the cap are kept (a member cut in two is dropped whole), any other cut line
    /// is dropped.
    ///
    /// ```
    /// use telltale_trace::job::{JobContext, MAX_ENCODED_LEN};
    ///
    /// let filler = format!("x-filler: {}\n", "f".repeat(MAX_ENCODED_LEN - 40));
    /// let cx = JobContext::decode(&format!("{filler}baggage: tenant=acme,user=alice-the-admin\n"));
    /// // The cap falls inside `user`'s value: that member is dropped, not sent on as a
    /// // shorter user name.
    /// assert_eq!(cx.headers()["baggage"], "tenant=acme");
    /// ```
    pub fn decode(encoded: &str) -> Self {
        let mut end = encoded.len().min(MAX_ENCODED_LEN);
        while !encoded.is_char_boundary(end) {
            end -= 1;
        }
        let (read, rest) = encoded.split_at(end);
        // The line the cap cuts, if it cuts one (the cap may fall on a line break).
        let (whole_lines, cut_line) = if rest.is_empty() || rest.starts_with('\n') || rest.starts_with("\r\n")
        {
            (read, "")
        } else {
            match read.rfind('\n') {
                Some(nl) => read.split_at(nl + 1),
                None => ("", read),
            }
        };
        let mut headers = HeaderMap::new();
        for line in whole_lines.lines() {
            if let Some((name, value)) = carried_line(line) {
                append_value(&mut headers, name, value);
            }
        }
        if let Some((name, value)) = carried_line(cut_line)
            && let Some(value) = whole_members(name, value, rest)
        {
            append_value(&mut headers, name, value);
        }
        normalise_baggage(&mut headers);
        JobContext { headers }
    }
}

/// The carried name and the trimmed value of an encoded line, if it is one we carry.
fn carried_line(line: &str) -> Option<(&'static str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    let known = CARRIED.iter().find(|c| c.eq_ignore_ascii_case(name))?;
    Some((known, value.trim()))
}

fn append_value(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.append(HeaderName::from_static(name), v);
    }
}

/// Of a value the decoding cap cut (`rest` is what followed it), the part that is whole:
/// for the list headers the members up to the last `,` (all of them if the cut fell
/// right before a `,`), `None` for anything else, which cannot be read in part.
fn whole_members<'a>(name: &str, value: &'a str, rest: &str) -> Option<&'a str> {
    if name != "tracestate" && name != "baggage" {
        return None;
    }
    if rest.starts_with(',') {
        return Some(value);
    }
    value.rfind(',').map(|comma| &value[..comma])
}

/// Replaces the `baggage` values with one header holding what [`Baggage::parse`] keeps
/// of them (W3C limits, whole members), or none if nothing is left.
fn normalise_baggage(headers: &mut HeaderMap) {
    let name = &telltale_core::headers::BAGGAGE;
    if !headers.contains_key(name) {
        return;
    }
    let baggage = Baggage::parse(headers.get_all(name).iter().map(HeaderValue::as_bytes));
    headers.remove(name);
    if !baggage.is_empty()
        && let Ok(value) = HeaderValue::try_from(baggage.to_string())
    {
        headers.insert(name.clone(), value);
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("parent", &self.parent())
            .field("request_id", &self.request_id())
            .field("enqueued_at", &self.enqueued_at())
            .finish()
    }
}

/// Makes the spans of one kind of job (one queue). Cheap to clone.
#[derive(Clone, Debug)]
pub struct JobTrace {
    inner: Arc<JobConfig>,
}

#[derive(Debug, Clone)]
struct JobConfig {
    pipeline: SpanPipeline,
    queue: String,
    name: String,
    system: Cow<'static, str>,
}

impl JobTrace {
    /// Spans for jobs from `queue` (`messaging.destination.name`, and the span name
    /// `process {queue}`), sent to `pipeline`.
    pub fn new(pipeline: SpanPipeline, queue: impl Into<String>) -> Self {
        let queue = queue.into();
        JobTrace {
            inner: Arc::new(JobConfig {
                name: format!("process {queue}"),
                queue,
                pipeline,
                system: Cow::Borrowed("telltale"),
            }),
        }
    }

    /// Sets `messaging.system` (default `telltale`), e.g. `postgresql` for a table used
    /// as a queue, or `kafka`.
    pub fn system(mut self, system: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.inner).system = system.into();
        self
    }

    /// The queue name.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// Starts the span of one run of a job enqueued with `cx`.
    pub fn start(&self, cx: &JobContext) -> JobSpan {
        let (parent, base) = span::extract(&cx.headers);
        let start = SpanStart::begin(&self.inner.pipeline, &parent);
        let request_id = cx.request_id();
        let tracing_span = match &request_id {
            Some(id) => {
                tracing::info_span!(target: names::SPAN_TARGET, "job", job = %self.inner.queue, request_id = id.as_str())
            }
            None => tracing::info_span!(target: names::SPAN_TARGET, "job", job = %self.inner.queue),
        };
        span::attach_ids(&tracing_span, start.trace_ids());
        let context = span::child_context(&base, &start);
        JobSpan {
            state: Some(Running {
                start,
                config: self.inner.clone(),
                request_id,
            }),
            context,
            span: tracing_span,
        }
    }
}

/// One run of a job, from [`JobTrace::start`]. End it with [`end_ok`](Self::end_ok) or
/// [`end_error`](Self::end_error); dropped without either, it ends as an error (`panic`
/// while unwinding, else `cancelled`).
pub struct JobSpan {
    state: Option<Running>,
    context: Context,
    span: tracing::Span,
}

struct Running {
    start: SpanStart,
    config: Arc<JobConfig>,
    request_id: Option<RequestId>,
}

impl JobSpan {
    /// The `tracing` span of this run (carries the trace ids and `request_id` for logs).
    pub fn tracing_span(&self) -> &tracing::Span {
        &self.span
    }

    /// The OpenTelemetry context children of this run use.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The request id the job carries, if any.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.state.as_ref().and_then(|s| s.request_id.as_ref())
    }

    /// The trace id of this run, as 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.context.span().span_context().trace_id().to_string()
    }

    /// Runs `f` inside the run's span (logs carry its ids; the context is attached).
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _attached = self.context.clone().attach();
        self.span.in_scope(f)
    }

    /// Wraps `fut` so each poll runs inside the run's span (see [`in_scope`](Self::in_scope)).
    pub fn scope<F: Future>(&self, fut: F) -> Scoped<F> {
        Scoped {
            inner: fut,
            context: self.context.clone(),
            span: self.span.clone(),
        }
    }

    /// Ends the run as a success.
    pub fn end_ok(mut self) {
        self.finish(None);
    }

    /// Ends the run as a failure: `error_type` becomes `error.type` (keep it low in
    /// cardinality: a fixed word per kind of failure), `description` the status message.
    pub fn end_error(mut self, error_type: &'static str, description: impl Into<String>) {
        self.finish(Some((error_type, description.into())));
    }

    fn finish(&mut self, error: Option<(&'static str, String)>) {
        let Some(Running {
            start,
            config,
            request_id,
        }) = self.state.take()
        else {
            return;
        };
        start.finish(&config.pipeline.clone(), error.is_some(), |parts| {
            let mut a = Vec::with_capacity(6);
            a.push(KeyValue::new(attr::MESSAGING_SYSTEM, config.system.clone()));
            a.push(KeyValue::new(attr::MESSAGING_OPERATION_TYPE, "process"));
            a.push(KeyValue::new(attr::MESSAGING_OPERATION_NAME, "process"));
            a.push(KeyValue::new(
                attr::MESSAGING_DESTINATION_NAME,
                config.queue.clone(),
            ));
            if let Some(id) = request_id {
                a.push(KeyValue::new(attr::REQUEST_ID, id.as_str().to_owned()));
            }
            let status = match error {
                None => Status::Unset,
                Some((kind, description)) => {
                    a.push(KeyValue::new(attr::ERROR_TYPE, kind));
                    Status::error(description)
                }
            };
            parts.into_span_data(
                &config.pipeline,
                SpanKind::Consumer,
                Cow::Owned(config.name.clone()),
                a,
                Vec::new(),
                status,
            )
        });
    }
}

impl Drop for JobSpan {
    fn drop(&mut self) {
        if self.state.is_some() {
            if std::thread::panicking() {
                self.finish(Some(("panic", "the job panicked".to_owned())));
            } else {
                self.finish(Some((
                    "cancelled",
                    "the job was dropped before it completed".to_owned(),
                )));
            }
        }
    }
}

impl fmt::Debug for JobSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSpan")
            .field("trace_id", &self.trace_id())
            .field("request_id", &self.request_id())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A future polled inside a job's span; see [`JobSpan::scope`].
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        context: Context,
        span: tracing::Span,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let _attached = this.context.clone().attach();
        this.inner.poll(cx)
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn encode_then_decode_keeps_every_carried_part() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(TP));
        headers.insert("tracestate", HeaderValue::from_static("vendor=abc"));
        headers.insert("baggage", HeaderValue::from_static("tenant=acme"));
        headers.insert("x-request-id", HeaderValue::from_static("order-7f3a"));
        headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
        let mut cx = JobContext::from_headers(&headers);
        let at = UNIX_EPOCH + Duration::from_millis(1_763_700_000_123);
        cx.set_enqueued_at(at);

        let text = cx.encode();
        assert!(
            !text.contains("authorization"),
            "only the carried names travel: {text}"
        );
        let back = JobContext::decode(&text);
        assert_eq!(
            back.parent().trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(back.parent().span_id().to_string(), "b7ad6b7169203331");
        assert!(back.parent().is_sampled());
        assert_eq!(back.headers()["tracestate"], "vendor=abc");
        assert_eq!(back.headers()["baggage"], "tenant=acme");
        assert_eq!(back.request_id().unwrap().as_str(), "order-7f3a");
        assert_eq!(back.enqueued_at(), Some(at));
        assert_eq!(
            back.waited(at + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            back.waited(at - Duration::from_secs(2)),
            None,
            "clock skew is not a wait"
        );
        assert_eq!(back.encode(), text);
    }

    #[test]
    fn every_value_of_a_repeated_header_is_read_as_http_extraction_reads_them() {
        let mut headers = HeaderMap::new();
        headers.append("traceparent", HeaderValue::from_static(TP));
        headers.append("tracestate", HeaderValue::from_static("a=1"));
        headers.append("tracestate", HeaderValue::from_static("b=2"));
        headers.append("baggage", HeaderValue::from_static("x=1"));
        headers.append("baggage", HeaderValue::from_static("y=2"));
        let cx = JobContext::from_headers(&headers);
        let parent = cx.parent();
        assert!(parent.is_valid());
        assert_eq!(parent.trace_state().header(), "a=1,b=2");
        let back = JobContext::decode(&cx.encode());
        // Baggage values are combined into one header, as they would be sent.
        let baggage: Vec<_> = back.headers().get_all("baggage").iter().collect();
        assert_eq!(baggage, ["x=1,y=2"]);
        // Two different `traceparent` values: which one is meant is unknown, so a new
        // trace, as for an HTTP request.
        headers.append(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert!(!JobContext::from_headers(&headers).parent().is_valid());
    }

    #[test]
    fn decode_never_fails_and_drops_what_is_malformed() {
        let cases = [
            "",
            "\n\n\n",
            "no colon here",
            "traceparent: not-a-traceparent\nx-request-id: has space\nenqueued-at: yesterday",
            "traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "x-request-id: \u{7}bell\nTRACEPARENT :   00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01  ",
            "x-request-id: caf\u{e9}",
            ": empty name\nbaggage:\nunknown: value",
        ];
        for raw in cases {
            let cx = JobContext::decode(raw);
            let _ = cx.encode();
            let _ = format!("{cx:?}");
            assert_eq!(cx.request_id(), None, "{raw:?}");
            assert_eq!(cx.enqueued_at(), None, "{raw:?}");
        }
        // A case-insensitive, space-padded name with a valid value is kept.
        let cx = JobContext::decode(cases[5]);
        assert!(cx.parent().is_valid());
        // An all-zero trace id is invalid: a new trace.
        assert!(!JobContext::decode(cases[4]).parent().is_valid());
    }

    #[test]
    fn decode_reads_at_most_the_cap_even_inside_a_multibyte_character() {
        let mut raw = format!("x-request-id: ok-1\n{}", "é".repeat(MAX_ENCODED_LEN));
        raw.push_str("\nx-request-id: past-the-cap\n");
        let cx = JobContext::decode(&raw);
        assert_eq!(cx.request_id().unwrap().as_str(), "ok-1");
        assert_eq!(cx.headers().get_all("x-request-id").iter().count(), 1);
    }

    /// The baggage a job's run extracts (and so sends on from its calls).
    fn run_baggage(cx: &JobContext) -> Vec<(String, String)> {
        use opentelemetry::baggage::BaggageExt;
        let run = JobTrace::new(SpanPipeline::disabled(), "q").start(cx);
        let mut b: Vec<(String, String)> = run
            .context()
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.to_string()))
            .collect();
        b.sort_unstable();
        run.end_ok();
        b
    }

    #[test]
    fn decode_never_keeps_a_member_or_value_cut_by_the_cap() {
        // Filler so that the cap falls `at` bytes into the last line's value.
        let cut_at = |last: &str, at: usize| -> String {
            let before = format!("x-filler: \n{last}");
            let value_start = before.len() - last.len() + last.find(": ").unwrap() + 2;
            let pad = MAX_ENCODED_LEN - value_start - at;
            format!("x-filler: {}\n{last}\n", "f".repeat(pad))
        };
        let line = "baggage: tenant=acme,user=alice-the-admin,role=ops";
        // Inside `user`'s value: `user` is dropped whole, not kept as `user=ali`.
        let raw = cut_at(line, "tenant=acme,user=ali".len());
        assert_eq!(raw.find("ali").unwrap() + 3, MAX_ENCODED_LEN);
        let cx = JobContext::decode(&raw);
        assert_eq!(cx.headers()["baggage"], "tenant=acme");
        assert_eq!(run_baggage(&cx), [("tenant".to_owned(), "acme".to_owned())]);
        // Right before a comma: the members before it are whole.
        let cx = JobContext::decode(&cut_at(line, "tenant=acme,user=alice-the-admin".len()));
        assert_eq!(cx.headers()["baggage"], "tenant=acme,user=alice-the-admin");
        // Inside the first member: nothing.
        let cx = JobContext::decode(&cut_at(line, 4));
        assert!(cx.headers().get("baggage").is_none());
        // Inside a property: the member goes with it.
        let cx = JobContext::decode(&cut_at("baggage: a=1,b=2;ttl=500", "a=1,b=2;ttl=5".len()));
        assert_eq!(cx.headers()["baggage"], "a=1");
        // tracestate: the same, by whole entries.
        let cx = JobContext::decode(&cut_at("tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", 22));
        assert_eq!(cx.headers()["tracestate"], "rojo=00f067aa0ba902b7");
        // Anything else cut is dropped: never a shorter request id.
        let cx = JobContext::decode(&cut_at("x-request-id: order-7f3a", 5));
        assert!(cx.headers().get("x-request-id").is_none());
        assert_eq!(cx.request_id(), None);
        let cx = JobContext::decode(&cut_at(&format!("traceparent: {TP}"), 30));
        assert!(cx.headers().get("traceparent").is_none());
        // The cap right at a line break (`\n` or `\r\n`): the line is whole.
        let at_end = cut_at("x-request-id: order-7f3a", "order-7f3a".len());
        assert_eq!(
            JobContext::decode(&at_end).request_id().unwrap().as_str(),
            "order-7f3a"
        );
        let crlf = at_end.replace('\n', "\r\n").replacen("\r\n", "\n", 1);
        assert_eq!(
            JobContext::decode(&crlf).request_id().unwrap().as_str(),
            "order-7f3a"
        );
    }

    #[test]
    fn baggage_carried_by_a_job_stays_within_the_w3c_limits() {
        // Two headers, 12 KB in all, with a malformed member: what the job sends on is one
        // header of whole valid members, at most 8,192 bytes and 64 members.
        let first: Vec<String> = (0..30).map(|i| format!("a{i:02}={}", "x".repeat(196))).collect();
        let second: Vec<String> = (0..30).map(|i| format!("b{i:02}={}", "y".repeat(196))).collect();
        let mut headers = HeaderMap::new();
        headers.append("traceparent", HeaderValue::from_static(TP));
        headers.append("baggage", HeaderValue::from_str(&first.join(",")).unwrap());
        headers.append("baggage", HeaderValue::from_static("bad member"));
        headers.append("baggage", HeaderValue::from_str(&second.join(",")).unwrap());
        let cx = JobContext::from_headers(&headers);
        let sent: Vec<_> = cx.headers().get_all("baggage").iter().collect();
        assert_eq!(sent.len(), 1);
        let sent = sent[0].to_str().unwrap();
        assert!(
            sent.len() <= crate::propagation::BAGGAGE_MAX_BYTES,
            "{}",
            sent.len()
        );
        let members: Vec<&str> = sent.split(',').collect();
        // 200 bytes and a comma each: 40 fit in 8,192 bytes.
        assert_eq!(members.len(), 40);
        assert!(members.iter().all(|m| m.len() == 200), "whole members only");
        assert!(!sent.contains("bad"));
        // The encoded form carries the same, and decodes to the same.
        let text = cx.encode();
        assert_eq!(text.matches("baggage: ").count(), 1);
        assert_eq!(JobContext::decode(&text).headers()["baggage"], sent);
        // 65 small members: 64 kept.
        let many: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
        let mut text = format!("traceparent: {TP}\n");
        for m in &many {
            text.push_str(&format!("baggage: {m}\n"));
        }
        let cx = JobContext::decode(&text);
        assert_eq!(cx.headers()["baggage"].to_str().unwrap().split(',').count(), 64);
    }

    #[test]
    fn tracestate_with_a_14_character_system_id_reaches_the_jobs_calls() {
        let state = "rojo=1,acme@abcdefghijklmn=2,congo=3";
        let cx = JobContext::decode(&format!("traceparent: {TP}\ntracestate: {state}\n"));
        let run = JobTrace::new(SpanPipeline::disabled(), "q").start(&cx);
        let mut out = HeaderMap::new();
        span::inject(run.context(), &mut out);
        assert_eq!(out["tracestate"], state);
        // And a job enqueued from inside that run carries it on.
        let again = run.in_scope(JobContext::current);
        assert_eq!(again.headers()["tracestate"], state);
        run.end_ok();
    }

    #[test]
    fn empty_context_has_no_parent_and_no_id() {
        let cx = JobContext::empty();
        assert!(!cx.parent().is_valid());
        assert_eq!(cx.request_id(), None);
        assert_eq!(cx.encode(), "");
    }
}

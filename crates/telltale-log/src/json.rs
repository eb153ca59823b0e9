//! The JSON event format: one line of JSON per event, stable keys first.
//!
//! ```
//! use telltale_log::{CaptureWriter, LogConfig};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let capture = CaptureWriter::new();
//! let layer = LogConfig::new("orders-api")
//!     .environment("prod")
//!     .json_layer(capture.clone())
//!     .unwrap();
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("checkout", order_id = 42, password = "hunter2");
//!     let _enter = span.enter();
//!     tracing::info!(items = 3, "order placed");
//! });
//! let line = &capture.json_lines().unwrap()[0];
//! assert_eq!(line["service"], "orders-api");
//! assert_eq!(line["message"], "order placed");
//! assert_eq!(line["items"], 3);
//! assert_eq!(line["order_id"], 42);
//! assert_eq!(line["password"], "[REDACTED]");
//! assert!(line["trace_id"].is_null());
//! ```
//!
//! # What a line holds
//!
//! The reserved keys ([`keys::RESERVED`]), always all of them and always in this order:
//! `timestamp`, `level`, `service`, `environment`, `version`, `target`, `message`,
//! `trace_id`, `span_id`, `request_id`. A key with no value is `null` rather than
//! missing, so every line has the same shape. Then the event's own fields, then the
//! fields of the spans in scope, innermost span first.
//!
//! - **Reserved names**: a field named like a reserved key is written under
//!   `fields.<name>` (a field `level` becomes `fields.level`), so it can never overwrite
//!   one. Two exceptions, both on purpose: the event's `message` *is* the message, and a
//!   field called `request_id` *is* the request id: `request_id` comes from the event's own
//!   `request_id` field, else the innermost span with a `request_id` field, else
//!   [`telltale_core::current_request_id`]. Span `request_id` fields are not repeated
//!   among the other fields. An event with *two* `message` (or `request_id`) values, as
//!   `info!(message = "explicit", "formatted {}", 1)` has, takes the first as the message
//!   (the format string's, which `tracing` puts first) and writes the second as an
//!   ordinary field, `fields.message`.
//! - **Duplicates**: each key is written once, compared as written (`fields.` prefix
//!   included, so an event's `level` and another field named `fields.level` are one key).
//!   The first value wins: the event's own fields come first, in the order they are
//!   written in the macro (`info!(a = 1, a = 2)` gives `"a":1`), then the spans', innermost
//!   first (so the event's field wins over a span's, an inner span's over an outer
//!   one's).
//! - **trace_id / span_id** come from the innermost span in scope whose extensions hold a
//!   [`TraceIds`] (telltale-trace puts one there), else from
//!   [`telltale_core::trace_ids::in_call`] (how `telltale::Telemetry::server_layer` gives
//!   its access line the request's ids without a parent span), written as 32 and 16
//!   lowercase hex digits; `null` when there is none. Events with an explicit parent use
//!   that parent's scope.
//! - **Values**: integers and finite floats are JSON numbers, bools are bools, NaN and
//!   infinities are the strings `"NaN"`, `"inf"`, `"-inf"`, everything else is a string
//!   (`Debug`/`Display` output, errors with their sources joined by `": "`).
//! - **Redaction**: a field whose name is in the [`Redaction`] set is written as
//!   `"[REDACTED]"`, in events and spans; a span's secret is dropped when it is recorded,
//!   never stored. The built-in secret names match as the last segment of a field name
//!   (`db.password`, `access_token`; see [`crate::redact`]).
//! - **One line**: every string is escaped (quotes, backslashes, all control characters
//!   including NUL and ANSI escapes, DEL, the C1 controls U+0080 to U+009F, U+2028/2029),
//!   so an event is exactly one line of valid JSON whatever it holds.
//! - Events bridged from the `log` crate (by tracing-log's `LogTracer`, which
//!   [`LogConfig::init`](crate::LogConfig::init) installs) use their `log.target` as
//!   `target`; their other `log.*` fields are left out. In any other event a field named
//!   `log.target` is an ordinary field: it cannot change `target`.
//!
//! # Why not tracing-subscriber's JSON formatter
//!
//! It stores each span's fields as a JSON *string* and parses it back on every
//! `record` and for every event in the span: about half of the cost of a logged request
//! in the popular stack (see `docs/perf/log.md`). Here span fields are kept as typed
//! values in the span's extensions and written once, straight into a reusable
//! per-thread buffer; the line reaches the writer in a single `write_all`.

use std::cell::RefCell;

use smallvec::SmallVec;
use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

use telltale_core::trace_ids::TraceIds;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::escape::{
    EscapingWriter, debug_quoted_into, escape_into, f64_into, i64_into, int_into, quoted_into, u64_into,
};
use crate::keys;
use crate::redact::Redaction;

/// A `tracing_subscriber` layer writing one JSON object per event, one per line.
/// Build it with [`LogConfig::json_layer`](crate::LogConfig::json_layer); see the
/// [module docs](self) for the format.
#[derive(Clone)]
pub struct JsonLayer<W> {
    inner: Arc<Inner>,
    make_writer: W,
}

struct Inner {
    /// `,"service":"…","environment":…,"version":…`, escaped once at build time.
    static_fields: Box<[u8]>,
    redaction: Redaction,
    /// Tells this layer's entries in the per-thread [`NameCache`] from another layer's
    /// (whose redaction set may differ). Unique for the life of the process.
    id: u64,
}

/// The source of [`Inner::id`].
static NEXT_LAYER_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl<W> fmt::Debug for JsonLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLayer")
            .field(
                "static_fields",
                &String::from_utf8_lossy(&self.inner.static_fields),
            )
            .field("redaction", &self.inner.redaction)
            .finish_non_exhaustive()
    }
}

impl<W> JsonLayer<W> {
    pub(crate) fn new(
        service: &str,
        environment: Option<&str>,
        version: Option<&str>,
        redaction: Redaction,
        make_writer: W,
    ) -> Self {
        let mut s = Vec::with_capacity(64);
        for (key, value) in [
            (keys::SERVICE, Some(service)),
            (keys::ENVIRONMENT, environment),
            (keys::VERSION, version),
        ] {
            s.extend_from_slice(b",\"");
            s.extend_from_slice(key.as_bytes());
            s.extend_from_slice(b"\":");
            match value {
                Some(v) => quoted_into(&mut s, v),
                None => s.extend_from_slice(b"null"),
            }
        }
        JsonLayer {
            inner: Arc::new(Inner {
                static_fields: s.into(),
                redaction,
                id: NEXT_LAYER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            }),
            make_writer,
        }
    }
}

// === span field storage ===

/// A span's fields as typed values, kept in its extensions. The first two are held
/// inline, and so is short text: recording a request span's `request_id` (or a user span's
/// id or name) allocates nothing beyond the extension's own box. Each request's span used
/// to cost two more allocations and frees here (the field list and the id's `String`).
#[derive(Debug, Default)]
pub(crate) struct SpanFields(SmallVec<[(&'static str, SpanValue); 2]>);

/// Longest text a span field holds inline (a UUID request id is 36 bytes).
const INLINE_TEXT: usize = 46;

/// A span field's text: inline when short, else on the heap.
enum SpanText {
    Inline(u8, [u8; INLINE_TEXT]),
    Heap(String),
}

impl SpanText {
    fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(n) if s.len() <= INLINE_TEXT => {
                let mut buf = [0u8; INLINE_TEXT];
                buf[..s.len()].copy_from_slice(s.as_bytes());
                SpanText::Inline(n, buf)
            }
            _ => SpanText::Heap(s.to_owned()),
        }
    }

    fn from_string(s: String) -> Self {
        if s.len() <= INLINE_TEXT {
            SpanText::new(&s)
        } else {
            SpanText::Heap(s)
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole, so always UTF-8; the fallback is never taken.
            SpanText::Inline(n, buf) => std::str::from_utf8(&buf[..usize::from(*n)]).unwrap_or_default(),
            SpanText::Heap(s) => s,
        }
    }
}

impl fmt::Debug for SpanText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[derive(Debug)]
enum SpanValue {
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
    Str(SpanText),
    Redacted,
}

impl SpanFields {
    fn set(&mut self, name: &'static str, value: SpanValue) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

struct SpanRecorder<'a> {
    fields: &'a mut SpanFields,
    redaction: &'a Redaction,
}

impl SpanRecorder<'_> {
    fn put(&mut self, field: &Field, value: impl FnOnce() -> SpanValue) {
        let name = field.name();
        let value = if self.redaction.is_redacted(name) {
            SpanValue::Redacted
        } else {
            value()
        };
        self.fields.set(name, value);
    }
}

impl Visit for SpanRecorder<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, || SpanValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, || SpanValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, || SpanValue::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, || SpanValue::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, || SpanValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, || SpanValue::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, || SpanValue::Str(SpanText::new(value)));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, || {
            SpanValue::Str(SpanText::from_string(ErrorChain(value).to_string()))
        });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, || {
            SpanValue::Str(SpanText::from_string(format!("{value:?}")))
        });
    }
}

/// An error and its sources, joined by `": "`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

// === per-thread buffers ===

#[derive(Default)]
struct Bufs {
    line: Vec<u8>,
    message: Vec<u8>,
    request_id: Vec<u8>,
    log_target: Vec<u8>,
    fields: Vec<u8>,
    seen: SeenKeys,
    clock: SecondCache,
    names: NameCache,
}

// === what each field name means, worked out once ===

/// What a field name means for the line: which buffer it goes to, whether its value is
/// redacted, and (for an ordinary field) its `,"name":` prefix, escaped, with the
/// collision prefix for a reserved name.
///
/// Field names are `&'static str` (tracing's callsite metadata), so a name is known by its
/// address and length. Working this out per field of every event (matching the special
/// names, the reserved keys and the redaction set, escaping the name) was about 150
/// instructions a field, a third of the access line's field writing (callgrind); a hit in
/// this cache is a multiply, one or two compares and one copy.
struct NameInfo {
    kind: NameKind,
    redacted: bool,
    prefix: Box<[u8]>,
    /// The key as written (`fields.<name>` for a reserved name), to write each key once.
    key: &'static str,
    /// One bit from a hash of `key`: two keys with different bits differ, so telling
    /// whether a key is on the line is one AND unless its bit is already set.
    key_bit: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Message,
    RequestId,
    LogTarget,
    LogIgnored,
    Field,
}

impl NameInfo {
    fn new(name: &'static str, redaction: &Redaction) -> Self {
        let kind = match name {
            "message" => NameKind::Message,
            "request_id" => NameKind::RequestId,
            "log.target" => NameKind::LogTarget,
            "log.module_path" | "log.file" | "log.line" => NameKind::LogIgnored,
            _ => NameKind::Field,
        };
        let key = prefixed_reserved(name).unwrap_or(name);
        let mut prefix = Vec::with_capacity(key.len() + 4);
        prefix.extend_from_slice(b",\"");
        escape_into(&mut prefix, key);
        prefix.extend_from_slice(b"\":");
        NameInfo {
            kind,
            redacted: redaction.is_redacted(name),
            prefix: prefix.into(),
            key,
            key_bit: key_bit(key),
        }
    }
}

/// A bit for `key` (FNV-1a), for [`SeenKeys`].
fn key_bit(key: &str) -> u64 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    1 << (hash >> 58)
}

/// The keys written to the line so far, to write each once (see "Duplicates" in the
/// module docs). Most lines have no duplicate: each key then costs an AND and a push.
#[derive(Default)]
struct SeenKeys {
    keys: Vec<&'static str>,
    /// The [`NameInfo::key_bit`]s of `keys`.
    bits: u64,
}

impl SeenKeys {
    /// Records `info`'s key; `false` if it is already on the line.
    #[inline]
    fn first(&mut self, info: &NameInfo) -> bool {
        if self.bits & info.key_bit != 0 && self.keys.contains(&info.key) {
            return false;
        }
        self.bits |= info.key_bit;
        self.keys.push(info.key);
        true
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.bits = 0;
    }
}

/// Sets of the per-thread [`NameCache`], of [`NAME_WAYS`] entries each. A few dozen names
/// are in use in a service's hot paths.
const NAME_SETS: usize = 128;

/// Entries per set: a name can sit in either way of its set, so two names whose addresses
/// fall in the same set do not evict each other on every event. (With a direct-mapped
/// cache of 256 slots, the eleven names of an access line share a slot in about one build
/// in five, by the birthday bound, depending only on where the linker put the names; each
/// line then rebuilt both names' entries, about 300 instructions and two allocations.)
const NAME_WAYS: usize = 2;
// `NameCache::get` matches a set as `[a, b]` and `fill` swaps its two ways.
const _: () = assert!(NAME_WAYS == 2, "the name cache is written for two ways");

/// One cached name: (layer, name address, name length) and what it means.
type NameSlot = Option<(u64, usize, usize, NameInfo)>;

/// Per-thread cache of [`NameInfo`] by (layer, name address, name length).
#[derive(Default)]
struct NameCache {
    slots: Vec<NameSlot>,
    /// How many entries were built (for the tests).
    #[cfg(test)]
    built: usize,
}

impl NameCache {
    /// The set `name` belongs to, for `layer`.
    #[inline]
    fn set_of(layer: u64, ptr: usize, len: usize) -> usize {
        let hash = (ptr ^ len.rotate_left(48) ^ (layer as usize).rotate_left(32))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15_u64 as usize);
        hash >> (usize::BITS - NAME_SETS.trailing_zeros())
    }

    #[inline]
    fn get(&mut self, layer: u64, name: &'static str, redaction: &Redaction) -> &NameInfo {
        let (ptr, len) = (name.as_ptr() as usize, name.len());
        if self.slots.is_empty() {
            self.slots.resize_with(NAME_SETS * NAME_WAYS, || None);
        }
        let first = Self::set_of(layer, ptr, len) * NAME_WAYS;
        let is =
            |slot: &NameSlot| matches!(slot, Some((l, p, n, _)) if *p == ptr && *n == len && *l == layer);
        let way = match &self.slots[first..first + NAME_WAYS] {
            [a, _] if is(a) => 0,
            [_, b] if is(b) => 1,
            _ => {
                self.fill(first, layer, name, redaction);
                0
            }
        };
        // Filled: a hit, or `fill` has just filled it (the closure never runs).
        &self.slots[first + way]
            .get_or_insert_with(|| (layer, ptr, len, NameInfo::new(name, redaction)))
            .3
    }

    /// A miss: `name`'s entry goes in the set's first way (slot `first`), the one there
    /// moves to the second, and the second's is dropped. A hit changes nothing, so two
    /// names sharing a set settle in its two ways for good.
    #[cold]
    #[inline(never)]
    fn fill(&mut self, first: usize, layer: u64, name: &'static str, redaction: &Redaction) {
        #[cfg(test)]
        {
            self.built += 1;
        }
        self.slots.swap(first, first + 1);
        self.slots[first] = Some((
            layer,
            name.as_ptr() as usize,
            name.len(),
            NameInfo::new(name, redaction),
        ));
    }
}

/// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen on this thread: the date
/// arithmetic runs once a second, not once a line.
#[derive(Default)]
struct SecondCache {
    unix_secs: u64,
    text: [u8; 19],
}

/// Capacity above which a buffer is given back after use, so one huge event does not
/// pin memory on every thread for the life of the process.
const KEEP_CAPACITY: usize = 16 * 1024;

impl Bufs {
    fn clear(&mut self) {
        self.line.clear();
        self.message.clear();
        self.request_id.clear();
        self.log_target.clear();
        self.fields.clear();
        self.seen.clear();
    }

    fn trim(&mut self) {
        for b in [
            &mut self.line,
            &mut self.message,
            &mut self.request_id,
            &mut self.fields,
        ] {
            if b.capacity() > KEEP_CAPACITY {
                *b = Vec::with_capacity(512);
            }
        }
    }
}

thread_local! {
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

/// Runs `f` with this thread's buffers, or fresh ones if they are in use (an event
/// emitted while formatting another, e.g. from a `Debug` impl) or already destroyed.
fn with_bufs(f: impl FnOnce(&mut Bufs)) {
    let mut f = Some(f);
    let _ = BUFS.try_with(|cell| {
        if let Ok(mut bufs) = cell.try_borrow_mut()
            && let Some(f) = f.take()
        {
            bufs.clear();
            f(&mut bufs);
            bufs.trim();
        }
    });
    if let Some(f) = f.take() {
        f(&mut Bufs::default());
    }
}

// === writing values ===

#[derive(Clone, Copy)]
enum Val<'a> {
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
    Str(&'a str),
    Debug(&'a dyn fmt::Debug),
    Error(&'a (dyn std::error::Error + 'static)),
    Redacted,
}

impl<'a> From<&'a SpanValue> for Val<'a> {
    fn from(v: &'a SpanValue) -> Self {
        match v {
            SpanValue::I64(v) => Val::I64(*v),
            SpanValue::U64(v) => Val::U64(*v),
            SpanValue::I128(v) => Val::I128(*v),
            SpanValue::U128(v) => Val::U128(*v),
            SpanValue::F64(v) => Val::F64(*v),
            SpanValue::Bool(v) => Val::Bool(*v),
            SpanValue::Str(s) => Val::Str(s.as_str()),
            SpanValue::Redacted => Val::Redacted,
        }
    }
}

/// Writes a value as its natural JSON type.
fn write_value(out: &mut Vec<u8>, v: Val<'_>) {
    match v {
        Val::I64(v) => i64_into(out, v),
        Val::U64(v) => u64_into(out, v),
        Val::I128(v) => int_into(out, v),
        Val::U128(v) => int_into(out, v),
        Val::F64(v) => f64_into(out, v),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Str(s) => quoted_into(out, s),
        Val::Debug(d) => debug_quoted_into(out, d),
        Val::Error(e) => {
            use fmt::Write as _;
            out.push(b'"');
            let _ = write!(EscapingWriter(out), "{}", ErrorChain(e));
            out.push(b'"');
        }
        Val::Redacted => quoted_into(out, keys::REDACTED),
    }
}

/// Writes a value as a JSON string whatever its type (for `message` and `request_id`,
/// whose type is part of the stable shape).
fn write_string(out: &mut Vec<u8>, v: Val<'_>) {
    match v {
        Val::Str(_) | Val::Debug(_) | Val::Error(_) | Val::Redacted => write_value(out, v),
        Val::F64(f) if !f.is_finite() => write_value(out, v),
        _ => {
            out.push(b'"');
            write_value(out, v);
            out.push(b'"');
        }
    }
}

/// The key a field named like a reserved key is written under: `fields.<name>`
/// ([`keys::COLLISION_PREFIX`]); `None` for other names.
fn prefixed_reserved(name: &str) -> Option<&'static str> {
    Some(match name {
        "timestamp" => "fields.timestamp",
        "level" => "fields.level",
        "service" => "fields.service",
        "environment" => "fields.environment",
        "version" => "fields.version",
        "target" => "fields.target",
        "message" => "fields.message",
        "trace_id" => "fields.trace_id",
        "span_id" => "fields.span_id",
        "request_id" => "fields.request_id",
        _ => return None,
    })
}

/// Whether the event comes from the `log` crate through tracing-log's `LogTracer`: only
/// those carry the real target in a `log.target` field. Their metadata is tracing-log's
/// own (name `log event`, target `log`, no file, line or module: those are fields), which
/// no `tracing` macro produces.
fn from_log_bridge(meta: &tracing::Metadata<'_>) -> bool {
    meta.name() == "log event"
        && meta.target() == "log"
        && meta.file().is_none()
        && meta.line().is_none()
        && meta.module_path().is_none()
}

/// Appends a span's `,"name":value` unless its key is already on the line (see
/// [`NameInfo`]).
fn write_field(bufs: &mut Bufs, inner: &Inner, name: &'static str, v: Val<'_>) {
    let info = bufs.names.get(inner.id, name, &inner.redaction);
    if bufs.seen.first(info) {
        write_prefixed(&mut bufs.fields, info, v);
    }
}

/// Appends an ordinary field: its cached prefix, then its value or the redaction marker.
#[inline]
fn write_prefixed(out: &mut Vec<u8>, info: &NameInfo, v: Val<'_>) {
    out.extend_from_slice(&info.prefix);
    if info.redacted || matches!(v, Val::Redacted) {
        quoted_into(out, keys::REDACTED);
    } else {
        write_value(out, v);
    }
}

struct EventVisitor<'a> {
    bufs: &'a mut Bufs,
    inner: &'a Inner,
    meta: &'static tracing::Metadata<'static>,
}

impl EventVisitor<'_> {
    fn put(&mut self, field: &Field, v: Val<'_>) {
        let name = field.name();
        let bufs = &mut *self.bufs;
        let info = bufs.names.get(self.inner.id, name, &self.inner.redaction);
        match info.kind {
            // The first `message` and `request_id` take their reserved places; a second one
            // is an ordinary field (`fields.message`), below.
            NameKind::Message if bufs.message.is_empty() => {
                return write_string(&mut bufs.message, v);
            }
            NameKind::RequestId if bufs.request_id.is_empty() => {
                let v = if info.redacted { Val::Redacted } else { v };
                return write_string(&mut bufs.request_id, v);
            }
            NameKind::LogTarget if bufs.log_target.is_empty() && from_log_bridge(self.meta) => {
                return write_string(&mut bufs.log_target, v);
            }
            NameKind::LogIgnored if from_log_bridge(self.meta) => return,
            _ => {}
        }
        if bufs.seen.first(info) {
            write_prefixed(&mut bufs.fields, info, v);
        }
    }
}

impl Visit for EventVisitor<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Val::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Val::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Val::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Val::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Val::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Val::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Val::Str(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Val::Error(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Val::Debug(value));
    }
}

fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` for the current UTC time.
fn write_timestamp(out: &mut Vec<u8>, cache: &mut SecondCache) {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    if secs != cache.unix_secs || cache.text[0] == 0 {
        let t = i64::try_from(secs)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut text = Vec::with_capacity(19);
        let two = |out: &mut Vec<u8>, v: u8, sep: u8| {
            out.extend_from_slice(&[b'0' + v / 10, b'0' + v % 10, sep]);
        };
        let year = t.year().clamp(0, 9999) as u16;
        text.extend_from_slice(&[
            b'0' + (year / 1000) as u8,
            b'0' + (year / 100 % 10) as u8,
            b'0' + (year / 10 % 10) as u8,
            b'0' + (year % 10) as u8,
            b'-',
        ]);
        two(&mut text, t.month() as u8, b'-');
        two(&mut text, t.day(), b'T');
        two(&mut text, t.hour(), b':');
        two(&mut text, t.minute(), b':');
        text.extend_from_slice(&[b'0' + t.second() / 10, b'0' + t.second() % 10]);
        cache.text.copy_from_slice(&text);
        cache.unix_secs = secs;
    }
    out.extend_from_slice(&cache.text);
    let ms = since_epoch.subsec_millis();
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.values().is_empty() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut SpanRecorder {
            fields: &mut fields,
            redaction: &self.inner.redaction,
        });
        let mut ext = span.extensions_mut();
        // Another JsonLayer in the same registry may have stored them already.
        if ext.get_mut::<SpanFields>().is_none() {
            ext.insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(fields) => values.record(&mut SpanRecorder {
                fields,
                redaction: &self.inner.redaction,
            }),
            None => {
                let mut fields = SpanFields::default();
                values.record(&mut SpanRecorder {
                    fields: &mut fields,
                    redaction: &self.inner.redaction,
                });
                ext.insert(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let inner = &*self.inner;
        with_bufs(|bufs| {
            event.record(&mut EventVisitor { bufs, inner, meta });

            let mut ids: Option<TraceIds> = None;
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope {
                    let ext = span.extensions();
                    if ids.is_none() {
                        ids = ext.get::<TraceIds>().copied();
                    }
                    if let Some(fields) = ext.get::<SpanFields>() {
                        for (name, value) in &fields.0 {
                            if *name == keys::REQUEST_ID {
                                if bufs.request_id.is_empty() {
                                    write_string(&mut bufs.request_id, value.into());
                                }
                            } else {
                                write_field(bufs, inner, name, value.into());
                            }
                        }
                    }
                }
            }

            if ids.is_none() {
                // A line written for a request without its span in scope (the server
                // layer's access line): the ids the server layer set for it.
                ids = telltale_core::trace_ids::in_call();
            }

            let line = &mut bufs.line;
            line.extend_from_slice(b"{\"timestamp\":\"");
            write_timestamp(line, &mut bufs.clock);
            line.extend_from_slice(b"\",\"level\":\"");
            line.extend_from_slice(level_str(meta.level()).as_bytes());
            line.push(b'"');
            line.extend_from_slice(&inner.static_fields);
            line.extend_from_slice(b",\"target\":");
            if bufs.log_target.is_empty() {
                quoted_into(line, meta.target());
            } else {
                line.extend_from_slice(&bufs.log_target);
            }
            line.extend_from_slice(b",\"message\":");
            if bufs.message.is_empty() {
                line.extend_from_slice(b"\"\"");
            } else {
                line.extend_from_slice(&bufs.message);
            }
            match ids {
                Some(ids) => {
                    let (mut t, mut s) = ([0u8; 32], [0u8; 16]);
                    line.extend_from_slice(b",\"trace_id\":\"");
                    line.extend_from_slice(ids.trace_id_hex(&mut t).as_bytes());
                    line.extend_from_slice(b"\",\"span_id\":\"");
                    line.extend_from_slice(ids.span_id_hex(&mut s).as_bytes());
                    line.push(b'"');
                }
                None => line.extend_from_slice(b",\"trace_id\":null,\"span_id\":null"),
            }
            line.extend_from_slice(b",\"request_id\":");
            if !bufs.request_id.is_empty() {
                line.extend_from_slice(&bufs.request_id);
            } else if let Some(id) = telltale_core::current_request_id() {
                quoted_into(line, id.as_str());
            } else {
                line.extend_from_slice(b"null");
            }
            line.extend_from_slice(&bufs.fields);
            line.extend_from_slice(b"}\n");

            // One write per line: the non-blocking writer sends each write as one message.
            let _ = self.make_writer.make_writer_for(meta).write_all(line);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names (leaked, so `&'static`) that fall in one set of the name cache for `layer`.
    fn names_in_one_set(layer: u64, n: usize) -> Vec<&'static str> {
        let mut by_set: std::collections::HashMap<usize, Vec<&'static str>> = Default::default();
        for i in 0.. {
            let name: &'static str = Box::leak(format!("field_{i}").into_boxed_str());
            let set = NameCache::set_of(layer, name.as_ptr() as usize, name.len());
            let names = by_set.entry(set).or_default();
            names.push(name);
            if names.len() == n {
                return names.clone();
            }
        }
        unreachable!("the loop returns")
    }

    #[test]
    fn two_names_of_one_set_are_both_kept() {
        let redaction = Redaction::default();
        let [a, b] = names_in_one_set(7, 2)[..] else {
            unreachable!()
        };
        let mut cache = NameCache::default();
        for _ in 0..100 {
            assert_eq!(
                &*cache.get(7, a, &redaction).prefix,
                format!(",\"{a}\":").as_bytes()
            );
            assert_eq!(
                &*cache.get(7, b, &redaction).prefix,
                format!(",\"{b}\":").as_bytes()
            );
        }
        // Built once each, not once per use (a direct-mapped cache rebuilt both 200 times).
        assert_eq!(cache.built, 2);
    }

    #[test]
    fn a_third_name_of_a_set_replaces_the_one_cached_longest_ago() {
        let redaction = Redaction::default();
        let [a, b, c] = names_in_one_set(9, 3)[..] else {
            unreachable!()
        };
        let mut cache = NameCache::default();
        cache.get(9, a, &redaction);
        cache.get(9, b, &redaction);
        cache.get(9, a, &redaction);
        assert_eq!(cache.built, 2);
        cache.get(9, c, &redaction); // a, cached first, goes
        assert_eq!(cache.built, 3);
        cache.get(9, b, &redaction);
        cache.get(9, c, &redaction);
        assert_eq!(cache.built, 3, "b and c stay");
        assert_eq!(
            &*cache.get(9, a, &redaction).prefix,
            format!(",\"{a}\":").as_bytes()
        );
        assert_eq!(cache.built, 4);
        // Another layer's entry for the same name is its own.
        assert_eq!(
            &*cache.get(10, a, &redaction).prefix,
            format!(",\"{a}\":").as_bytes()
        );
        assert_eq!(cache.built, 5);
    }

    #[test]
    fn timestamp_is_rfc3339_utc_millis() {
        let mut v = Vec::new();
        let mut cache = SecondCache::default();
        write_timestamp(&mut v, &mut cache);
        let mut again = Vec::new();
        write_timestamp(&mut again, &mut cache);
        assert_eq!(v[..10], again[..10]);
        let s = String::from_utf8(v).unwrap();
        let b = s.as_bytes();
        assert_eq!(s.len(), 24, "{s}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19], b[23]),
            (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
            "{s}"
        );
        assert!(s.starts_with("20"), "{s}");
    }

    #[test]
    fn reserved_names_are_written_under_the_collision_prefix() {
        for k in keys::RESERVED {
            assert_eq!(
                prefixed_reserved(k),
                Some(format!("{}{k}", keys::COLLISION_PREFIX).as_str()),
                "{k}"
            );
            let info = NameInfo::new(k, &Redaction::none());
            assert_eq!(&*info.prefix, format!(",\"fields.{k}\":").as_bytes());
        }
        assert_eq!(prefixed_reserved("levels"), None);
        assert_eq!(prefixed_reserved("fields.level"), None);
    }

    #[test]
    fn a_key_is_seen_once_whatever_name_it_is_written_from() {
        let none = Redaction::none();
        let (level, prefixed, a, b) = (
            NameInfo::new("level", &none),
            NameInfo::new("fields.level", &none),
            NameInfo::new("a", &none),
            NameInfo::new("b", &none),
        );
        let mut seen = SeenKeys::default();
        assert!(seen.first(&a));
        assert!(seen.first(&level));
        assert!(!seen.first(&prefixed), "`level` is written as `fields.level`");
        assert!(!seen.first(&a));
        assert!(seen.first(&b));
        seen.clear();
        assert!(seen.first(&prefixed) && seen.first(&a));
    }
}

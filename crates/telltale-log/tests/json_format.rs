//! The JSON line format, through a real registry.

use telltale_core::trace_ids::TraceIds;
use telltale_core::{RequestId, with_request_id};
use telltale_log::{CaptureWriter, LogConfig, LogFormat, keys};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

fn capture() -> (CaptureWriter, DefaultGuard) {
    capture_with(LogConfig::new("orders-api").environment("test").version("1.2.3"))
}

fn capture_with(config: LogConfig) -> (CaptureWriter, DefaultGuard) {
    let capture = CaptureWriter::new();
    let subscriber = tracing_subscriber::registry()
        .with(TraceIdsLayer)
        .with(config.json_layer(capture.clone()).unwrap());
    (capture, tracing::subscriber::set_default(subscriber))
}

/// Stands in for telltale-trace: spans named `traced` get ids derived from a field `n`.
struct TraceIdsLayer;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for TraceIdsLayer {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if attrs.metadata().name() == "traced" {
            let span = ctx.span(id).unwrap();
            let n = u64::from(span.parent().is_some()) + 1;
            span.extensions_mut()
                .insert(TraceIds::new(0x4bf92f3577b34da6a3ce929d0e0e4736, n, true));
        }
    }
}

fn only_line(capture: &CaptureWriter) -> serde_json::Value {
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    serde_json::from_str(&lines[0]).unwrap()
}

#[test]
fn every_line_is_json_with_the_stable_keys_in_order() {
    let (capture, _g) = capture();
    tracing::info!(
        count = 3,
        ratio = 0.5,
        ok = true,
        big = u128::MAX,
        neg = -7i64,
        "hello"
    );
    tracing::error!("no fields");
    tracing::debug!(only = "fields");
    let raw = capture.lines();
    assert_eq!(raw.len(), 3);
    for line in &raw {
        assert!(line.starts_with("{\"timestamp\":\""), "{line}");
        let mut at = 0;
        for key in keys::RESERVED {
            let pos = line
                .find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key} missing in {line}"));
            assert!(pos >= at, "{key} out of order in {line}");
            at = pos;
        }
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(
            ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.',
            "{ts}"
        );
        assert_eq!(v["service"], "orders-api");
        assert_eq!(v["environment"], "test");
        assert_eq!(v["version"], "1.2.3");
        assert_eq!(v["target"], "json_format");
        assert!(v["trace_id"].is_null() && v["span_id"].is_null() && v["request_id"].is_null());
    }
    let v: Vec<serde_json::Value> = raw.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v[0]["level"], "INFO");
    assert_eq!(v[0]["message"], "hello");
    assert_eq!(v[0]["count"], 3);
    assert_eq!(v[0]["ratio"], 0.5);
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["neg"], -7);
    assert!(v[0]["big"].is_number());
    assert_eq!(v[1]["level"], "ERROR");
    assert_eq!(v[2]["level"], "DEBUG");
    assert_eq!(v[2]["message"], "");
    assert_eq!(v[2]["only"], "fields");
}

#[test]
fn unset_environment_and_version_are_null() {
    let (capture, _g) = capture_with(LogConfig::new("svc"));
    tracing::info!("x");
    let v = only_line(&capture);
    assert!(v["environment"].is_null() && v["version"].is_null());
}

#[test]
fn non_finite_floats_are_strings() {
    let (capture, _g) = capture();
    tracing::info!(nan = f64::NAN, inf = f64::INFINITY, ninf = f64::NEG_INFINITY, "f");
    let v = only_line(&capture);
    assert_eq!(
        (&v["nan"], &v["inf"], &v["ninf"]),
        (&"NaN".into(), &"inf".into(), &"-inf".into())
    );
}

#[test]
fn span_with_trace_ids_gives_trace_and_span_id_innermost_first() {
    let (capture, _g) = capture();
    let outer = tracing::info_span!("traced");
    let _e = outer.enter();
    tracing::info!("in outer");
    let plain = tracing::info_span!("plain");
    let _p = plain.enter();
    tracing::info!("in plain inside outer");
    let inner = tracing::info_span!("traced");
    let _i = inner.enter();
    tracing::info!("in inner");
    let v = capture.json_lines().unwrap();
    assert_eq!(v[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v[0]["span_id"], "0000000000000001");
    assert_eq!(v[1]["span_id"], "0000000000000001");
    assert_eq!(v[2]["span_id"], "0000000000000002");
}

#[test]
fn event_with_explicit_parent_uses_that_parents_ids() {
    let (capture, _g) = capture();
    let span = tracing::info_span!("traced", request_id = "req-parent");
    // Not entered: only the explicit parent links them.
    tracing::info!(parent: &span, "explicit");
    tracing::info!("no parent");
    let v = capture.json_lines().unwrap();
    assert_eq!(v[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v[0]["request_id"], "req-parent");
    assert!(v[1]["trace_id"].is_null());
    assert!(v[1]["request_id"].is_null());
}

#[test]
fn request_id_comes_from_event_then_span_then_task_local() {
    let (capture, _g) = capture();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(with_request_id(RequestId::parse("req-task").unwrap(), async {
        tracing::info!("task local");
        let span = tracing::info_span!("req", request_id = "req-span");
        let _e = span.enter();
        tracing::info!("span");
        tracing::info!(request_id = "req-event", "event");
    }));
    let v = capture.json_lines().unwrap();
    assert_eq!(v[0]["request_id"], "req-task");
    assert_eq!(v[1]["request_id"], "req-span");
    assert_eq!(v[2]["request_id"], "req-event");
    // Not repeated as a plain field.
    assert!(v[1].get("fields.request_id").is_none());
}

#[test]
fn span_fields_follow_event_fields_and_innermost_wins() {
    let (capture, _g) = capture();
    let outer = tracing::info_span!(
        "outer",
        user = "outer",
        tenant = "acme",
        late = tracing::field::Empty
    );
    let _o = outer.enter();
    let inner = tracing::info_span!("inner", user = "inner", attempt = 2);
    let _i = inner.enter();
    outer.record("late", 42);
    tracing::info!(attempt = 3, "dup");
    let line = &capture.lines()[0];
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["attempt"], 3, "event beats spans");
    assert_eq!(v["user"], "inner", "inner span beats outer");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["late"], 42, "recorded after creation");
    assert_eq!(line.matches("\"user\"").count(), 1, "{line}");
    assert_eq!(line.matches("\"attempt\"").count(), 1, "{line}");
}

#[test]
fn reserved_keys_cannot_be_overwritten() {
    let (capture, _g) = capture();
    let span = tracing::info_span!("s", trace_id = "fake", service = "evil-span");
    let _e = span.enter();
    tracing::warn!(
        level = "fake",
        timestamp = 0,
        target = "x",
        version = "9",
        environment = "e",
        span_id = 1,
        "real"
    );
    let line = &capture.lines()[0];
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN");
    assert_eq!(v["service"], "orders-api");
    assert_eq!(v["version"], "1.2.3");
    assert_eq!(v["environment"], "test");
    assert_eq!(v["target"], "json_format");
    assert!(v["trace_id"].is_null() && v["span_id"].is_null());
    assert_eq!(v["fields.level"], "fake");
    assert_eq!(v["fields.timestamp"], 0);
    assert_eq!(v["fields.target"], "x");
    assert_eq!(v["fields.span_id"], 1);
    assert_eq!(v["fields.trace_id"], "fake");
    assert_eq!(v["fields.service"], "evil-span");
    for key in keys::RESERVED {
        assert_eq!(line.matches(&format!("\"{key}\":")).count(), 1, "{key}: {line}");
    }
}

#[test]
fn redaction_on_event_and_span_fields() {
    let (capture, _g) = capture_with(LogConfig::new("svc").redact(["card_number"]));
    let span = tracing::info_span!(
        "s",
        cookie = "session=abc",
        token = tracing::field::Empty,
        keep = "yes"
    );
    span.record("token", "tok-123");
    let _e = span.enter();
    tracing::info!(password = "hunter2", api_key = 77, secret = ?"sh", card_number = "4111", user = "bob", "login");
    let line = &capture.lines()[0];
    for secret in ["session=abc", "tok-123", "hunter2", "77", "\"sh\\\"", "4111"] {
        assert!(!line.contains(secret), "{secret} leaked: {line}");
    }
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    for k in ["cookie", "token", "password", "api_key", "secret", "card_number"] {
        assert_eq!(v[k], "[REDACTED]", "{k}");
    }
    assert_eq!(v["user"], "bob");
    assert_eq!(v["keep"], "yes");
}

#[test]
fn hostile_message_and_values_stay_one_valid_line() {
    let (capture, _g) = capture();
    let hostile = format!(
        "a\nb\r\nc\"d\\e\u{0}f\u{1b}[31mred\u{1b}[0m\u{7f}\u{2028}\u{2029}\t{}",
        "x".repeat(1 << 20)
    );
    let header = http::HeaderValue::from_bytes(b"caf\xe9\xff\"").unwrap();
    let bytes: &[u8] = b"\xff\xfe\n\"";
    tracing::info!(field = %hostile, debug = ?hostile, header = ?header, bytes = ?bytes, "{hostile}");
    let raw = capture.contents();
    assert_eq!(raw.matches('\n').count(), 1, "exactly one line");
    assert!(!raw.contains('\u{1b}') && !raw.contains('\u{0}') && !raw.contains('\r'));
    let v = only_line(&capture);
    assert_eq!(v["message"], hostile.as_str());
    assert_eq!(v["field"], hostile.as_str());
    assert!(v["header"].is_string() && v["bytes"].is_string());
}

#[test]
fn errors_are_written_with_their_sources() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("query failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let (capture, _g) = capture();
    let err = Outer(std::io::Error::other("connection reset"));
    tracing::error!(error = &err as &(dyn std::error::Error + 'static), "db");
    assert_eq!(only_line(&capture)["error"], "query failed: connection reset");
}

#[test]
fn span_text_fields_of_every_length_are_written_whole() {
    // Short text is held inline in the span, longer text on the heap: both are the same
    // on the line, at the boundary too, and multi-byte characters stay whole.
    let (capture, _g) = capture();
    let lengths = [0, 1, 36, 45, 46, 47, 100, 5000];
    for n in lengths {
        let text = "é".repeat(n / 2) + &"x".repeat(n % 2);
        let span = tracing::info_span!("work", text = text.as_str(), shown = %format_args!("{n}:{text}"));
        span.in_scope(|| tracing::info!("inside"));
    }
    let lines = capture.json_lines().unwrap();
    assert_eq!(lines.len(), lengths.len());
    for (line, n) in lines.iter().zip(lengths) {
        let text = "é".repeat(n / 2) + &"x".repeat(n % 2);
        assert_eq!(line["text"], text.as_str(), "{n}");
        assert_eq!(line["shown"], format!("{n}:{text}").as_str(), "{n}");
    }
}

#[test]
fn layers_with_different_redaction_sets_on_one_thread_each_apply_their_own() {
    // Field names are worked out once per thread and cached: the cache must not carry
    // one layer's redaction decision over to another's.
    fn emit(card: &str) {
        tracing::info!(card, plain = "shown", "pay");
    }
    let strict = CaptureWriter::new();
    let lax = CaptureWriter::new();
    let strict_layer = LogConfig::new("svc")
        .redact(["card"])
        .json_layer(strict.clone())
        .unwrap();
    let lax_layer = LogConfig::new("svc").json_layer(lax.clone()).unwrap();
    let strict_sub = tracing::Dispatch::new(tracing_subscriber::registry().with(strict_layer));
    let lax_sub = tracing::Dispatch::new(tracing_subscriber::registry().with(lax_layer));
    for _ in 0..3 {
        tracing::dispatcher::with_default(&strict_sub, || emit("4111"));
        tracing::dispatcher::with_default(&lax_sub, || emit("4111"));
    }
    let strict_lines = strict.json_lines().unwrap();
    assert_eq!(strict_lines.len(), 3);
    for line in strict_lines {
        assert_eq!(line["card"], keys::REDACTED, "{line}");
        assert_eq!(line["plain"], "shown", "{line}");
    }
    let lax_lines = lax.json_lines().unwrap();
    assert_eq!(lax_lines.len(), 3);
    for line in lax_lines {
        assert_eq!(line["card"], "4111", "{line}");
    }
}

#[test]
fn pretty_format_is_human_text() {
    let capture = CaptureWriter::new();
    let layer = LogConfig::new("svc")
        .format(LogFormat::Pretty)
        .layer(capture.clone())
        .unwrap();
    let _g = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    tracing::info!(answer = 42, password = "hunter2", "pretty please");
    let out = capture.contents();
    assert!(
        out.contains("pretty please") && out.contains("answer=42"),
        "{out}"
    );
    assert!(
        out.contains("password=[REDACTED]") && !out.contains("hunter2"),
        "{out}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
}

#[test]
fn pretty_format_ends_traced_lines_with_their_trace_and_span_ids() {
    let capture = CaptureWriter::new();
    let layer = LogConfig::new("svc")
        .format(LogFormat::Pretty)
        .layer(capture.clone())
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(TraceIdsLayer).with(layer);
    let _g = tracing::subscriber::set_default(subscriber);
    tracing::info!("outside");
    tracing::info_span!("traced").in_scope(|| {
        tracing::info!(answer = 42, "inside");
        tracing::info_span!("inner").in_scope(|| tracing::warn!("two\nlines"));
    });
    let out = capture.contents();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].contains("outside") && !lines[0].contains("trace_id"),
        "{out}"
    );
    let ids = " trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=0000000000000001";
    // The ids end the line, after the event's fields.
    assert!(lines[1].contains("answer=42"), "{out}");
    assert!(lines[1].ends_with(ids), "{out}");
    // A span without ids of its own inherits its parent's; a message's own line break
    // is kept, and the ids go at the end of the event, not after the first line.
    assert!(
        lines[2].ends_with("two") && !lines[2].contains("trace_id"),
        "{out}"
    );
    assert!(lines[3].ends_with(&format!("lines{ids}")), "{out}");
    assert!(out.ends_with(&format!("{ids}\n")), "{out}");
}

#[test]
fn a_line_outside_any_span_takes_the_ids_a_server_layer_set_for_it() {
    use telltale_core::trace_ids;

    let (capture, _g) = capture();
    let ids = TraceIds::new(0xabc, 0xdef, true);
    {
        let _ids = trace_ids::calling(ids);
        tracing::info!(parent: None, "access line");
        // A span in scope with ids of its own wins.
        tracing::info_span!("traced").in_scope(|| tracing::info!("inside"));
    }
    tracing::info!(parent: None, "after");
    let lines = capture.json_lines().unwrap();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["trace_id"], format!("{:032x}", 0xabc));
    assert_eq!(lines[0]["span_id"], format!("{:016x}", 0xdef));
    assert_eq!(lines[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(lines[1]["span_id"], "0000000000000001");
    assert!(lines[2]["trace_id"].is_null(), "{:#?}", lines[2]);

    // The pretty format reads them the same way.
    let pretty = CaptureWriter::new();
    let layer = LogConfig::new("svc")
        .format(LogFormat::Pretty)
        .layer(pretty.clone())
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _ids = trace_ids::calling(ids);
        tracing::info!(parent: None, "access line");
    });
    let out = pretty.contents();
    assert!(
        out.trim_end()
            .ends_with(&format!(" trace_id={:032x} span_id={:016x}", 0xabc, 0xdef)),
        "{out}"
    );
}

#[test]
fn non_blocking_writer_delivers_every_line_and_guard_flushes() {
    let out = telltale_log::CaptureWriter::new();
    let config = LogConfig::new("svc");
    let (writer, guard) = config.non_blocking(out.clone()).unwrap();
    let layer = config.json_layer(writer).unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..1000 {
            tracing::info!(i, "line");
        }
    });
    assert_eq!(guard.dropped_lines(), 0);
    drop(guard);
    let text = out.contents();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[999]["i"], 999);
}

#[test]
fn composed_layer_with_env_filter_drops_below_the_default_level() {
    // Only meaningful when the caller has not set RUST_LOG.
    if std::env::var("RUST_LOG").is_ok_and(|v| !v.trim().is_empty()) {
        return;
    }
    let capture = CaptureWriter::new();
    let config = LogConfig::new("svc").format(LogFormat::Json);
    let subscriber = tracing_subscriber::registry()
        .with(config.filter().unwrap())
        .with(config.layer(capture.clone()).unwrap());
    tracing::subscriber::with_default(subscriber, || {
        tracing::debug!("hidden");
        tracing::info!("shown");
    });
    let lines = capture.json_lines().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message"], "shown");
}

/// How many times `"key":` appears in `line` (the values in these tests never hold it).
fn key_count(line: &str, key: &str) -> usize {
    line.matches(&format!("\"{key}\":")).count()
}

#[test]
fn a_second_message_or_request_id_is_written_as_an_ordinary_field() {
    let (capture, _g) = capture();
    tracing::info!(message = "explicit", "formatted {}", 1);
    tracing::info!(message = "second", message = "third", "formatted");
    let id = "r-1";
    tracing::info!(request_id = id, request_id = "r-2", "two ids");
    let lines = capture.json_lines().expect("every line is valid JSON");
    // `tracing` puts the format string's message first: it is the message.
    assert_eq!(lines[0]["message"], "formatted 1");
    assert_eq!(lines[0]["fields.message"], "explicit");
    // A third has no place left: the first value of a key wins.
    assert_eq!(lines[1]["message"], "formatted");
    assert_eq!(lines[1]["fields.message"], "second");
    assert_eq!(lines[2]["request_id"], "r-1");
    assert_eq!(lines[2]["fields.request_id"], "r-2");
    let raw = capture.lines();
    for (line, keys) in [
        (&raw[0], ["message", "fields.message"]),
        (&raw[1], ["message", "fields.message"]),
        (&raw[2], ["request_id", "fields.request_id"]),
    ] {
        for key in keys {
            assert_eq!(key_count(line, key), 1, "{key}: {line}");
        }
    }
}

#[test]
fn a_redacted_request_id_stays_redacted_when_written_twice() {
    let (capture, _g) = capture_with(LogConfig::new("svc").redact(["request_id"]));
    tracing::info!(request_id = "r-1", request_id = "r-2", "m");
    let line = only_line(&capture);
    assert_eq!(line["request_id"], keys::REDACTED);
    assert_eq!(line["fields.request_id"], keys::REDACTED);
}

#[test]
fn each_key_is_written_once_and_its_first_value_wins() {
    let (capture, _g) = capture();
    tracing::info!(a = 1, a = 2, "one name twice");
    // `level` is written as `fields.level`: the same key as a field of that name.
    tracing::info!(level = "a", "fields.level" = "b", "reserved and prefixed");
    let span = tracing::info_span!(
        "s",
        level = "span",
        b = "span",
        "fields.target" = "span",
        only_span = "span"
    );
    span.in_scope(|| {
        tracing::info!(
            "fields.level" = "event",
            b = "event",
            target = "event",
            "span and event"
        );
    });
    let raw = capture.lines();
    let lines = capture.json_lines().unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(key_count(&raw[0], "a"), 1, "{}", raw[0]);
    assert_eq!(lines[0]["a"], 1);
    assert_eq!(key_count(&raw[1], "fields.level"), 1, "{}", raw[1]);
    assert_eq!(lines[1]["fields.level"], "a");
    for key in ["fields.level", "b", "fields.target", "only_span"] {
        assert_eq!(key_count(&raw[2], key), 1, "{key}: {}", raw[2]);
    }
    // The event's own field wins over the span's, whatever name either was written from.
    assert_eq!(lines[2]["fields.level"], "event");
    assert_eq!(lines[2]["b"], "event");
    assert_eq!(lines[2]["fields.target"], "event");
    assert_eq!(lines[2]["only_span"], "span");
}

#[test]
fn a_log_target_field_cannot_change_the_target() {
    let (capture, _g) = capture();
    tracing::info!("log.target" = "spoofed", "log.file" = "x.rs", "m");
    let line = only_line(&capture);
    assert_eq!(line["target"], "json_format");
    // An ordinary field like any other.
    assert_eq!(line["log.target"], "spoofed");
    assert_eq!(line["log.file"], "x.rs");
}

/// The callsite tracing-log's `LogTracer` dispatches a `log` crate record from: name
/// `log event`, target `log`, no file, line or module (they are fields).
struct LogBridgeCallsite;
static LOG_BRIDGE_CALLSITE: LogBridgeCallsite = LogBridgeCallsite;
static LOG_BRIDGE_META: tracing::Metadata<'static> = tracing::Metadata::new(
    "log event",
    "log",
    tracing::Level::WARN,
    None,
    None,
    None,
    tracing::field::FieldSet::new(
        &["message", "log.target", "log.module_path", "log.file", "log.line"],
        tracing::callsite::Identifier(&LOG_BRIDGE_CALLSITE),
    ),
    tracing::metadata::Kind::EVENT,
);
impl tracing::Callsite for LogBridgeCallsite {
    fn set_interest(&self, _: tracing::subscriber::Interest) {}
    fn metadata(&self) -> &tracing::Metadata<'_> {
        &LOG_BRIDGE_META
    }
}

#[test]
fn events_from_the_log_bridge_take_their_target_from_log_target() {
    let (capture, _g) = capture();
    let fields = LOG_BRIDGE_META.fields();
    let field = |name| fields.field(name).unwrap();
    let (message, target, module, file, line) = (
        field("message"),
        field("log.target"),
        field("log.module_path"),
        field("log.file"),
        field("log.line"),
    );
    let text = format_args!("pool exhausted");
    tracing::Event::dispatch(
        &LOG_BRIDGE_META,
        &fields.value_set(&[
            (&message, Some(&text as &dyn tracing::Value)),
            (&target, Some(&"sqlx::pool" as &dyn tracing::Value)),
            (&module, Some(&"sqlx::pool::inner" as &dyn tracing::Value)),
            (&file, Some(&"src/pool/inner.rs" as &dyn tracing::Value)),
            (&line, Some(&42_u64 as &dyn tracing::Value)),
        ]),
    );
    let line = only_line(&capture);
    assert_eq!(line["target"], "sqlx::pool");
    assert_eq!(line["message"], "pool exhausted");
    assert_eq!(line["level"], "WARN");
    for key in ["log.target", "log.module_path", "log.file", "log.line"] {
        assert!(line.get(key).is_none(), "{key} in {line}");
    }
}

#[test]
fn c1_control_characters_never_reach_the_line_raw() {
    let (capture, _g) = capture();
    // What an allow-listed header with the (valid UTF-8) bytes C2 85 looks like as text:
    // a NEL, which some readers take for a line break, then a forged line.
    let forged = "curl\u{85}{\"level\":\"ERROR\",\"message\":\"forged\"}";
    let csi = "\u{9b}31mred";
    tracing::info!(user_agent = %forged, csi, "{csi}");
    let raw = capture.contents();
    assert!(
        !raw.contains('\u{85}') && !raw.contains('\u{9b}'),
        "raw C1 control in {raw:?}"
    );
    assert!(
        raw.contains(r"curl\u0085{") && raw.contains(r"\u009b31mred"),
        "{raw}"
    );
    let line = only_line(&capture);
    assert_eq!(line["user_agent"], forged);
    assert_eq!(line["csi"], csi);
    assert_eq!(line["message"], csi);
}

#[test]
fn secret_field_names_are_redacted_as_the_last_segment_of_a_name() {
    let (capture, _g) = capture();
    let span = tracing::info_span!("db", db.password = "span-pw", db.user = "app");
    span.in_scope(|| {
        tracing::info!(
            http.request.header.authorization = "Bearer abc",
            access_token = "at-1",
            client_secret = "cs-1",
            stripe.api_key = "sk-1",
            token_count = 3,
            password_policy = "strict",
            "dotted"
        );
    });
    let raw = capture.contents();
    for secret in ["span-pw", "Bearer abc", "at-1", "cs-1", "sk-1"] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    let line = only_line(&capture);
    for key in [
        "db.password",
        "http.request.header.authorization",
        "access_token",
        "client_secret",
        "stripe.api_key",
    ] {
        assert_eq!(line[key], keys::REDACTED, "{key}");
    }
    // A name that only starts with a secret word is not a secret.
    assert_eq!(line["token_count"], 3);
    assert_eq!(line["password_policy"], "strict");
    assert_eq!(line["db.user"], "app");
}

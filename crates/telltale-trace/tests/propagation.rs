//! Propagation: one test per specification rule, a hostile corpus pinned case by case,
//! property tests that random input never panics, and one round trip over real TCP.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry::{Context, KeyValue};
use proptest::prelude::*;
use telltale_trace::propagation::{
    BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, Baggage, HeaderMapExtractor, HeaderMapInjector,
    TRACE_FLAG_RANDOM, TRACESTATE_MAX_LEN, TelltalePropagator, TraceParent, TraceParentError, TraceState,
    TraceStateError, is_valid_tracestate_key, new_root_trace_id, new_span_id,
};

const TRACE_ID: &str = "12345678901234567890123456789012";
const PARENT_ID: &str = "1234567890123456";
const VALID_TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

fn extract(pairs: &[(&str, &[u8])]) -> Context {
    TelltalePropagator::new().extract_headers(&headers(pairs))
}

/// The remote span context extracted from `pairs`, if any.
fn remote(pairs: &[(&str, &[u8])]) -> Option<SpanContext> {
    let cx = extract(pairs);
    cx.has_active_span().then(|| cx.span().span_context().clone())
}

fn trace_id_of(pairs: &[(&str, &[u8])]) -> Option<String> {
    remote(pairs).map(|sc| sc.trace_id().to_string())
}

fn tracestate_of(pairs: &[(&str, &[u8])]) -> String {
    remote(pairs)
        .map(|sc| sc.trace_state().header())
        .unwrap_or_default()
}

fn with_tp(tracestates: &[&str]) -> String {
    let mut pairs: Vec<(&str, &[u8])> = vec![("traceparent", VALID_TP.as_bytes())];
    pairs.extend(tracestates.iter().map(|t| ("tracestate", t.as_bytes())));
    tracestate_of(&pairs)
}

fn client_cx(parent: &Context) -> (Context, SpanId) {
    let p = parent.span().span_context().clone();
    let id = new_span_id();
    let sc = SpanContext::new(p.trace_id(), id, p.trace_flags(), false, p.trace_state().clone());
    (parent.with_remote_span_context(sc), id)
}

// === traceparent ===

#[test]
fn version_00_exact_format_is_accepted() {
    let sc = remote(&[("traceparent", VALID_TP.as_bytes())]).unwrap();
    assert_eq!(sc.trace_id().to_string(), TRACE_ID);
    assert_eq!(sc.span_id().to_string(), PARENT_ID);
    assert!(sc.is_sampled());
    assert!(sc.is_remote());
}

#[test]
fn version_ff_is_invalid() {
    let v = b"ff-12345678901234567890123456789012-1234567890123456-01";
    assert_eq!(TraceParent::parse(v), Err(TraceParentError::ForbiddenVersion));
    assert_eq!(trace_id_of(&[("traceparent", v)]), None);
}

#[test]
fn higher_version_reads_first_four_fields_and_ignores_extra_fields() {
    for v in [
        "cc-12345678901234567890123456789012-1234567890123456-01",
        "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        "01-12345678901234567890123456789012-1234567890123456-01-",
        "fe-12345678901234567890123456789012-1234567890123456-01-XYZ",
    ] {
        assert_eq!(
            trace_id_of(&[("traceparent", v.as_bytes())]).as_deref(),
            Some(TRACE_ID),
            "{v}"
        );
    }
}

#[test]
fn higher_version_requires_a_dash_after_the_flags() {
    let v = b"cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like";
    assert_eq!(TraceParent::parse(v), Err(TraceParentError::TrailingData));
}

#[test]
fn higher_version_shorter_than_55_characters_is_invalid() {
    let v = b"cc-12345678901234567890123456789012-1234567890123456-1";
    assert_eq!(TraceParent::parse(v), Err(TraceParentError::TooShort));
}

#[test]
fn higher_version_is_sent_on_as_version_00() {
    let tp =
        TraceParent::parse_str("cc-12345678901234567890123456789012-1234567890123456-01-future").unwrap();
    assert_eq!(tp.to_string(), VALID_TP);
}

#[test]
fn extra_fields_on_version_00_are_invalid() {
    for v in [
        "00-12345678901234567890123456789012-1234567890123456-01.",
        "00-12345678901234567890123456789012-1234567890123456-01-",
        "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
    ] {
        assert_eq!(
            TraceParent::parse_str(v),
            Err(TraceParentError::TrailingData),
            "{v}"
        );
    }
}

#[test]
fn all_zero_trace_id_is_invalid() {
    let v = b"00-00000000000000000000000000000000-1234567890123456-01";
    assert_eq!(TraceParent::parse(v), Err(TraceParentError::ZeroTraceId));
    assert_eq!(trace_id_of(&[("traceparent", v)]), None);
}

#[test]
fn all_zero_parent_id_is_invalid() {
    let v = b"00-12345678901234567890123456789012-0000000000000000-01";
    assert_eq!(TraceParent::parse(v), Err(TraceParentError::ZeroParentId));
}

#[test]
fn uppercase_hex_is_invalid() {
    for v in [
        "0A-12345678901234567890123456789012-1234567890123456-01",
        "00-ABCDEF78901234567890123456789012-1234567890123456-01",
        "00-12345678901234567890123456789012-ABCDEF7890123456-01",
        "00-12345678901234567890123456789012-1234567890123456-0A",
    ] {
        assert!(TraceParent::parse_str(v).is_err(), "{v}");
        assert_eq!(trace_id_of(&[("traceparent", v.as_bytes())]), None, "{v}");
    }
}

#[test]
fn wrong_lengths_are_invalid() {
    for v in [
        "0-12345678901234567890123456789012-1234567890123456-01",
        "000-12345678901234567890123456789012-1234567890123456-01",
        "00-1234567890123456789012345678901-1234567890123456-01",
        "00-123456789012345678901234567890123-1234567890123456-01",
        "00-12345678901234567890123456789012-123456789012345-01",
        "00-12345678901234567890123456789012-12345678901234567-01",
        "00-12345678901234567890123456789012-1234567890123456-1",
        "00-12345678901234567890123456789012-1234567890123456-001",
        "00-1-2-01",
    ] {
        assert!(TraceParent::parse_str(v).is_err(), "{v}");
    }
}

#[test]
fn two_traceparent_headers_start_a_new_trace() {
    let cx = extract(&[
        (
            "traceparent",
            b"00-12345678901234567890123456789011-1234567890123456-01",
        ),
        ("traceparent", VALID_TP.as_bytes()),
        ("tracestate", b"foo=1"),
    ]);
    assert!(!cx.has_active_span());
}

#[test]
fn invalid_traceparent_starts_new_trace() {
    let cx = extract(&[("traceparent", b"garbage"), ("tracestate", b"foo=1")]);
    assert!(!cx.has_active_span());
    assert!(!cx.span().span_context().is_valid());
}

#[test]
fn invalid_traceparent_keeps_the_given_parent_context() {
    let parent = Context::new().with_baggage([KeyValue::new("k", "v")]);
    let cx =
        TelltalePropagator::new().extract_headers_with(&parent, &headers(&[("traceparent", b"garbage")]));
    assert!(!cx.has_active_span());
    assert_eq!(cx.baggage().get("k").map(|v| v.as_str()), Some("v"));
}

#[test]
fn ows_around_traceparent_is_ignored() {
    for v in [
        format!(" {VALID_TP}"),
        format!("\t{VALID_TP}"),
        format!("{VALID_TP} "),
        format!("{VALID_TP}\t"),
        format!("\t {VALID_TP} \t"),
    ] {
        assert_eq!(
            trace_id_of(&[("traceparent", v.as_bytes())]).as_deref(),
            Some(TRACE_ID)
        );
    }
}

#[test]
fn traceparent_header_name_is_case_insensitive() {
    // HeaderMap lower-cases names; the OpenTelemetry carrier path is exercised below.
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_bytes(b"TrAcEpArEnT").unwrap(),
        HeaderValue::from_static(VALID_TP),
    );
    assert!(TelltalePropagator::new().extract_headers(&map).has_active_span());
}

#[test]
fn unknown_trace_flags_are_ignored_and_not_propagated() {
    let sc = remote(&[(
        "traceparent",
        b"00-12345678901234567890123456789012-1234567890123456-ff",
    )])
    .unwrap();
    assert_eq!(sc.trace_flags().to_u8(), 0x03);
}

// === random flag and ids ===

#[test]
fn random_flag_is_kept_when_continuing_a_trace() {
    let parent = extract(&[(
        "traceparent",
        b"00-12345678901234567890123456789012-1234567890123456-02",
    )]);
    assert_eq!(
        parent.span().span_context().trace_flags().to_u8(),
        TRACE_FLAG_RANDOM
    );
    let (cx, id) = client_cx(&parent);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert_eq!(out["traceparent"], format!("00-{TRACE_ID}-{id}-02"));
}

#[test]
fn random_flag_is_kept_when_the_local_sampler_drops_the_span() {
    // opentelemetry_sdk gives a dropped child span flags 00 even if the parent had 02.
    let parent = extract(&[(
        "traceparent",
        b"00-12345678901234567890123456789012-1234567890123456-03",
    )]);
    let p = parent.span().span_context().clone();
    let id = new_span_id();
    let dropped = SpanContext::new(p.trace_id(), id, TraceFlags::default(), false, Default::default());
    let cx = parent.with_remote_span_context(dropped);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert_eq!(out["traceparent"], format!("00-{TRACE_ID}-{id}-02"));
}

#[test]
fn random_flag_is_not_invented_for_upstream_traces_without_it() {
    let parent = extract(&[("traceparent", VALID_TP.as_bytes())]);
    let (cx, id) = client_cx(&parent);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert_eq!(out["traceparent"], format!("00-{TRACE_ID}-{id}-01"));
}

#[test]
fn random_flag_is_set_on_traces_started_here() {
    // A root span as opentelemetry_sdk makes it: our trace id, but only the sampled flag.
    let (trace_id, _) = new_root_trace_id();
    let span_id = new_span_id();
    let root = SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, Default::default());
    let cx = Context::new().with_remote_span_context(root);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert_eq!(out["traceparent"], format!("00-{trace_id}-{span_id}-03"));

    let mut out = HeaderMap::new();
    TelltalePropagator::new()
        .without_random_flag_on_local_roots()
        .inject_headers(&cx, &mut out);
    assert_eq!(out["traceparent"], format!("00-{trace_id}-{span_id}-01"));
}

#[test]
fn new_root_trace_sets_the_random_flag() {
    let (id, flags) = new_root_trace_id();
    assert_ne!(id, TraceId::INVALID);
    assert_eq!(flags.to_u8() & TRACE_FLAG_RANDOM, TRACE_FLAG_RANDOM);
    let (other, _) = new_root_trace_id();
    assert_ne!(id, other);
}

// === tracestate ===

#[test]
fn tracestate_without_valid_traceparent_is_discarded() {
    let cx = extract(&[("tracestate", b"foo=1")]);
    assert!(!cx.has_active_span());
    let cx = extract(&[("traceparent", b"00-bad"), ("tracestate", b"foo=1")]);
    assert!(!cx.has_active_span());
    // Nothing to inject: the tracestate does not leak to the next hop.
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert!(out.get("tracestate").is_none());
}

#[test]
fn tracestate_is_kept_with_a_valid_traceparent() {
    assert_eq!(with_tp(&["foo=1,bar=2"]), "foo=1,bar=2");
}

#[test]
fn tracestate_simple_keys_are_validated() {
    let z256 = "z".repeat(256);
    assert_eq!(
        with_tp(&["foo=1", &format!("{z256}=1")]),
        format!("foo=1,{z256}=1")
    );
    for bad in [
        format!("{}=1", "z".repeat(257)),
        "FOO=1".into(),
        "foo =1".into(),
        "foo.bar=1".into(),
        "1foo=1".into(),
        "=1".into(),
    ] {
        assert_eq!(with_tp(&["foo=1", &bad]), "", "{bad}");
    }
}

/// The Level 2 key grammar, at each boundary:
/// `simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-"/ "*" / "/")`,
/// `tenant-id = (lcalpha / DIGIT) 0*240(...)`, `system-id = lcalpha 0*13(...)`.
#[test]
fn tracestate_key_grammar_is_level_2_at_every_boundary() {
    let key = |s: String| is_valid_tracestate_key(s.as_bytes());
    let rest = "a0_-*/";
    // simple-key: lcalpha first, 1 to 256 characters.
    assert!(key("a".into()));
    assert!(key(format!("a{rest}")));
    assert!(key(format!("a{}", "z".repeat(255))));
    assert!(!key(format!("a{}", "z".repeat(256))));
    for first in ["0", "_", "-", "*", "/", "A", "@"] {
        assert!(!key(format!("{first}abc")), "simple key starting with {first}");
    }
    assert!(!key(String::new()));
    // tenant-id: lcalpha or DIGIT first, 1 to 241 characters.
    assert!(key("0@a".into()));
    assert!(key(format!("t{rest}@v")));
    assert!(key(format!("{}@v", "t".repeat(241))));
    assert!(!key(format!("{}@v", "t".repeat(242))));
    for first in ["_", "-", "*", "/", "A"] {
        assert!(!key(format!("{first}t@v")), "tenant id starting with {first}");
    }
    // system-id: lcalpha first, 1 to 14 characters.
    assert!(key(format!("t@v{rest}")));
    assert!(key(format!("t@{}", "v".repeat(14))));
    assert!(!key(format!("t@{}", "v".repeat(15))));
    for first in ["0", "_", "-", "*", "/", "A"] {
        assert!(!key(format!("t@{first}v")), "system id starting with {first}");
    }
    // The longest multi-tenant key: 241 + 1 + 14 = 256 characters.
    assert!(key(format!("{}@{}", "t".repeat(241), "v".repeat(14))));
    for bad in ["t@", "@v", "t@@v", "t@v@w", "t@v.w", "t v@w"] {
        assert!(!key(bad.into()), "{bad}");
    }
}

#[test]
fn tracestate_multi_tenant_keys_are_validated() {
    let ok = format!("{}@{}=1", "t".repeat(241), "v".repeat(13));
    assert_eq!(with_tp(&["foo=1", &ok]), format!("foo=1,{ok}"));
    let ok14 = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    assert!(TraceState::parse([ok14.as_bytes()]).is_ok());
    assert_eq!(with_tp(&["1tenant@vendor=1"]), "1tenant@vendor=1");
    for bad in [
        format!("{}@v=1", "t".repeat(242)),
        format!("t@{}=1", "v".repeat(15)),
        "foo@=1".into(),
        "@foo=1".into(),
        "foo@@bar=1".into(),
        "foo@bar@baz=1".into(),
        "foo@1bar=1".into(),
    ] {
        assert_eq!(with_tp(&["foo=1", &bad]), "", "{bad}");
    }
}

const FOURTEEN: &str = "foo=1,tenant@abcdefghijklmn=2,bar=3";

/// Sends `parent` on through a client span, as the injector sees it.
fn sent_tracestate(p: &TelltalePropagator, parent: &Context) -> Option<String> {
    let mut out = HeaderMap::new();
    p.inject_headers(&client_cx(parent).0, &mut out);
    out.get("tracestate").map(|v| v.to_str().unwrap().to_owned())
}

#[test]
fn tracestate_14_character_system_id_is_propagated() {
    // A 14-character system id is valid, but OpenTelemetry 0.33's TraceState refuses it
    // (it allows 13): the span context's state lacks it...
    let ts = TraceState::parse([FOURTEEN.as_bytes()]).unwrap();
    assert_eq!(ts.len(), 3);
    assert_eq!(ts.to_otel().header(), "foo=1,bar=3");
    assert_eq!(with_tp(&[FOURTEEN]), "foo=1,bar=3");
    // ... but the next hop gets it, in its place, with or without baggage.
    let p = TelltalePropagator::new();
    for baggage in [None, Some(&b"a=1"[..])] {
        let mut pairs: Vec<(&str, &[u8])> = vec![
            ("traceparent", VALID_TP.as_bytes()),
            ("tracestate", FOURTEEN.as_bytes()),
        ];
        pairs.extend(baggage.map(|b| ("baggage", b)));
        let parent = p.extract_headers(&headers(&pairs));
        assert_eq!(sent_tracestate(&p, &parent).as_deref(), Some(FOURTEEN));
    }
    // Also through OpenTelemetry's carrier API.
    let mut carrier: HashMap<String, String> = HashMap::new();
    carrier.insert("traceparent".into(), VALID_TP.into());
    carrier.insert("tracestate".into(), FOURTEEN.into());
    let parent = p.extract_with_context(&Context::new(), &carrier);
    let mut out: HashMap<String, String> = HashMap::new();
    p.inject_context(&client_cx(&parent).0, &mut out);
    assert_eq!(out["tracestate"], FOURTEEN);
}

#[test]
fn tracestate_14_character_system_id_keeps_its_place_when_the_state_changes() {
    let own = TelltalePropagator::new()
        .with_tracestate_entry("telltale", "1")
        .unwrap();
    let raw = "t@abcdefghijklmn=0,foo=1,x@abcdefghijklmn=2,bar=3,y@abcdefghijklmn=4";
    let parent = own.extract_headers(&headers(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("tracestate", raw.as_bytes()),
    ]));
    assert_eq!(
        sent_tracestate(&own, &parent).as_deref(),
        Some(format!("telltale=1,{raw}").as_str())
    );
    // A vendor updates its entry (moved to the front) and another is deleted, through
    // OpenTelemetry's API: the held-back entries stay next to the entries they followed.
    let sc = parent.span().span_context().clone();
    let changed = sc
        .trace_state()
        .insert("bar", "9")
        .unwrap()
        .delete("foo")
        .unwrap();
    let sc = SpanContext::new(sc.trace_id(), sc.span_id(), sc.trace_flags(), true, changed);
    let cx = parent.with_remote_span_context(sc);
    assert_eq!(
        sent_tracestate(&TelltalePropagator::new(), &cx).as_deref(),
        Some("bar=9,t@abcdefghijklmn=0,x@abcdefghijklmn=2,y@abcdefghijklmn=4")
    );
    // Another trace in the same context: nothing from the first one.
    let other = SpanContext::new(
        TraceId::from(7),
        SpanId::from(8),
        TraceFlags::SAMPLED,
        false,
        opentelemetry::trace::TraceState::from_key_value([("z", "1")]).unwrap(),
    );
    let cx = parent.with_remote_span_context(other);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert_eq!(out["tracestate"], "z=1");
}

#[test]
fn tracestate_all_allowed_characters_are_kept() {
    let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let value: String = (0x20u8..=0x7e)
        .filter(|&b| b != b',' && b != b'=')
        .map(char::from)
        .collect();
    let member = format!("{key}={value}");
    let ts = TraceState::parse([member.as_bytes()]).unwrap();
    assert_eq!(ts.get(key), Some(value.as_str()));
    // OpenTelemetry's TraceState accepts it unchanged.
    assert_eq!(ts.to_otel().get(key), Some(value.as_str()));
    let vendor_key = format!("{key}@a-z0-9_-*/");
    let member = format!("{vendor_key}={value}");
    assert!(TraceState::parse([member.as_bytes()]).is_ok());
}

#[test]
fn tracestate_values_are_validated() {
    for (bad, err) in [
        ("foo=bar=baz", TraceStateError::InvalidValue),
        ("foo=,bar=3", TraceStateError::InvalidValue),
        ("foo=a\tb", TraceStateError::InvalidValue),
        ("foo=caf\u{e9}", TraceStateError::InvalidValue),
        ("foo", TraceStateError::MissingEquals),
    ] {
        assert_eq!(TraceState::parse([bad.as_bytes()]), Err(err), "{bad}");
        assert_eq!(with_tp(&[bad]), "", "{bad}");
    }
    let long = format!("foo={}", "v".repeat(257));
    assert_eq!(
        TraceState::parse([long.as_bytes()]),
        Err(TraceStateError::InvalidValue)
    );
    // Leading spaces are part of the value; trailing ones are whitespace.
    let ts = TraceState::parse([&b"foo= x ,bar=2"[..]]).unwrap();
    assert_eq!(ts.get("foo"), Some(" x"));
}

/// The W3C test suite's expectations: one invalid member discards the whole header
/// (`test_tracestate_key_illegal_vendor_format`, `test_tracestate_key_length_limit`),
/// while a 241-character tenant id with a 14-character system id is valid.
#[test]
fn tracestate_invalid_member_discards_the_whole_header() {
    assert_eq!(with_tp(&["foo=1,BAD=2,bar=3"]), "");
    for bad in [
        "foo@=1,bar=2",
        "@foo=1,bar=2",
        "foo@@bar=1,bar=2",
        "foo@bar@baz=1,bar=2",
    ] {
        assert_eq!(with_tp(&[bad]), "", "{bad}");
    }
    let long_key = format!("{}=1", "z".repeat(257));
    assert_eq!(with_tp(&["foo=1", &long_key]), "");
    let long_system = format!("t@{}=1", "v".repeat(15));
    assert_eq!(with_tp(&["foo=1", &long_system]), "");
    let longest = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    let p = TelltalePropagator::new();
    let parent = p.extract_headers(&headers(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("tracestate", b"foo=1"),
        ("tracestate", longest.as_bytes()),
    ]));
    assert_eq!(
        sent_tracestate(&p, &parent).as_deref(),
        Some(format!("foo=1,{longest}").as_str())
    );
    // ... but never the traceparent.
    assert!(remote(&[("traceparent", VALID_TP.as_bytes()), ("tracestate", b"BAD=2")]).is_some());
}

#[test]
fn tracestate_duplicate_keys_discard_the_whole_header() {
    assert_eq!(with_tp(&["foo=1,foo=1"]), "");
    assert_eq!(with_tp(&["foo=1,foo=2"]), "");
    assert_eq!(with_tp(&["foo=1", "foo=2"]), "");
    assert_eq!(
        TraceState::parse([&b"foo=1,foo=2"[..]]),
        Err(TraceStateError::DuplicateKey)
    );
}

#[test]
fn tracestate_with_32_members_is_kept() {
    let members: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
    let got = with_tp(&[&members[..10].join(","), &members[10..].join(",")]);
    assert_eq!(got, members.join(","));
}

#[test]
fn tracestate_with_more_than_32_members_is_discarded() {
    let members: Vec<String> = (1..=33).map(|i| format!("b{i:02}={i:02}")).collect();
    assert_eq!(with_tp(&[&members.join(",")]), "");
    assert_eq!(
        TraceState::parse([members.join(",").as_bytes()]),
        Err(TraceStateError::TooManyMembers)
    );
}

#[test]
fn multiple_tracestate_headers_are_combined_in_order() {
    assert_eq!(
        with_tp(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
        "foo=1,bar=2,rojo=1,congo=2,baz=3"
    );
}

#[test]
fn empty_tracestate_members_and_headers_are_ignored() {
    assert_eq!(with_tp(&[""]), "");
    assert_eq!(with_tp(&["foo=1", ""]), "foo=1");
    assert_eq!(with_tp(&["", "foo=1"]), "foo=1");
    assert_eq!(with_tp(&[",foo=1,,bar=2, ,"]), "foo=1,bar=2");
}

#[test]
fn ows_around_tracestate_members_is_ignored() {
    assert_eq!(with_tp(&["foo=1 \t , \t bar=2, \t baz=3"]), "foo=1,bar=2,baz=3");
    assert_eq!(
        with_tp(&["foo=1\t \t,\t \tbar=2,\t \tbaz=3"]),
        "foo=1,bar=2,baz=3"
    );
    assert_eq!(with_tp(&["\t foo=1 \t"]), "foo=1");
}

#[test]
fn tracestate_propagates_at_least_512_characters() {
    // 32 entries of 15 characters + 31 commas = 511 characters: all kept.
    let members: Vec<String> = (0..32).map(|i| format!("key{i:02}={i:0>9}")).collect();
    let joined = members.join(",");
    assert!(joined.len() <= TRACESTATE_MAX_LEN && joined.len() >= 500);
    assert_eq!(with_tp(&[&joined]), joined);
}

#[test]
fn tracestate_is_truncated_by_whole_entries_long_entries_first() {
    let long = format!("long={}", "x".repeat(150)); // 155 characters, over 128
    let mids: Vec<String> = (0..5).map(|i| format!("m{i}={}", "y".repeat(77))).collect(); // 80 each
    // long + 5 * 80 + 5 commas = 560 > 512: the long entry goes first, even though it is
    // not the right-most.
    let input = format!("{},{long},{}", mids[..2].join(","), mids[2..].join(","));
    let got = with_tp(&[&input]);
    assert_eq!(got, mids.join(","));
    assert!(got.len() <= TRACESTATE_MAX_LEN);

    // Without long entries, entries are removed from the end.
    let many: Vec<String> = (0..8).map(|i| format!("k{i}={}", "z".repeat(77))).collect(); // 8 * 80 + 7
    let got = with_tp(&[&many.join(",")]);
    assert_eq!(got, many[..6].join(",")); // 6 * 80 + 5 = 485
}

#[test]
fn own_tracestate_entry_is_put_in_front() {
    let p = TelltalePropagator::new()
        .with_tracestate_entry("telltale", "1")
        .unwrap();
    let parent = p.extract_headers(&headers(&[
        ("traceparent", VALID_TP.as_bytes()),
        (
            "tracestate",
            b"rojo=00f067aa0ba902b7,telltale=0,congo=t61rcWkgMzE",
        ),
    ]));
    let (cx, _) = client_cx(&parent);
    let mut out = HeaderMap::new();
    p.inject_headers(&cx, &mut out);
    assert_eq!(
        out["tracestate"],
        "telltale=1,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    // With 32 entries already, the right-most makes room.
    let members: Vec<String> = (1..=32).map(|i| format!("b{i:02}=1")).collect();
    let parent = p.extract_headers(&headers(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("tracestate", members.join(",").as_bytes()),
    ]));
    let mut out = HeaderMap::new();
    p.inject_headers(&client_cx(&parent).0, &mut out);
    let sent = out["tracestate"].to_str().unwrap().to_owned();
    assert!(sent.starts_with("telltale=1,b01=1,"));
    assert!(!sent.contains("b32"));
    assert_eq!(sent.split(',').count(), 32);
}

// === inject ===

#[test]
fn each_outbound_call_gets_the_current_span_id_as_parent_id() {
    let p = TelltalePropagator::new();
    let parent = extract(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("tracestate", b"congo=t61rcWkgMzE"),
    ]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (cx, id) = client_cx(&parent);
        let mut out = HeaderMap::new();
        p.inject_headers(&cx, &mut out);
        let tp = TraceParent::parse(out["traceparent"].as_bytes()).unwrap();
        assert_eq!(tp.trace_id.to_string(), TRACE_ID);
        assert_eq!(tp.parent_id, id);
        assert!(tp.is_sampled());
        assert_eq!(out["tracestate"], "congo=t61rcWkgMzE");
        seen.push(tp.parent_id);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
    assert!(!seen.contains(&SpanId::from(0x1234567890123456)));
}

#[test]
fn inject_replaces_existing_headers() {
    let parent = extract(&[("traceparent", VALID_TP.as_bytes())]);
    let (cx, id) = client_cx(&parent);
    let mut out = headers(&[
        ("traceparent", b"stale"),
        ("traceparent", b"stale2"),
        ("tracestate", b"stale=1"),
    ]);
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert_eq!(out.get_all("traceparent").iter().count(), 1);
    assert_eq!(out["traceparent"], format!("00-{TRACE_ID}-{id}-01"));
    assert!(out.get("tracestate").is_none());
}

#[test]
fn inject_through_an_opentelemetry_injector_replaces_a_stale_tracestate() {
    // An outgoing request built from another one's headers: its tracestate must not go
    // out with our traceparent.
    let parent = extract(&[("traceparent", VALID_TP.as_bytes())]);
    let (cx, id) = client_cx(&parent);
    let p = TelltalePropagator::new();

    let mut carrier: HashMap<String, String> = HashMap::new();
    carrier.insert("traceparent".into(), "stale".into());
    carrier.insert("tracestate".into(), "congo=t61rcWkgMzE".into());
    p.inject_context(&cx, &mut carrier);
    assert_eq!(carrier["traceparent"], format!("00-{TRACE_ID}-{id}-01"));
    // `Injector` cannot remove: an empty tracestate, which means none.
    assert_eq!(carrier["tracestate"], "");

    let mut map = headers(&[("tracestate", b"congo=t61rcWkgMzE"), ("tracestate", b"rojo=1")]);
    p.inject_context(&cx, &mut HeaderMapInjector(&mut map));
    assert_eq!(map["traceparent"], format!("00-{TRACE_ID}-{id}-01"));
    assert!(map.get("tracestate").is_none(), "removed, not sent empty");

    // With a state to send, it replaces the stale one on both paths.
    let parent = extract(&[("traceparent", VALID_TP.as_bytes()), ("tracestate", b"foo=1")]);
    let (cx, _) = client_cx(&parent);
    p.inject_context(&cx, &mut carrier);
    assert_eq!(carrier["tracestate"], "foo=1");
    let mut map = headers(&[("tracestate", b"congo=t61rcWkgMzE"), ("tracestate", b"rojo=1")]);
    p.inject_context(&cx, &mut HeaderMapInjector(&mut map));
    assert_eq!(map.get_all("tracestate").iter().collect::<Vec<_>>(), ["foo=1"]);
}

#[test]
fn header_map_injector_removes_on_empty_or_invalid_values() {
    use opentelemetry::propagation::Injector;
    let mut map = headers(&[("tracestate", b"a=1"), ("baggage", b"k=v"), ("x-other", b"1")]);
    HeaderMapInjector(&mut map).set("tracestate", String::new());
    HeaderMapInjector(&mut map).set("baggage", "line\nbreak".into());
    HeaderMapInjector(&mut map).set("Bad Name", "v".into());
    HeaderMapInjector(&mut map).set("x-new", "v".into());
    assert!(map.get("tracestate").is_none());
    assert!(map.get("baggage").is_none());
    assert_eq!(map["x-other"], "1");
    assert_eq!(map["x-new"], "v");
}

#[test]
fn inject_without_span_context_writes_nothing() {
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&Context::new(), &mut out);
    assert!(out.is_empty());
}

#[test]
fn inject_drops_invalid_tracestate_entries_set_through_opentelemetry() {
    // OpenTelemetry's TraceState accepts keys we consider invalid (digit first).
    let ots = opentelemetry::trace::TraceState::from_key_value([("1abc", "x"), ("ok", "y")]).unwrap();
    let sc = SpanContext::new(TraceId::from(1), SpanId::from(2), TraceFlags::SAMPLED, false, ots);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&Context::new().with_remote_span_context(sc), &mut out);
    assert_eq!(out["tracestate"], "ok=y");
}

// === baggage ===

#[test]
fn baggage_is_extracted_from_all_headers() {
    let cx = extract(&[("baggage", b"a=1,b=2"), ("baggage", b"c=3")]);
    let b = cx.baggage();
    assert_eq!(b.len(), 3);
    assert_eq!(b.get("c").map(|v| v.as_str()), Some("3"));
}

#[test]
fn baggage_is_extracted_without_traceparent() {
    let cx = extract(&[("baggage", b"a=1")]);
    assert!(!cx.has_active_span());
    assert_eq!(cx.baggage().get("a").map(|v| v.as_str()), Some("1"));
}

#[test]
fn baggage_accepts_64_members_and_drops_the_65th_whole() {
    let members: Vec<String> = (0..65).map(|i| format!("k{i}=v{i}")).collect();
    let b = Baggage::parse([members.join(",").as_bytes()]);
    assert_eq!(b.len(), BAGGAGE_MAX_MEMBERS);
    assert_eq!(b.get("k63"), Some("v63"));
    assert_eq!(b.get("k64"), None);
    let cx = extract(&[("baggage", members.join(",").as_bytes())]);
    assert_eq!(cx.baggage().len(), 64);
}

#[test]
fn baggage_accepts_8192_bytes_and_drops_whole_members_beyond() {
    // 7 members of 1023 bytes, one of 1024, 7 commas: exactly 8192 bytes, all kept.
    let mut members: Vec<String> = (0..7).map(|i| format!("k{i}={}", "v".repeat(1020))).collect();
    members.push(format!("k7={}", "v".repeat(1021)));
    let raw = members.join(",");
    assert_eq!(raw.len(), BAGGAGE_MAX_BYTES);
    let b = Baggage::parse([raw.as_bytes()]);
    assert_eq!(b.len(), 8);
    assert_eq!(b.encoded_len(), BAGGAGE_MAX_BYTES);
    // One more byte-sized member does not fit: dropped whole, the rest kept.
    let b = Baggage::parse([raw.as_bytes(), b"x="]);
    assert_eq!(b.len(), 8);
    assert!(b.get("x").is_none());
    // A member that fits the remaining budget is still accepted after one that did not.
    let mut raw = members[..7].join(",");
    raw.push_str(&format!(",big={}", "v".repeat(2000)));
    raw.push_str(",small=1");
    let b = Baggage::parse([raw.as_bytes()]);
    assert!(b.get("big").is_none());
    assert_eq!(b.get("small"), Some("1"));
}

#[test]
fn baggage_of_10_kb_keeps_whole_members_up_to_8192_bytes() {
    let members: Vec<String> = (0..40)
        .map(|i| format!("key{i:02}={}", "x".repeat(250)))
        .collect();
    let raw = members.join(",");
    assert!(raw.len() > 10_000);
    let cx = extract(&[("baggage", raw.as_bytes())]);
    let b = Baggage::parse([raw.as_bytes()]);
    // 256 bytes per member + comma: 31 members = 7966 bytes, a 32nd would be 8223.
    assert_eq!(b.len(), 31);
    assert_eq!(cx.baggage().len(), 31);
    for (i, m) in b.iter().enumerate() {
        assert_eq!(m.value().len(), 250, "member {i} kept whole");
    }
}

#[test]
fn malformed_baggage_members_are_dropped_individually() {
    let b = Baggage::parse([
        &b"a=1,no-equals,b c=2,d=has space,e=\"q\",f=back\\slash,=empty,g=2;bad prop,h=3"[..],
    ]);
    let keys: Vec<&str> = b.iter().map(|m| m.key()).collect();
    assert_eq!(keys, ["a", "h"]);
}

#[test]
fn baggage_values_are_percent_decoded_and_encoded() {
    let parent = extract(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("baggage", b"user=J%C3%BCrgen,eq=a=b,raw=%zz,bad=%FF,sp = x%20y "),
    ]);
    let b = parent.baggage();
    assert_eq!(b.get("user").map(|v| v.as_str()), Some("Jürgen"));
    assert_eq!(b.get("eq").map(|v| v.as_str()), Some("a=b"));
    assert_eq!(b.get("raw").map(|v| v.as_str()), Some("%zz"));
    assert_eq!(b.get("bad").map(|v| v.as_str()), Some("\u{FFFD}"));
    assert_eq!(b.get("sp").map(|v| v.as_str()), Some("x y"));

    let cx = Context::new()
        .with_remote_span_context(parent.span().span_context().clone())
        .with_baggage([KeyValue::new("note", "50% off, \"today\"; é")]);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert_eq!(out["baggage"], "note=50%25%20off%2C%20%22today%22%3B%20%C3%A9");
    let back = TelltalePropagator::new().extract_headers(&out);
    assert_eq!(
        back.baggage().get("note").map(|v| v.as_str()),
        Some("50% off, \"today\"; é")
    );
}

#[test]
fn baggage_properties_are_kept() {
    let p = TelltalePropagator::new();
    let cx = p.extract_headers(&headers(&[("baggage", b"a=1 ; ttl = 5 ;secret, b=2")]));
    let (_, meta) = cx.baggage().get_with_metadata("a").unwrap();
    assert_eq!(meta.as_str(), "ttl=5;secret");
    let mut out = HeaderMap::new();
    p.inject_headers(&cx, &mut out);
    assert_eq!(out["baggage"], "a=1;ttl=5;secret,b=2");
}

#[test]
fn baggage_inject_respects_the_limits() {
    // OpenTelemetry's Baggage caps raw bytes at 8192, but encoding can triple them.
    let members: Vec<KeyValue> = (0..20)
        .map(|i| KeyValue::new(format!("k{i:02}"), " ".repeat(300)))
        .collect();
    let cx = Context::new().with_baggage(members);
    assert_eq!(cx.baggage().len(), 20);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    let sent = out["baggage"].to_str().unwrap();
    assert!(sent.len() <= BAGGAGE_MAX_BYTES);
    // Each member is 4 + 900 bytes: 9 fit (9 * 904 + 8 = 8144), sorted by key.
    assert_eq!(sent.split(',').count(), 9);
    assert!(sent.starts_with("k00="));
    for m in sent.split(',') {
        assert_eq!(m.len(), 904, "no partial member");
    }
}

/// W3C Baggage limits the *resulting* baggage-string, what a platform propagates: a
/// received header longer than 8,192 bytes only because of optional whitespace or
/// needless percent-encoding is propagated whole, and what is sent is never over.
#[test]
fn baggage_limit_counts_the_baggage_string_sent_not_the_bytes_received() {
    // 16 members of 500 bytes as sent (8,015 with commas); received with OWS around
    // each member and every value character percent-encoded where one byte would do.
    let members: Vec<String> = (0..16).map(|i| format!("k{i:02}={}", "v".repeat(496))).collect();
    let sent_form = members.join(",");
    assert!(sent_form.len() <= BAGGAGE_MAX_BYTES);
    let received: Vec<String> = (0..16)
        .map(|i| format!(" \t k{i:02}={}{} \t ", "%76".repeat(100), "v".repeat(396)))
        .collect();
    let received = received.join(",");
    assert!(received.len() > BAGGAGE_MAX_BYTES);
    let cx = extract(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("baggage", received.as_bytes()),
    ]);
    assert_eq!(cx.baggage().len(), 16, "all members must be propagated");
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&client_cx(&cx).0, &mut out);
    assert_eq!(out["baggage"], sent_form.as_str());
    // The reverse: a received header under the limit whose resulting string would be
    // over it (a literal `%` is sent as `%25`) loses whole members, so the sent one fits.
    let mut tight: Vec<String> = (0..7).map(|i| format!("p{i}={}", "%".repeat(1020))).collect();
    tight.push(format!("p7={}", "%".repeat(1021)));
    let tight = tight.join(",");
    assert_eq!(tight.len(), BAGGAGE_MAX_BYTES);
    let cx = extract(&[("baggage", tight.as_bytes())]);
    assert_eq!(cx.baggage().len(), 2);
    let mut out = HeaderMap::new();
    TelltalePropagator::new().inject_headers(&cx, &mut out);
    assert!(out["baggage"].len() <= BAGGAGE_MAX_BYTES);
}

// === the OpenTelemetry carrier path ===

#[test]
fn text_map_propagator_round_trips_through_a_hash_map() {
    let p = TelltalePropagator::new();
    let mut carrier: HashMap<String, String> = HashMap::new();
    carrier.insert("traceparent".into(), VALID_TP.into());
    carrier.insert("tracestate".into(), "foo=1".into());
    carrier.insert("baggage".into(), "a=1".into());
    let parent = p.extract_with_context(&Context::new(), &carrier);
    assert!(parent.has_active_span());
    assert_eq!(parent.span().span_context().trace_state().header(), "foo=1");
    let (cx, id) = client_cx(&parent);
    let mut out: HashMap<String, String> = HashMap::new();
    p.inject_context(&cx, &mut out);
    assert_eq!(out["traceparent"], format!("00-{TRACE_ID}-{id}-01"));
    assert_eq!(out["tracestate"], "foo=1");
    assert_eq!(out["baggage"], "a=1");
    let fields: Vec<&str> = p.fields().collect();
    assert_eq!(fields, ["traceparent", "tracestate", "baggage"]);
}

#[test]
fn text_map_propagator_sees_multiple_traceparents_through_http_carrier() {
    struct Multi<'a>(&'a HeaderMap);
    impl opentelemetry::propagation::Extractor for Multi<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            let v: Vec<&str> = self
                .0
                .get_all(key)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!v.is_empty()).then_some(v)
        }
    }
    let map = headers(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("traceparent", VALID_TP.as_bytes()),
    ]);
    let cx = TelltalePropagator::new().extract_with_context(&Context::new(), &Multi(&map));
    assert!(!cx.has_active_span());
}

/// opentelemetry-http's `HeaderExtractor`, as 0.33 has it: `get` reads the first value,
/// `get_all` leaves out values that are not visible ASCII.
struct LikeOtelHttp<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for LikeOtelHttp<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all = self.0.get_all(key).iter();
        if let (0, Some(0)) = all.size_hint() {
            return None;
        }
        Some(all.filter_map(|v| v.to_str().ok()).collect())
    }
}

#[test]
fn text_map_propagator_refuses_a_second_traceparent_the_carrier_hides() {
    use opentelemetry::propagation::Extractor;
    let p = TelltalePropagator::new();
    let valid = VALID_TP.as_bytes();
    let hidden: &[u8] = b"00-12345678901234567890123456789012-1234567890123456-0\xe9";
    // The unreadable one first: `get` and `get_all` disagree, so a value is hidden.
    let map = headers(&[("traceparent", hidden), ("traceparent", valid)]);
    assert_eq!(LikeOtelHttp(&map).get_all("traceparent").unwrap().len(), 1);
    assert!(
        !p.extract_with_context(&Context::new(), &LikeOtelHttp(&map))
            .has_active_span()
    );
    // Present but unreadable alone: a new trace too (not "absent").
    let map = headers(&[("traceparent", hidden)]);
    assert!(
        !p.extract_with_context(&Context::new(), &LikeOtelHttp(&map))
            .has_active_span()
    );
    // One readable value, `get` agreeing: continued.
    let map = headers(&[("traceparent", valid)]);
    assert!(
        p.extract_with_context(&Context::new(), &LikeOtelHttp(&map))
            .has_active_span()
    );
    // HeaderMapExtractor shows every value, in either order.
    for pair in [[hidden, valid], [valid, hidden], [valid, valid]] {
        let map = headers(&[("traceparent", pair[0]), ("traceparent", pair[1])]);
        let cx = p.extract_with_context(&Context::new(), &HeaderMapExtractor(&map));
        assert!(!cx.has_active_span(), "{pair:?}");
    }
    let map = headers(&[
        ("traceparent", valid),
        ("tracestate", b"a=1"),
        ("tracestate", b"b=2"),
        ("baggage", b"k=v"),
    ]);
    let cx = p.extract_with_context(&Context::new(), &HeaderMapExtractor(&map));
    assert_eq!(cx.span().span_context().trace_state().header(), "a=1,b=2");
    assert_eq!(cx.baggage().get("k").map(|v| v.as_str()), Some("v"));
}

#[test]
fn header_map_extractor_get_answers_only_for_a_header_sent_once() {
    use opentelemetry::propagation::Extractor;
    let map = headers(&[
        ("traceparent", VALID_TP.as_bytes()),
        ("traceparent", VALID_TP.as_bytes()),
        ("tracestate", b"a=1\t, b=2"),
        ("baggage", b"k=\xff"),
    ]);
    let e = HeaderMapExtractor(&map);
    assert_eq!(e.get("traceparent"), None);
    assert_eq!(e.get_all("traceparent").unwrap().len(), 2);
    // Tabs are fine (valid UTF-8), other bytes become U+FFFD in `get_all` only.
    assert_eq!(e.get("TraceState"), Some("a=1\t, b=2"));
    assert_eq!(e.get("baggage"), None);
    assert_eq!(e.get_all("baggage").unwrap(), ["\u{FFFD}"]);
    assert_eq!(e.get_all("absent"), None);
    let mut keys = e.keys();
    keys.sort_unstable();
    assert_eq!(keys, ["baggage", "traceparent", "tracestate"]);
}

// === B3 and Jaeger ===

#[cfg(feature = "b3")]
mod b3 {
    use super::*;
    use telltale_trace::propagation::B3Encoding;

    #[test]
    fn b3_single_header_128_and_64_bit_ids_are_extracted() {
        let p = TelltalePropagator::new().with_b3(B3Encoding::Single);
        let cx = p.extract_headers(&headers(&[(
            "b3",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]));
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id().to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(sc.span_id().to_string(), "e457b5a2e4d86bd1");
        assert!(sc.is_sampled());
        let cx = p.extract_headers(&headers(&[("b3", b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]));
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id().to_string(), "000000000000000064fe8b2a57d3eff7");
        assert!(!sc.is_sampled());
    }

    #[test]
    fn b3_multi_headers_are_extracted() {
        let p = TelltalePropagator::new().with_b3(B3Encoding::Multi);
        let cx = p.extract_headers(&headers(&[
            ("X-B3-TraceId", b"80f198ee56343ba864fe8b2a57d3eff7"),
            ("X-B3-SpanId", b"e457b5a2e4d86bd1"),
            ("X-B3-ParentSpanId", b"05e3ac9a4f6e3b90"),
            ("X-B3-Sampled", b"1"),
        ]));
        assert!(cx.span().span_context().is_sampled());
        assert_eq!(cx.span().span_context().span_id().to_string(), "e457b5a2e4d86bd1");
    }

    #[test]
    fn b3_is_ignored_unless_enabled() {
        let cx = extract(&[("b3", b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
        assert!(!cx.has_active_span());
    }

    #[test]
    fn w3c_wins_over_b3_when_both_are_present() {
        let p = TelltalePropagator::new().with_b3(B3Encoding::Single);
        let cx = p.extract_headers(&headers(&[
            ("b3", b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("traceparent", VALID_TP.as_bytes()),
        ]));
        assert_eq!(cx.span().span_context().trace_id().to_string(), TRACE_ID);
        // A present but invalid traceparent restarts the trace, no fallback.
        let cx = p.extract_headers(&headers(&[
            ("b3", b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("traceparent", b"00-bad"),
        ]));
        assert!(!cx.has_active_span());
    }

    #[test]
    fn b3_is_injected_in_the_chosen_encoding() {
        let parent = extract(&[("traceparent", VALID_TP.as_bytes())]);
        let (cx, id) = client_cx(&parent);
        let mut out = HeaderMap::new();
        TelltalePropagator::new()
            .with_b3(B3Encoding::SingleAndMulti)
            .inject_headers(&cx, &mut out);
        assert_eq!(out["b3"], format!("{TRACE_ID}-{id}-1"));
        assert_eq!(out["x-b3-traceid"], TRACE_ID);
        assert_eq!(out["x-b3-spanid"], id.to_string());
        assert_eq!(out["x-b3-sampled"], "1");
        assert!(out.contains_key("traceparent"));
    }
}

#[cfg(feature = "jaeger")]
mod jaeger {
    use super::*;

    #[test]
    fn jaeger_uber_trace_id_is_extracted_and_injected() {
        let p = TelltalePropagator::new().with_jaeger();
        let cx = p.extract_headers(&headers(&[("uber-trace-id", b"abc:def:0:1")]));
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id(), TraceId::from(0xabc));
        assert!(sc.is_sampled());
        let (cx, id) = client_cx(&cx);
        let mut out = HeaderMap::new();
        p.inject_headers(&cx, &mut out);
        assert_eq!(
            out["uber-trace-id"],
            format!("00000000000000000000000000000abc:{id}:0:01")
        );
    }

    #[test]
    fn w3c_wins_over_jaeger_when_both_are_present() {
        let p = TelltalePropagator::new().with_jaeger();
        let cx = p.extract_headers(&headers(&[
            ("uber-trace-id", b"abc:def:0:1"),
            ("traceparent", VALID_TP.as_bytes()),
        ]));
        assert_eq!(cx.span().span_context().trace_id().to_string(), TRACE_ID);
    }
}

// === hostile corpus: every case pinned to its specified result ===

/// `Some(trace id)` = continue that trace; `None` = start a new trace.
#[test]
fn hostile_traceparent_corpus() {
    let ok = Some(TRACE_ID);
    let cases: &[(&str, &[u8], Option<&str>)] = &[
        ("valid", VALID_TP.as_bytes(), ok),
        ("empty", b"", None),
        ("only spaces", b"   ", None),
        ("tab inside", b"00-12345678901234567890123456789012-1234567890123456\t01", None),
        ("tabs around", b"\t\t00-12345678901234567890123456789012-1234567890123456-01\t", ok),
        ("spaces inside", b"00 - 12345678901234567890123456789012-1234567890123456-01", None),
        ("uppercase trace id", b"00-1234567890123456789012345678901A-1234567890123456-01", None),
        ("uppercase version", b"0A-12345678901234567890123456789012-1234567890123456-01", None),
        ("version ff", b"ff-12345678901234567890123456789012-1234567890123456-01", None),
        ("version fe", b"fe-12345678901234567890123456789012-1234567890123456-01", ok),
        ("future + fields", b"cc-12345678901234567890123456789012-1234567890123456-01-xx-yy", ok),
        ("future + dot", b"cc-12345678901234567890123456789012-1234567890123456-01.xx", None),
        ("future too short", b"cc-12345678901234567890123456789012-1234567890123456-0", None),
        ("00 + field", b"00-12345678901234567890123456789012-1234567890123456-01-xx", None),
        ("zero trace id", b"00-00000000000000000000000000000000-1234567890123456-01", None),
        ("zero parent id", b"00-12345678901234567890123456789012-0000000000000000-01", None),
        ("short trace id", b"00-1234567890123456789012345678901-1234567890123456-01", None),
        ("long trace id", b"00-123456789012345678901234567890123-1234567890123456-01", None),
        ("short parent id", b"00-12345678901234567890123456789012-123456789012345-01", None),
        ("long parent id", b"00-12345678901234567890123456789012-12345678901234567-01", None),
        ("short flags", b"00-12345678901234567890123456789012-1234567890123456-1", None),
        ("long flags", b"00-12345678901234567890123456789012-1234567890123456-001", None),
        ("plus sign", b"00-+2345678901234567890123456789012-1234567890123456-01", None),
        ("illegal version", b".0-12345678901234567890123456789012-1234567890123456-01", None),
        ("illegal flags", b"00-12345678901234567890123456789012-1234567890123456-.0", None),
        ("comma-joined pair", b"00-12345678901234567890123456789012-1234567890123456-01,00-12345678901234567890123456789012-1234567890123456-01", None),
        ("non-ascii", b"00-12345678901234567890123456789012-1234567890123456-0\xe9", None),
        ("non-ascii future field", b"cc-12345678901234567890123456789012-1234567890123456-01-\xff\x80", ok),
        ("all 0xff", &[0xff; 55], None),
    ];
    for (name, value, expected) in cases {
        assert_eq!(
            trace_id_of(&[("traceparent", value)]).as_deref(),
            *expected,
            "case {name:?}"
        );
    }
}

/// The tracestate propagated (after `traceparent` = valid) for each hostile value.
#[test]
fn hostile_tracestate_corpus() {
    let thirty_three: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let thirty_three = thirty_three.join(",");
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty", b"", ""),
        ("only commas and OWS", b" ,\t, ,", ""),
        ("33 members", thirty_three.as_bytes(), ""),
        ("non-ascii value", b"foo=caf\xc3\xa9", ""),
        ("obs-text byte", b"foo=\x80", ""),
        ("tab in value", b"foo=a\tb", ""),
        ("uppercase key", b"Foo=1", ""),
        ("key with space before =", b"foo =1", ""),
        ("empty value", b"foo=", ""),
        ("value with =", b"foo=a=b", ""),
        ("trailing OWS", b"foo=1 \t", "foo=1"),
        ("leading space kept in value", b"foo= 1", "foo= 1"),
        ("tenant key", b"acme@vendor=1", "acme@vendor=1"),
    ];
    for (name, value, expected) in cases {
        assert_eq!(
            tracestate_of(&[("traceparent", VALID_TP.as_bytes()), ("tracestate", value)]),
            *expected,
            "case {name:?}"
        );
    }
}

/// The baggage keys extracted for each hostile value.
#[test]
fn hostile_baggage_corpus() {
    let ten_kb = format!("big={}", "x".repeat(10 * 1024));
    let ten_kb_then_small = format!("{ten_kb},a=1");
    let cases: &[(&str, &[u8], &[&str])] = &[
        ("empty", b"", &[]),
        ("only OWS and commas", b" \t, ,", &[]),
        ("10 KB single member", ten_kb.as_bytes(), &[]),
        (
            "10 KB member then small one",
            ten_kb_then_small.as_bytes(),
            &["a"],
        ),
        ("non-ascii value", b"a=caf\xc3\xa9,b=1", &["b"]),
        ("obs-text byte", b"a=\xff,b=1", &["b"]),
        ("tab around", b"\ta\t=\t1\t", &["a"]),
        ("tab inside value", b"a=x\ty,b=1", &["b"]),
        ("no key", b"=1,b=1", &["b"]),
        ("no equals", b"a,b=1", &["b"]),
        ("semicolon only", b";,b=1", &["b"]),
        ("empty value", b"a=", &["a"]),
        ("key with slash", b"a/b=1,c=1", &["c"]),
    ];
    for (name, value, expected) in cases {
        let cx = extract(&[("baggage", value)]);
        let mut keys: Vec<&str> = cx.baggage().iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, *expected, "case {name:?}");
    }
}

// === random input never panics ===

fn any_header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        // Near-valid traceparents: mutate a valid one.
        (0usize..55, any::<u8>()).prop_map(|(i, b)| {
            let mut v = VALID_TP.as_bytes().to_vec();
            v[i] = b;
            v
        }),
        "[a-z0-9@_*/ ,=;%\t-]{0,300}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_the_parsers(v in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = TraceParent::parse(&v);
        let _ = TraceState::parse([&v[..]]);
        let _ = Baggage::parse([&v[..]]);
    }

    #[test]
    fn random_headers_never_panic_extract_or_inject(
        tp in proptest::collection::vec(any_header_value(), 0..3),
        ts in proptest::collection::vec(any_header_value(), 0..3),
        bg in proptest::collection::vec(any_header_value(), 0..3),
    ) {
        let mut map = HeaderMap::new();
        for (name, values) in [("traceparent", &tp), ("tracestate", &ts), ("baggage", &bg)] {
            for v in values {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    map.append(HeaderName::from_static(name), v);
                }
            }
        }
        let p = TelltalePropagator::new();
        let cx = p.extract_headers(&map);
        let mut out = HeaderMap::new();
        p.inject_headers(&cx, &mut out);
        // Whatever came in, what goes out is valid.
        if let Some(v) = out.get("traceparent") {
            prop_assert!(TraceParent::parse(v.as_bytes()).is_ok());
        }
        if let Some(v) = out.get("tracestate") {
            prop_assert!(TraceState::parse([v.as_bytes()]).is_ok());
            prop_assert!(v.len() <= TRACESTATE_MAX_LEN);
        }
        if let Some(v) = out.get("baggage") {
            prop_assert!(v.len() <= BAGGAGE_MAX_BYTES);
            prop_assert_eq!(Baggage::parse([v.as_bytes()]).len(), cx.baggage().len());
        }
    }

    #[test]
    fn valid_traceparents_round_trip(trace in 1u128.., span in 1u64.., flags in any::<u8>()) {
        let tp = TraceParent::new(TraceId::from(trace), SpanId::from(span), TraceFlags::new(flags));
        let parsed = TraceParent::parse(tp.to_string().as_bytes()).unwrap();
        prop_assert_eq!(parsed.trace_id, tp.trace_id);
        prop_assert_eq!(parsed.parent_id, tp.parent_id);
        prop_assert_eq!(parsed.trace_flags.to_u8(), flags & 0x03);
    }

    #[test]
    fn baggage_values_round_trip(key in "[A-Za-z0-9_.-]{1,20}", value in any::<String>()) {
        let cx = Context::new().with_baggage([KeyValue::new(key.clone(), value.clone())]);
        let mut out = HeaderMap::new();
        TelltalePropagator::new().inject_headers(&cx, &mut out);
        let back = TelltalePropagator::new().extract_headers(&out);
        // Spaces are always percent-encoded, so leading/trailing ones survive.
        prop_assert_eq!(back.baggage().get(key.as_str()).map(|v| v.as_str().to_owned()), Some(value));
    }
}

// === over real TCP: what hyper hands us, and what we hand back ===

#[tokio::test]
async fn extraction_over_a_real_tcp_listener() {
    use axum::{Router, routing::get};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo(headers: HeaderMap) -> String {
        let p = TelltalePropagator::new();
        let cx = p.extract_headers(&headers);
        if !cx.has_active_span() {
            return "new-trace".to_owned();
        }
        let sc = cx.span().span_context().clone();
        format!(
            "{} {} {}",
            sc.trace_id(),
            sc.trace_state().header(),
            cx.baggage().get("user").map(|v| v.as_str()).unwrap_or("-")
        )
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, Router::new().route("/", get(echo)))
            .await
            .unwrap();
    });

    async fn raw(addr: std::net::SocketAddr, extra: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n".to_vec();
        req.extend_from_slice(extra);
        req.extend_from_slice(b"\r\n");
        s.write_all(&req).await.unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.unwrap();
        let resp = String::from_utf8_lossy(&resp).into_owned();
        resp.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned()
    }

    let tp = format!("traceparent: {VALID_TP}\r\n");
    assert_eq!(
        raw(
            addr,
            format!("{tp}tracestate: a=1\r\ntracestate: b=2\r\nbaggage: user=J%C3%BCrgen\r\n").as_bytes()
        )
        .await,
        format!("{TRACE_ID} a=1,b=2 Jürgen")
    );
    assert_eq!(
        raw(addr, format!("TraceParent: \t{VALID_TP} \t\r\n").as_bytes()).await,
        format!("{TRACE_ID}  -")
    );
    assert_eq!(raw(addr, format!("{tp}{tp}").as_bytes()).await, "new-trace");
    let mut non_ascii = b"traceparent: 00-12345678901234567890123456789012-1234567890123456-0".to_vec();
    non_ascii.extend_from_slice(b"\xe9\r\n");
    assert_eq!(raw(addr, &non_ascii).await, "new-trace");
    let mut bad_state = tp.clone().into_bytes();
    bad_state.extend_from_slice(b"tracestate: foo=\xff\r\n");
    assert_eq!(raw(addr, &bad_state).await, format!("{TRACE_ID}  -"));

    server.abort();
    let _ = server.await;
}

#[test]
fn extraction_is_the_same_in_small_and_large_header_maps() {
    // Up to eight names the extractor compares names in order; above, it hashes. Both
    // must find the same headers, repeated ones included.
    let fillers: Vec<String> = (0..20).map(|i| format!("x-filler-{i}")).collect();
    for extra in [0, 3, 7, 20] {
        let with = |pairs: &[(&str, &[u8])]| {
            let mut all: Vec<(&str, &[u8])> = fillers[..extra]
                .iter()
                .map(|n| (n.as_str(), b"v".as_slice()))
                .collect();
            all.extend_from_slice(pairs);
            headers(&all)
        };
        let p = TelltalePropagator::new();
        let map = with(&[
            ("traceparent", VALID_TP.as_bytes()),
            ("tracestate", b"a=1"),
            ("tracestate", b"b=2"),
            ("baggage", b"k=v"),
        ]);
        let cx = p.extract_headers(&map);
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id().to_string(), TRACE_ID, "{extra} fillers");
        assert_eq!(sc.trace_state().header(), "a=1,b=2", "{extra} fillers");
        assert_eq!(cx.baggage().get("k").map(|v| v.to_string()).as_deref(), Some("v"));
        // Two traceparent headers: invalid, whatever the map's size.
        let twice = with(&[
            ("traceparent", VALID_TP.as_bytes()),
            ("traceparent", VALID_TP.as_bytes()),
        ]);
        assert!(p.extract_span_context(&twice).is_none(), "{extra} fillers");
        // None at all.
        assert!(p.extract_span_context(&with(&[])).is_none(), "{extra} fillers");
    }
}

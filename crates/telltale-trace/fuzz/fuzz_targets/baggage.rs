//! `baggage` parsing (input split into several header values) and re-encoding: never a
//! panic, limits always hold, and the encoded form re-parses to the same members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_trace::propagation::{BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, Baggage};

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let b = Baggage::parse(values.iter().copied());
    assert!(b.len() <= BAGGAGE_MAX_MEMBERS);
    let encoded = b.to_string();
    assert_eq!(encoded.len(), b.encoded_len());
    assert!(encoded.len() <= BAGGAGE_MAX_BYTES);
    let again = Baggage::parse([encoded.as_bytes()]);
    assert_eq!(again, b);
    // Through OpenTelemetry's Baggage and back: nothing lost (its limits match ours).
    let back = Baggage::from_otel(&b.to_otel());
    assert_eq!(back.len(), b.len());
});

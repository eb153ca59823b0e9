//! `tracestate` parsing (input split into several header values), truncation and
//! re-serialisation: never a panic, a valid state always re-parses to itself, and
//! OpenTelemetry's `TraceState` gets all of it but what it cannot hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_trace::propagation::{TRACESTATE_MAX_LEN, TraceState};

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if let Ok(mut ts) = TraceState::parse(values.iter().copied()) {
        let serialised = ts.to_string();
        assert_eq!(serialised.len(), ts.header_len());
        assert_eq!(TraceState::parse([serialised.as_bytes()]).as_ref(), Ok(&ts));
        // OpenTelemetry's TraceState holds every entry except multi-tenant keys with a
        // 14-character system id (it allows 13, the specification 14): only those are left
        // out, in order.
        let otel = ts.to_otel();
        let held: Vec<(&str, &str)> = (&otel).into_iter().collect();
        let expected: Vec<(&str, &str)> = ts
            .iter()
            .filter(|(k, _)| !k.split_once('@').is_some_and(|(_, system)| system.len() == 14))
            .collect();
        assert_eq!(held, expected);
        ts.truncate_to(TRACESTATE_MAX_LEN);
        assert!(ts.header_len() <= TRACESTATE_MAX_LEN);
        assert!(TraceState::parse([ts.to_string().as_bytes()]).is_ok());
    }
});

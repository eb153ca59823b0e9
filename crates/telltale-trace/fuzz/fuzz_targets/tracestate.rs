//! `tracestate` parsing (input split into several header values), truncation and
//! re-serialisation: never a panic, and a valid state always re-parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_trace::propagation::{TRACESTATE_MAX_LEN, TraceState};

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if let Ok(mut ts) = TraceState::parse(values.iter().copied()) {
        let serialised = ts.to_string();
        assert_eq!(serialised.len(), ts.header_len());
        assert_eq!(TraceState::parse([serialised.as_bytes()]).as_ref(), Ok(&ts));
        assert_eq!(ts.to_otel().header(), serialised);
        ts.truncate_to(TRACESTATE_MAX_LEN);
        assert!(ts.header_len() <= TRACESTATE_MAX_LEN);
        assert!(TraceState::parse([ts.to_string().as_bytes()]).is_ok());
    }
});

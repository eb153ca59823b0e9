//! Timeouts, budgeted retries with jitter, circuit breakers and bulkheads for reqwest, tower and tonic clients; server protection.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

//! RED metrics for axum, tower and tonic servers and clients, a Prometheus `/metrics`
//! router, and a cardinality guard.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod names;

//! Make any axum or tonic service explain itself: request ids, traces, RED metrics, JSON logs, health, resilience.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

//! Test support: throwaway Postgres and Redis servers on free loopback ports, and an OTLP receiver.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "otlp")]
pub mod otlp;

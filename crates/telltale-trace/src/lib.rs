//! W3C trace context and baggage, OpenTelemetry server and client spans, tail sampling, OTLP export.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod propagation;

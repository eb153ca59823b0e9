//! JSON logs with stable keys, redaction and a one-line-per-request access log, for tracing-subscriber.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

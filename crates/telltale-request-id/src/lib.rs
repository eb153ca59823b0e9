//! Request ids for axum and tower: validate or generate, propagate on responses and outbound calls.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

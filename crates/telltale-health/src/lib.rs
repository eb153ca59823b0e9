//! Liveness, readiness and startup endpoints with time-bounded, cached dependency checks and graceful drain.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

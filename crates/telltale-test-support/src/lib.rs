//! Test support: throwaway Postgres and Redis servers on free loopback ports.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

//! Test support: throwaway Postgres and Redis servers on free loopback ports, and an OTLP receiver.
//!
//! Tests must never depend on a machine-wide database: each test starts its own server in
//! a temporary directory, on a free port of `127.0.0.1`, and the server is killed and its
//! directory removed when the handle is dropped (also when the test panics, since `Drop`
//! runs while unwinding).
//!
//! ```no_run
//! use telltale_test_support::{PostgresServer, RedisServer};
//!
//! let mut pg = PostgresServer::start().expect("postgres");
//! let url = pg.url(); // postgres://postgres:<password>@127.0.0.1:<port>/postgres
//! # let _ = url;
//! pg.stop().expect("stop");          // "the database went away"
//! pg.start_again().expect("start");  // "the database came back": same port, same data
//!
//! let redis = RedisServer::start().expect("redis");
//! let _url = redis.url(); // redis://127.0.0.1:<port>/
//! ```
//!
//! Everything here is synchronous (plain processes and polling with a bounded deadline),
//! so it works the same from `#[test]` and `#[tokio::test]`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "otlp")]
pub mod otlp;

mod port;
mod postgres;
mod process;
#[cfg(feature = "prometheus")]
mod prometheus;
mod redis;
#[cfg(feature = "service")]
pub mod service;

pub use port::free_port;
pub use postgres::{POSTGRES_PASSWORD, POSTGRES_USER, PostgresServer};
#[cfg(feature = "prometheus")]
pub use prometheus::PrometheusServer;
pub use redis::RedisServer;

/// Why a test server could not be started or stopped.
#[derive(Debug)]
pub struct ServerError {
    message: String,
}

impl ServerError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerError {}

impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e.to_string())
    }
}

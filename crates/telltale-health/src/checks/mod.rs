//! Built-in checks: TCP connect, HTTP GET (feature `http-check`), sqlx pools (feature
//! `sqlx`), Redis `PING` (feature `redis`), and [`from_fn`] for anything else.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use telltale_health::{checks, CheckError, Health, ReadinessCheck};
//!
//! // Anything with state you can read: a circuit breaker, a queue, a feature flag.
//! let breaker_open = Arc::new(AtomicBool::new(false));
//! let open = breaker_open.clone();
//!
//! let health = Health::builder()
//!     .check("broker", checks::tcp("127.0.0.1:5672"))
//!     .check(
//!         "inventory-breaker",
//!         checks::from_fn(move || {
//!             let open = open.load(Ordering::Relaxed);
//!             async move {
//!                 if open { Err(CheckError::msg("circuit open")) } else { Ok(()) }
//!             }
//!         })
//!         .non_critical(),
//!     )
//!     .build()
//!     .unwrap();
//! # let _ = health;
//! ```
//!
//! Each check does one round trip and does not bound its own time: the registry runs it
//! under its timeout (default 500 ms) and cancels it when that passes.

use std::future::Future;

use crate::{CheckError, ReadinessCheck};

#[cfg(feature = "http-check")]
mod http;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlx")]
mod sqlx;

#[cfg(feature = "http-check")]
pub use self::http::{HttpCheck, InvalidUrl, http};
#[cfg(feature = "redis")]
pub use self::redis::{RedisCheck, RedisClientCheck, redis, redis_client};
#[cfg(feature = "sqlx")]
pub use self::sqlx::{SqlxCheck, sqlx};

// === tcp ===

/// Healthy when a TCP connection to `addr` (`host:port`, resolved on every run) can
/// be opened. Says nothing about whether the server behind it answers: prefer a
/// protocol check when there is one.
pub fn tcp(addr: impl Into<String>) -> TcpCheck {
    TcpCheck { addr: addr.into() }
}

/// See [`tcp`].
#[derive(Debug, Clone)]
pub struct TcpCheck {
    addr: String,
}

impl ReadinessCheck for TcpCheck {
    async fn check(&self) -> Result<(), CheckError> {
        tokio::net::TcpStream::connect(self.addr.as_str())
            .await
            .map(drop)
            .map_err(|e| CheckError::msg(format!("connect to {}: {e}", self.addr)))
    }
}

// === from_fn ===

/// A check from an async closure: the way to report anything the built-ins do not
/// cover, such as a circuit breaker's state (see the module example).
///
/// ```
/// use telltale_health::{checks, CheckError};
///
/// let check = checks::from_fn(|| async { Ok::<(), CheckError>(()) });
/// # let _ = check;
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), CheckError>> + Send,
{
    FnCheck { f }
}

/// See [`from_fn`].
#[derive(Clone)]
pub struct FnCheck<F> {
    f: F,
}

impl<F> std::fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnCheck")
    }
}

impl<F, Fut> ReadinessCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), CheckError>> + Send,
{
    fn check(&self) -> impl Future<Output = Result<(), CheckError>> + Send {
        (self.f)()
    }
}

//! The [`ReadinessCheck`] trait, its error type, and per-check options.
//!
//! ```
//! use std::time::Duration;
//! use telltale_health::{CheckError, ReadinessCheck};
//!
//! struct QueueDepth;
//!
//! impl ReadinessCheck for QueueDepth {
//!     async fn check(&self) -> Result<(), CheckError> {
//!         let depth = 12; // ask the queue
//!         if depth > 10_000 {
//!             return Err(CheckError::msg(format!("queue depth {depth} > 10000")));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! // Registered as a non-critical check with its own timeout:
//! let check = QueueDepth.non_critical().with_timeout(Duration::from_millis(100));
//! # let _ = check;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::redact::redact_credentials;

/// A dependency the service needs in order to take traffic.
///
/// Implementations do one cheap round trip (`SELECT 1`, `PING`, a TCP connect) and
/// return `Ok(())` when the dependency is usable. They need not bound their own time:
/// the registry runs every check under its timeout and cancels it when that passes.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> impl Future<Output = Result<(), CheckError>> + Send;

    /// Marks this check non-critical: when it fails, `/readyz` still answers 200 with
    /// `degraded` instead of 503.
    fn non_critical(self) -> ConfiguredCheck<Self>
    where
        Self: Sized,
    {
        ConfiguredCheck::new(self).non_critical()
    }

    /// Gives this check its own timeout instead of the registry's default.
    fn with_timeout(self, timeout: Duration) -> ConfiguredCheck<Self>
    where
        Self: Sized,
    {
        ConfiguredCheck::new(self).with_timeout(timeout)
    }
}

/// A check with options: criticality and its own timeout. Made by
/// [`ReadinessCheck::non_critical`] and [`ReadinessCheck::with_timeout`].
#[derive(Debug, Clone)]
pub struct ConfiguredCheck<C> {
    check: C,
    critical: bool,
    timeout: Option<Duration>,
}

impl<C: ReadinessCheck> ConfiguredCheck<C> {
    fn new(check: C) -> Self {
        Self {
            check,
            critical: true,
            timeout: None,
        }
    }

    /// See [`ReadinessCheck::non_critical`].
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }

    /// See [`ReadinessCheck::with_timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Anything that can be registered with [`HealthBuilder::check`](crate::HealthBuilder::check):
/// every [`ReadinessCheck`] (critical, default timeout) and every [`ConfiguredCheck`].
pub trait IntoCheck {
    /// Converts into the registry's representation.
    fn into_check(self) -> CheckSpec;
}

/// A check as the registry stores it (opaque).
pub struct CheckSpec {
    pub(crate) check: Box<dyn DynCheck>,
    pub(crate) critical: bool,
    pub(crate) timeout: Option<Duration>,
}

impl fmt::Debug for CheckSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckSpec")
            .field("critical", &self.critical)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<C: ReadinessCheck> IntoCheck for C {
    fn into_check(self) -> CheckSpec {
        CheckSpec {
            check: Box::new(self),
            critical: true,
            timeout: None,
        }
    }
}

impl<C: ReadinessCheck> IntoCheck for ConfiguredCheck<C> {
    fn into_check(self) -> CheckSpec {
        CheckSpec {
            check: Box::new(self.check),
            critical: self.critical,
            timeout: self.timeout,
        }
    }
}

pub(crate) type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CheckError>> + Send + 'a>>;

/// Object-safe form of [`ReadinessCheck`], so checks of different types share one list.
pub(crate) trait DynCheck: Send + Sync + 'static {
    fn run(&self) -> CheckFuture<'_>;
}

impl<C: ReadinessCheck> DynCheck for C {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(self.check())
    }
}

// === impl CheckError ===

/// Why a check failed. The text has credentials masked
/// ([`redact_credentials`](crate::redact::redact_credentials)) as soon as it is made, so
/// it is safe to show on `/readyz?verbose` and in logs.
///
/// Any `std::error::Error` converts into it (with its `source()` chain), so `?` works
/// in checks; use [`CheckError::msg`] for plain text.
///
/// ```
/// use telltale_health::CheckError;
///
/// let e = CheckError::msg("cannot connect to postgres://app:hunter2@db/orders");
/// assert_eq!(e.message(), "cannot connect to postgres://app:***@db/orders");
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// assert_eq!(CheckError::from(io).to_string(), "refused");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CheckError {
    message: Box<str>,
}

impl CheckError {
    /// An error with this text (credentials masked).
    pub fn msg(message: impl fmt::Display) -> Self {
        let text = message.to_string();
        Self {
            message: redact_credentials(&text).into(),
        }
    }

    /// The error text, credentials masked.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn timed_out(timeout: Duration) -> Self {
        Self::msg(format!("timed out after {}ms", timeout.as_millis()))
    }
}

impl<E: std::error::Error> From<E> for CheckError {
    fn from(error: E) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            let s_text = s.to_string();
            // Many errors repeat their source in their own message.
            if !text.contains(&s_text) {
                text.push_str(": ");
                text.push_str(&s_text);
            }
            source = s.source();
        }
        Self::msg(text)
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CheckError").field(&self.message).finish()
    }
}

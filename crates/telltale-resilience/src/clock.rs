//! A monotonic clock the circuit breaker reads, replaceable in tests.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let t0 = clock.now();
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now() - t0, Duration::from_secs(5));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic clock: time elapsed since an arbitrary origin.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Time since the clock's origin.
    fn now(&self) -> Duration;
}

/// The real clock (tokio's `Instant`, so tokio's paused time also applies).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to: deterministic tests of time-based behaviour.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at zero.
    pub const fn new() -> Self {
        ManualClock {
            nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.nanos
            .fetch_add(by.as_nanos().min(u64::MAX as u128) as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

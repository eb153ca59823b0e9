//! Back-off delays between attempts: exponential with full jitter, or decorrelated jitter.
//!
//! Both come from the AWS Architecture Blog's "Exponential Backoff And Jitter": jitter
//! spreads the retries of many clients that failed at the same moment, so they do not
//! come back in lock-step and knock the dependency over again.
//!
//! - **Full jitter**: `sleep = random(0, min(cap, base × 2^retry))`.
//! - **Decorrelated jitter**: `sleep = min(cap, random(base, previous × 3))`.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::backoff::Backoff;
//!
//! let b = Backoff::full_jitter(Duration::from_millis(10), Duration::from_millis(100));
//! let mut rng = fastrand::Rng::with_seed(7);
//! let d = b.delay(3, Duration::ZERO, &mut rng);
//! assert!(d <= Duration::from_millis(80));
//! ```
//!
//! tower's `ExponentialBackoff` (in `tower::retry::backoff`) is not used: it is behind the
//! `util` + `retry` features as an `Rng`-trait-based type without decorrelated jitter, and
//! its "jitter" is added on top of the exponential delay rather than spread over it.

use std::time::Duration;

/// Which jitter formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// `random(0, min(cap, base × 2^retry))`.
    Full,
    /// `min(cap, random(base, previous × 3))`.
    Decorrelated,
    /// No jitter: `min(cap, base × 2^retry)` (for tests and special cases only).
    None,
}

/// A back-off schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's scale.
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
    /// The jitter formula.
    pub jitter: Jitter,
}

impl Backoff {
    /// Exponential back-off with full jitter.
    pub const fn full_jitter(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            jitter: Jitter::Full,
        }
    }

    /// Decorrelated jitter.
    pub const fn decorrelated(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            jitter: Jitter::Decorrelated,
        }
    }

    /// The upper bound of the delay before retry number `retry` (1 for the first retry)
    /// under full jitter or no jitter: `min(cap, base × 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay before retry number `retry` (1 for the first retry); `previous` is the
    /// previous delay (zero before the first retry), used by decorrelated jitter.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut fastrand::Rng) -> Duration {
        match self.jitter {
            Jitter::None => self.ceiling(retry),
            Jitter::Full => random_between(Duration::ZERO, self.ceiling(retry), rng),
            Jitter::Decorrelated => {
                let prev = previous.max(self.base);
                let hi = prev.saturating_mul(3).max(self.base);
                random_between(self.base, hi, rng).min(self.cap)
            }
        }
    }
}

fn random_between(lo: Duration, hi: Duration, rng: &mut fastrand::Rng) -> Duration {
    if hi <= lo {
        return lo;
    }
    let span = (hi - lo).as_nanos().min(u64::MAX as u128) as u64;
    lo + Duration::from_nanos(rng.u64(0..=span))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn full_jitter_stays_under_the_exponential_ceiling_and_the_cap() {
        let b = Backoff::full_jitter(10 * MS, 200 * MS);
        let mut rng = fastrand::Rng::with_seed(1);
        for retry in 1..=10 {
            let ceiling = (10 * MS * (1 << (retry - 1))).min(200 * MS);
            assert_eq!(b.ceiling(retry), ceiling);
            for _ in 0..200 {
                assert!(b.delay(retry, Duration::ZERO, &mut rng) <= ceiling);
            }
        }
        assert_eq!(b.ceiling(u32::MAX), 200 * MS);
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_three_times_previous() {
        let b = Backoff::decorrelated(10 * MS, 1000 * MS);
        let mut rng = fastrand::Rng::with_seed(2);
        let mut prev = Duration::ZERO;
        for retry in 1..50 {
            let d = b.delay(retry, prev, &mut rng);
            assert!(
                d >= 10 * MS && d <= (prev.max(10 * MS) * 3).min(1000 * MS),
                "{d:?}"
            );
            prev = d;
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        // Statistical, with generous bounds: 1000 full-jitter draws over [0, 100ms]
        // should have a mean near 50ms and use most of the range.
        let b = Backoff::full_jitter(100 * MS, 100 * MS);
        let mut rng = fastrand::Rng::with_seed(3);
        let draws: Vec<f64> = (0..1000)
            .map(|_| b.delay(1, Duration::ZERO, &mut rng).as_secs_f64() * 1000.0)
            .collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((35.0..65.0).contains(&mean), "mean {mean}");
        let low = draws.iter().filter(|d| **d < 25.0).count();
        let high = draws.iter().filter(|d| **d > 75.0).count();
        assert!(low > 150 && high > 150, "low {low} high {high}");
    }
}

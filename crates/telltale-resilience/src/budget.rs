//! A retry budget shared by every call to one dependency.
//!
//! Retries are allowed up to `ratio × recent requests + min_per_sec × ttl` over a
//! sliding `ttl` window, kept in ten slots (so the window is up to one slot longer while
//! the current slot fills): linkerd's and Finagle's design, as in tower's `TpsBudget`.
//! Under 100 % failure a dependency therefore sees at most
//! `(1 + ratio) × requests + min_per_sec × ttl_seconds` calls, however many attempts
//! each call may make: retries can never turn an outage into a storm.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::budget::RetryBudget;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10)).unwrap();
//! budget.deposit();
//! budget.deposit();
//! assert!(budget.withdraw());   // 2 requests × 0.5 = one retry
//! assert!(!budget.withdraw());
//! # }
//! ```
//!
//! Why not tower's `TpsBudget` directly: it rounds the cost of a retry to a whole number
//! of deposits (`1 / ratio`, truncated), so `0.3` behaves as `0.33` and the bound above
//! would not hold; and it panics on out-of-range arguments, where this type returns an
//! error at build time. The structure (ten sub-windows, atomics, a short lock to rotate)
//! is the same.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Milli-tokens per retry.
const RETRY_COST: i64 = 1000;
const SLOTS: usize = 10;

/// A sliding-window retry budget (see the module docs).
#[derive(Debug)]
pub struct RetryBudget {
    rotation: Mutex<Rotation>,
    slots: [AtomicI64; SLOTS],
    current: AtomicI64,
    reserve: i64,
    deposit_amount: i64,
    slot_len: Duration,
    ratio: f64,
    min_per_sec: u32,
    ttl: Duration,
}

#[derive(Debug)]
struct Rotation {
    index: usize,
    since: Instant,
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request (0.0..=1.0) plus `min_per_sec`
    /// retries per second, over a `ttl` window (1 s to 60 s).
    pub fn new(ratio: f64, min_per_sec: u32, ttl: Duration) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!(
                "retry budget ratio must be within 0.0..=1.0 (0.2 = one retry per five requests), got {ratio}"
            ));
        }
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(60) {
            return Err(format!(
                "retry budget window must be between 1s and 60s, got {ttl:?}"
            ));
        }
        let reserve = i64::from(min_per_sec)
            .saturating_mul(ttl.as_secs() as i64)
            .saturating_mul(RETRY_COST);
        Ok(RetryBudget {
            rotation: Mutex::new(Rotation {
                index: 0,
                since: Instant::now(),
            }),
            slots: Default::default(),
            current: AtomicI64::new(0),
            reserve,
            // Rounded down, so the bound in the module docs always holds.
            deposit_amount: (ratio * RETRY_COST as f64).floor() as i64,
            slot_len: ttl / SLOTS as u32,
            ratio,
            min_per_sec,
            ttl,
        })
    }

    /// The configured ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The configured floor (retries per second).
    pub fn min_per_sec(&self) -> u32 {
        self.min_per_sec
    }

    /// The configured window.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records a request (call once per logical call, not per attempt).
    pub fn deposit(&self) {
        self.rotate();
        self.current.fetch_add(self.deposit_amount, Ordering::SeqCst);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        self.rotate();
        // A short lock so two withdrawals cannot both take the last token.
        let _guard = self.rotation.lock().unwrap_or_else(|p| p.into_inner());
        if self.balance() >= RETRY_COST {
            self.current.fetch_sub(RETRY_COST, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// Retries currently available (whole retries).
    pub fn available(&self) -> i64 {
        self.rotate();
        self.balance() / RETRY_COST
    }

    fn balance(&self) -> i64 {
        let windowed: i64 = self.slots.iter().map(|s| s.load(Ordering::SeqCst)).sum();
        windowed + self.current.load(Ordering::SeqCst) + self.reserve
    }

    /// Moves the window on by the whole slots that have passed: the current slot's
    /// deposits and withdrawals are committed to its place, each slot passed over with
    /// no calls is emptied, and the slot the current one will be committed to keeps the
    /// oldest slot's sums until then. So the window is ten whole slots (`ttl`) plus the
    /// current one. The start of the current slot moves by whole slots, so a slot is
    /// always `slot_len` long. (tower's `TpsBudget` restarts the slot at the call and
    /// empties one slot too many: under steady traffic every other slot stays empty and
    /// the window is about half as long as it says.)
    fn rotate(&self) {
        let mut rot = self.rotation.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(rot.since);
        if elapsed < self.slot_len {
            return;
        }
        let passed = elapsed.as_nanos() / self.slot_len.as_nanos().max(1);
        let committed = self.current.swap(0, Ordering::SeqCst);
        self.slots[rot.index].store(committed, Ordering::SeqCst);
        let mut idx = (rot.index + 1) % SLOTS;
        for _ in 1..passed.min(SLOTS as u128 + 1) {
            self.slots[idx].store(0, Ordering::SeqCst);
            idx = (idx + 1) % SLOTS;
        }
        rot.index = idx;
        let into_slot = elapsed.as_nanos() % self.slot_len.as_nanos().max(1);
        rot.since = now - Duration::from_nanos(u64::try_from(into_slot).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_ratio_of_requests_plus_a_floor() {
        let b = RetryBudget::new(0.2, 1, Duration::from_secs(2)).unwrap();
        for _ in 0..100 {
            b.deposit();
        }
        // 100 × 0.2 + 1/s × 2 s.
        let mut allowed = 0;
        while b.withdraw() {
            allowed += 1;
        }
        assert_eq!(allowed, 22);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_window() {
        let b = RetryBudget::new(1.0, 0, Duration::from_secs(1)).unwrap();
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!(b.available(), 10);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(b.available(), 0);
    }

    /// Steady traffic that does not arrive on slot boundaries: the window holds a whole
    /// `ttl` of deposits (10 s at one call per 7 ms: 1,428, up to one slot more while
    /// the current slot fills), not every other slot's.
    #[tokio::test(start_paused = true)]
    async fn the_window_holds_a_whole_ttl_of_deposits_under_steady_traffic() {
        let b = RetryBudget::new(1.0, 0, Duration::from_secs(10)).unwrap();
        for _ in 0..3000 {
            b.deposit();
            tokio::time::advance(Duration::from_millis(7)).await;
        }
        let available = b.available();
        assert!((1_428..=1_572).contains(&available), "{available}");
    }

    /// The floor is `min_per_sec` retries a second over the window, not twice that.
    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_min_per_sec_over_the_window() {
        let b = RetryBudget::new(0.0, 1, Duration::from_secs(60)).unwrap();
        let mut allowed = 0;
        // 60 s of failing calls, one every 7 ms, each wanting a retry.
        for _ in 0..(60_000 / 7) {
            b.deposit();
            if b.withdraw() {
                allowed += 1;
            }
            tokio::time::advance(Duration::from_millis(7)).await;
        }
        assert!((60..=66).contains(&allowed), "{allowed}");
    }

    #[test]
    fn nonsense_values_are_errors() {
        assert!(RetryBudget::new(1.7, 1, Duration::from_secs(10)).is_err());
        assert!(RetryBudget::new(-0.1, 1, Duration::from_secs(10)).is_err());
        assert!(RetryBudget::new(0.2, 1, Duration::from_millis(10)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn odd_ratios_do_not_round_up() {
        let b = RetryBudget::new(0.3, 0, Duration::from_secs(10)).unwrap();
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(b.available(), 30);
    }
}

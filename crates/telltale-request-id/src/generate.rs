//! Fresh request ids: UUIDv7 (default) and UUIDv4, without a syscall per id.
//!
//! ```
//! use telltale_request_id::generate;
//!
//! let id = generate::uuid_v7();
//! let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap();
//! assert_eq!(uuid.get_version_num(), 7);
//! assert_eq!(id.as_str().len(), 36);
//!
//! let v4 = generate::uuid_v4();
//! assert_eq!(uuid::Uuid::parse_str(v4.as_str()).unwrap().get_version_num(), 4);
//! ```
//!
//! # Why not `Uuid::now_v7()`
//!
//! uuid 1.29's `Uuid::now_v7()` takes a process-wide `Mutex` (its shared monotonic
//! counter context) on every call, so all request threads contend on one lock, and it
//! reads the precise wall clock. A request id is generated on the request path of every
//! request that arrives without one, so this module builds the v7 itself:
//!
//! - **the timestamp** comes from the kernel's *coarse* real-time clock on Linux
//!   (`CLOCK_REALTIME_COARSE` through [`rustix`], served by the vDSO: about 5 ns against
//!   about 30 ns for `SystemTime::now()` on the machine of `docs/perf/request-id.md`).
//!   rustix is built with `use-libc`, so the call goes through the C library's vDSO
//!   lookup (rustix's own ELF parser crashes under valgrind, which users profile with).
//!   Its resolution is one scheduler tick (1–4 ms), so an id's millisecond may lag the
//!   precise clock by up to one tick. RFC 9562 §6.1 allows a v7 timestamp of reduced
//!   precision; ids stay time-ordered at tick granularity, which is what a database
//!   index or a log search needs. Other platforms use `SystemTime::now()`.
//! - **74 random bits** come from [`fastrand`]'s thread-local generator (seeded once per
//!   thread, never `getrandom(2)` per id). Within one tick, ids' order is random (RFC
//!   9562 makes the counter optional).
//! - the bits are written by [`RequestId::from_uuid_bits`], which needs no validation
//!   pass (hex digits and hyphens only) and makes the one allocation that holds the
//!   id's `HeaderValue`, shared (not copied) by every clone of the id.
//!
//! The random bits are **not** cryptographically secure: a request id is a correlation
//! handle, not a secret or a capability. Do not authorise anything by it.
//!
//! [`uuid_v4`] uses `Uuid::new_v4()`, which with uuid's `fast-rng` feature (on in this
//! workspace) draws from a thread-local CSPRNG, also without a syscall per id.

use telltale_core::RequestId;
use uuid::{Builder, Uuid};

/// A new UUIDv7 request id (lower-case, hyphenated, 36 characters).
pub fn uuid_v7() -> RequestId {
    RequestId::from_uuid_bits(new_v7().as_u128())
}

/// A new UUIDv4 request id (lower-case, hyphenated, 36 characters).
pub fn uuid_v4() -> RequestId {
    RequestId::from_uuid_bits(Uuid::new_v4().as_u128())
}

/// The UUIDv7 behind [`uuid_v7`], as a [`Uuid`].
pub(crate) fn new_v7() -> Uuid {
    let hi = fastrand::u64(..).to_le_bytes();
    let lo = fastrand::u16(..).to_le_bytes();
    let random = [
        hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7], lo[0], lo[1],
    ];
    Builder::from_unix_timestamp_millis(unix_millis(), &random).into_uuid()
}

/// Milliseconds since the Unix epoch from the coarse real-time clock.
///
/// A clock before 1970 is a broken host; it gives 0 rather than a panic on the request
/// path (the id is still unique through its random bits).
#[cfg(target_os = "linux")]
pub(crate) fn unix_millis() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1000) + nanos / 1_000_000
}

/// Milliseconds since the Unix epoch (0 for a clock before 1970).
#[cfg(not(target_os = "linux"))]
pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn hundred_thousand_v7_ids_are_unique_uuid_v7() {
        let mut seen = HashSet::with_capacity(100_000);
        for _ in 0..100_000 {
            let id = uuid_v7();
            let uuid = Uuid::parse_str(id.as_str()).expect("parses as a UUID");
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id.as_str(), uuid.hyphenated().to_string());
            assert!(seen.insert(id), "duplicate id");
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn v7_ids_from_many_threads_are_unique() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| uuid_v7()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(seen.insert(id));
            }
        }
        assert_eq!(seen.len(), 40_000);
    }

    #[test]
    fn v7_carries_the_current_millisecond() {
        let before = unix_millis();
        let uuid = new_v7();
        let after = unix_millis();
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
        assert!(
            before <= millis && millis <= after,
            "{before} <= {millis} <= {after}"
        );
        // The coarse clock lags the precise one by at most a scheduler tick (1-4 ms);
        // a second is a bound no healthy host gets near, and a wrong clock id would miss.
        let precise = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(precise.abs_diff(millis) < 1000, "precise {precise}, id {millis}");
    }

    #[test]
    fn v4_ids_are_version_4() {
        let id = uuid_v4();
        assert_eq!(Uuid::parse_str(id.as_str()).unwrap().get_version_num(), 4);
    }
}

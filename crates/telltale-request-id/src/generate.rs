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
//! counter context) on every call, so all request threads contend on one lock. Here a
//! v7 is built from the wall clock in milliseconds (`SystemTime::now()`, served by the
//! vDSO on Linux: no syscall) and 74 random bits from [`fastrand`]'s thread-local
//! generator (seeded once per thread, never `getrandom(2)` per id), with
//! [`uuid::Builder::from_unix_timestamp_millis`]. Ids stay time-ordered at millisecond
//! granularity across threads; within one millisecond their order is random (RFC 9562
//! allows this: the counter is optional).
//!
//! The random bits are **not** cryptographically secure: a request id is a correlation
//! handle, not a secret or a capability. Do not authorise anything by it.
//!
//! [`uuid_v4`] uses `Uuid::new_v4()`, which with uuid's `fast-rng` feature (on in this
//! workspace) draws from a thread-local CSPRNG, also without a syscall per id.
//!
//! Both format into a 36-byte stack buffer; the only allocation is the one that holds
//! the resulting `HeaderValue` (shared, not copied, by every clone of the id).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;
use telltale_core::RequestId;
use uuid::{Builder, Uuid};

/// A new UUIDv7 request id (lower-case, hyphenated, 36 characters).
pub fn uuid_v7() -> RequestId {
    from_uuid(new_v7())
}

/// A new UUIDv4 request id (lower-case, hyphenated, 36 characters).
pub fn uuid_v4() -> RequestId {
    from_uuid(Uuid::new_v4())
}

/// The UUIDv7 behind [`uuid_v7`], as a [`Uuid`].
pub(crate) fn new_v7() -> Uuid {
    // A clock before 1970 is a broken host; fall back to 0 rather than panic on the
    // request path (the id is still unique through its random bits).
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let hi = fastrand::u64(..).to_le_bytes();
    let lo = fastrand::u16(..).to_le_bytes();
    let random = [
        hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7], lo[0], lo[1],
    ];
    Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

fn from_uuid(uuid: Uuid) -> RequestId {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut buf);
    // `Bytes::from_owner` moves the 36-byte array into one reference-counted allocation:
    // the request extensions, the task-local and the response header then share it with
    // atomic increments. (`HeaderValue::from_str` would copy into a `Vec`-backed `Bytes`
    // and pay a second allocation on its first clone.)
    let value = HeaderValue::from_maybe_shared(Bytes::from_owner(buf));
    // A hyphenated UUID is 36 characters of [0-9a-f-], all valid header bytes and all in
    // the request-id set: neither step can fail, whatever the random bits.
    let value = value.expect("a hyphenated UUID is a valid header value");
    RequestId::from_header(&value).expect("a hyphenated UUID is a valid request id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let uuid = new_v7();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
        assert!(
            before <= millis && millis <= after,
            "{before} <= {millis} <= {after}"
        );
    }

    #[test]
    fn v4_ids_are_version_4() {
        let id = uuid_v4();
        assert_eq!(Uuid::parse_str(id.as_str()).unwrap().get_version_num(), 4);
    }
}

//! Header names used across telltale, and the lookups the request path uses for them.
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use telltale_core::headers::{self, X_REQUEST_ID};
//!
//! assert_eq!(X_REQUEST_ID.as_str(), "x-request-id");
//! let mut map = HeaderMap::new();
//! map.append(&X_REQUEST_ID, HeaderValue::from_static("a"));
//! map.append(&X_REQUEST_ID, HeaderValue::from_static("b"));
//! assert_eq!(headers::first(&map, &X_REQUEST_ID).unwrap(), "a");
//! assert_eq!(headers::values(&map, &X_REQUEST_ID).count(), 2);
//! assert!(!headers::contains(&map, &headers::TRACEPARENT));
//! ```

use http::header::{Iter, ValueIter};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The default request-id header, `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C Trace Context `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// W3C Trace Context `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// W3C Trace Context Level 2 `traceresponse`.
pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");
/// W3C Baggage `baggage`.
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");
/// gRPC status code, in headers (trailers-only responses) or trailers.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// gRPC status message.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// gRPC deadline propagation.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// `Idempotency-Key`: marks a non-idempotent request as safe to retry.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// `Retry-After`.
pub const RETRY_AFTER: HeaderName = http::header::RETRY_AFTER;

// === lookups ===

/// Most distinct header names for which [`first`], [`values`] and [`contains`] compare
/// names in order instead of hashing the wanted one.
///
/// `HeaderMap::get` hashes a name with FNV one byte at a time (for `x-request-id`, 20
/// bytes with the enum discriminant) before it probes: about 11 ns on the machine of
/// docs/perf/request-id.md, whatever the map's size. Comparing names in order costs about
/// 1.2 ns per name, since the enum discriminant is compared first (a standard header is
/// passed over at once) and custom names of another length are never compared byte by
/// byte. So small maps are scanned; the crossover measured there is at eight names.
/// Requests between services (host, content type and length, trace context, the id) are
/// usually that small; a browser's, behind a proxy, usually is not, and is looked up by
/// hash, so a request with many headers never pays for a long scan.
pub const SCAN_UP_TO: usize = 8;

/// The first value of `name`, as `HeaderMap::get` returns it (see [`SCAN_UP_TO`]).
#[inline]
pub fn first<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    if headers.keys_len() > SCAN_UP_TO {
        return headers.get(name);
    }
    headers
        .iter()
        .find_map(|(have, value)| (have == name).then_some(value))
}

/// Whether `headers` holds `name`, as `HeaderMap::contains_key` (see [`SCAN_UP_TO`]).
#[inline]
pub fn contains(headers: &HeaderMap, name: &HeaderName) -> bool {
    if headers.keys_len() > SCAN_UP_TO {
        headers.contains_key(name)
    } else {
        headers.keys().any(|n| n == name)
    }
}

/// Every value of `name`, in order, as `HeaderMap::get_all` gives them (see
/// [`SCAN_UP_TO`]).
#[inline]
pub fn values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Values<'a> {
    Values(if headers.keys_len() > SCAN_UP_TO {
        Lookup::Hashed(headers.get_all(name).iter())
    } else {
        // For a constant name, a clone is a static `Bytes`: no reference count.
        Lookup::Scanned(headers.iter(), name.clone())
    })
}

/// The iterator [`values`] returns.
#[derive(Debug)]
pub struct Values<'a>(Lookup<'a>);

#[derive(Debug)]
enum Lookup<'a> {
    Hashed(ValueIter<'a, HeaderValue>),
    Scanned(Iter<'a, HeaderValue>, HeaderName),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a HeaderValue;

    #[inline]
    fn next(&mut self) -> Option<&'a HeaderValue> {
        match &mut self.0 {
            Lookup::Hashed(values) => values.next(),
            Lookup::Scanned(all, name) => all.find(|(n, _)| *n == name).map(|(_, v)| v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_with_header_map_in_small_and_large_maps() {
        let name = HeaderName::from_static("x-request-id");
        let check = |map: &HeaderMap| {
            assert_eq!(first(map, &name), map.get(&name));
            assert_eq!(contains(map, &name), map.contains_key(&name));
            assert!(values(map, &name).eq(map.get_all(&name).iter()));
        };
        let mut headers = HeaderMap::new();
        check(&headers);
        assert_eq!(first(&headers, &name), None);
        headers.append(http::header::HOST, HeaderValue::from_static("h"));
        headers.append("x-request-ix", HeaderValue::from_static("same length"));
        headers.append("x-request-id-2", HeaderValue::from_static("longer"));
        check(&headers);
        assert_eq!(first(&headers, &name), None);
        // Repeated: the first value, as `get` returns it, also when other names'
        // extra values come between; every value, in order.
        headers.append("x-request-id", HeaderValue::from_static("first"));
        headers.append(http::header::HOST, HeaderValue::from_static("second host"));
        headers.append("x-request-id", HeaderValue::from_static("second"));
        check(&headers);
        assert_eq!(first(&headers, &name).unwrap(), "first");
        assert_eq!(values(&headers, &name).count(), 2);
        // Exactly `SCAN_UP_TO` names (scanned), the id last, and absent.
        let mut small = HeaderMap::new();
        for i in 1..SCAN_UP_TO {
            small.append(
                HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from(i),
            );
        }
        check(&small);
        assert!(!contains(&small, &name));
        small.append(&name, HeaderValue::from_static("at the limit"));
        assert_eq!(small.keys_len(), SCAN_UP_TO);
        check(&small);
        assert_eq!(first(&small, &name).unwrap(), "at the limit");
        // Many headers (more than `SCAN_UP_TO`: looked up by hash), the id last, twice.
        let mut many = HeaderMap::new();
        for i in 0..99 {
            many.append(
                HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from(i),
            );
        }
        many.append(&name, HeaderValue::from_static("last"));
        many.append(&name, HeaderValue::from_static("after"));
        check(&many);
        assert_eq!(first(&many, &name).unwrap(), "last");
        assert!(contains(&many, &name));
    }
}

//! The `grpc-timeout` header: the remaining deadline, as the gRPC spec encodes it.
//!
//! `TimeoutValue` is at most 8 ASCII digits, followed by a unit: `H` hours, `M` minutes,
//! `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds. The finest unit that
//! fits in 8 digits is chosen (rounding up to a whole unit, so at most one unit is added).
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::grpc_timeout::encode;
//!
//! assert_eq!(encode(Duration::from_millis(250)), "250000u");
//! assert_eq!(encode(Duration::from_secs(200_000)), "200000S");
//! assert_eq!(encode(Duration::from_nanos(15)), "15n");
//! ```

use std::time::Duration;

use http::HeaderValue;

const MAX: u128 = 99_999_999;

/// Encodes a duration as a `grpc-timeout` value.
pub fn encode(d: Duration) -> String {
    let nanos = d.as_nanos();
    for (unit, per) in [
        ('n', 1u128),
        ('u', 1_000),
        ('m', 1_000_000),
        ('S', 1_000_000_000),
        ('M', 60_000_000_000),
        ('H', 3_600_000_000_000),
    ] {
        let v = nanos.div_ceil(per);
        if v <= MAX {
            return format!("{v}{unit}");
        }
    }
    format!("{MAX}H")
}

/// [`encode`] as a header value.
pub fn header_value(d: Duration) -> HeaderValue {
    // Digits and a unit letter are always a valid header value.
    HeaderValue::from_str(&encode(d)).unwrap_or(HeaderValue::from_static("99999999H"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_finest_unit_that_fits_eight_digits() {
        assert_eq!(encode(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(encode(Duration::from_nanos(100_000_000)), "100000u");
        assert_eq!(encode(Duration::from_secs(1)), "1000000u");
        assert_eq!(encode(Duration::from_secs(1000)), "1000000m");
        assert_eq!(encode(Duration::from_secs(100_000_000)), "1666667M");
        assert_eq!(encode(Duration::ZERO), "0n");
        assert_eq!(encode(Duration::MAX), "99999999H");
        for s in ["99999999n", "100000u", "1666667M"] {
            assert!(s.len() <= 9);
        }
    }
}

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

/// Decodes a `grpc-timeout` value (1 to 8 digits and a unit); `None` when malformed.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use telltale_resilience::grpc_timeout::decode;
///
/// assert_eq!(decode(&HeaderValue::from_static("50000u")), Some(Duration::from_millis(50)));
/// assert_eq!(decode(&HeaderValue::from_static("2H")), Some(Duration::from_secs(7200)));
/// assert_eq!(decode(&HeaderValue::from_static("123456789m")), None);
/// assert_eq!(decode(&HeaderValue::from_static("5")), None);
/// ```
pub fn decode(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'n' => Duration::from_nanos(v),
        b'u' => Duration::from_micros(v),
        b'm' => Duration::from_millis(v),
        b'S' => Duration::from_secs(v),
        b'M' => Duration::from_secs(v * 60),
        b'H' => Duration::from_secs(v * 3600),
        _ => return None,
    })
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

    #[test]
    fn decodes_what_it_encodes_and_refuses_the_rest() {
        for d in [
            Duration::from_nanos(15),
            Duration::from_millis(250),
            Duration::from_secs(200_000),
            Duration::from_secs(360_000_000),
        ] {
            let back = decode(&header_value(d)).unwrap();
            assert!(
                back >= d && back - d < Duration::from_secs(3600),
                "{d:?} -> {back:?}"
            );
        }
        assert_eq!(
            decode(&header_value(Duration::MAX)),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        for bad in ["", "m", "1x", "-1m", "1.5S", "123456789n", " 1S"] {
            assert_eq!(decode(&HeaderValue::from_static(bad)), None, "{bad:?}");
        }
    }
}

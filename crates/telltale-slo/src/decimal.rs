//! Exact decimal numbers for objectives, error budgets and alert thresholds.
//!
//! Why not `f64`: `14.4 * (1.0 - 0.999)` prints `0.014400000000000012` and
//! `1.0 - 0.999` prints `0.0010000000000000009`; alert rules are read and diffed by people,
//! so thresholds are computed in base 10 and printed exactly (`0.0144`).
//!
//! ```
//! use telltale_slo::Decimal;
//!
//! let objective: Decimal = "99.9".parse().unwrap();
//! let budget = objective.error_budget();
//! assert_eq!(budget.to_string(), "0.001");
//! assert_eq!(budget.mul(&"14.4".parse().unwrap()).to_string(), "0.0144");
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A base-10 number `units / 10^scale`; parsed text has at most 30 digits.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

/// The text was not a plain decimal number (`99.9`, `0.25`, `14`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a decimal number such as 99.9")]
pub struct ParseDecimalError(String);

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };
    /// One hundred (percent).
    pub const HUNDRED: Decimal = Decimal { units: 100, scale: 0 };

    /// `units / 10^scale`.
    pub const fn new(units: i128, scale: u32) -> Self {
        Decimal { units, scale }
    }

    /// The shortest decimal that round-trips to `value` (what `{}` prints for an `f64`).
    /// Returns `None` for NaN and infinities.
    pub fn from_f64(value: f64) -> Option<Self> {
        if !value.is_finite() {
            return None;
        }
        format!("{value}").parse().ok()
    }

    /// As an `f64` (for arithmetic that need not be exact, e.g. budget reports).
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    fn rescale(&self, scale: u32) -> i128 {
        self.units * 10i128.pow(scale - self.scale)
    }

    /// `self - other`.
    pub fn sub(&self, other: &Decimal) -> Decimal {
        let scale = self.scale.max(other.scale);
        Decimal::new(self.rescale(scale) - other.rescale(scale), scale).normalized()
    }

    /// `self * other`.
    pub fn mul(&self, other: &Decimal) -> Decimal {
        Decimal::new(self.units * other.units, self.scale + other.scale).normalized()
    }

    /// `self / 100`: a percentage as a ratio.
    pub fn percent_to_ratio(&self) -> Decimal {
        Decimal::new(self.units, self.scale + 2).normalized()
    }

    /// For an objective in percent (`99.9`), the error budget as a ratio (`0.001`).
    pub fn error_budget(&self) -> Decimal {
        Decimal::HUNDRED.sub(self).percent_to_ratio()
    }

    /// `self / divisor`, rounded half away from zero to `scale` fractional digits (for
    /// burn factors such as `0.1 × 28d / 3d = 0.9333`, which have no exact decimal).
    pub(crate) fn div_rounded(&self, divisor: u64, scale: u32) -> Decimal {
        // self = units / 10^s, so the result's units are units × 10^scale / (divisor × 10^s).
        let num = self.units * 10i128.pow(scale);
        let den = i128::from(divisor) * 10i128.pow(self.scale);
        let (q, r) = (num / den, num % den);
        let q = if 2 * r.abs() >= den { q + num.signum() } else { q };
        Decimal::new(q, scale).normalized()
    }

    fn normalized(mut self) -> Decimal {
        while self.scale > 0 && self.units % 10 == 0 {
            self.units /= 10;
            self.scale -= 1;
        }
        self
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let scale = self.scale.max(other.scale);
        self.rescale(scale).cmp(&other.rescale(scale))
    }
}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDecimalError(s.to_owned());
        let t = s.trim();
        // f64 Display never uses exponents, but hand-written specs might.
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| err())?),
            None => (t, 0),
        };
        let (neg, mantissa) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let digits = format!("{int}{frac}");
        if digits.len() > 30 {
            return Err(err());
        }
        let mut units: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err())?
        };
        let mut scale = frac.len() as i32 - exp;
        while scale < 0 {
            units = units.checked_mul(10).ok_or_else(err)?;
            scale += 1;
        }
        if scale > 36 {
            return Err(err());
        }
        if neg {
            units = -units;
        }
        Ok(Decimal::new(units, scale as u32).normalized())
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.normalized();
        let sign = if n.units < 0 { "-" } else { "" };
        let digits = n.units.unsigned_abs().to_string();
        let scale = n.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn thresholds_are_exact() {
        let budget = d("99.9").error_budget();
        assert_eq!(budget.to_string(), "0.001");
        assert_eq!(budget.mul(&d("14.4")).to_string(), "0.0144");
        assert_eq!(budget.mul(&d("6")).to_string(), "0.006");
        assert_eq!(budget.mul(&d("3")).to_string(), "0.003");
        assert_eq!(budget.mul(&d("1")).to_string(), "0.001");
        assert_eq!(d("99.95").error_budget().mul(&d("14.4")).to_string(), "0.0072");
        assert_eq!(d("99").error_budget().to_string(), "0.01");
        assert_eq!(d("99.99").error_budget().to_string(), "0.0001");
    }

    #[test]
    fn divides_with_rounding() {
        assert_eq!(d("14.4").div_rounded(1, 4).to_string(), "14.4");
        assert_eq!(d("28").div_rounded(30, 4).to_string(), "0.9333");
        assert_eq!(d("56").div_rounded(30, 4).to_string(), "1.8667");
        assert_eq!(d("0.5").div_rounded(4, 2).to_string(), "0.13");
        assert_eq!(d("-0.5").div_rounded(4, 2).to_string(), "-0.13");
        assert_eq!(d("5184000").div_rounded(360_000, 4).to_string(), "14.4");
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(Decimal::from_f64(99.9).unwrap().to_string(), "99.9");
        assert_eq!(Decimal::from_f64(0.25).unwrap().to_string(), "0.25");
        assert_eq!(Decimal::from_f64(1.0).unwrap().to_string(), "1");
        assert_eq!(d("1e-3").to_string(), "0.001");
        assert_eq!(d("2.50").to_string(), "2.5");
        assert!("abc".parse::<Decimal>().is_err());
        assert!("".parse::<Decimal>().is_err());
        assert!(d("100") > d("99.9999"));
        assert_eq!(d("0.10"), d("0.1"));
    }
}

//! The W3C `traceparent` header: parse (version 00 and higher versions) and format (always 00).

use std::fmt;

use http::HeaderValue;
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};

/// The `sampled` trace flag (bit 0): the caller may have recorded trace data.
pub const TRACE_FLAG_SAMPLED: u8 = 0x01;
/// The Trace Context Level 2 `random` trace flag (bit 1): the right-most 7 bytes of the
/// trace id are random.
pub const TRACE_FLAG_RANDOM: u8 = 0x02;
/// The flags this implementation knows; the others are reserved and are never sent.
pub const KNOWN_TRACE_FLAGS: u8 = TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM;

/// Length of a version-00 `traceparent` value: `vv-` + 32 + `-` + 16 + `-` + 2.
pub const TRACEPARENT_LEN: usize = 55;

/// A parsed `traceparent` header value.
///
/// ```
/// use telltale_trace::propagation::TraceParent;
///
/// let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
/// assert!(tp.is_sampled());
/// assert!(tp.is_random());
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
///
/// // A future version with an extra field is read, and written back as version 00.
/// let tp = TraceParent::parse(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what").unwrap();
/// assert_eq!(tp.version, 0xcc);
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
///
/// assert!(TraceParent::parse(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The version the header was sent with (`0` when built locally). Formatting always
    /// writes version `00`, the highest this implementation knows (the specification's
    /// "downgrade the version" mutation).
    pub version: u8,
    /// The trace id (never all zeroes once parsed).
    pub trace_id: TraceId,
    /// The caller's span id (never all zeroes once parsed).
    pub parent_id: SpanId,
    /// The trace flags as sent. For version 00 all eight bits are kept here; only
    /// [`KNOWN_TRACE_FLAGS`] are used and propagated.
    pub trace_flags: TraceFlags,
}

/// Why a `traceparent` value was rejected. Any of these means "start a new trace".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceParentError {
    /// The version is not two lowercase hex digits followed by `-`.
    Version,
    /// Version `ff` is forbidden by the specification.
    ForbiddenVersion,
    /// The value is shorter than 55 characters.
    TooShort,
    /// The trace id is not 32 lowercase hex digits followed by `-`.
    TraceId,
    /// The trace id is all zeroes.
    ZeroTraceId,
    /// The parent id is not 16 lowercase hex digits followed by `-`.
    ParentId,
    /// The parent id is all zeroes.
    ZeroParentId,
    /// The flags are not two lowercase hex digits.
    Flags,
    /// Data after the flags: never allowed for version 00; for higher versions only a
    /// `-`-prefixed extra field is allowed.
    TrailingData,
    /// The request carried more than one `traceparent` header.
    MultipleHeaders,
}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            TraceParentError::Version => "version is not two lowercase hex digits and a dash",
            TraceParentError::ForbiddenVersion => "version ff is forbidden",
            TraceParentError::TooShort => "shorter than 55 characters",
            TraceParentError::TraceId => "trace-id is not 32 lowercase hex digits",
            TraceParentError::ZeroTraceId => "trace-id is all zeroes",
            TraceParentError::ParentId => "parent-id is not 16 lowercase hex digits",
            TraceParentError::ZeroParentId => "parent-id is all zeroes",
            TraceParentError::Flags => "trace-flags are not two lowercase hex digits",
            TraceParentError::TrailingData => "unexpected data after trace-flags",
            TraceParentError::MultipleHeaders => "more than one traceparent header",
        };
        write!(f, "invalid traceparent: {msg}")
    }
}

impl std::error::Error for TraceParentError {}

/// Strips W3C optional whitespace (space and horizontal tab) from both ends.
pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Lowercase hex digit values; every other byte maps to `0x10` (the "bad" bit).
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut j = 0;
    while j < 6 {
        t[b'a' as usize + j] = 10 + j as u8;
        j += 1;
    }
    t
};

/// Up to 16 hex digits: the value and the OR of every digit's table entry (bit `0x10` set
/// when any byte was not lowercase hex). Branch-free: a table load, an OR and a shift
/// per digit (the first version's `u128` fold with a `match` per byte took 2.7x longer).
#[inline]
fn hex_u64(digits: &[u8]) -> (u64, u8) {
    let mut acc = 0u64;
    let mut bad = 0u8;
    for &b in digits {
        let v = HEX_VALUE[usize::from(b)];
        bad |= v;
        acc = (acc << 4) | u64::from(v & 0xf);
    }
    (acc, bad)
}

/// Parses lowercase hex (at most 32 digits) into a u128; `None` on any other byte.
pub(crate) fn parse_hex_lc(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    let split = digits.len().saturating_sub(16);
    let (hi, bad_hi) = hex_u64(&digits[..split]);
    let (lo, bad_lo) = hex_u64(&digits[split..]);
    ((bad_hi | bad_lo) & 0x10 == 0).then(|| (u128::from(hi) << 64) | u128::from(lo))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `v` as `out.len()` lowercase hex digits (zero padded).
pub(crate) fn write_hex(mut v: u128, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

impl TraceParent {
    /// A version-00 `traceparent` for a locally known span.
    pub const fn new(trace_id: TraceId, parent_id: SpanId, trace_flags: TraceFlags) -> Self {
        TraceParent {
            version: 0,
            trace_id,
            parent_id,
            trace_flags,
        }
    }

    /// Parses one `traceparent` header value, following the specification's rules:
    ///
    /// - optional whitespace (spaces, tabs) around the value is ignored;
    /// - the version must be two lowercase hex digits and a dash; `ff` is invalid;
    /// - version 00 must be exactly `00-{32 hex}-{16 hex}-{2 hex}`;
    /// - a higher version must be at least 55 characters; the first four fields are read
    ///   at the version-00 positions, and the flags must be followed by the end or `-`
    ///   (the rest, unknown fields, is ignored);
    /// - lowercase hex only, and neither id may be all zeroes.
    pub fn parse(value: &[u8]) -> Result<Self, TraceParentError> {
        let v = trim_ows(value);
        if v.len() < 3 || v[2] != b'-' {
            return Err(TraceParentError::Version);
        }
        let version = parse_hex_lc(&v[..2]).ok_or(TraceParentError::Version)? as u8;
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        if v.len() < TRACEPARENT_LEN {
            return Err(TraceParentError::TooShort);
        }
        if v[35] != b'-' {
            return Err(TraceParentError::TraceId);
        }
        let trace_id = parse_hex_lc(&v[3..35]).ok_or(TraceParentError::TraceId)?;
        if v[52] != b'-' {
            return Err(TraceParentError::ParentId);
        }
        let parent_id = parse_hex_lc(&v[36..52]).ok_or(TraceParentError::ParentId)? as u64;
        let flags = parse_hex_lc(&v[53..55]).ok_or(TraceParentError::Flags)? as u8;
        if v.len() > TRACEPARENT_LEN && (version == 0 || v[TRACEPARENT_LEN] != b'-') {
            return Err(TraceParentError::TrailingData);
        }
        if trace_id == 0 {
            return Err(TraceParentError::ZeroTraceId);
        }
        if parent_id == 0 {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(TraceParent {
            version,
            trace_id: TraceId::from(trace_id),
            parent_id: SpanId::from(parent_id),
            trace_flags: TraceFlags::new(flags),
        })
    }

    /// [`parse`](Self::parse) for a `&str`.
    pub fn parse_str(value: &str) -> Result<Self, TraceParentError> {
        Self::parse(value.as_bytes())
    }

    /// The flags this implementation understands (`sampled`, `random`); the others are
    /// reserved and ignored.
    pub fn known_flags(&self) -> TraceFlags {
        TraceFlags::new(self.trace_flags.to_u8() & KNOWN_TRACE_FLAGS)
    }

    /// Whether the `sampled` flag is set.
    pub fn is_sampled(&self) -> bool {
        self.trace_flags.to_u8() & TRACE_FLAG_SAMPLED != 0
    }

    /// Whether the Level 2 `random` flag is set.
    pub fn is_random(&self) -> bool {
        self.trace_flags.to_u8() & TRACE_FLAG_RANDOM != 0
    }

    /// The header value as version 00, with only the known flags set.
    pub fn to_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0] = b'0';
        out[1] = b'0';
        write_hex(u128::from_be_bytes(self.trace_id.to_bytes()), &mut out[3..35]);
        write_hex(
            u128::from(u64::from_be_bytes(self.parent_id.to_bytes())),
            &mut out[36..52],
        );
        write_hex(
            u128::from(self.trace_flags.to_u8() & KNOWN_TRACE_FLAGS),
            &mut out[53..55],
        );
        out
    }

    /// The header value as an [`HeaderValue`].
    pub fn to_header_value(&self) -> HeaderValue {
        // Only ASCII hex digits and dashes: always a valid header value.
        HeaderValue::from_bytes(&self.to_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(std::str::from_utf8(&bytes).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_version_00() {
        let tp = TraceParent::parse_str(VALID).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.trace_id, TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736u128));
        assert_eq!(tp.parent_id, SpanId::from(0x00f067aa0ba902b7u64));
        assert_eq!(tp.to_string(), VALID);
    }

    #[test]
    fn unknown_flags_are_not_written() {
        let tp = TraceParent::parse_str("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap();
        assert_eq!(tp.trace_flags.to_u8(), 0xff);
        assert_eq!(tp.known_flags().to_u8(), 0x03);
        assert!(tp.to_string().ends_with("-03"));
    }

    #[test]
    fn trim_ows_strips_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"\n"), b"\n");
        assert_eq!(trim_ows(b"   "), b"");
    }
}

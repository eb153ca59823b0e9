//! The W3C `tracestate` header: strict validation, size-limited propagation.

use std::fmt;

use super::traceparent::trim_ows;

/// The most list members a `tracestate` may have.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// How many characters of `tracestate` (entries, `=` and commas) are propagated: the
/// specification's floor ("SHOULD propagate at least 512 characters"). Longer states are
/// truncated by whole entries, see [`TraceState::truncate_to`].
pub const TRACESTATE_MAX_LEN: usize = 512;
/// Entries longer than this are the first to go when a `tracestate` must be truncated.
pub const TRACESTATE_LONG_ENTRY: usize = 128;

/// A validated `tracestate`: at most 32 `key=value` entries, unique keys, left-most is the
/// most recent.
///
/// Parsing is strict: one invalid member (bad key, bad value, no `=`), a duplicated key,
/// or more than 32 members makes the **whole** header invalid, and the caller discards
/// it. The specification allows either discarding the entire header or only the invalid
/// entries ("MAY"); we discard the entire header because that is what the W3C test suite
/// expects at its strict level, and because forwarding a half-understood state could
/// attribute a corrupted vendor entry to the wrong hop.
///
/// ```
/// use telltale_trace::propagation::TraceState;
///
/// let ts = TraceState::parse([&b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"[..]]).unwrap();
/// assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
/// assert_eq!(ts.to_string(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
///
/// // Multiple headers are combined in order.
/// let ts = TraceState::parse([&b"a=1"[..], b"b=2"]).unwrap();
/// assert_eq!(ts.to_string(), "a=1,b=2");
///
/// assert!(TraceState::parse([&b"a=1,a=2"[..]]).is_err()); // duplicated key
/// assert!(TraceState::parse([&b"FOO=1"[..]]).is_err());   // uppercase key
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    entries: Vec<(String, String)>,
}

/// Why a `tracestate` (or an entry for it) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceStateError {
    /// A list member without `=`.
    MissingEquals,
    /// A key that is not a `simple-key` or a `tenant@system` key.
    InvalidKey,
    /// A value that is empty, longer than 256 characters, ends with a space, or holds a
    /// character outside printable ASCII or a `,` or `=`.
    InvalidValue,
    /// The same key twice ("only one entry per key is allowed").
    DuplicateKey,
    /// More than 32 list members.
    TooManyMembers,
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            TraceStateError::MissingEquals => "a list member has no `=`",
            TraceStateError::InvalidKey => {
                "a key is not `lcalpha *(lcalpha / DIGIT / _ - * /)` or `tenant@system`"
            }
            TraceStateError::InvalidValue => {
                "a value is empty, over 256 characters, ends with a space or has a character outside printable ASCII, `,` or `=`"
            }
            TraceStateError::DuplicateKey => "a key appears twice",
            TraceStateError::TooManyMembers => "more than 32 list members",
        };
        write!(f, "invalid tracestate: {msg}")
    }
}

impl std::error::Error for TraceStateError {}

#[inline]
fn is_keychar(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// Whether `key` is a valid `tracestate` key (Trace Context Level 2 grammar):
///
/// ```text
/// key              = simple-key / multi-tenant-key
/// simple-key       = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// multi-tenant-key = tenant-id "@" system-id
/// tenant-id        = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// system-id        = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// ```
pub fn is_valid_key(key: &[u8]) -> bool {
    match key.iter().position(|&b| b == b'@') {
        None => {
            key.len() <= 256
                && key.first().is_some_and(u8::is_ascii_lowercase)
                && key.iter().all(|&b| is_keychar(b))
        }
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(|&b| is_keychar(b))
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system.iter().all(|&b| is_keychar(b))
        }
    }
}

/// Whether `value` is a valid `tracestate` value:
/// `value = 0*255(chr) nblk-chr` with `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E` and
/// `chr = %x20 / nblk-chr` (1 to 256 printable ASCII characters, no `,` or `=`, not
/// ending with a space).
pub fn is_valid_value(value: &[u8]) -> bool {
    (1..=256).contains(&value.len())
        && value.last() != Some(&b' ')
        && value
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

impl TraceState {
    /// An empty `tracestate`.
    pub const fn new() -> Self {
        TraceState { entries: Vec::new() }
    }

    /// Parses and validates the values of all `tracestate` headers of a request, in
    /// order (multiple headers are combined as if joined with `,`). Empty and
    /// whitespace-only members are allowed and skipped; spaces and tabs around members
    /// are ignored. See the type docs for what makes the header invalid.
    ///
    /// The result is not truncated; call [`truncate_to`](Self::truncate_to) before
    /// propagating it.
    pub fn parse<'a, I>(values: I) -> Result<Self, TraceStateError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let entries = parse_borrowed(values)?;
        Ok(TraceState {
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    /// Builds a state from OpenTelemetry's [`TraceState`](opentelemetry::trace::TraceState),
    /// keeping only the entries that are valid under this module's stricter rules (the
    /// first of duplicated keys, at most 32). Used when injecting, so that what we send is
    /// always a valid header whatever was put into the span context.
    pub fn from_otel(ts: &opentelemetry::trace::TraceState) -> Self {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (k, v) in ts {
            if entries.len() == TRACESTATE_MAX_MEMBERS {
                break;
            }
            if is_valid_key(k.as_bytes())
                && is_valid_value(v.as_bytes())
                && !entries.iter().any(|(ek, _)| ek == k)
            {
                entries.push((k.to_owned(), v.to_owned()));
            }
        }
        TraceState { entries }
    }

    /// OpenTelemetry's [`TraceState`](opentelemetry::trace::TraceState) with the same
    /// entries in the same order.
    ///
    /// `opentelemetry::trace::TraceState::from_key_value` (0.33) validates more loosely
    /// than we do in general (any key may start with a digit, values are only checked for
    /// `,` and `=`) but has one off-by-one the other way: it refuses a multi-tenant key
    /// whose system id is 14 characters (it allows 13; the specification allows 14). It
    /// also refuses the whole list when one entry fails. So when it refuses, the entries
    /// it would refuse are left out one by one and the rest kept, rather than losing the
    /// whole state: such an entry cannot be carried in an OpenTelemetry span context.
    pub fn to_otel(&self) -> opentelemetry::trace::TraceState {
        if self.entries.is_empty() {
            return opentelemetry::trace::TraceState::NONE;
        }
        otel_from_pairs(self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The entries, left-most (most recent) first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds or updates an entry and moves it to the front (left), as the specification
    /// requires for a modified key; when that makes 33 entries the right-most is dropped.
    pub fn insert_front(&mut self, key: &str, value: &str) -> Result<(), TraceStateError> {
        if !is_valid_key(key.as_bytes()) {
            return Err(TraceStateError::InvalidKey);
        }
        if !is_valid_value(value.as_bytes()) {
            return Err(TraceStateError::InvalidValue);
        }
        self.entries.retain(|(k, _)| k != key);
        if self.entries.len() == TRACESTATE_MAX_MEMBERS {
            self.entries.pop();
        }
        self.entries.insert(0, (key.to_owned(), value.to_owned()));
        Ok(())
    }

    /// Length of the serialised header (`k=v` entries joined by `,`).
    pub fn header_len(&self) -> usize {
        let entries: usize = self.entries.iter().map(|(k, v)| k.len() + 1 + v.len()).sum();
        entries + self.entries.len().saturating_sub(1)
    }

    /// Truncates by whole entries until the header is at most `max_len` characters, as
    /// the specification says: entries longer than 128 characters are removed first
    /// (right-most first), then entries from the end. Returns how many were removed.
    pub fn truncate_to(&mut self, max_len: usize) -> usize {
        truncate_entries(&mut self.entries, max_len)
    }
}

/// Validates all members, borrowing from the header values (see [`TraceState::parse`]).
fn parse_borrowed<'a, I>(values: I) -> Result<Vec<(&'a str, &'a str)>, TraceStateError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut entries: Vec<(&'a str, &'a str)> = Vec::new();
    for value in values {
        for member in value.split(|&b| b == b',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            if entries.len() == TRACESTATE_MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            let eq = member
                .iter()
                .position(|&b| b == b'=')
                .ok_or(TraceStateError::MissingEquals)?;
            let (key, value) = (&member[..eq], &member[eq + 1..]);
            if !is_valid_key(key) {
                return Err(TraceStateError::InvalidKey);
            }
            if !is_valid_value(value) {
                return Err(TraceStateError::InvalidValue);
            }
            // Both validated as ASCII above, so these never fail.
            let key = std::str::from_utf8(key).map_err(|_| TraceStateError::InvalidKey)?;
            let value = std::str::from_utf8(value).map_err(|_| TraceStateError::InvalidValue)?;
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(TraceStateError::DuplicateKey);
            }
            entries.push((key, value));
        }
    }
    Ok(entries)
}

/// The specification's truncation over any entry representation.
fn truncate_entries<S: AsRef<str>>(entries: &mut Vec<(S, S)>, max_len: usize) -> usize {
    let entry_len = |(k, v): &(S, S)| k.as_ref().len() + 1 + v.as_ref().len();
    let mut len = entries.iter().map(entry_len).sum::<usize>() + entries.len().saturating_sub(1);
    let mut removed = 0;
    while len > max_len && !entries.is_empty() {
        let idx = entries
            .iter()
            .rposition(|e| entry_len(e) > TRACESTATE_LONG_ENTRY)
            .unwrap_or(entries.len() - 1);
        let entry = entries.remove(idx);
        len -= entry_len(&entry) + usize::from(!entries.is_empty());
        removed += 1;
    }
    removed
}

/// OpenTelemetry's trace state from validated pairs (see [`TraceState::to_otel`]).
fn otel_from_pairs<'a, I>(pairs: I) -> opentelemetry::trace::TraceState
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    use opentelemetry::trace::TraceState as OtelTraceState;
    OtelTraceState::from_key_value(pairs.clone()).unwrap_or_else(|_| {
        OtelTraceState::from_key_value(pairs.filter(|&pair| OtelTraceState::from_key_value([pair]).is_ok()))
            .unwrap_or_default()
    })
}

/// The extraction path: validate, truncate to [`TRACESTATE_MAX_LEN`] and convert, without
/// the intermediate owned [`TraceState`]. An invalid header gives the empty state.
pub(crate) fn otel_from_headers<'a, I>(values: I) -> opentelemetry::trace::TraceState
where
    I: IntoIterator<Item = &'a [u8]>,
{
    match parse_borrowed(values) {
        Ok(mut entries) if !entries.is_empty() => {
            truncate_entries(&mut entries, TRACESTATE_MAX_LEN);
            otel_from_pairs(entries.iter().copied())
        }
        _ => opentelemetry::trace::TraceState::NONE,
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_len_counts_commas() {
        let ts = TraceState::parse([&b"a=1,bb=22"[..]]).unwrap();
        assert_eq!(ts.header_len(), ts.to_string().len());
        assert_eq!(TraceState::new().header_len(), 0);
    }

    #[test]
    fn truncate_keeps_len_accounting_exact() {
        let long = format!("long={}", "x".repeat(200));
        let raw = format!("a=1,{long},b=2,c=3");
        let mut ts = TraceState::parse([raw.as_bytes()]).unwrap();
        assert_eq!(ts.truncate_to(12), 1);
        assert_eq!(ts.to_string(), "a=1,b=2,c=3");
        assert_eq!(ts.header_len(), 11);
        assert_eq!(ts.truncate_to(3), 2);
        assert_eq!(ts.to_string(), "a=1");
    }
}

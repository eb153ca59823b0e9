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
/// expects (`test_tracestate_key_illegal_vendor_format` sends `foo@=1,bar=2` and expects
/// `bar` gone; `test_tracestate_key_length_limit` sends `foo=1` with a 257-character key
/// and expects `foo` gone), and because forwarding a half-understood state could
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
        Ok(Self::from_borrowed(parse_borrowed(values)?))
    }

    fn from_borrowed(entries: Vec<(&str, &str)>) -> Self {
        TraceState {
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
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
    ///
    /// [`TelltalePropagator`](super::TelltalePropagator) does not lose them on the way
    /// through: when an extracted state has such entries, the whole state is kept next
    /// to the span context in the OpenTelemetry `Context`, and injection puts them back
    /// for the same trace. (Exported spans, which only have OpenTelemetry's
    /// `TraceState`, still lack them.)
    pub fn to_otel(&self) -> opentelemetry::trace::TraceState {
        if self.entries.is_empty() {
            return opentelemetry::trace::TraceState::NONE;
        }
        otel_from_pairs(self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))).0
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

    /// Puts back the entries of `extracted` (the state as received) that OpenTelemetry's
    /// `TraceState` could not hold, and that this state, built from the span context's
    /// OpenTelemetry state, therefore lacks. Each goes where it was relative to the
    /// received entries still present: just before the first one that followed it, or at
    /// the end; entries added in front since (own entries, updated keys) stay in front.
    /// Then at most 32 entries are kept, the right-most dropped.
    pub(crate) fn restore_unheld(&mut self, extracted: &TraceState) {
        for (i, (key, value)) in extracted.entries.iter().enumerate() {
            if self.entries.iter().any(|(k, _)| k == key) || otel_can_hold(key, value) {
                continue;
            }
            let at = extracted.entries[i + 1..]
                .iter()
                .find_map(|next| self.entries.iter().position(|e| e == next))
                .unwrap_or(self.entries.len());
            self.entries.insert(at, (key.clone(), value.clone()));
        }
        self.entries.truncate(TRACESTATE_MAX_MEMBERS);
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
            let (key, value) = parse_member(member)?;
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(TraceStateError::DuplicateKey);
            }
            entries.push((key, value));
        }
    }
    Ok(entries)
}

/// One non-empty, OWS-trimmed list member.
fn parse_member(member: &[u8]) -> Result<(&str, &str), TraceStateError> {
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
    Ok((key, value))
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

/// OpenTelemetry's trace state from validated pairs (see [`TraceState::to_otel`]), and
/// whether it holds all of them.
fn otel_from_pairs<'a, I>(pairs: I) -> (opentelemetry::trace::TraceState, bool)
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    use opentelemetry::trace::TraceState as OtelTraceState;
    match OtelTraceState::from_key_value(pairs.clone()) {
        Ok(ts) => (ts, true),
        Err(_) => (
            OtelTraceState::from_key_value(pairs.filter(|&(k, v)| otel_can_hold(k, v))).unwrap_or_default(),
            false,
        ),
    }
}

/// Whether OpenTelemetry 0.33's `TraceState` accepts this (valid) entry: not when the key
/// is a multi-tenant key with a 14-character system id (it allows 13).
fn otel_can_hold(key: &str, value: &str) -> bool {
    opentelemetry::trace::TraceState::from_key_value([(key, value)]).is_ok()
}

/// The extraction path: validate, truncate to [`TRACESTATE_MAX_LEN`] and convert, without
/// the intermediate owned [`TraceState`]. An invalid header gives the empty state.
///
/// The second part is the whole state, in order, when OpenTelemetry's `TraceState`
/// could not hold all of it (see [`TraceState::to_otel`]); `None` in the common case,
/// which allocates nothing more.
pub(crate) fn otel_from_headers<'a, I>(values: I) -> (opentelemetry::trace::TraceState, Option<TraceState>)
where
    I: IntoIterator<Item = &'a [u8]>,
{
    match parse_borrowed(values) {
        Ok(mut entries) if !entries.is_empty() => {
            truncate_entries(&mut entries, TRACESTATE_MAX_LEN);
            let (otel, all_held) = otel_from_pairs(entries.iter().copied());
            (otel, (!all_held).then(|| TraceState::from_borrowed(entries)))
        }
        _ => (opentelemetry::trace::TraceState::NONE, None),
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

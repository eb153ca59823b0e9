//! The W3C `baggage` header: lenient member-by-member parsing, limits, percent-encoding.

use std::fmt;

use super::traceparent::trim_ows;

/// Members propagated at most (the specification's floor: "at least 64").
pub const BAGGAGE_MAX_MEMBERS: usize = 64;
/// Bytes propagated at most across all `baggage` headers (the specification's floor:
/// "at least 8,192 bytes"), counted on the serialised members and their commas.
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// One baggage list member: `key=value;property;property=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageMember {
    key: String,
    value: String,
    properties: String,
}

/// W3C Baggage as a header codec.
///
/// - Extraction reads every `baggage` header in order. Each list member is validated on
///   its own: a malformed member (no `=`, a key that is not an RFC 7230 token, a value or
///   property with a forbidden character) is dropped and the others are kept.
/// - Values are percent-decoded (invalid UTF-8 becomes U+FFFD, as the specification
///   says; a `%` not followed by two hex digits is kept literally) and percent-encoded
///   again on injection, encoding only what the specification requires: bytes outside
///   `baggage-octet`, and `%`.
/// - Properties (`;p`, `;p=v`) are kept verbatim (whitespace removed, not decoded) in
///   OpenTelemetry's `BaggageMetadata`, so they are sent on unchanged.
/// - Limits: 64 members and 8,192 bytes; a member that would exceed either is dropped
///   whole, never cut. The same limits apply when injecting.
/// - A key seen twice: the later member replaces the earlier one (OpenTelemetry's
///   `Baggage::insert` semantics).
///
/// ```
/// use telltale_trace::propagation::Baggage;
///
/// let b = Baggage::parse([&b"userId=alice, serverNode=DF%2028, bad member, isProduction=false;ttl=5"[..]]);
/// assert_eq!(b.get("serverNode"), Some("DF 28"));
/// assert_eq!(b.len(), 3); // "bad member" dropped, the rest kept
/// assert_eq!(b.to_string(), "userId=alice,serverNode=DF%2028,isProduction=false;ttl=5");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<BaggageMember>,
    /// Serialised length of `members` (with commas).
    bytes: usize,
}

/// RFC 7230 `tchar`.
#[inline]
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether `key` is an RFC 7230 token, the baggage key grammar.
pub fn is_valid_baggage_key(key: &[u8]) -> bool {
    !key.is_empty() && key.iter().all(|&b| is_tchar(b))
}

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`: printable ASCII except
/// space, `"`, `,`, `;` and `\`.
#[inline]
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

#[inline]
fn hex_any(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw`; invalid UTF-8 in the result becomes U+FFFD.
fn percent_decode(raw: &[u8]) -> String {
    if !raw.contains(&b'%') {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex_any),
                raw.get(i + 2).copied().and_then(hex_any),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Length of `value` once percent-encoded.
fn encoded_len(value: &str) -> usize {
    value
        .bytes()
        .map(|b| if is_baggage_octet(b) && b != b'%' { 1 } else { 3 })
        .sum()
}

fn percent_encode_into(value: &str, out: &mut String) {
    const HEX_UC: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if is_baggage_octet(b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UC[usize::from(b >> 4)] as char);
            out.push(HEX_UC[usize::from(b & 0xf)] as char);
        }
    }
}

/// Validates and normalises a property list (the part after the first `;`): each
/// property is `key` or `key OWS "=" OWS value`; empty properties are skipped.
/// Returns `None` if any property is malformed.
fn normalise_properties(raw: &[u8]) -> Option<String> {
    let mut out = String::new();
    for prop in raw.split(|&b| b == b';') {
        let prop = trim_ows(prop);
        if prop.is_empty() {
            continue;
        }
        let (key, value) = match prop.iter().position(|&b| b == b'=') {
            Some(eq) => (trim_ows(&prop[..eq]), Some(trim_ows(&prop[eq + 1..]))),
            None => (prop, None),
        };
        if !is_valid_baggage_key(key) || !value.is_none_or(|v| v.iter().all(|&b| is_baggage_octet(b))) {
            return None;
        }
        if !out.is_empty() {
            out.push(';');
        }
        // All bytes checked to be ASCII above.
        out.push_str(&String::from_utf8_lossy(key));
        if let Some(v) = value {
            out.push('=');
            out.push_str(&String::from_utf8_lossy(v));
        }
    }
    Some(out)
}

impl BaggageMember {
    /// Parses one list member; `None` if it is malformed.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let raw = trim_ows(raw);
        let (kv, props) = match raw.iter().position(|&b| b == b';') {
            Some(semi) => (&raw[..semi], &raw[semi + 1..]),
            None => (raw, &b""[..]),
        };
        let eq = kv.iter().position(|&b| b == b'=')?;
        let key = trim_ows(&kv[..eq]);
        let value = trim_ows(&kv[eq + 1..]);
        if !is_valid_baggage_key(key) || !value.iter().all(|&b| is_baggage_octet(b)) {
            return None;
        }
        let properties = normalise_properties(props)?;
        Some(BaggageMember {
            key: String::from_utf8_lossy(key).into_owned(),
            value: percent_decode(value),
            properties,
        })
    }

    /// A member from its parts; `None` if the key is not a token or a property is
    /// malformed. The value is any text (it is percent-encoded when sent).
    pub fn new(key: &str, value: &str, properties: &str) -> Option<Self> {
        if !is_valid_baggage_key(key.as_bytes()) {
            return None;
        }
        Some(BaggageMember {
            key: key.to_owned(),
            value: value.to_owned(),
            properties: normalise_properties(properties.as_bytes())?,
        })
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The decoded value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The properties, `;`-separated, as received (e.g. `ttl=5;secret`), or `""`.
    pub fn properties(&self) -> &str {
        &self.properties
    }

    /// Length of this member once serialised.
    pub fn encoded_len(&self) -> usize {
        let props = if self.properties.is_empty() {
            0
        } else {
            1 + self.properties.len()
        };
        self.key.len() + 1 + encoded_len(&self.value) + props
    }

    fn write_to(&self, out: &mut String) {
        out.push_str(&self.key);
        out.push('=');
        percent_encode_into(&self.value, out);
        if !self.properties.is_empty() {
            out.push(';');
            out.push_str(&self.properties);
        }
    }
}

impl Baggage {
    /// Empty baggage.
    pub const fn new() -> Self {
        Baggage {
            members: Vec::new(),
            bytes: 0,
        }
    }

    /// Parses all `baggage` header values of a request, in order. Never fails: malformed
    /// members are dropped individually, members past the limits are dropped whole.
    pub fn parse<'a, I>(values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut baggage = Baggage::new();
        for value in values {
            for raw in value.split(|&b| b == b',') {
                if trim_ows(raw).is_empty() {
                    continue;
                }
                if let Some(member) = BaggageMember::parse(raw) {
                    baggage.push(member);
                }
            }
        }
        baggage
    }

    /// Adds a member if it fits the limits (replacing a member with the same key).
    /// Returns whether it was added.
    pub fn push(&mut self, member: BaggageMember) -> bool {
        let len = member.encoded_len();
        if let Some(i) = self.members.iter().position(|m| m.key == member.key) {
            let old = self.members[i].encoded_len();
            if self.bytes - old + len > BAGGAGE_MAX_BYTES {
                return false;
            }
            self.bytes = self.bytes - old + len;
            self.members[i] = member;
            return true;
        }
        let comma = usize::from(!self.members.is_empty());
        if self.members.len() == BAGGAGE_MAX_MEMBERS || self.bytes + comma + len > BAGGAGE_MAX_BYTES {
            return false;
        }
        self.bytes += comma + len;
        self.members.push(member);
        true
    }

    /// From OpenTelemetry's baggage, ordered by key (its map has no order; sorting makes
    /// what we send, and what is dropped at the limits, deterministic). Members whose
    /// metadata is not a valid property list lose the metadata.
    pub fn from_otel(baggage: &opentelemetry::baggage::Baggage) -> Self {
        let mut all: Vec<_> = baggage.iter().collect();
        all.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut out = Baggage::new();
        for (key, (value, metadata)) in all {
            let member = BaggageMember::new(key.as_str(), value.as_str(), metadata.as_str())
                .or_else(|| BaggageMember::new(key.as_str(), value.as_str(), ""));
            if let Some(member) = member {
                out.push(member);
            }
        }
        out
    }

    /// OpenTelemetry's baggage with the same members (properties as metadata).
    pub fn to_otel(&self) -> opentelemetry::baggage::Baggage {
        let mut out = opentelemetry::baggage::Baggage::new();
        for m in &self.members {
            out.insert_with_metadata(
                m.key.clone(),
                m.value.clone(),
                opentelemetry::baggage::BaggageMetadata::from(m.properties.as_str()),
            );
        }
        out
    }

    /// [`to_otel`](Self::to_otel) without copying the strings.
    pub fn into_otel(self) -> opentelemetry::baggage::Baggage {
        let mut out = opentelemetry::baggage::Baggage::new();
        for m in self.members {
            out.insert_with_metadata(
                m.key,
                m.value,
                opentelemetry::baggage::BaggageMetadata::from(m.properties),
            );
        }
        out
    }

    /// The decoded value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.as_str())
    }

    /// The members, in header order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &BaggageMember> {
        self.members.iter()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Serialised length in bytes (never above [`BAGGAGE_MAX_BYTES`]).
    pub fn encoded_len(&self) -> usize {
        self.bytes
    }
}

impl fmt::Display for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(self.bytes);
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            m.write_to(&mut s);
        }
        f.write_str(&s)
    }
}

/// Writes `baggage` into `out` without the intermediate `String` of `Display`.
pub(crate) fn encode_into(baggage: &Baggage, out: &mut String) {
    out.reserve(baggage.bytes);
    for (i, m) in baggage.members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        m.write_to(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_bad_sequences() {
        assert_eq!(percent_decode(b"a%20b"), "a b");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
        assert_eq!(percent_decode(b"%FF"), "\u{FFFD}");
        assert_eq!(percent_decode(b"%C3%A9"), "é");
    }

    #[test]
    fn encoding_is_minimal_and_round_trips() {
        let mut s = String::new();
        percent_encode_into("a b,c;d\"e\\f%g=h/é", &mut s);
        assert_eq!(s, "a%20b%2Cc%3Bd%22e%5Cf%25g=h/%C3%A9");
        assert_eq!(encoded_len("a b,c;d\"e\\f%g=h/é"), s.len());
        assert_eq!(percent_decode(s.as_bytes()), "a b,c;d\"e\\f%g=h/é");
    }

    #[test]
    fn byte_accounting_matches_serialisation() {
        let b = Baggage::parse([&b"a=1;p, b = x%20y ;q=2;r"[..], b"c="]);
        assert_eq!(b.to_string(), "a=1;p,b=x%20y;q=2;r,c=");
        assert_eq!(b.encoded_len(), b.to_string().len());
    }
}

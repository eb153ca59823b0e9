//! Which field and header names are redacted.
//!
//! Names are compared case-insensitively and with `-` and `_` treated as the same
//! character, so the one set serves both `tracing` field names and HTTP header names.
//!
//! - **Built-in secret names** ([`DEFAULT_REDACTED`]) match as the last *segment* of a
//!   name, segments being separated by `.`, `_` or `-`: `token` redacts `token`,
//!   `access_token`, `x-auth-token` and `csrf.token`; `authorization` redacts
//!   `proxy-authorization` and `http.request.header.authorization`; `password` redacts
//!   `db.password`; `api_key` redacts `x-api-key`. A name that merely *starts* with a
//!   secret word is not redacted (`token_count`, `password_policy`, `cookies_enabled`),
//!   nor one where the word is glued to another (`tokens`, `myapikey`), so counters and
//!   flags stay readable.
//! - **Names you add** ([`Redaction::with`], `LogConfig::redact`) match the whole name
//!   only: `x-session` redacts `x-session` and `X_Session`, not `old-x-session`. Add each
//!   name you use.
//!
//! ```
//! use telltale_log::Redaction;
//!
//! let r = Redaction::default_names().with(["x-session"]);
//! assert!(r.is_redacted("Authorization"));
//! assert!(r.is_redacted("proxy-authorization"));
//! assert!(r.is_redacted("API-KEY"));
//! assert!(r.is_redacted("x-api-key"));
//! assert!(r.is_redacted("db.password"));
//! assert!(r.is_redacted("client_secret"));
//! assert!(r.is_redacted("X_Session"));
//! assert!(!r.is_redacted("token_count"));
//! assert!(!r.is_redacted("user_agent"));
//! ```

use std::sync::Arc;

/// The secret names redacted by default: as a name's last segment (see the
/// [module docs](self)), so `access_token` and `x-api-key` are redacted too.
pub const DEFAULT_REDACTED: [&str; 9] = [
    "authorization",
    "cookie",
    "set-cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
];

/// A set of names whose values are written as `"[REDACTED]"`: the built-in secret names
/// (matched as a name's last segment) unless made with [`none`](Redaction::none), plus
/// the names added with [`with`](Redaction::with) (matched whole). Cheap to clone.
///
/// The check is done for every field of every span (the JSON format works out an event
/// field's name once per thread), so it is built to be cheap: bit masks of the name
/// lengths and first letters in the set reject most names with two ANDs, and only names
/// of a matching length are compared; the built-in names are tried only for a name whose
/// last letter ends one of them.
#[derive(Clone, Debug)]
pub struct Redaction {
    /// Names matched whole (normalised).
    names: Arc<[Box<[u8]>]>,
    /// Bit `n` set when some name has length `n` (names of 64 bytes or more set bit 63).
    len_mask: u64,
    /// Bit `b & 63` set when some name starts with the (normalised) byte `b`.
    first_mask: u64,
    /// The built-in secret names are matched as the last segment of a name.
    secret_segments: bool,
}

/// The built-in secret names, normalised (see [`norm`]), as matched at the end of a name.
/// `set-cookie` needs no entry of its own: it ends in the segment `cookie`.
const SECRET_SEGMENTS: [&[u8]; 8] = [
    b"authorization",
    b"cookie",
    b"password",
    b"passwd",
    b"secret",
    b"token",
    b"api_key",
    b"apikey",
];

/// The last two bytes of each of [`SECRET_SEGMENTS`] (normalised), as `u16`: a name whose
/// own last two bytes are not among them cannot end in a secret segment. Most names
/// (`request_id`, `http.route`) are turned away by this one check, on every span field.
const SECRET_ENDINGS: [u16; SECRET_SEGMENTS.len()] = {
    let mut endings = [0; SECRET_SEGMENTS.len()];
    let mut i = 0;
    while i < SECRET_SEGMENTS.len() {
        let s = SECRET_SEGMENTS[i];
        endings[i] = u16::from_le_bytes([s[s.len() - 2], s[s.len() - 1]]);
        i += 1;
    }
    endings
};

/// Whether `name` is one of [`SECRET_SEGMENTS`] or ends in `.`, `_` or `-` and one of them.
#[inline]
fn ends_in_secret_segment(name: &[u8]) -> bool {
    let [.., penult, last] = name else {
        return false;
    };
    if !SECRET_ENDINGS.contains(&u16::from_le_bytes([norm(*penult), norm(*last)])) {
        return false;
    }
    SECRET_SEGMENTS.iter().any(|secret| {
        let Some(start) = name.len().checked_sub(secret.len()) else {
            return false;
        };
        name[start..]
            .iter()
            .rev()
            .zip(secret.iter().rev())
            .all(|(b, s)| norm(*b) == *s)
            && (start == 0 || matches!(name[start - 1], b'.' | b'_' | b'-'))
    })
}

#[inline]
fn norm(b: u8) -> u8 {
    if b == b'-' { b'_' } else { b.to_ascii_lowercase() }
}

#[inline]
fn first_bit(b: u8) -> u64 {
    1u64 << (b & 63)
}

#[inline]
fn len_bit(len: usize) -> u64 {
    1u64 << len.min(63)
}

impl Redaction {
    /// No name is redacted, not even the built-in secret names.
    pub fn none() -> Self {
        Redaction {
            names: Arc::from(Vec::new()),
            len_mask: 0,
            first_mask: 0,
            secret_segments: false,
        }
    }

    /// The [`DEFAULT_REDACTED`] names, matched as a name's last segment (see the
    /// [module docs](self)).
    pub fn default_names() -> Self {
        Redaction {
            secret_segments: true,
            ..Redaction::none()
        }
    }

    /// This set plus `names`, each matched as a whole name. Empty names are ignored.
    pub fn with<I, N>(&self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let mut all: Vec<Box<[u8]>> = self.names.to_vec();
        for name in names {
            let n: Box<[u8]> = name.as_ref().bytes().map(norm).collect();
            if !n.is_empty() && !all.contains(&n) {
                all.push(n);
            }
        }
        let len_mask = all.iter().fold(0, |m, n| m | len_bit(n.len()));
        let first_mask = all.iter().fold(0, |m, n| m | first_bit(n[0]));
        Redaction {
            names: all.into(),
            len_mask,
            first_mask,
            secret_segments: self.secret_segments,
        }
    }

    /// Whether values under `name` must be redacted.
    #[inline]
    pub fn is_redacted(&self, name: &str) -> bool {
        let name = name.as_bytes();
        (self.secret_segments && ends_in_secret_segment(name)) || self.is_added_name(name)
    }

    /// Whether `name` is one of the names added with [`with`](Redaction::with).
    #[inline]
    fn is_added_name(&self, name: &[u8]) -> bool {
        let Some(&first) = name.first() else {
            return false;
        };
        if self.len_mask & len_bit(name.len()) == 0 || self.first_mask & first_bit(norm(first)) == 0 {
            return false;
        }
        self.names
            .iter()
            .any(|n| n.len() == name.len() && n.iter().zip(name).all(|(a, b)| *a == norm(*b)))
    }
}

impl Default for Redaction {
    /// The [`DEFAULT_REDACTED`] names, matched as a name's last segment.
    fn default() -> Self {
        Redaction::default_names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_case_insensitively_and_dash_underscore_alike() {
        let r = Redaction::default();
        for n in [
            "authorization",
            "AUTHORIZATION",
            "Cookie",
            "set-cookie",
            "Set_Cookie",
            "password",
            "passwd",
            "secret",
            "token",
            "api_key",
            "api-key",
            "APIKEY",
        ] {
            assert!(r.is_redacted(n), "{n}");
        }
        for n in ["", "user", "tokens", "token_count", "authorisation"] {
            assert!(!r.is_redacted(n), "{n}");
        }
    }

    #[test]
    fn built_in_secret_names_match_as_the_last_segment_of_a_name() {
        let r = Redaction::default();
        for n in [
            // headers
            "proxy-authorization",
            "Proxy-Authorization",
            "x-api-key",
            "X-Api-Key",
            "x-apikey",
            "x-auth-token",
            "x-csrf-token",
            "set-cookie",
            // dotted and snake_case field names
            "http.request.header.authorization",
            "http.response.header.set-cookie",
            "db.password",
            "db_passwd",
            "access_token",
            "refresh_token",
            "oauth.access_token",
            "client_secret",
            "AWS_SECRET",
            "stripe.api_key",
        ] {
            assert!(r.is_redacted(n), "{n} should be redacted");
        }
        for n in [
            // a secret word at the start or glued to another word: not a secret's name
            "token_count",
            "tokens",
            "max_tokens",
            "password_policy",
            "password_changed_at",
            "cookies_enabled",
            "secretary",
            "myapikey",
            "mytoken",
            "authorization_scheme",
            // ordinary fields and headers
            "user_agent",
            "user-agent",
            "content-type",
            "request_id",
            "duration_ms",
            "x-request-id",
            ".",
            "_token_",
        ] {
            assert!(!r.is_redacted(n), "{n} should not be redacted");
        }
        // Every default name is matched by the segment rule, whole and as a suffix.
        for n in DEFAULT_REDACTED {
            assert!(r.is_redacted(n), "{n}");
            assert!(r.is_redacted(&format!("x-{n}")), "x-{n}");
            assert!(r.is_redacted(&format!("a.b_{}", n.to_uppercase())), "{n}");
        }
    }

    #[test]
    fn added_names_and_long_names_match_whole() {
        let long = "x".repeat(100);
        let r = Redaction::none().with(["X-Session", long.as_str(), ""]);
        assert!(r.is_redacted("x_session"));
        assert!(r.is_redacted(&long));
        assert!(!r.is_redacted(&"x".repeat(99)));
        assert!(!r.is_redacted("old-x-session"));
        // `none` has no built-in names, even as segments.
        assert!(!r.is_redacted("token"));
        assert!(!r.is_redacted("access_token"));
        assert!(!r.is_redacted(""));
        // Added names keep the built-in ones.
        let r = Redaction::default_names().with(["card_number"]);
        assert!(r.is_redacted("card_number") && r.is_redacted("access_token"));
        assert!(!r.is_redacted("card_number_last4"));
    }
}

//! Which field and header names are redacted.
//!
//! Names are compared case-insensitively and with `-` and `_` treated as the same
//! character, so `API-Key`, `api_key` and `Api_Key` all match `api_key`, and the one list
//! serves both `tracing` field names and HTTP header names. Matching is by whole name:
//! `token` redacts a field `token`, not `token_count` (add the exact names you use, such
//! as `access_token` or `x-api-key`).
//!
//! ```
//! use telltale_log::Redaction;
//!
//! let r = Redaction::default_names().with(["x-session"]);
//! assert!(r.is_redacted("Authorization"));
//! assert!(r.is_redacted("API-KEY"));
//! assert!(r.is_redacted("X_Session"));
//! assert!(!r.is_redacted("user_agent"));
//! ```

use std::sync::Arc;

/// The names redacted by default.
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

/// A set of names whose values are written as `"[REDACTED]"`. Cheap to clone.
///
/// The check is done for every field of every event and span, so it is built to be
/// cheap: bit masks of the name lengths and first letters in the set reject most names
/// with two ANDs, and only names of a matching length are compared.
#[derive(Clone, Debug)]
pub struct Redaction {
    names: Arc<[Box<[u8]>]>,
    /// Bit `n` set when some name has length `n` (names of 64 bytes or more set bit 63).
    len_mask: u64,
    /// Bit `b & 63` set when some name starts with the (normalised) byte `b`.
    first_mask: u64,
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
    /// No name is redacted.
    pub fn none() -> Self {
        Redaction {
            names: Arc::from(Vec::new()),
            len_mask: 0,
            first_mask: 0,
        }
    }

    /// The [`DEFAULT_REDACTED`] names.
    pub fn default_names() -> Self {
        Redaction::none().with(DEFAULT_REDACTED)
    }

    /// This set plus `names`. Empty names are ignored.
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
        }
    }

    /// Whether values under `name` must be redacted.
    #[inline]
    pub fn is_redacted(&self, name: &str) -> bool {
        let name = name.as_bytes();
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
    /// The [`DEFAULT_REDACTED`] names.
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
        for n in ["", "user", "tokens", "token_count", "authorisation", "x-api-key"] {
            assert!(!r.is_redacted(n), "{n}");
        }
    }

    #[test]
    fn added_names_and_long_names_work() {
        let long = "x".repeat(100);
        let r = Redaction::none().with(["X-Session", long.as_str(), ""]);
        assert!(r.is_redacted("x_session"));
        assert!(r.is_redacted(&long));
        assert!(!r.is_redacted(&"x".repeat(99)));
        assert!(!r.is_redacted("token"));
        assert!(!r.is_redacted(""));
    }
}

//! HTTP method normalisation.
//!
//! Metric labels and span names must come from a closed set, or a client sending
//! random methods creates unbounded series. Following the OpenTelemetry HTTP semantic
//! conventions, the nine standard methods keep their name and every other method
//! becomes [`OTHER`].
//!
//! ```
//! use http::Method;
//! use telltale_core::method::{normalize, OTHER};
//!
//! assert_eq!(normalize(&Method::PATCH), "PATCH");
//! assert_eq!(normalize(&Method::from_bytes(b"get").unwrap()), OTHER); // methods are case-sensitive
//! ```

use http::Method;

/// The label for any non-standard method.
pub const OTHER: &str = "_OTHER";

/// The normalised, `'static` label of a method: the standard name or [`OTHER`].
pub fn normalize(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => OTHER,
    }
}

/// Whether a method is idempotent per RFC 9110 (safe to retry without the caller's say-so).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name_and_others_become_other() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            assert_eq!(normalize(&Method::from_bytes(m.as_bytes()).unwrap()), m);
        }
        for m in ["PURGE", "get", "FOO", "PROPFIND"] {
            assert_eq!(normalize(&Method::from_bytes(m.as_bytes()).unwrap()), OTHER);
        }
    }

    #[test]
    fn post_and_patch_are_not_idempotent() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}

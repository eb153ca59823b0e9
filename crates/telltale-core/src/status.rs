//! `'static` label strings for status codes, so a metric label never allocates.
//!
//! ```
//! use http::StatusCode;
//! assert_eq!(telltale_core::status::label(StatusCode::NOT_FOUND), "404");
//! assert_eq!(telltale_core::status::label(StatusCode::from_u16(799).unwrap()), "799");
//! ```

use http::StatusCode;

const fn digits() -> [[u8; 3]; 900] {
    let mut out = [[0u8; 3]; 900];
    let mut i = 0;
    while i < 900 {
        let n = i + 100;
        out[i] = [
            b'0' + (n / 100) as u8,
            b'0' + ((n / 10) % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        i += 1;
    }
    out
}

static DIGITS: [[u8; 3]; 900] = digits();

/// The three-digit decimal label of a status code, without allocating.
pub fn label(status: StatusCode) -> &'static str {
    let code = status.as_u16();
    // StatusCode guarantees 100..=999.
    let idx = usize::from(code.saturating_sub(100)).min(899);
    std::str::from_utf8(&DIGITS[idx]).unwrap_or("_OTHER")
}

/// The label for a numeric code, for callers that only have a `u16` (e.g. 499 for a
/// client that hung up). Values outside 100..=999 become `_OTHER`.
pub fn label_u16(code: u16) -> &'static str {
    match StatusCode::from_u16(code) {
        Ok(s) => label(s),
        Err(_) => "_OTHER",
    }
}

/// The status label recorded for a request whose client went away before the
/// response was complete (nginx's convention; not a real HTTP status).
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_label() {
        for code in 100u16..=999 {
            assert_eq!(label_u16(code), code.to_string());
        }
        assert_eq!(label_u16(42), "_OTHER");
    }
}

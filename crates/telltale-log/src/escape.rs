//! JSON string escaping into a byte buffer, without allocating.
//!
//! Everything that is not plain printable text is escaped: `"` and `\`, every C0 control
//! character (so newlines, carriage returns, NUL and the ESC of ANSI sequences never
//! reach the output raw), DEL, every C1 control character (U+0080 to U+009F: U+0085 NEL
//! is a line break for some readers, U+009B the one-byte CSI that starts a terminal
//! escape sequence), and U+2028/U+2029 (valid JSON, but line breaks for JavaScript and
//! some log shippers). The input is `&str`, so it is valid UTF-8; bytes
//! that were not (header values, `Debug` of byte strings) have already been replaced or
//! escaped by the code that turned them into text.

use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 0: copy; b'u': `\u00XX`; other: the letter after the backslash; b'E': maybe U+2028/9;
/// b'C': maybe a C1 control (U+0080 to U+009F are C2 80 to C2 9F).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x7f] = b'u';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0xe2] = b'E';
    t[0xc2] = b'C';
    t
};

#[inline(always)]
fn may_need_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f || b == 0xe2 || b == 0xc2
}

/// Length of a prefix of `bytes` made of plain printable ASCII (0x20 to 0x7e except `"`
/// and `\`), which is copied as is: whole eight-byte words (SWAR on `u64`, branch-free
/// within a word), then the tail if it is plain too. It stops at the first word holding
/// anything else, non-ASCII included; [`may_need_escape`] then takes over byte by byte.
/// Through `server_layer()`, one request's escaping went from 2,222 to 1,342
/// instructions with it (callgrind).
#[inline]
fn plain_prefix(bytes: &[u8]) -> usize {
    let (words, _) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        if !plain_word(*word) {
            return i * 8;
        }
    }
    // The last 1-7 bytes: the last eight (overlapping), or padded with a plain byte.
    if plain_word(telltale_core::ascii::last_word(bytes, b'a')) {
        bytes.len()
    } else {
        words.len() * 8
    }
}

/// Whether all eight bytes are plain printable ASCII (see [`plain_prefix`]).
#[inline(always)]
fn plain_word(word: [u8; 8]) -> bool {
    telltale_core::ascii::word_is_printable(word, 0x20, [b'"', b'\\'])
}

/// Appends the escaped form of `s` (without surrounding quotes).
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Fast path: most strings (keys, methods, routes, ids) need no escaping at all.
    let plain = plain_prefix(bytes);
    if plain == bytes.len() {
        out.extend_from_slice(bytes);
        return;
    }
    let Some(first) = bytes[plain..].iter().position(|&b| may_need_escape(b)) else {
        out.extend_from_slice(bytes);
        return;
    };
    let first = plain + first;
    let mut start = 0;
    let mut i = first;
    while i < bytes.len() {
        let b = bytes[i];
        let e = ESCAPE[b as usize];
        if e == 0 {
            i += 1;
            continue;
        }
        if e == b'E' {
            // U+2028 is E2 80 A8, U+2029 is E2 80 A9.
            if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
            } else {
                i += 1;
            }
            continue;
        }
        if e == b'C' {
            // U+0080 to U+009F: the second byte is the code point.
            match bytes.get(i + 1) {
                Some(&c1 @ 0x80..=0x9f) => {
                    out.extend_from_slice(&bytes[start..i]);
                    out.extend_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(c1 >> 4)],
                        HEX[usize::from(c1 & 0xf)],
                    ]);
                    i += 2;
                    start = i;
                }
                _ => i += 1,
            }
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if e == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', e]);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `s` as a quoted JSON string.
pub(crate) fn quoted_into(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// A `fmt::Write` that escapes as it goes, so `Debug`/`Display` output is written
/// straight into the line without an intermediate `String`.
pub(crate) struct EscapingWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl fmt::Write for EscapingWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

/// Appends any `Debug` value as a quoted, escaped JSON string.
pub(crate) fn debug_quoted_into(out: &mut Vec<u8>, value: &dyn fmt::Debug) {
    use fmt::Write as _;
    out.push(b'"');
    // Writing into a Vec cannot fail; a Debug impl that returns Err leaves partial text,
    // which is still a valid string once closed.
    let _ = write!(EscapingWriter(out), "{value:?}");
    out.push(b'"');
}

/// Appends a finite float as a JSON number, and NaN/±inf as the strings `"NaN"`, `"inf"`, `"-inf"`.
pub(crate) fn f64_into(out: &mut Vec<u8>, v: f64) {
    use std::io::Write as _;
    if v.is_finite() && v.abs() < 1e12 {
        // Fast path for values with at most three decimals (durations in ms with µs
        // precision): exact, since `m / 1000.0 == v` means the decimal text parses back to v.
        let m = (v * 1000.0).round();
        if m / 1000.0 == v {
            if v < 0.0 {
                out.push(b'-');
            }
            let m = m.abs() as u64;
            u64_into(out, m / 1000);
            let frac = m % 1000;
            if frac != 0 {
                let digits = [
                    b'.',
                    b'0' + (frac / 100) as u8,
                    b'0' + (frac / 10 % 10) as u8,
                    b'0' + (frac % 10) as u8,
                ];
                let len = if frac.is_multiple_of(100) {
                    2
                } else if frac.is_multiple_of(10) {
                    3
                } else {
                    4
                };
                out.extend_from_slice(&digits[..len]);
            }
            return;
        }
    }
    if v.is_finite() {
        // Rust's `Display` for f64 never uses exponent notation: always a valid JSON number.
        let _ = write!(out, "{v}");
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"inf\"");
    } else {
        out.extend_from_slice(b"\"-inf\"");
    }
}

/// Appends an unsigned integer as a JSON number, without the `fmt` machinery.
pub(crate) fn u64_into(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a signed integer as a JSON number.
pub(crate) fn i64_into(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    u64_into(out, v.unsigned_abs());
}

/// Appends a (128-bit) integer as a JSON number.
pub(crate) fn int_into(out: &mut Vec<u8>, v: impl fmt::Display) {
    use std::io::Write as _;
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut v = Vec::new();
        quoted_into(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(esc("plain"), r#""plain""#);
        assert_eq!(esc("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(esc("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(esc("\u{0}\u{1b}[31m\u{7f}"), r#""\u0000\u001b[31m\u007f""#);
        assert_eq!(esc("x\u{2028}y\u{2029}z"), r#""x\u2028y\u2029z""#);
        assert_eq!(esc("é€😀"), "\"é€😀\"");
    }

    #[test]
    fn c1_control_characters_are_escaped() {
        // NEL splits lines for some readers; U+009B is the one-byte CSI of terminals.
        assert_eq!(
            esc("a\u{80}b\u{85}c\u{9b}31md\u{9f}"),
            r#""a\u0080b\u0085c\u009b31md\u009f""#
        );
        // Their neighbours in the C2 block are printable and stay as they are.
        assert_eq!(esc("\u{a0}£\u{bf}"), "\"\u{a0}£\u{bf}\"");
        // Escaped as they come through `Debug`/`Display` too.
        let mut v = Vec::new();
        debug_quoted_into(&mut v, &format_args!("x\u{85}y"));
        assert_eq!(String::from_utf8(v).unwrap(), r#""x\u0085y""#);
    }

    /// The escaping rules, one char at a time, as the module docs state them.
    fn reference(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn the_word_at_a_time_scan_agrees_with_the_rules_at_every_length_and_position() {
        let specials: Vec<char> = (0u32..0x80)
            .chain([
                0x80, 0x85, 0x9b, 0x9f, 0xa0, 0xa3, 0xe9, 0x2027, 0x2028, 0x2029, 0x202a, 0x20ac, 0x1f600,
            ])
            .filter_map(char::from_u32)
            .collect();
        for len in 1..=24 {
            let plain: Vec<char> = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert_eq!(
                esc(&plain.iter().collect::<String>()),
                reference(&plain.iter().collect::<String>())
            );
            for at in 0..len {
                for &c in &specials {
                    let mut text = plain.clone();
                    text[at] = c;
                    let text: String = text.into_iter().collect();
                    assert_eq!(esc(&text), reference(&text), "{text:?}");
                }
            }
        }
        // Whole words are skipped; the tail counts only when it is plain too.
        for b in 0..=u8::MAX {
            let plain = (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\';
            let in_word = [b'a', b'b', b'c', b, b'd', b'e', b'f', b'g', b'h'];
            assert_eq!(plain_prefix(&in_word), if plain { 9 } else { 0 }, "{b:#x}");
            let in_tail = [b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', b'i', b];
            assert_eq!(plain_prefix(&in_tail), if plain { 10 } else { 8 }, "{b:#x}");
        }
    }

    #[test]
    fn every_escaped_string_round_trips_through_serde_json() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = esc(&all);
        assert!(!out.contains('\n'));
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn floats_round_trip_exactly() {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            1.0,
            1.25,
            12.345,
            0.001,
            0.1,
            0.3,
            1234.567,
            -2.5,
            1e-9,
            1e15,
            123.4567,
            0.000_5,
            999_999_999.999,
        ];
        values.extend((0..5000).map(|i| f64::from(i) * 0.001 + 0.0007 * f64::from(i % 7)));
        for v in values {
            let mut out = Vec::new();
            f64_into(&mut out, v);
            let text = String::from_utf8(out).unwrap();
            let back: f64 = text.parse().unwrap(); // std parsing is correctly rounded; serde_json may be 1 ulp off
            assert_eq!(back, v, "{v} written as {text}");
        }
    }

    #[test]
    fn integers_match_display() {
        for v in [0i64, 1, -1, 9, 10, 99, 100, 12345, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            i64_into(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
        let mut out = Vec::new();
        u64_into(&mut out, u64::MAX);
        assert_eq!(String::from_utf8(out).unwrap(), u64::MAX.to_string());
    }

    #[test]
    fn long_plain_and_mixed_strings_escape_like_the_short_path() {
        let s = format!(
            "{}\n{}\"{}\u{2028}",
            "a".repeat(37),
            "b".repeat(16),
            "c".repeat(15)
        );
        assert_eq!(serde_json::from_str::<String>(&esc(&s)).unwrap(), s);
        assert!(!esc(&s).contains('\n'));
    }

    #[test]
    fn non_finite_floats_are_strings() {
        let mut v = Vec::new();
        for f in [1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, 1e-9] {
            f64_into(&mut v, f);
            v.push(b',');
        }
        let s = String::from_utf8(v).unwrap();
        let parsed: Vec<serde_json::Value> =
            serde_json::from_str(&format!("[{}]", s.trim_end_matches(','))).unwrap();
        assert_eq!(parsed[0], 1.5);
        assert_eq!(parsed[1], "NaN");
        assert_eq!(parsed[2], "inf");
        assert_eq!(parsed[3], "-inf");
        assert!(parsed[4].is_number() && parsed[5].is_number());
    }
}

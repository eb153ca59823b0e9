//! Eight bytes at a time (SWAR on a `u64`): the one word test behind request-id
//! validation (telltale-core) and JSON escaping (telltale-log), and the hex digits of
//! generated request ids and of trace and span ids.
//!
//! ```
//! use telltale_core::ascii::word_is_printable;
//!
//! assert!(word_is_printable(*b"abc-1234", 0x21, [b'"']));
//! assert!(!word_is_printable(*b"abc 1234", 0x21, [b'"']));
//! assert!(!word_is_printable(*b"abc\"1234", 0x21, [b'"']));
//! assert!(!word_is_printable(*b"abc\x7f1234", 0x20, []));
//! ```

/// Whether every byte of `word` is ASCII from `lowest` to `0x7e` and none is one of
/// `excluded`. Branch-free; with constant arguments it inlines to about 16 instructions.
///
/// `lowest` must be from `0x01` to `0x7f`, and the excluded bytes below `0x80`.
#[inline(always)]
pub fn word_is_printable<const N: usize>(word: [u8; 8], lowest: u8, excluded: [u8; N]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let x = u64::from_ne_bytes(word);
    // With every byte below 0x80 (the first test), no addition below carries out of its
    // byte, and each leaves its answer in the byte's high bit. If a byte is 0x80 or
    // above, the carries may garble the other tests, but the first one already fails.
    let at_least_lowest = x.wrapping_add(ONES * u64::from(0x80 - (lowest & 0x7f)));
    let at_most_7e = !x.wrapping_add(ONES);
    let mut all = at_least_lowest & at_most_7e;
    for c in excluded {
        all &= (x ^ (ONES * u64::from(c & 0x7f))).wrapping_add(ONES * 0x7f);
    }
    (x & HIGH == 0) & (all & HIGH == HIGH)
}

/// The word to test for the end of `bytes`: its last eight bytes when it has eight or
/// more (overlapping the words before, which a test for "every byte is …" does not mind);
/// otherwise its bytes, some repeated, padded with `pad`. Never copies byte by byte nor
/// calls `memcpy` (a `copy_from_slice` of a variable length does, and for a few bytes the
/// call costs more than the test).
///
/// ```
/// use telltale_core::ascii::last_word;
///
/// assert_eq!(&last_word(b"0123456789", b'a'), b"23456789");
/// assert_eq!(&last_word(b"xyz", b'a'), b"xyyzaaaa");
/// assert_eq!(&last_word(b"", b'a'), b"aaaaaaaa");
/// ```
#[inline]
pub fn last_word(bytes: &[u8], pad: u8) -> [u8; 8] {
    let n = bytes.len();
    if let Some(last) = bytes.last_chunk::<8>() {
        return *last;
    }
    let p = pad;
    match bytes {
        [] => [p; 8],
        [a] => [*a, p, p, p, p, p, p, p],
        [a, b] => [*a, *b, p, p, p, p, p, p],
        [a, b, c] => [*a, *b, *b, *c, p, p, p, p],
        _ => [
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3],
            bytes[n - 4],
            bytes[n - 3],
            bytes[n - 2],
            bytes[n - 1],
        ],
    }
}

/// The eight lower-case hex digits of `w`, most significant first.
///
/// SWAR: spread the nibbles into the bytes of a `u64`, then add `'0'`, or `'a' - 10`, per
/// byte. About five times fewer instructions than a table lookup per digit.
#[inline]
pub(crate) fn hex8(w: u32) -> [u8; 8] {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    let mut x = u64::from(w);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // Nibble k is now byte k; a byte is 10 or more iff adding 6 carries into bit 4.
    let letters = ((x + ONES * 6) >> 4) & ONES;
    (x + ONES * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_word_holds_exactly_the_bytes_of_the_end() {
        let text = b"abcdefghij";
        for n in 0..=text.len() {
            let word = last_word(&text[..n], b'#');
            let from = n.saturating_sub(8);
            for &b in &text[from..n] {
                assert!(word.contains(&b), "{n}: {word:?}");
            }
            for b in word {
                assert!(b == b'#' || text[from..n].contains(&b), "{n}: {word:?}");
            }
            assert_eq!(word.contains(&b'#'), n < 4, "{n}: {word:?}");
        }
    }

    #[test]
    fn hex8_matches_the_formatter() {
        for w in [
            0,
            1,
            9,
            10,
            15,
            16,
            0xabcdef01,
            0x0123_4567,
            0x89ab_cdef,
            u32::MAX,
        ] {
            assert_eq!(std::str::from_utf8(&hex8(w)).unwrap(), format!("{w:08x}"));
        }
        let mut w = 0x9e37_79b9u32;
        for _ in 0..10_000 {
            w = w.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f);
            assert_eq!(std::str::from_utf8(&hex8(w)).unwrap(), format!("{w:08x}"));
        }
    }

    #[test]
    fn agrees_with_a_byte_by_byte_check_for_every_byte_at_every_position() {
        for lowest in [0x20, 0x21] {
            for at in 0..8 {
                for b in 0..=u8::MAX {
                    let mut word = *b"abcdefgh";
                    word[at] = b;
                    let want = (lowest..=0x7e).contains(&b) && b != b'"' && b != b'\\';
                    assert_eq!(
                        word_is_printable(word, lowest, [b'"', b'\\']),
                        want,
                        "{b:#x} at {at}"
                    );
                }
            }
        }
    }
}

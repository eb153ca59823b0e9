//! Eight bytes at a time (SWAR on a `u64`): the one word test behind request-id
//! validation (telltale-core) and JSON escaping (telltale-log).
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

#[cfg(test)]
mod tests {
    use super::*;

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

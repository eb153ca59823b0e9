//! Masking credentials in error texts.
//!
//! A failing dependency check reports its error on `/readyz?verbose`, in JSON detail and
//! in a log line. Driver errors sometimes echo the connection string they were given, so
//! every [`CheckError`](crate::CheckError) is passed through [`redact_credentials`] when it
//! is created: the password of anything URL-shaped (`scheme://user:password@host`) and
//! the value of `password=`/`passwd=`/`pwd=` pairs become `***`.
//!
//! ```
//! use telltale_health::redact::redact_credentials;
//!
//! assert_eq!(
//!     redact_credentials("cannot reach postgres://app:hunter2@db:5432/orders"),
//!     "cannot reach postgres://app:***@db:5432/orders",
//! );
//! assert_eq!(
//!     redact_credentials("host=db user=app password=hunter2 dbname=orders"),
//!     "host=db user=app password=*** dbname=orders",
//! );
//! assert_eq!(redact_credentials("nothing secret"), "nothing secret");
//! ```

use std::borrow::Cow;

/// The replacement for a masked secret.
pub const MASK: &str = "***";

const KEYS: [&str; 3] = ["password", "passwd", "pwd"];

/// Returns `text` with URL passwords and `password=...` values replaced by [`MASK`].
///
/// This errs on the side of masking too much: in a URL everything between the first `:`
/// after `://` and the last `@` of the authority is masked, even when the password itself
/// contains unescaped `@` or `/`.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if text.contains("://") {
        out = Cow::Owned(mask_urls(&out));
    }
    let lower = out.to_ascii_lowercase();
    if KEYS.iter().any(|k| lower.contains(k)) {
        out = Cow::Owned(mask_pairs(&out));
    }
    out
}

fn is_url_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')' | ']' | '}' | ',' | ';')
}

fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find("://") {
        let start = p + 3;
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let seg_len = tail.find(is_url_end).unwrap_or(tail.len());
        let seg = &tail[..seg_len];
        match (seg.rfind('@'), seg.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&seg[..=colon]);
                out.push_str(MASK);
                out.push_str(&seg[at..]);
            }
            _ => out.push_str(seg),
        }
        rest = &tail[seg_len..];
    }
    out.push_str(rest);
    out
}

fn mask_pairs(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        for key in KEYS {
            let preceded_by_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            if !preceded_by_word && lower[i..].starts_with(key) {
                // key, optional spaces, `=` or `:`, optional spaces, value
                let mut j = i + key.len();
                // a JSON or quoted key: `"password": ...`
                if j < text.len() && matches!(bytes[j], b'"' | b'\'') {
                    j += 1;
                }
                while j < text.len() && bytes[j] == b' ' {
                    j += 1;
                }
                if j < text.len() && matches!(bytes[j], b'=' | b':') && !text[j..].starts_with("://") {
                    j += 1;
                    while j < text.len() && bytes[j] == b' ' {
                        j += 1;
                    }
                    out.push_str(&text[i..j]);
                    let end = value_end(text, j);
                    let quote = bytes.get(j).copied().filter(|b| matches!(b, b'\'' | b'"'));
                    if let Some(q) = quote {
                        out.push(char::from(q));
                        out.push_str(MASK);
                        if end > j + 1 && bytes[end - 1] == q {
                            out.push(char::from(q));
                        }
                    } else if end > j {
                        out.push_str(MASK);
                    }
                    i = end;
                    continue 'scan;
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// End (exclusive) of the value starting at `start`: a quoted string up to and including
/// its closing quote, or a bare word up to whitespace or a separator.
fn value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    match bytes.get(start) {
        Some(&q) if q == b'\'' || q == b'"' => text[start + 1..]
            .find(char::from(q))
            .map(|k| start + 1 + k + 1)
            .unwrap_or(text.len()),
        _ => text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ';' | ',' | '"' | '\'' | ')' | '}'))
            .map(|k| start + k)
            .unwrap_or(text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked() {
        let cases = [
            ("postgres://u:p@h/db", "postgres://u:***@h/db"),
            (
                "redis://:secret@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "x 'mysql://root:p@ss@w0rd@db:3306' y",
                "x 'mysql://root:***@db:3306' y",
            ),
            ("a http://host:8080/p b", "a http://host:8080/p b"),
            ("http://user@host/", "http://user@host/"),
            (
                "two: postgres://a:one@h1 and amqp://b:two@h2/vhost",
                "two: postgres://a:***@h1 and amqp://b:***@h2/vhost",
            ),
            ("ünïcode postgres://ü:ß@h", "ünïcode postgres://ü:***@h"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_credentials(input), want, "{input}");
        }
    }

    #[test]
    fn password_pairs_are_masked() {
        let cases = [
            ("password=abc host=x", "password=*** host=x"),
            ("PASSWORD = abc;", "PASSWORD = ***;"),
            ("Server=x;Pwd=abc;User=y", "Server=x;Pwd=***;User=y"),
            ("password='a b c' rest", "password='***' rest"),
            ("{\"password\":\"abc\"}", "{\"password\":\"***\"}"),
            ("?user=a&password=abc&x=1", "?user=a&password=***&x=1"),
            ("wrong password for user", "wrong password for user"),
            ("newpwd=abc", "newpwd=abc"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_credentials(input), want, "{input}");
        }
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        assert!(matches!(
            redact_credentials("connection refused"),
            Cow::Borrowed(_)
        ));
    }
}

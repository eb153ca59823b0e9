//! Masking credentials in error texts.
//!
//! A failing dependency check reports its error on `/readyz?verbose`, in JSON detail and
//! in a log line. Driver errors sometimes echo the connection string they were given, so
//! every [`CheckError`](crate::CheckError) is passed through [`redact_credentials`] when it
//! is created: the password of anything URL-shaped (`scheme://user:password@host`) and
//! the value of secret-looking pairs become `***`. A pair's key is one of
//! `password`/`passwd`/`pwd` (then `=` or `:`), or `secret`, `token`, `api_key`, `apikey`,
//! `api-key`, `access_key`, `private_key` (then `=`, or `:` after a quoted key as in JSON:
//! a bare `token:` is too common in parser errors), also at the end of a longer key
//! (`DB_PASSWORD=`, `sslpassword=`, `client_secret=`, `access_token=`).
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

/// Key endings whose value is masked, and whether a bare `:` may separate the value (else
/// only `=`, or `:` after a quoted key).
const KEYS: [(&str, bool); 10] = [
    ("password", true),
    ("passwd", true),
    ("pwd", true),
    ("secret", false),
    ("token", false),
    ("api_key", false),
    ("apikey", false),
    ("api-key", false),
    ("access_key", false),
    ("private_key", false),
];

/// Returns `text` with URL passwords and the values of secret-looking pairs
/// (`password=...`, `api_key=...`, see the [module docs](self)) replaced by [`MASK`].
///
/// This errs on the side of masking too much: in a URL everything between the first `:`
/// after `://` and the last `@` before the next whitespace or quote is masked, even when
/// the password itself holds unescaped `@`, `/`, `)`, `,`, `;` or `'` (all of which real
/// passwords do, and the `url` crate prints back unescaped).
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if text.contains("://") {
        out = Cow::Owned(mask_urls(&out));
    }
    let lower = out.to_ascii_lowercase();
    if KEYS.iter().any(|(k, _)| lower.contains(k)) {
        out = Cow::Owned(mask_pairs(&out));
    }
    out
}

/// Where the text that may hold a URL's credentials ends. Not at `)`, `,`, `;` or `'`:
/// a password may hold them, and stopping there would leave the password's start unmasked.
fn is_url_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '<' | '>' | '`')
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
        for (key, bare_colon) in KEYS {
            // Also at the end of a longer key (`DB_PASSWORD`, `client_secret`).
            if lower[i..].starts_with(key) {
                // key, optional spaces, `=` or `:`, optional spaces, value
                let mut j = i + key.len();
                // a JSON or quoted key: `"password": ...`
                let quoted = j < text.len() && matches!(bytes[j], b'"' | b'\'');
                if quoted {
                    j += 1;
                }
                while j < text.len() && bytes[j] == b' ' {
                    j += 1;
                }
                let colon_ok = bare_colon || quoted;
                if j < text.len()
                    && (bytes[j] == b'=' || (bytes[j] == b':' && colon_ok))
                    && !text[j..].starts_with("://")
                {
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
            // Password characters that end a URL in prose do not end it here.
            ("postgres://app:a)b@h/db", "postgres://app:***@h/db"),
            ("postgres://app:a,b@h/db", "postgres://app:***@h/db"),
            ("postgres://app:a;b@h/db", "postgres://app:***@h/db"),
            ("x 'postgres://app:it's@h/db' y", "x 'postgres://app:***@h/db' y"),
            (
                "connect (postgres://app:Xy9)kq,7@db:5432/orders): refused",
                "connect (postgres://app:***@db:5432/orders): refused",
            ),
            // A comma after the host still ends nothing that needs masking.
            ("postgres://u:p@h, retrying", "postgres://u:***@h, retrying"),
            ("(see http://host:8080/p), done", "(see http://host:8080/p), done"),
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
            // At the end of a longer key.
            ("newpwd=abc", "newpwd=***"),
            ("DB_PASSWORD=abc x", "DB_PASSWORD=*** x"),
            ("host=db sslpassword=abc", "host=db sslpassword=***"),
            // Other secret-looking keys.
            (
                "GET http://h/x?api_key=S&y=1 answered 503",
                "GET http://h/x?api_key=***&y=1 answered 503",
            ),
            ("access_token=S&x=1", "access_token=***&x=1"),
            ("client_secret = S, next", "client_secret = ***, next"),
            ("X-Api-Key=S", "X-Api-Key=***"),
            ("aws_secret_access_key=S", "aws_secret_access_key=***"),
            ("{\"token\": \"S\"}", "{\"token\": \"***\"}"),
            // A bare `token:` is a parser's wording, not a secret.
            ("unexpected token: `}`", "unexpected token: `}`"),
            ("tokens=5 max_tokens=9", "tokens=5 max_tokens=9"),
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

//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;

/// The value of the sample `name{...}` whose labels include every `labels` pair.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text, name, labels).into_iter().next()
}

/// Every value of `name{...}` whose labels include every `labels` pair.
pub fn samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let inner = if rest.is_empty() {
                ""
            } else {
                rest.strip_prefix('{')?.strip_suffix('}')?
            };
            labels
                .iter()
                .all(|(k, v)| split_labels(inner).any(|(lk, lv)| lk == *k && lv == *v))
                .then(|| value.parse().ok())?
        })
        .collect()
}

/// The label names and values of a series' `{...}` content (values without quotes).
pub fn split_labels(inner: &str) -> impl Iterator<Item = (&str, &str)> {
    inner.split("\",").filter(|s| !s.is_empty()).filter_map(|kv| {
        let (k, v) = kv.split_once("=\"")?;
        Some((k.trim_start_matches(','), v.trim_end_matches('"')))
    })
}

/// The label sets (the `{...}` contents) of `name`'s series.
pub fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, _) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            rest.strip_prefix('{')?.strip_suffix('}')
        })
        .collect()
}

/// Polls `check` until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `app` on 127.0.0.1:0; the server task ends with the test's runtime.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One sample of a parsed exposition, label values unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl ParsedSample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text format (0.0.4) strictly, as Prometheus does: each family's
/// `# HELP` and `# TYPE` at most once and before its samples, all samples of a family
/// together, label values with only the `\\`, `\"` and `\n` escapes.
pub fn parse_text_format(text: &str) -> Result<Vec<ParsedSample>, String> {
    use std::collections::{HashMap, HashSet};

    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    // Moves to `family`, closing the one before; a family seen before cannot reopen.
    let mut enter = |family: &str, current: &mut Option<String>, line: &str| -> Result<(), String> {
        if current.as_deref() == Some(family) {
            return Ok(());
        }
        if closed.contains(family) {
            return Err(format!("family {family} is not contiguous, at: {line}"));
        }
        if let Some(prev) = current.replace(family.to_owned()) {
            closed.insert(prev);
        }
        Ok(())
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !helped.insert(name.to_owned()) {
                return Err(format!("second HELP for {name}"));
            }
            enter(name, &mut current, line)?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE line: {line}"))?;
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(format!("second TYPE for {name}"));
            }
            enter(name, &mut current, line)?;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line)?;
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample.name.strip_suffix(suffix))
            .find(|base| {
                matches!(
                    types.get(*base).map(String::as_str),
                    Some("histogram" | "summary")
                )
            })
            .unwrap_or(&sample.name)
            .to_owned();
        enter(&family, &mut current, line)?;
        samples.push(sample);
    }
    Ok(samples)
}

fn parse_sample(line: &str) -> Result<ParsedSample, String> {
    let bad = |why: &str| format!("{why}: {line}");
    let name_end = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    {
        return Err(bad("bad metric name"));
    }
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                r = after;
                break;
            }
            let (key, after) = r.split_once("=\"").ok_or_else(|| bad("bad label"))?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad("bad label name"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(bad("unterminated label value")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err(bad("invalid escape in label value")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            r = &after[end + 1..];
            r = r.strip_prefix(',').unwrap_or(r);
        }
        rest = r;
    }
    let value = rest
        .trim_start()
        .split(' ')
        .next()
        .ok_or_else(|| bad("no value"))?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| bad("bad value"))?,
    };
    Ok(ParsedSample {
        name: name.to_owned(),
        labels,
        value,
    })
}

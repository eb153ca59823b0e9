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

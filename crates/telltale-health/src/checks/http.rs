//! HTTP GET check (feature `http-check`).

use std::ops::RangeInclusive;

use crate::{CheckError, ReadinessCheck};

/// Healthy when `GET url` answers with a status in the expected range (default
/// `200..=299`). Uses a plain-HTTP `reqwest::Client` unless you pass your own with
/// [`HttpCheck::client`] (TLS is the client's business: this crate does not enable any
/// TLS backend).
///
/// ```
/// use telltale_health::checks;
///
/// let check = checks::http("http://127.0.0.1:8081/healthz").unwrap().expect_status(200..=204);
/// assert!(checks::http("not a url").is_err());
/// # let _ = check;
/// ```
pub fn http(url: &str) -> Result<HttpCheck, InvalidUrl> {
    let url = reqwest::Url::parse(url).map_err(|e| InvalidUrl {
        message: CheckError::msg(format!("invalid URL {url:?}: {e}")).to_string(),
    })?;
    Ok(HttpCheck {
        client: reqwest::Client::new(),
        url,
        expected: 200..=299,
    })
}

/// See [`http()`].
#[derive(Debug, Clone)]
pub struct HttpCheck {
    client: reqwest::Client,
    url: reqwest::Url,
    expected: RangeInclusive<u16>,
}

impl HttpCheck {
    /// The statuses that count as healthy.
    pub fn expect_status(mut self, range: RangeInclusive<u16>) -> Self {
        self.expected = range;
        self
    }

    /// Uses this client (connection pool, TLS, proxies) instead of a default one.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }
}

impl ReadinessCheck for HttpCheck {
    async fn check(&self) -> Result<(), CheckError> {
        let response = self.client.get(self.url.clone()).send().await?;
        let status = response.status().as_u16();
        if self.expected.contains(&status) {
            Ok(())
        } else {
            Err(CheckError::msg(format!(
                "GET {} answered {status}, expected {}..={}",
                self.url,
                self.expected.start(),
                self.expected.end()
            )))
        }
    }
}

/// The URL given to [`http()`] does not parse.
#[derive(Debug, Clone)]
pub struct InvalidUrl {
    message: String,
}

impl std::fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidUrl {}

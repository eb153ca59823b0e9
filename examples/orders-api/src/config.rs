//! Configuration from the environment, with embedded defaults so `cargo run -p orders-api`
//! needs no set-up.
//!
//! Every setting is checked here, at start-up, with an error naming the variable and
//! what it accepts: a value that would only fail later (an inventory URL every order
//! then trips over, a drain delay that never ends) stops the service before it serves.
//!
//! ```
//! use orders_api::Config;
//!
//! let config = Config::from_lookup(|key| (key == "PORT").then(|| "0".to_owned())).unwrap();
//! assert_eq!(config.addr.port(), 0);
//! let err = Config::from_lookup(|key| (key == "INVENTORY_URL").then(|| "garbage".to_owned())).unwrap_err();
//! assert!(err.to_string().contains("INVENTORY_URL"));
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The longest `DRAIN_DELAY_MS` and `SHUTDOWN_GRACE_MS` accepted: 10 minutes each.
///
/// Orchestrators kill a stopping process long before that (Kubernetes after 30 s unless
/// `terminationGracePeriodSeconds` says otherwise), so a longer value is a typo; the
/// extreme ones (`u64::MAX` ms) are past what the clock can add, and SIGTERM would
/// never finish.
pub const MAX_SHUTDOWN_WAIT: Duration = Duration::from_secs(10 * 60);

/// The longest `REQUEST_TIMEOUT_MS` accepted: 10 minutes, for the same reasons.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Orders API settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`HOST`, default 127.0.0.1; `PORT`, default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    /// `DATABASE_URL`: a `postgres://` URL, or unset for the embedded SQLite (a throwaway
    /// database, see [`store`](crate::store#the-embedded-database)).
    pub database_url: Option<String>,
    /// `INVENTORY_URL`: the inventory's HTTP base URL (`http://` or `https://` with a
    /// host, no query), or unset to start an embedded inventory on a free loopback port
    /// (a real HTTP hop all the same).
    pub inventory_url: Option<String>,
    /// `INVENTORY_GRPC_URL`: the inventory's gRPC endpoint (`http://` or `https://` with a
    /// host), or unset for the embedded one.
    pub inventory_grpc_url: Option<String>,
    /// `ENVIRONMENT` (default `dev`).
    pub environment: String,
    /// `FAULT_ERROR_RATE`: share of `/orders` requests answered 500, for demos of alerting (0..=1).
    pub fault_error_rate: f64,
    /// `DRAIN_DELAY_MS` (default 5 000): how long to keep serving after SIGTERM while
    /// readiness says draining. At most [`MAX_SHUTDOWN_WAIT`].
    pub drain_delay: Duration,
    /// `SHUTDOWN_GRACE_MS` (default 10 000): how long in-flight requests get after the
    /// drain delay. At most [`MAX_SHUTDOWN_WAIT`].
    pub shutdown_grace: Duration,
    /// `REQUEST_TIMEOUT_MS` (default 10 000): a request not answered by then gets 503
    /// (a slow client's body included). At least 1 ms, at most [`MAX_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// `WORKER`: `embedded` (default) runs the fulfilment worker inside the API; `off`
    /// leaves the jobs to a separate `worker` process sharing the database.
    pub embedded_worker: bool,
}

/// A setting that could not be used, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let host: IpAddr = match get("HOST") {
            Some(h) => h
                .parse()
                .map_err(|_| ConfigError(format!("HOST must be an IP address, got {h:?}")))?,
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let port: u16 = match get("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| ConfigError(format!("PORT must be 0 to 65535, got {p:?}")))?,
            None => 8080,
        };
        let fault_error_rate = match get("FAULT_ERROR_RATE") {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "FAULT_ERROR_RATE must be a number from 0 to 1, got {v:?}"
                    ))
                })?,
            None => 0.0,
        };
        // Whole milliseconds from `min` to `max`.
        let millis = |key: &str, default: u64, min: u64, max: Duration| -> Result<Duration, ConfigError> {
            let Some(v) = get(key) else {
                return Ok(Duration::from_millis(default));
            };
            let max_ms = max.as_millis() as u64;
            v.parse::<u64>()
                .ok()
                .filter(|ms| (min..=max_ms).contains(ms))
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "{key} must be whole milliseconds from {min} to {max_ms} ({} minutes), got {v:?}",
                        max.as_secs() / 60
                    ))
                })
        };
        let embedded_worker = match get("WORKER").as_deref() {
            None | Some("embedded") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError(format!(
                    "WORKER must be `embedded` or `off`, got {other:?}"
                )));
            }
        };
        Ok(Config {
            addr: SocketAddr::new(host, port),
            embedded_worker,
            database_url: get("DATABASE_URL").filter(|s| !s.is_empty()),
            inventory_url: get("INVENTORY_URL")
                .filter(|s| !s.is_empty())
                .map(|s| http_url("INVENTORY_URL", &s).map(|()| s.trim_end_matches('/').to_owned()))
                .transpose()?,
            inventory_grpc_url: get("INVENTORY_GRPC_URL")
                .filter(|s| !s.is_empty())
                .map(|s| grpc_url("INVENTORY_GRPC_URL", &s).map(|()| s))
                .transpose()?,
            environment: get("ENVIRONMENT").unwrap_or_else(|| "dev".to_owned()),
            fault_error_rate,
            drain_delay: millis("DRAIN_DELAY_MS", 5_000, 0, MAX_SHUTDOWN_WAIT)?,
            shutdown_grace: millis("SHUTDOWN_GRACE_MS", 10_000, 0, MAX_SHUTDOWN_WAIT)?,
            request_timeout: millis("REQUEST_TIMEOUT_MS", 10_000, 1, MAX_REQUEST_TIMEOUT)?,
        })
    }
}

/// Checks that `value` of `key` is an `http://` or `https://` URL with a host and no
/// query or fragment (paths are appended to it).
fn http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        ConfigError(format!(
            "{key} must be an http:// or https:// URL with a host, like http://127.0.0.1:8081 ({why}), got {value:?}"
        ))
    };
    let url = reqwest::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("paths are appended to it, so no query or fragment"));
    }
    Ok(())
}

/// As [`http_url`], and also a URI the gRPC transport accepts (`http::Uri`: ASCII only,
/// no path beyond `/`).
fn grpc_url(key: &str, value: &str) -> Result<(), ConfigError> {
    http_url(key, value)?;
    let uri: axum::http::Uri = value.parse().map_err(|e| {
        ConfigError(format!(
            "{key} must be an http:// or https:// URI with a host, like http://127.0.0.1:50051 ({e}), got {value:?}"
        ))
    })?;
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(ConfigError(format!(
            "{key} must name only a scheme, host and port, like http://127.0.0.1:50051 (gRPC puts its own path there), got {value:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_setup() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(c.database_url.is_none() && c.inventory_url.is_none());
        assert_eq!(c.fault_error_rate, 0.0);
        assert!(c.embedded_worker);
        assert!(!cfg(&[("WORKER", "off")]).unwrap().embedded_worker);
    }

    #[test]
    fn bad_values_name_the_setting() {
        assert!(cfg(&[("PORT", "http")]).unwrap_err().0.contains("PORT"));
        assert!(
            cfg(&[("FAULT_ERROR_RATE", "1.5")])
                .unwrap_err()
                .0
                .contains("FAULT_ERROR_RATE")
        );
        assert!(
            cfg(&[("DRAIN_DELAY_MS", "-1")])
                .unwrap_err()
                .0
                .contains("DRAIN_DELAY_MS")
        );
        assert!(cfg(&[("WORKER", "yes")]).unwrap_err().0.contains("WORKER"));
    }

    #[test]
    fn shutdown_waits_are_capped_at_ten_minutes() {
        for key in ["DRAIN_DELAY_MS", "SHUTDOWN_GRACE_MS"] {
            for v in ["18446744073709551615", "600001"] {
                let err = cfg(&[(key, v)]).unwrap_err().0;
                assert!(err.contains(key) && err.contains("600000"), "{err}");
            }
            let c = cfg(&[(key, "600000")]).unwrap();
            assert_eq!(c.drain_delay.max(c.shutdown_grace), MAX_SHUTDOWN_WAIT);
            assert!(cfg(&[(key, "0")]).is_ok(), "no wait at all is a valid choice");
        }
        let c = cfg(&[]).unwrap();
        assert_eq!(c.drain_delay, Duration::from_secs(5));
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn the_request_timeout_is_positive_and_capped() {
        assert_eq!(cfg(&[]).unwrap().request_timeout, Duration::from_secs(10));
        assert_eq!(
            cfg(&[("REQUEST_TIMEOUT_MS", "250")]).unwrap().request_timeout,
            Duration::from_millis(250)
        );
        for v in ["0", "600001", "18446744073709551615", "1s", ""] {
            let err = cfg(&[("REQUEST_TIMEOUT_MS", v)]).unwrap_err().0;
            assert!(err.contains("REQUEST_TIMEOUT_MS"), "{v:?}: {err}");
        }
    }

    #[test]
    fn inventory_urls_must_be_http_urls_with_a_host() {
        for key in ["INVENTORY_URL", "INVENTORY_GRPC_URL"] {
            for bad in [
                "garbage",
                "not a uri",
                "127.0.0.1:8081",
                "ftp://inventory",
                "http://",
                "unix:/run/inventory.sock",
                "http://inventory?x=1",
            ] {
                let err = cfg(&[(key, bad)]).unwrap_err().0;
                assert!(err.starts_with(key), "{key}={bad:?}: {err}");
            }
            let ok = cfg(&[(key, "https://inventory.internal:8443")]).unwrap();
            assert!(ok.inventory_url.is_some() || ok.inventory_grpc_url.is_some());
        }
        let c = cfg(&[("INVENTORY_URL", "http://127.0.0.1:8081/")]).unwrap();
        assert_eq!(c.inventory_url.as_deref(), Some("http://127.0.0.1:8081"));
        assert!(
            cfg(&[("INVENTORY_GRPC_URL", "http://127.0.0.1:50051/inventory")])
                .unwrap_err()
                .0
                .contains("INVENTORY_GRPC_URL")
        );
    }
}

//! Configuration from the environment, with embedded defaults so `cargo run -p orders-api`
//! needs no set-up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Orders API settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`HOST`, default 127.0.0.1; `PORT`, default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    /// `DATABASE_URL`: a `postgres://` URL, or unset for an embedded in-memory SQLite.
    pub database_url: Option<String>,
    /// `INVENTORY_URL`: the inventory's HTTP base URL, or unset to start an embedded
    /// inventory on a free loopback port (a real HTTP hop all the same).
    pub inventory_url: Option<String>,
    /// `INVENTORY_GRPC_URL`: the inventory's gRPC endpoint, or unset for the embedded one.
    pub inventory_grpc_url: Option<String>,
    /// `ENVIRONMENT` (default `dev`).
    pub environment: String,
    /// `FAULT_ERROR_RATE`: share of `/orders` requests answered 500, for demos of alerting (0..=1).
    pub fault_error_rate: f64,
    /// `DRAIN_DELAY_MS`: how long to keep serving after SIGTERM while readiness says draining.
    pub drain_delay: Duration,
    /// `SHUTDOWN_GRACE_MS`: how long in-flight requests get after the drain delay.
    pub shutdown_grace: Duration,
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
        let millis = |key: &str, default: u64| -> Result<Duration, ConfigError> {
            match get(key) {
                Some(v) => v
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| ConfigError(format!("{key} must be whole milliseconds, got {v:?}"))),
                None => Ok(Duration::from_millis(default)),
            }
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
                .map(|s| s.trim_end_matches('/').to_owned()),
            inventory_grpc_url: get("INVENTORY_GRPC_URL").filter(|s| !s.is_empty()),
            environment: get("ENVIRONMENT").unwrap_or_else(|| "dev".to_owned()),
            fault_error_rate,
            drain_delay: millis("DRAIN_DELAY_MS", 5_000)?,
            shutdown_grace: millis("SHUTDOWN_GRACE_MS", 10_000)?,
        })
    }
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
}

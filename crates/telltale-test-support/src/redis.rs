//! A throwaway Redis server.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::ServerError;
use crate::port::spawn_on_free_port;
use crate::process::{terminate, wait_until_ready};

/// A `redis-server` of its own on a free `127.0.0.1` port, without persistence, killed
/// on drop. The binary is `$TELLTALE_REDIS_SERVER` or `redis-server` on `PATH`.
///
/// ```no_run
/// let mut redis = telltale_test_support::RedisServer::start().unwrap();
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// redis.stop().unwrap();
/// redis.start_again().unwrap();
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// Starts the server and returns once it answers `PING`.
    pub fn start() -> Result<Self, ServerError> {
        let dir = tempfile::Builder::new().prefix("telltale-redis-").tempdir()?;
        let mut server = Self {
            child: None,
            port: 0,
            dir,
        };
        spawn_on_free_port("redis-server", |port| {
            server.port = port;
            server.spawn()
        })?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port (the same after [`start_again`](Self::start_again)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Stops the server and waits until it has exited.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, "KILL");
        }
        Ok(())
    }

    /// Starts the server again on the same port.
    pub fn start_again(&mut self) -> Result<(), ServerError> {
        self.stop()?;
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), ServerError> {
        let bin = std::env::var_os("TELLTALE_REDIS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let log = self.dir.path().join("redis.log");
        let mut child = Command::new(&bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| {
                ServerError::new(format!(
                    "cannot run {}: {e} (install redis-server or set TELLTALE_REDIS_SERVER)",
                    bin.display()
                ))
            })?;
        wait_until_ready(&mut child, "redis-server", &log, "KILL", || self.answers_ping())?;
        self.child = Some(child);
        Ok(())
    }

    fn answers_ping(&self) -> bool {
        let ping = || -> std::io::Result<bool> {
            let mut s = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))?;
            s.set_read_timeout(Some(Duration::from_millis(500)))?;
            s.write_all(b"PING\r\n")?;
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf)?;
            Ok(&buf == b"+PONG\r\n")
        };
        ping().unwrap_or(false)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, "KILL");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_starts_stops_and_comes_back_on_the_same_port() {
        let mut redis = RedisServer::start().unwrap();
        assert!(redis.answers_ping());
        let port = redis.port();
        redis.stop().unwrap();
        assert!(!redis.answers_ping());
        redis.start_again().unwrap();
        assert_eq!(redis.port(), port);
        assert!(redis.answers_ping());
    }
}

//! A throwaway PostgreSQL server.
//!
//! PostgreSQL refuses to run as root. When this process is root (CI containers), the
//! server runs as the `postgres` system user: the temp dir is chowned to it and the
//! child process gets that user's uid/gid through `std::os::unix::process::CommandExt`.
//! We do not wrap it in `runuser`/`su`: those fork and wait, so the process we hold
//! would be `runuser`, and killing it could orphan the real server. With uid/gid set on
//! the `Command`, our child *is* the postmaster, and signals reach it directly.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::ServerError;
use crate::port::spawn_on_free_port;
use crate::process::{chown, current_uid, tail, terminate, user_ids, wait_until_ready};

/// The superuser name of every test server.
pub const POSTGRES_USER: &str = "postgres";
/// The password of [`POSTGRES_USER`] (password authentication, `scram-sha-256`, over TCP).
pub const POSTGRES_PASSWORD: &str = "telltale-test-pw";

/// The system user that runs PostgreSQL when this process is root.
const SYSTEM_USER: &str = "postgres";

/// A PostgreSQL server of its own (initdb in a temp dir, listening on a free
/// `127.0.0.1` port, password auth), killed and removed on drop.
///
/// Binaries come from `$TELLTALE_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
/// else `PATH`.
///
/// ```no_run
/// let mut pg = telltale_test_support::PostgresServer::start().unwrap();
/// assert!(pg.url().starts_with("postgres://postgres:"));
/// pg.stop().unwrap();
/// pg.start_again().unwrap();
/// ```
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    // Field order matters: the child must be stopped (Drop below) before the dir goes.
    child: Option<Child>,
    port: u16,
    /// `Some((uid, gid))` when running as root.
    run_as: Option<(u32, u32)>,
    dir: TempDir,
}

impl PostgresServer {
    /// Initialises a cluster in a temp dir and starts the server; returns once it
    /// accepts connections.
    pub fn start() -> Result<Self, ServerError> {
        let bin = bin_dir();
        let run_as = if current_uid() == Some(0) {
            Some(user_ids(SYSTEM_USER)?)
        } else {
            None
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix("telltale-pg-");
        // As root, $TMPDIR may sit under a directory the postgres user cannot enter
        // (e.g. /root); /tmp is world-traversable.
        let dir = match run_as {
            Some(_) if Path::new("/tmp").is_dir() => builder.tempdir_in("/tmp")?,
            _ => builder.tempdir()?,
        };
        let pwfile = dir.path().join("pwfile");
        fs::write(&pwfile, format!("{POSTGRES_PASSWORD}\n"))?;
        if run_as.is_some() {
            chown(dir.path(), SYSTEM_USER)?;
        }

        let log = dir.path().join("initdb.log");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(data_dir(dir.path()))
            .args(["-U", POSTGRES_USER, "-E", "UTF8", "--no-locale", "--no-sync"])
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdin(Stdio::null())
            .stdout(File::create(&log)?)
            .stderr(File::create(&log)?);
        if let Some((uid, gid)) = run_as {
            initdb.uid(uid).gid(gid);
        }
        let status = initdb.status().map_err(|e| {
            ServerError::new(format!(
                "cannot run {}: {e} (set TELLTALE_PG_BIN to PostgreSQL's bin dir)",
                bin.join("initdb").display()
            ))
        })?;
        if !status.success() {
            return Err(ServerError::new(format!(
                "initdb failed ({status}):\n{}",
                tail(&log, 2000)
            )));
        }

        let mut server = Self {
            bin,
            child: None,
            port: 0,
            run_as,
            dir,
        };
        spawn_on_free_port("postgres", |port| {
            server.port = port;
            server.spawn()
        })?;
        Ok(server)
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The TCP port the server listens on (the same after [`start_again`](Self::start_again)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the server (fast shutdown: open connections are closed) and waits until it
    /// has exited. The data dir is kept for [`start_again`](Self::start_again).
    pub fn stop(&mut self) -> Result<(), ServerError> {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, "INT");
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same data, and waits until it
    /// accepts connections.
    pub fn start_again(&mut self) -> Result<(), ServerError> {
        self.stop()?;
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), ServerError> {
        let log = self.dir.path().join("postgres.log");
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(data_dir(self.dir.path()))
            .arg("-p")
            .arg(self.port.to_string())
            // TCP only: no Unix socket, so no socket-path length limit on long $TMPDIRs.
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Throwaway data: durability only costs time.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=50"])
            .stdin(Stdio::null())
            .stdout(File::create(&log)?)
            .stderr(File::create(&log)?);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn()?;
        wait_until_ready(&mut child, "postgres", &log, "INT", || self.accepts_connections())?;
        self.child = Some(child);
        Ok(())
    }

    /// `pg_isready` says "accepting connections" only once start-up recovery is over
    /// (a plain TCP connect succeeds earlier, while queries are still refused).
    fn accepts_connections(&self) -> bool {
        let pg_isready = self.bin.join("pg_isready");
        let status = Command::new(&pg_isready)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", POSTGRES_USER, "-d", "postgres", "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) => s.success(),
            // No pg_isready: fall back to a TCP connect.
            Err(_) => TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok(),
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, "INT");
        }
    }
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// `$TELLTALE_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else the
/// empty path (binaries looked up on `PATH`).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TELLTALE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let Some(version) = entry
                .file_name()
                .to_str()
                .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.join("initdb").exists() && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    best.map(|(_, bin)| bin).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_starts_stops_and_comes_back_on_the_same_port() {
        let mut pg = PostgresServer::start().unwrap();
        assert!(pg.accepts_connections());
        assert!(pg.url().contains(POSTGRES_PASSWORD));
        let port = pg.port();
        pg.stop().unwrap();
        assert!(!pg.is_running());
        assert!(!pg.accepts_connections());
        pg.start_again().unwrap();
        assert_eq!(pg.port(), port);
        assert!(pg.accepts_connections());
        let dir = pg.dir.path().to_path_buf();
        drop(pg);
        assert!(!dir.exists(), "temp dir is removed on drop");
    }
}

//! Child-process plumbing shared by the servers: signals, bounded waits, and dropping
//! root privileges for PostgreSQL.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::ServerError;

/// How long a server may take to start or stop before we give up.
pub(crate) const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
pub(crate) const STOP_DEADLINE: Duration = Duration::from_secs(15);
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Sends `signal` (e.g. `"INT"`) to `pid` with the `kill` command (this crate forbids
/// `unsafe`, so no `libc::kill`).
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Waits for `child` to exit, polling until `deadline` passes.
pub(crate) fn wait_until(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Stops `child` politely with `polite` (a signal name), then with SIGKILL if it does
/// not exit in time. Never leaves the process running.
pub(crate) fn terminate(child: &mut Child, polite: &str) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), polite);
    if wait_until(child, STOP_DEADLINE).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits until `ready()` holds for a freshly spawned server: an error naming `what`, with
/// the end of its `log`, when the process exits first or `STARTUP_DEADLINE` passes (the
/// process is then stopped with `stop`, a signal name).
pub(crate) fn wait_until_ready(
    child: &mut Child,
    what: &str,
    log: &Path,
    stop: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), ServerError> {
    let end = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ServerError::new(format!(
                "{what} exited during start-up ({status}):\n{}",
                tail(log, 2000)
            )));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= end {
            terminate(child, stop);
            return Err(ServerError::new(format!(
                "{what} was not ready within {STARTUP_DEADLINE:?}:\n{}",
                tail(log, 2000)
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The uid of this process (`id -u`).
pub(crate) fn current_uid() -> Option<u32> {
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// uid and gid of a system user (`id -u NAME`, `id -g NAME`).
pub(crate) fn user_ids(name: &str) -> Result<(u32, u32), ServerError> {
    let id = |flag: &str| -> Result<u32, ServerError> {
        let out = Command::new("id").args([flag, name]).output()?;
        if !out.status.success() {
            return Err(ServerError::new(format!(
                "system user `{name}` not found (`id {flag} {name}` failed); \
                 PostgreSQL refuses to run as root, so it needs an unprivileged user"
            )));
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| ServerError::new(format!("`id {flag} {name}` printed no number")))
    };
    Ok((id("-u")?, id("-g")?))
}

/// Gives `path` (recursively) to `user`.
pub(crate) fn chown(path: &Path, user: &str) -> Result<(), ServerError> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(path)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(ServerError::new(format!(
            "chown -R {user}: {} failed",
            path.display()
        )))
    }
}

/// The last `max` bytes of a log file, for error messages.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

//! A service binary under test (feature `service`): started with its JSON logs on
//! stdout collected line by line, found ready by the log line that names its listening
//! address, stopped with SIGTERM or killed on drop.
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//! use telltale_test_support::service::{wait_for, JsonLogProcess};
//!
//! let mut cmd = Command::new("target/debug/orders-api");
//! cmd.env("PORT", "0").env("TELLTALE_LOG_FORMAT", "json");
//! let (api, addr) = JsonLogProcess::start(cmd, "orders-api listening");
//! wait_for(Duration::from_secs(10), "a request line", || {
//!     api.json_lines().into_iter().find(|v| v["target"] == "telltale::access")
//! });
//! # let _ = addr;
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Polls `f` until it returns `Some`, panicking with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running service process whose stdout (JSON log lines) is collected; killed on drop.
pub struct JsonLogProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl JsonLogProcess {
    /// Spawns `command` with stdout piped (stderr inherited) and waits, up to 60 s, for
    /// a log line whose `message` is `ready_message`; returns the process and that line's
    /// `addr` field. Panics with the output so far if the process exits first.
    pub fn start(mut command: Command, ready_message: &str) -> (JsonLogProcess, String) {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut process = JsonLogProcess { child, lines };
        let addr = wait_for(Duration::from_secs(60), ready_message, || {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "the process exited early with {status}; output:\n{}",
                    process.output()
                );
            }
            process.json_lines().iter().find_map(|v| {
                (v["message"] == ready_message)
                    .then(|| v["addr"].as_str().map(str::to_owned))
                    .flatten()
            })
        });
        (process, addr)
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }

    /// Every line so far, parsed as JSON; panics naming a line that is not JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
            .collect()
    }

    /// How many lines have `message` as their message.
    pub fn count(&self, message: &str) -> usize {
        self.json_lines()
            .iter()
            .filter(|v| v["message"] == message)
            .count()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; `None` if it did not exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        crate::process::signal(self.child.id(), "TERM");
        crate::process::wait_until(&mut self.child, limit)
    }
}

impl Drop for JsonLogProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

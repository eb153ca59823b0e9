//! What the orders-api tests share: the real binary on a free port, an HTTP agent, and
//! raw TCP for what an HTTP client will not send (a body that stops short, a hang-up).
//!
//! Each test file uses part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use telltale_test_support::service::JsonLogProcess;

/// An HTTP agent that returns error statuses as responses, with a 10 s limit per call.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// A running `orders-api` process on a free port, stopped on drop (SIGTERM, then killed
/// if it is still there); its stdout (the JSON logs) is collected line by line.
pub(crate) struct OrdersApi {
    pub(crate) process: JsonLogProcess,
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// `127.0.0.1:<port>`.
    pub(crate) addr: String,
}

impl OrdersApi {
    /// Starts the binary with `env` on top of the tests' defaults (port 0, JSON logs,
    /// 100 ms drain), and waits for its listening line.
    pub(crate) fn start(env: &[(&str, &str)]) -> OrdersApi {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-api"));
        cmd.env("PORT", "0")
            .env("RUST_LOG", "info")
            .env("TELLTALE_LOG_FORMAT", "json")
            .env("DRAIN_DELAY_MS", "100")
            .envs(env.iter().copied());
        let (process, addr) = JsonLogProcess::start(cmd, "orders-api listening");
        OrdersApi {
            process,
            base: format!("http://{addr}"),
            addr,
        }
    }

    pub(crate) fn json_lines(&self) -> Vec<Value> {
        self.process.json_lines()
    }

    pub(crate) fn output(&self) -> String {
        self.process.output()
    }

    /// `GET path`: status and body.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let mut res = agent().get(&format!("{}{path}", self.base)).call().expect("GET");
        (
            res.status().as_u16(),
            res.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// `GET path` with `x-request-id: request_id`: status and JSON body (`Null` if none).
    pub(crate) fn get_json(&self, path: &str, request_id: &str) -> (u16, Value) {
        let mut res = agent()
            .get(&format!("{}{path}", self.base))
            .header("x-request-id", request_id)
            .call()
            .expect("GET");
        (
            res.status().as_u16(),
            res.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    /// `POST /orders` for `quantity` of `sku`: status and JSON body.
    pub(crate) fn place_order(&self, sku: &str, quantity: i64) -> (u16, Value) {
        let mut res = agent()
            .post(&format!("{}/orders", self.base))
            .send_json(serde_json::json!({ "sku": sku, "quantity": quantity }))
            .expect("POST /orders");
        (
            res.status().as_u16(),
            res.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    /// Units of `sku` the inventory has, asked through `GET /stock/{sku}` (gRPC).
    pub(crate) fn stock(&self, sku: &str) -> u64 {
        let (status, body) = self.get_json(&format!("/stock/{sku}"), "test-stock");
        assert_eq!(status, 200, "{body}");
        body["available"].as_u64().expect("available")
    }

    /// Lines whose `message` is `message`.
    pub(crate) fn count(&self, message: &str) -> usize {
        self.process.count(message)
    }

    /// Access-log lines of `method` requests to `route`.
    pub(crate) fn access_lines(&self, method: &str, route: &str) -> Vec<Value> {
        self.json_lines()
            .into_iter()
            .filter(|v| v["target"] == "telltale::access" && v["method"] == method && v["route"] == route)
            .collect()
    }
}

impl Drop for OrdersApi {
    /// Stops it with SIGTERM, as an orchestrator would, so it removes its embedded
    /// database's temporary directory; the process is killed if it does not exit.
    fn drop(&mut self) {
        let _ = self.process.terminate(Duration::from_secs(15));
    }
}

/// Writes `request` on a new connection to `addr` and reads until the server closes it
/// or `limit` passes; returns what was read.
pub(crate) fn raw_exchange(addr: &str, request: &[u8], limit: Duration) -> String {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(limit)).expect("read timeout");
    conn.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the binary with `env` (port 0 unless given) until it exits, at most `limit`
/// (killed and a panic after that); returns its exit status and stderr.
pub(crate) fn run_to_exit(env: &[(&str, &str)], limit: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orders-api"))
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn orders-api");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("orders-api with {env:?} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status, stderr)
}

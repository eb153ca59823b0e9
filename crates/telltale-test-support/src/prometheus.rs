//! A throwaway Prometheus server (feature `prometheus`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ServerError;
use crate::port::free_port;
use crate::process::{tail, terminate, wait_until_ready};

/// A `prometheus` of its own on a free `127.0.0.1` port with its data in a temporary
/// directory, killed on drop. The binary is `$TELLTALE_PROMETHEUS` or `prometheus` on
/// `PATH` (Debian's `prometheus` package; scripts/test installs it).
///
/// ```no_run
/// use telltale_test_support::PrometheusServer;
///
/// let config = "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:8080']\n";
/// let prom = PrometheusServer::start(config, &[]).unwrap();
/// let up = prom.query("up").unwrap();
/// # let _ = up;
/// ```
#[derive(Debug)]
pub struct PrometheusServer {
    child: Option<Child>,
    url: String,
    log: PathBuf,
    dir: TempDir,
}

impl PrometheusServer {
    /// Writes `config` (prometheus.yml) and `files` (name, content; e.g. rule files the
    /// config names in `rule_files`) into a temporary directory, starts Prometheus on a
    /// free port and returns once it is ready.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Result<Self, ServerError> {
        Self::start_with_data(config, files, |_| Ok(()))
    }

    /// As [`start`](Self::start), calling `prepare` with the (empty) data directory first,
    /// e.g. to backfill history with `promtool tsdb create-blocks-from openmetrics`.
    pub fn start_with_data(
        config: &str,
        files: &[(&str, &str)],
        prepare: impl FnOnce(&Path) -> Result<(), ServerError>,
    ) -> Result<Self, ServerError> {
        Self::start_with(config, files, &[], prepare)
    }

    /// The general form: `extra_args` are added to the command line (e.g.
    /// `--enable-feature=exemplar-storage`), `prepare` runs on the empty data directory.
    pub fn start_with(
        config: &str,
        files: &[(&str, &str)],
        extra_args: &[&str],
        prepare: impl FnOnce(&Path) -> Result<(), ServerError>,
    ) -> Result<Self, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("telltale-prometheus-")
            .tempdir()?;
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content)?;
        }
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        prepare(&data)?;
        let binary = std::env::var("TELLTALE_PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
        let log = dir.path().join("prometheus.log");
        let port = free_port();
        let child = Command::new(&binary)
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| {
                ServerError::new(format!(
                    "cannot run {binary:?} ({e}): install Debian's `prometheus` package (scripts/test does)"
                ))
            })?;
        let url = format!("http://127.0.0.1:{port}");
        let ready_url = format!("{url}/-/ready");
        let mut child = child;
        wait_until_ready(&mut child, "prometheus", &log, "TERM", || {
            ureq::get(&ready_url).call().is_ok_and(|r| r.status() == 200)
        })?;
        Ok(PrometheusServer {
            child: Some(child),
            url,
            log,
            dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory holding the configuration, extra files and data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn get(&self, path: &str, query: Option<&str>) -> Result<serde_json::Value, ServerError> {
        let mut req = ureq::get(&format!("{}{path}", self.url));
        if let Some(q) = query {
            req = req.query("query", q);
        }
        let mut res = req
            .call()
            .map_err(|e| ServerError::new(format!("GET {path}: {e}")))?;
        let body: serde_json::Value = res
            .body_mut()
            .read_json()
            .map_err(|e| ServerError::new(format!("GET {path}: {e}")))?;
        if body["status"] != "success" {
            return Err(ServerError::new(format!("GET {path}: {body}")));
        }
        Ok(body["data"].clone())
    }

    /// The `result` array of an instant query.
    pub fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, ServerError> {
        Ok(self.get("/api/v1/query", Some(promql))?["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The value of an instant query with exactly one series, `None` otherwise.
    pub fn query_value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).ok()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// The alerts Prometheus holds (pending and firing), from `/api/v1/alerts`.
    pub fn alerts(&self) -> Result<Vec<serde_json::Value>, ServerError> {
        Ok(self.get("/api/v1/alerts", None)?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Polls `condition` until it returns `Some`, at most `limit`; the error says `what`
    /// did not happen and includes the end of Prometheus's log.
    pub fn wait_for<T>(
        &self,
        limit: Duration,
        what: &str,
        mut condition: impl FnMut(&Self) -> Option<T>,
    ) -> Result<T, ServerError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = condition(self) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(ServerError::new(format!(
                    "{what}: not within {limit:?}; prometheus log:\n{}",
                    tail(&self.log, 4000)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, "TERM");
        }
    }
}

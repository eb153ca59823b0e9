//! The generated Alertmanager configuration in a real Alertmanager
//! (`/usr/bin/prometheus-alertmanager`, Debian's 0.25): a page inhibits the ticket of the
//! same service and SLO, and only that one.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use telltale_slo::{ServiceSpec, generate};

fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found: install Debian's `prometheus-alertmanager` package, as scripts/test does"
            )
        })
}

/// An Alertmanager process, killed and reaped on drop.
struct Alertmanager {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    fn start(dir: &Path, config: &Path) -> Alertmanager {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.join("am-data");
        std::fs::create_dir_all(&data).unwrap();
        let log = dir.join("alertmanager.log");
        let child = Command::new(tool("prometheus-alertmanager"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        am.wait_until("ready", || {
            ureq::get(&format!("{}/-/ready", am.url))
                .call()
                .is_ok_and(|r| r.status() == 200)
        });
        am
    }

    fn wait_until(&self, what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "Alertmanager not {what} within 60s; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100)); // polling interval
        }
    }

    fn alerts(&self) -> Vec<Value> {
        let mut resp = ureq::get(&format!("{}/api/v2/alerts", self.url)).call().unwrap();
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
    }
}

fn alert(severity: &str, slo: &str, window: &str) -> Value {
    json!({
        "labels": {
            "alertname": format!("OrdersApi{}SloBurn", if slo == "availability" { "Availability" } else { "Latency" }),
            "service": "orders-api",
            "slo": slo,
            "severity": severity,
            "window": window,
            "team": "orders",
        },
        "annotations": {"summary": "test"},
    })
}

#[test]
fn a_page_inhibits_the_ticket_of_the_same_slo_only() {
    let spec = ServiceSpec::from_yaml_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/orders-api/slo.yaml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    generate(&spec).write_to(dir.path()).unwrap();
    let am = Alertmanager::start(dir.path(), &dir.path().join("alertmanager/alertmanager.yaml"));

    let body = json!([
        alert("page", "availability", "1h/5m"),
        alert("ticket", "availability", "1d/2h"),
        alert("ticket", "latency", "1d/2h"),
    ])
    .to_string();
    let resp = ureq::post(&format!("{}/api/v2/alerts", am.url))
        .header("content-type", "application/json")
        .send(body.as_str())
        .unwrap();
    assert_eq!(resp.status(), 200);

    let state = |slo: &str, severity: &str| -> Option<Value> {
        am.alerts()
            .into_iter()
            .find(|a| a["labels"]["slo"] == slo && a["labels"]["severity"] == severity)
            .map(|a| a["status"].clone())
    };
    am.wait_until("showing the inhibition", || {
        state("availability", "ticket")
            .is_some_and(|s| s["inhibitedBy"].as_array().is_some_and(|a| !a.is_empty()))
    });
    let inhibited = state("availability", "ticket").unwrap();
    assert_eq!(inhibited["state"], "suppressed", "{inhibited}");
    assert_eq!(
        inhibited["inhibitedBy"].as_array().unwrap().len(),
        1,
        "{inhibited}"
    );
    let page = state("availability", "page").unwrap();
    assert_eq!(page["inhibitedBy"], json!([]), "{page}");
    // Another SLO's ticket is not inhibited by this page. (Its `state` may read
    // suppressed in newer Alertmanagers during quiet hours, so look at the inhibition.)
    let other = state("latency", "ticket").unwrap();
    assert_eq!(other["inhibitedBy"], json!([]), "{other}");
}

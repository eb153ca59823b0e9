//! Graceful drain over a real TCP listener, triggered by a real SIGTERM: sent to this
//! test process (the handler is installed by `serve` before it accepts connections),
//! and sent to a child process (this test binary re-run as a server) whose exit is
//! what we measure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use telltale_health::{Health, ShutdownConfig};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A route that tells the test it has started, then waits for `release`.
fn slow_route(entered: oneshot::Sender<()>, release: Arc<Notify>) -> Router {
    let entered = Arc::new(std::sync::Mutex::new(Some(entered)));
    Router::new().route(
        "/slow",
        get(move || {
            let entered = entered.lock().unwrap().take();
            let release = release.clone();
            async move {
                if let Some(tx) = entered {
                    let _ = tx.send(());
                }
                release.notified().await;
                "done"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_readiness_completes_in_flight_request_and_stops() {
    let health = Health::builder().build().unwrap();
    let (entered_tx, entered_rx) = oneshot::channel();
    let release = Arc::new(Notify::new());
    let app = slow_route(entered_tx, release.clone()).merge(health.router());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = ShutdownConfig {
        drain_delay: Duration::from_millis(500),
        grace_deadline: Duration::from_secs(20),
    };
    let server = {
        let health = health.clone();
        tokio::spawn(async move { telltale_health::serve(listener, app, &health, config).await })
    };
    let client = client();
    // An answer proves `serve` runs, so its signal handlers are installed.
    assert_ready(&client, &base).await;

    let slow = tokio::spawn(client.get(format!("{base}/slow")).send());
    entered_rx.await.unwrap();

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    // Readiness turns 503 at once (bounded poll: the signal is delivered asynchronously).
    assert_eq!(wait_not_ready(&client, &base).await, "draining");
    assert!(health.is_draining());
    // Liveness stays 200 while draining.
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The in-flight request completes normally.
    release.notify_one();
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "done");
    drop(client);

    // And the server stops well before its grace deadline.
    let result = tokio::time::timeout(config.grace_deadline, server)
        .await
        .expect("server must exit before the grace deadline");
    result.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_deadline_stops_the_server_with_a_request_still_in_flight() {
    let health = Health::builder().build().unwrap();
    let (entered_tx, entered_rx) = oneshot::channel();
    // Never released: this request outlives any deadline.
    let release = Arc::new(Notify::new());
    let app = slow_route(entered_tx, release).merge(health.router());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = ShutdownConfig {
        drain_delay: Duration::from_millis(50),
        grace_deadline: Duration::from_millis(300),
    };
    let (trigger_tx, trigger_rx) = oneshot::channel::<()>();
    let server = {
        let health = health.clone();
        tokio::spawn(async move {
            let trigger = async move {
                let _ = trigger_rx.await;
            };
            telltale_health::serve_with_shutdown(listener, app, &health, config, trigger).await
        })
    };
    let client = client();
    let slow = tokio::spawn(client.get(format!("{base}/slow")).send());
    entered_rx.await.unwrap();

    let started = Instant::now();
    trigger_tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server must stop once the grace deadline passes");
    result.unwrap().unwrap();
    assert!(started.elapsed() >= config.drain_delay + config.grace_deadline);
    assert!(health.is_draining());
    assert!(!slow.is_finished(), "the slow request cannot have completed");
    slow.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_draining_triggers_the_drain_without_a_signal() {
    let health = Health::builder().build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = ShutdownConfig {
        drain_delay: Duration::from_secs(1),
        grace_deadline: Duration::from_secs(5),
    };
    let server = {
        let health = health.clone();
        let app = health.router();
        tokio::spawn(async move {
            telltale_health::serve_with_shutdown(listener, app, &health, config, std::future::pending()).await
        })
    };
    let client = client();
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    health.start_draining();
    // Still serving during the drain delay, answering 503 on readiness.
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    drop(client);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops after the drain")
        .unwrap()
        .unwrap();
}

// === a real process: SIGTERM, drain, exit ===

const CHILD_ENV: &str = "TELLTALE_HEALTH_DRAIN_CHILD";
const CHILD_GRACE: Duration = Duration::from_secs(10);
/// The child's `drain_delay` in milliseconds (default 300).
const CHILD_DRAIN_MS_ENV: &str = "TELLTALE_HEALTH_DRAIN_CHILD_DRAIN_MS";

/// The server process of `sigterm_makes_the_process_exit_before_the_deadline`: this
/// test binary re-run with `--ignored --exact drain_child_server`. It prints
/// `LISTENING <addr>` and `ENTERED` on stdout, and releases the slow request when a
/// line arrives on stdin.
#[test]
#[ignore = "run as a child process by sigterm_makes_the_process_exit_before_the_deadline"]
fn drain_child_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let health = Health::builder().build().unwrap();
        let release = Arc::new(Notify::new());
        let from_stdin = release.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            from_stdin.notify_one();
        });
        let (entered_tx, entered_rx) = oneshot::channel();
        tokio::spawn(async move {
            if entered_rx.await.is_ok() {
                println!("ENTERED");
            }
        });
        let app = slow_route(entered_tx, release).merge(health.router());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("LISTENING {}", listener.local_addr().unwrap());
        let drain_ms = std::env::var(CHILD_DRAIN_MS_ENV).map_or(300, |v| v.parse().unwrap());
        let config = ShutdownConfig {
            drain_delay: Duration::from_millis(drain_ms),
            grace_deadline: CHILD_GRACE,
        };
        telltale_health::serve(listener, app, &health, config)
            .await
            .unwrap();
        println!("STOPPED");
    });
}

/// Kills the child if the test fails half-way: no process is left behind.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `drain_child_server` as a child process (its `drain_delay` given in milliseconds), its
/// stdin, and its stdout lines.
fn spawn_child(
    drain_ms: u64,
) -> (
    ChildGuard,
    std::process::ChildStdin,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "drain_child_server",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env(CHILD_DRAIN_MS_ENV, drain_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdin = child.0.stdin.take().unwrap();
    // Lines of the child's stdout, read on a thread (bounded waits in the tests).
    let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, stdin, lines)
}

/// The rest of the first line starting with `prefix` (30 s at most).
async fn wait_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>, prefix: &str) -> String {
    let deadline = Duration::from_secs(30);
    tokio::time::timeout(deadline, async {
        loop {
            let line = lines.recv().await.expect("child stdout closed");
            // libtest may print "test drain_child_server ... " before it.
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_string();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("child did not print {prefix:?}"))
}

fn signal(child: &ChildGuard, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Polls `/readyz` until it answers 503 (5 s at most); its body.
async fn wait_not_ready(client: &reqwest::Client, base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = client.get(format!("{base}/readyz")).send().await.unwrap();
        let status = res.status();
        if status == 503 {
            return res.text().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "readiness still {status} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn assert_ready(client: &reqwest::Client, base: &str) {
    let status = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_drain_stops_at_once() {
    // A drain delay far longer than the test's bounds.
    let drain = Duration::from_secs(120);
    let (mut child, _stdin, mut lines) = spawn_child(drain.as_millis() as u64);
    let base = format!("http://{}", wait_line(&mut lines, "LISTENING ").await);
    let client = client();
    // An answer proves `serve` runs, so its signal handlers are installed.
    assert_ready(&client, &base).await;
    signal(&child, "TERM");
    let signalled = Instant::now();
    wait_not_ready(&client, &base).await;
    signal(&child, "INT");
    wait_line(&mut lines, "STOPPED").await;
    let status = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the child exits after STOPPED");
    assert!(status.success(), "child exited with {status}");
    assert!(signalled.elapsed() < drain, "took {:?}", signalled.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_makes_the_process_exit_before_the_deadline() {
    use std::io::Write;

    let (mut child, mut stdin, mut lines) = spawn_child(300);
    let base = format!("http://{}", wait_line(&mut lines, "LISTENING ").await);
    let client = client();
    // An answer proves `serve` runs, so its signal handlers are installed.
    assert_ready(&client, &base).await;
    let slow = tokio::spawn(client.get(format!("{base}/slow")).send());
    wait_line(&mut lines, "ENTERED").await;

    signal(&child, "TERM");
    let signalled = Instant::now();
    wait_not_ready(&client, &base).await;
    assert_eq!(
        client.get(format!("{base}/livez")).send().await.unwrap().status(),
        200
    );

    // Release the in-flight request: it completes with 200.
    stdin.write_all(b"release\n").unwrap();
    stdin.flush().unwrap();
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "done");
    drop(client);

    // The process exits, successfully, before the grace deadline.
    wait_line(&mut lines, "STOPPED").await;
    let exit_deadline = Instant::now() + CHILD_GRACE;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < exit_deadline,
            "child still running at the grace deadline"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.success(), "child exited with {status}");
    assert!(
        signalled.elapsed() < CHILD_GRACE,
        "took {:?}",
        signalled.elapsed()
    );
}

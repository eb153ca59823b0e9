//! The real `orders-api` binary and its dependencies going wrong: clients hanging up
//! mid-order, a database that cannot store the order, an inventory that cannot be
//! reached over gRPC; and what the gRPC calls carry (request id, dependency metrics).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::OrdersApi;
use telltale_test_support::PostgresServer;
use telltale_test_support::service::wait_for;
use tonic::codegen::http;

/// An inventory (HTTP) on a free loopback port that holds the answer to each
/// reservation it made until the test lets it go: every `POST /reservations` takes its
/// stock, then hands the test a [`HeldAnswer`] and waits for it to be sent (or dropped).
struct GatedInventory {
    url: String,
    inventory: inventory::Inventory,
    held: std::sync::mpsc::Receiver<HeldAnswer>,
}

/// Lets one held reservation answer go (dropping it does too).
type HeldAnswer = tokio::sync::oneshot::Sender<()>;

impl GatedInventory {
    fn start(rt: &tokio::runtime::Runtime, inventory: inventory::Inventory) -> GatedInventory {
        use axum::extract::Request;
        use axum::middleware::Next;
        let (hold, held) = std::sync::mpsc::channel::<HeldAnswer>();
        let app = inventory::app(inventory.clone(), inventory::Faults::none()).layer(
            axum::middleware::from_fn(move |req: Request, next: Next| {
                let hold = hold.clone();
                async move {
                    let reservation = req.method() == axum::http::Method::POST;
                    let answer = next.run(req).await;
                    if reservation {
                        let (release, released) = tokio::sync::oneshot::channel();
                        let _ = hold.send(release);
                        let _ = released.await;
                    }
                    answer
                }
            }),
        );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        GatedInventory { url, inventory, held }
    }

    /// The answer of the next reservation made, held.
    fn next_reservation(&self) -> HeldAnswer {
        self.held
            .recv_timeout(Duration::from_secs(10))
            .expect("a reservation reaches the inventory")
    }
}

#[test]
fn clients_hanging_up_mid_order_lose_no_order_and_no_stock() {
    const STOCK: u32 = 1_000_000;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let inv = GatedInventory::start(&rt, inventory::Inventory::with_stock([("sku-apple", STOCK)]));
    let api = OrdersApi::start(&[("INVENTORY_URL", inv.url.as_str())]);
    let placing = std::thread::spawn({
        let base = api.base.clone();
        move || {
            common::agent()
                .post(&format!("{base}/orders"))
                .send_json(serde_json::json!({ "sku": "sku-apple", "quantity": 1 }))
                .expect("POST /orders")
                .body_mut()
                .read_json::<serde_json::Value>()
                .expect("order JSON")
        }
    });
    let _ = inv.next_reservation().send(());
    let first = placing.join().unwrap();
    let first_id = first["id"]
        .as_str()
        .expect("the first order is placed")
        .to_owned();

    let body = r#"{"sku":"sku-apple","quantity":1}"#;
    let request = format!(
        "POST /orders HTTP/1.1\r\nhost: orders\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let aborted = || {
        api.access_lines("POST", "/orders")
            .iter()
            .filter(|v| v["status"] == 499)
            .count()
    };
    // Clients that hang up after the stock was taken and before the inventory's answer
    // arrives: the request's future is dropped (its access line says 499), then the
    // answer comes.
    const WHILE_RESERVING: usize = 5;
    for n in 1..=WHILE_RESERVING {
        let mut conn = TcpStream::connect(&api.addr).expect("connect");
        conn.write_all(request.as_bytes()).expect("write");
        let answer = inv.next_reservation();
        drop(conn);
        wait_for(Duration::from_secs(10), "the hung-up request is dropped", || {
            (aborted() >= n).then_some(())
        });
        let _ = answer.send(());
    }
    // Clients that hang up a little later each time after the inventory answered, from
    // before the insert to after it (a 20 µs step, busy-waited: a thread sleep is too
    // coarse), so some hang up while the order is being stored. Whatever the moment,
    // the order must be placed; the steps only make sure the insert is among them.
    const LATER: u64 = 94;
    for n in 0..LATER {
        let mut conn = TcpStream::connect(&api.addr).expect("connect");
        conn.write_all(request.as_bytes()).expect("write");
        let _ = inv.next_reservation().send(());
        let at = std::time::Instant::now() + Duration::from_micros(n * 20);
        while std::time::Instant::now() < at {
            std::hint::spin_loop();
        }
        drop(conn);
    }
    let posts = 1 + WHILE_RESERVING + LATER as usize;
    wait_for(
        Duration::from_secs(30),
        "an access line for every POST /orders",
        || (api.access_lines("POST", "/orders").len() == posts).then_some(()),
    );

    // Every reservation has its order, none stopped between the two: as much stock is
    // taken as was ordered (every order is for 1).
    let orders = wait_for(Duration::from_secs(30), "as much stock taken as ordered", || {
        let (status, body) = api.get("/orders?limit=100");
        assert_eq!(status, 200, "the orders can be listed: {body}");
        let orders: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let taken = (STOCK - inv.inventory.available("sku-apple").unwrap()) as usize;
        (orders.len() == taken).then_some(orders.len())
    });
    assert_eq!(orders, posts, "every order was placed, its client gone or not");
    assert_eq!(api.count("database error"), 0, "{}", api.output());

    // The database kept everything, and readiness says so truthfully.
    let (status, body) = api.get(&format!("/orders/{first_id}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.get("/readyz").0, 200);
}

#[test]
fn an_order_the_database_cannot_store_gives_its_stock_back() {
    let mut pg = PostgresServer::start().expect("postgres");
    let api = OrdersApi::start(&[("DATABASE_URL", pg.url().as_str())]);
    wait_for(
        Duration::from_secs(30),
        "/readyz 200 with the database up",
        || (api.get("/readyz").0 == 200).then_some(()),
    );
    assert_eq!(api.place_order("sku-pear", 1).0, 201);
    let before = api.stock("sku-pear");

    pg.stop().expect("stop postgres");
    let (status, body) = api.place_order("sku-pear", 7);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "database unavailable", "{body}");
    assert_eq!(api.stock("sku-pear"), before, "the reservation was released");
    wait_for(Duration::from_secs(10), "the release's log line", || {
        (api.count("reservation released: the order was not stored") == 1).then_some(())
    });

    // Back up: orders take stock again.
    pg.start_again().expect("start postgres again");
    wait_for(Duration::from_secs(30), "POST /orders succeeds again", || {
        (api.place_order("sku-pear", 2).0 == 201).then_some(())
    });
    assert_eq!(api.stock("sku-pear"), before - 2);
}

#[test]
fn a_reservation_whose_answer_never_comes_is_released() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let inv = GatedInventory::start(&rt, inventory::Inventory::with_stock([("sku-apple", 100)]));
    let api = OrdersApi::start(&[("INVENTORY_URL", inv.url.as_str())]);
    // The inventory takes the stock and never answers (the held answers are kept, not
    // sent): the API's client times out, and cannot know whether the stock was taken.
    let (status, body) = api.place_order("sku-apple", 3);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "inventory unavailable, try again later", "{body}");
    let held: Vec<HeldAnswer> = inv.held.try_iter().collect();
    assert!(!held.is_empty(), "the reservation reached the inventory");
    assert_eq!(
        inv.inventory.available("sku-apple"),
        Some(100),
        "released: {}",
        api.output()
    );
    wait_for(Duration::from_secs(10), "the release's log line", || {
        (api.count("reservation released: the order was not stored") == 1).then_some(())
    });
    assert_eq!(api.get("/orders").1, "[]");
    drop(held);
}

#[test]
fn readiness_fails_when_the_database_lost_its_tables() {
    let pg = PostgresServer::start().expect("postgres");
    let url = pg.url();
    // No embedded worker: it would create the tables again when it misses them.
    let api = OrdersApi::start(&[("DATABASE_URL", url.as_str()), ("WORKER", "off")]);
    wait_for(
        Duration::from_secs(30),
        "/readyz 200 with the database up",
        || (api.get("/readyz").0 == 200).then_some(()),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        sqlx::query("DROP TABLE jobs").execute(&pool).await.expect("drop");
        pool.close().await;
    });
    // The database still answers `SELECT 1`; the check reads the tables.
    let (_, body) = wait_for(Duration::from_secs(15), "/readyz 503 without the tables", || {
        let (status, body) = api.get("/readyz?verbose");
        (status == 503).then_some((status, body))
    });
    assert!(body.contains("[-]db"), "{body}");
    assert!(body.contains("jobs"), "names what is missing: {body}");
}

#[test]
fn a_failed_grpc_call_logs_the_grpc_message_under_its_own_key() {
    // Nothing listens there: every attempt is refused.
    let port = telltale_test_support::free_port();
    let grpc_url = format!("http://127.0.0.1:{port}");
    let api = OrdersApi::start(&[("INVENTORY_GRPC_URL", grpc_url.as_str())]);
    let (status, body) = api.get_json("/stock/sku-apple", "grpc-down-1");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["request_id"], "grpc-down-1");

    let line = wait_for(Duration::from_secs(10), "the failed call's log line", || {
        api.json_lines()
            .into_iter()
            .find(|v| v["request_id"] == "grpc-down-1" && v["level"] == "WARN")
    });
    assert_eq!(line["message"], "inventory gRPC call failed", "{line}");
    assert!(
        line["grpc_message"].as_str().is_some_and(|m| !m.is_empty()),
        "{line}"
    );
    assert_eq!(line["code"], "Unavailable", "{line}");
}

/// What the recording inventory saw of one gRPC call: its `x-request-id` and
/// `grpc-timeout` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeenCall {
    request_id: Option<String>,
    grpc_timeout: Option<String>,
}

/// A tower service in front of a tonic server: records each call's headers, and answers
/// the first `unavailable` calls itself with `UNAVAILABLE` (a trailers-only response).
#[derive(Clone)]
struct Recording<S> {
    inner: S,
    seen: Arc<Mutex<Vec<SeenCall>>>,
    unavailable: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Recording<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("<not UTF-8>").to_owned())
        };
        self.seen.lock().unwrap().push(SeenCall {
            request_id: header("x-request-id"),
            grpc_timeout: header("grpc-timeout"),
        });
        let fail = self
            .unavailable
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if fail {
            let res = tonic::Status::unavailable("starting up").into_http();
            return Box::pin(async move { Ok(res) });
        }
        Box::pin(self.inner.call(req))
    }
}

/// An inventory gRPC server on a free loopback port that records every call it
/// receives, and answers the first `unavailable` of them `UNAVAILABLE`.
fn recording_inventory(
    rt: &tokio::runtime::Runtime,
    unavailable: usize,
) -> (String, Arc<Mutex<Vec<SeenCall>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (record, unavailable) = (seen.clone(), Arc::new(unavailable.into()));
    let layer = tower::layer::layer_fn(move |inner| Recording {
        inner,
        seen: record.clone(),
        unavailable: Arc::clone(&unavailable),
    });
    rt.spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(inventory::grpc::InventoryGrpcServer::new(
                inventory::Inventory::demo(),
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (url, seen)
}

/// The value of the first series of `name` whose line contains every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn grpc_calls_carry_the_request_id_and_are_measured_as_a_dependency() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (grpc_url, seen) = recording_inventory(&rt, 0);
    let api = OrdersApi::start(&[("INVENTORY_GRPC_URL", grpc_url.as_str())]);

    let (status, body) = api.get_json("/stock/sku-apple", "grpc-rid-7");
    assert_eq!(status, 200, "{body}");
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].request_id.as_deref(), Some("grpc-rid-7"));
    // The policy's per-attempt timeout travels with the call.
    assert!(calls[0].grpc_timeout.is_some(), "{calls:?}");

    let (status, metrics) = api.get("/metrics");
    assert_eq!(status, 200);
    let call = [
        r#"peer_service="inventory""#,
        r#"rpc_method="GetStock""#,
        r#"rpc_grpc_status_code="0""#,
    ];
    assert_eq!(
        sample(&metrics, "rpc_client_call_duration_seconds_count", &call),
        Some(1.0),
        "{metrics}"
    );
    // The policy made the call: its attempts are counted under its own name.
    let attempt = [r#"peer_service="inventory-grpc""#, r#"outcome="success""#];
    assert_eq!(
        sample(&metrics, "telltale_client_attempts_total", &attempt),
        Some(1.0),
        "{metrics}"
    );
    let (_, readyz) = api.get("/readyz?verbose");
    assert!(readyz.contains("[+]inventory-grpc"), "{readyz}");
}

#[test]
fn an_unavailable_inventory_is_asked_again_for_the_stock() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (grpc_url, seen) = recording_inventory(&rt, 1);
    let api = OrdersApi::start(&[("INVENTORY_GRPC_URL", grpc_url.as_str())]);

    // GetStock is a read: `UNAVAILABLE` is retried, one logical call, one observation.
    let (status, body) = api.get_json("/stock/sku-apple", "grpc-retry-1");
    assert_eq!(status, 200, "{body}");
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c.request_id.as_deref() == Some("grpc-retry-1")),
        "{calls:?}"
    );
    let (_, metrics) = api.get("/metrics");
    let call = [r#"peer_service="inventory""#, r#"rpc_grpc_status_code="0""#];
    assert_eq!(
        sample(&metrics, "rpc_client_call_duration_seconds_count", &call),
        Some(1.0),
        "{metrics}"
    );
    // The metrics layer is outside the policy: the failed attempt is not a call of its own.
    let attempt = [r#"peer_service="inventory""#, r#"rpc_grpc_status_code="14""#];
    assert_eq!(
        sample(&metrics, "rpc_client_call_duration_seconds_count", &attempt),
        None,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "telltale_client_attempts_total",
            &[r#"peer_service="inventory-grpc""#, r#"outcome="error""#]
        ),
        Some(1.0),
        "{metrics}"
    );
}

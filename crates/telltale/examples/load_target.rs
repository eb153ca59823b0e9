//! The server `scripts/loadtest` drives: the peer baseline's `GET /orders/{id}` handler
//! (74-byte JSON) on one port, bare (`bare`) or behind `server_layer()` (`full`: request id,
//! trace with 5% ratio + keep errors/slow, RED metrics, JSON access line to a sink).
//!
//! `cargo run --release -p telltale --example load_target -- full 127.0.0.1:18090`

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use telltale::{Sampling, Telemetry};

#[derive(serde::Serialize)]
struct Order {
    id: u64,
    sku: &'static str,
    quantity: u32,
    status: &'static str,
    total_cents: u64,
}

async fn get_order() -> Json<Order> {
    Json(Order {
        id: 42,
        sku: "sku-apple-000001",
        quantity: 2,
        status: "placed",
        total_cents: 1998,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "full".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    // One worker thread: the load script pins the process to one core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = Router::new().route("/orders/{id}", get(get_order));
        let (app, _telemetry) = match mode.as_str() {
            "bare" => (app, None),
            "full" => {
                let telemetry = Telemetry::builder("load-target")
                    .environment("bench")
                    .version("1.0.0")
                    .log_writer(std::io::sink())
                    .sampling(
                        Sampling::ratio(0.05)
                            .keep_errors()
                            .keep_slower_than(Duration::from_millis(500)),
                    )
                    .prometheus()
                    .init()?;
                (app.layer(telemetry.server_layer()), Some(telemetry))
            }
            other => return Err(format!("mode must be `bare` or `full`, got {other:?}").into()),
        };
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("load_target {mode} listening on {addr}");
        axum::serve(listener, app).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

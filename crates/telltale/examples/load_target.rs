//! The server `scripts/loadtest` drives: the peer baseline's `GET /orders/{id}` handler
//! (74-byte JSON) on one port, bare (`bare`) or behind `server_layer()` (`full`: request id,
//! trace with 5% ratio + keep errors/slow, RED metrics, JSON access line to a sink).
//!
//! `cargo run --release -p telltale --example load_target -- full 127.0.0.1:18090`

// The bench's handler and telemetry set-up, so the load run and criterion measure the same.
#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "full".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    // One worker thread: the load script pins the process to one core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = support::bare();
        let (app, _telemetry) = match mode.as_str() {
            "bare" => (app, None),
            "full" => {
                let telemetry = support::telemetry();
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

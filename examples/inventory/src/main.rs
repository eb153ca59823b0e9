//! `cargo run -p inventory`: the inventory service on 127.0.0.1:8081 (HTTP, `PORT`) and
//! 127.0.0.1:50051 (gRPC, `GRPC_PORT`), with telltale's logs, metrics and health.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use inventory::{Faults, Inventory, grpc::InventoryGrpcServer};
use telltale::{Health, ShutdownConfig, Telemetry};
use tokio::net::TcpListener;

fn port(var: &str, default: u16) -> Result<u16, String> {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{var} must be 0 to 65535, got {v:?}")),
        Err(_) => Ok(default),
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let http_port = port("PORT", 8081)?;
    let grpc_port = port("GRPC_PORT", 50051)?;
    let faults = Faults::from_env()?;
    let telemetry = Telemetry::builder("inventory")
        .environment(std::env::var("ENVIRONMENT").unwrap_or_else(|_| "dev".into()))
        .version(env!("CARGO_PKG_VERSION"))
        .json_logs()
        .otlp_from_env()
        .prometheus()
        .init()?;
    let stock = Inventory::demo();
    let health = Health::builder().build()?;

    let grpc_listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, grpc_port))).await?;
    tracing::info!(addr = %grpc_listener.local_addr()?, "inventory gRPC listening");
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(telemetry.tracing().grpc_server_layer())
            .add_service(InventoryGrpcServer::new(stock.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc_listener)),
    );

    let app = inventory::app(stock, faults)
        .merge(health.router())
        .merge(telemetry.metrics_router())
        .layer(telemetry.server_layer());
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, http_port))).await?;
    tracing::info!(addr = %listener.local_addr()?, "inventory listening");
    telltale::serve(listener, app, &health, ShutdownConfig::default()).await?;
    grpc.abort();
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inventory: {e}");
            ExitCode::FAILURE
        }
    }
}

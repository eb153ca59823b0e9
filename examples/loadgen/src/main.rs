//! `cargo run -p loadgen`: open-loop load on the Orders API (see the library docs for the
//! variables). Exits 0 after the run (or SIGINT/SIGTERM), 2 on bad configuration.

use std::process::ExitCode;

use telltale::Telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match loadgen::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match Telemetry::builder("loadgen")
        .environment(std::env::var("ENVIRONMENT").unwrap_or_else(|_| "dev".into()))
        .version(env!("CARGO_PKG_VERSION"))
        .json_logs()
        .otlp_from_env()
        // The load is the root of its traces: the Orders API's own sampling, so a backend
        // sees what production would keep, and every failed call.
        .sampling(orders_api::sampling())
        .init()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let client = match telltale::client::reqwest(reqwest::Client::new())
        .dependency(config.target_service.clone())
        .timeout(config.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        addr = %config.target,
        rate = config.rate,
        duration_s = config.duration.map(|d| d.as_secs_f64()),
        concurrency = config.concurrency,
        mix = %config.mix,
        "loadgen started"
    );
    loadgen::run(&config, client.inner().clone(), shutdown_signal()).await;
    drop(telemetry); // flushes the log lines (and spans)
    ExitCode::SUCCESS
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

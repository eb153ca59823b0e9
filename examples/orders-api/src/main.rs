//! `cargo run -p orders-api`: the reference Orders API on 127.0.0.1:8080.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match orders_api::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orders-api: {e}");
            return ExitCode::from(2);
        }
    };
    match orders_api::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orders-api: {e}");
            ExitCode::FAILURE
        }
    }
}

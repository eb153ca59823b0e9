//! `cargo run -p worker`: the Orders API's fulfilment worker as its own process.
//!
//! It shares the API's Postgres: run the API with `DATABASE_URL=postgres://… WORKER=off`
//! and this with the same `DATABASE_URL`. (With its embedded SQLite, orders-api runs the
//! worker inside itself and this process is not needed.)
//!
//! Settings: `DATABASE_URL` (required, `postgres://`), `HOST`/`PORT` of the admin
//! listener (default 127.0.0.1:8082: `/healthz`, `/readyz` with the database check,
//! `/metrics`), `ENVIRONMENT`, the OpenTelemetry variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! …). On SIGTERM or SIGINT readiness turns 503, the job in progress finishes, and the
//! process exits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use orders_api::store::Store;
use orders_api::worker::Worker;
use telltale::health::{Health, checks};
use telltale::{ShutdownConfig, Telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(2);
        }
    };
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    database_url: String,
    addr: SocketAddr,
    environment: String,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let database_url = match get("DATABASE_URL") {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
            Some(_) => {
                return Err("DATABASE_URL must be a postgres:// URL: the worker shares the API's database (with its embedded SQLite, orders-api runs the worker itself)".to_owned());
            }
            None => {
                return Err("DATABASE_URL is not set: point it at the Postgres orders-api uses (with its embedded SQLite, orders-api runs the worker itself)".to_owned());
            }
        };
        let host: IpAddr = match get("HOST") {
            Some(h) => h
                .parse()
                .map_err(|_| format!("HOST must be an IP address, got {h:?}"))?,
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let port: u16 = match get("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| format!("PORT must be 0 to 65535, got {p:?}"))?,
            None => 8082,
        };
        Ok(Settings {
            database_url,
            addr: SocketAddr::new(host, port),
            environment: get("ENVIRONMENT").unwrap_or_else(|| "dev".to_owned()),
        })
    }
}

async fn run(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = Telemetry::builder("orders-worker")
        .environment(settings.environment)
        .version(env!("CARGO_PKG_VERSION"))
        .json_logs()
        .otlp_from_env()
        .sampling(orders_api::sampling())
        .prometheus()
        .init()?;
    let store = Store::connect(Some(&settings.database_url)).await?;
    if let Err(e) = store.migrate().await {
        // The worker creates the tables itself once the database answers.
        tracing::warn!(error = %telltale::health::redact::redact_credentials(&e.to_string()), "database not reachable at start");
    }
    let Store::Postgres(pool) = &store else {
        unreachable!("DATABASE_URL was checked to be postgres://");
    };
    let health = Health::builder()
        .check("db", checks::sqlx(pool.clone()))
        .timeout(Duration::from_millis(300))
        .cache_for(Duration::from_secs(1))
        .build()?;
    let admin = health
        .router()
        .merge(telemetry.metrics_router())
        .layer(telemetry.server_layer());

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(Worker::new(store, &telemetry).run(stopped));

    let listener = tokio::net::TcpListener::bind(settings.addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "worker admin listening");
    let shutdown = ShutdownConfig {
        drain_delay: Duration::from_millis(100),
        grace_deadline: Duration::from_secs(10),
    };
    telltale::serve(listener, admin, &health, shutdown).await?;
    let _ = stop.send(true);
    if tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .is_err()
    {
        tracing::warn!("the job in progress did not finish within 10 s");
    }
    tracing::info!("worker stopped");
    Ok(())
}

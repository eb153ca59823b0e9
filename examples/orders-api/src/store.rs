//! Order storage: embedded SQLite by default (no set-up), Postgres when `DATABASE_URL` says so.

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    /// Order id (UUIDv7).
    pub id: String,
    /// What was ordered.
    pub sku: String,
    /// How many.
    pub quantity: i64,
    /// Order status.
    pub status: String,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
}

/// The order store.
#[derive(Clone, Debug)]
pub enum Store {
    /// Embedded SQLite (in memory).
    Sqlite(SqlitePool),
    /// Postgres.
    Postgres(PgPool),
}

/// Runs the same query code on whichever pool the store holds (the SQL uses `$N`
/// placeholders, which both Postgres and sqlx's SQLite driver accept).
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            Store::Sqlite($p) => $body,
            Store::Postgres($p) => $body,
        }
    };
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
)";

impl Store {
    /// Connects: `None` or `sqlite::memory:` gives an embedded in-memory SQLite; a
    /// `postgres://` URL a Postgres pool. The Postgres pool connects lazily, so the service
    /// starts (and reports not-ready) while the database is down.
    pub async fn connect(url: Option<&str>) -> Result<Store, sqlx::Error> {
        match url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let pool = PgPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(2))
                    .connect_lazy(url)?;
                Ok(Store::Postgres(pool))
            }
            Some(url) if url != "sqlite::memory:" => Err(sqlx::Error::Configuration(
                format!(
                    "DATABASE_URL must be a postgres:// URL or sqlite::memory:, got scheme of {:?}",
                    scheme(url)
                )
                .into(),
            )),
            _ => {
                // One connection that never expires: an in-memory database lives as long as it.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(SqliteConnectOptions::new().in_memory(true))
                    .await?;
                let store = Store::Sqlite(pool);
                store.migrate().await?;
                Ok(store)
            }
        }
    }

    /// Creates the table if missing.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, p => sqlx::query(SCHEMA).execute(p).await.map(drop))
    }

    /// Inserts an order.
    pub async fn insert(&self, o: &Order) -> Result<(), sqlx::Error> {
        const SQL: &str =
            "INSERT INTO orders (id, sku, quantity, status, created_at_ms) VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(&o.id)
            .bind(&o.sku)
            .bind(o.quantity)
            .bind(&o.status)
            .bind(o.created_at_ms)
            .execute(p)
            .await
            .map(drop))
    }

    /// One order by id.
    pub async fn get(&self, id: &str) -> Result<Option<Order>, sqlx::Error> {
        const SQL: &str = "SELECT id, sku, quantity, status, created_at_ms FROM orders WHERE id = $1";
        on_pool!(self, p => sqlx::query(SQL).bind(id).fetch_optional(p).await?.as_ref().map(to_order).transpose())
    }

    /// The most recent orders, newest first.
    pub async fn list(&self, limit: i64) -> Result<Vec<Order>, sqlx::Error> {
        const SQL: &str = "SELECT id, sku, quantity, status, created_at_ms FROM orders ORDER BY created_at_ms DESC, id DESC LIMIT $1";
        on_pool!(self, p => sqlx::query(SQL).bind(limit).fetch_all(p).await?.iter().map(to_order).collect())
    }
}

fn scheme(url: &str) -> &str {
    url.split_once(':').map(|(s, _)| s).unwrap_or("")
}

fn to_order<'r, R>(r: &'r R) -> Result<Order, sqlx::Error>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Order {
        id: r.try_get("id")?,
        sku: r.try_get("sku")?,
        quantity: r.try_get("quantity")?,
        status: r.try_get("status")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

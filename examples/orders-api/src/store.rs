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

const JOBS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    order_id TEXT NOT NULL,
    context TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    enqueued_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    run_after_ms BIGINT NOT NULL
)";

/// A job taken from the queue by [`Store::claim_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// Job id.
    pub id: String,
    /// The order it is about.
    pub order_id: String,
    /// The encoded `telltale::job::JobContext` stored when it was enqueued.
    pub context: String,
    /// Runs so far, this one included.
    pub attempts: i64,
}

/// What [`Store::fulfil`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fulfilled {
    /// The order moved from `placed` to `fulfilled`.
    Now,
    /// It was fulfilled already (a job run twice does no harm).
    Already,
    /// No such order.
    Missing,
}

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
        on_pool!(self, p => {
            sqlx::query(SCHEMA).execute(p).await?;
            sqlx::query(JOBS_SCHEMA).execute(p).await.map(drop)
        })
    }

    /// Inserts an order and, in the same transaction, the job that will fulfil it (an
    /// outbox: the job exists if and only if the order does).
    pub async fn insert_with_job(&self, o: &Order, queue: &str, context: &str) -> Result<(), sqlx::Error> {
        const ORDER: &str =
            "INSERT INTO orders (id, sku, quantity, status, created_at_ms) VALUES ($1, $2, $3, $4, $5)";
        const JOB: &str = "INSERT INTO jobs (id, queue, order_id, context, state, attempts, enqueued_at_ms, started_at_ms, run_after_ms) VALUES ($1, $2, $3, $4, 'queued', 0, $5, 0, 0)";
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(ORDER)
                .bind(&o.id)
                .bind(&o.sku)
                .bind(o.quantity)
                .bind(&o.status)
                .bind(o.created_at_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(JOB)
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(queue)
                .bind(&o.id)
                .bind(context)
                .bind(o.created_at_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    /// Takes the oldest queued job of `queue` that is due (or one whose run started before
    /// `stale_before_ms` and never finished: its worker died), marking it running.
    /// Safe with several workers: the state is re-checked by the `UPDATE`, so a job is
    /// taken once.
    pub async fn claim_job(
        &self,
        queue: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Option<ClaimedJob>, sqlx::Error> {
        const SQL: &str = "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = $2
            WHERE ((state = 'queued' AND run_after_ms <= $2) OR (state = 'running' AND started_at_ms < $3)) AND id = (
                SELECT id FROM jobs
                WHERE queue = $1 AND ((state = 'queued' AND run_after_ms <= $2) OR (state = 'running' AND started_at_ms < $3))
                ORDER BY enqueued_at_ms, id LIMIT 1)
            RETURNING id, order_id, context, attempts";
        on_pool!(self, p => {
            let row = sqlx::query(SQL).bind(queue).bind(now_ms).bind(stale_before_ms).fetch_optional(p).await?;
            row.map(|r| {
                Ok(ClaimedJob {
                    id: r.try_get("id")?,
                    order_id: r.try_get("order_id")?,
                    context: r.try_get("context")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .transpose()
        })
    }

    /// Marks a job done.
    pub async fn finish_job(&self, id: &str) -> Result<(), sqlx::Error> {
        const SQL: &str = "UPDATE jobs SET state = 'done' WHERE id = $1";
        on_pool!(self, p => sqlx::query(SQL).bind(id).execute(p).await.map(drop))
    }

    /// Puts a failed job back in the queue, due again at `run_after_ms`, or marks it
    /// failed after `max_attempts` runs.
    pub async fn release_job(
        &self,
        id: &str,
        max_attempts: i64,
        run_after_ms: i64,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str = "UPDATE jobs SET state = CASE WHEN attempts >= $2 THEN 'failed' ELSE 'queued' END, run_after_ms = $3 WHERE id = $1";
        on_pool!(self, p => sqlx::query(SQL).bind(id).bind(max_attempts).bind(run_after_ms).execute(p).await.map(drop))
    }

    /// Jobs of `queue` not finished yet (waiting, due later, or running).
    pub async fn queued_jobs(&self, queue: &str) -> Result<i64, sqlx::Error> {
        const SQL: &str =
            "SELECT COUNT(*) AS n FROM jobs WHERE queue = $1 AND state IN ('queued', 'running')";
        on_pool!(self, p => sqlx::query(SQL).bind(queue).fetch_one(p).await?.try_get("n"))
    }

    /// Moves an order from `placed` to `fulfilled`.
    pub async fn fulfil(&self, order_id: &str) -> Result<Fulfilled, sqlx::Error> {
        const SQL: &str = "UPDATE orders SET status = 'fulfilled' WHERE id = $1 AND status = 'placed'";
        let changed = on_pool!(self, p => sqlx::query(SQL).bind(order_id).execute(p).await?.rows_affected());
        if changed > 0 {
            return Ok(Fulfilled::Now);
        }
        Ok(match self.get(order_id).await? {
            Some(_) => Fulfilled::Already,
            None => Fulfilled::Missing,
        })
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

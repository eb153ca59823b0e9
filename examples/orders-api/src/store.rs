//! Order storage: embedded SQLite by default (no set-up), Postgres when `DATABASE_URL` says so.
//!
//! # The embedded database
//!
//! Without `DATABASE_URL` (or with `sqlite::memory:`) the orders live in a SQLite file in
//! a private temporary directory that the [`Store`] owns: created at start, deleted when
//! the last clone of the store is dropped (at exit; a process killed with SIGKILL leaves
//! it in the system's temporary directory). It is a throwaway database for demos and
//! tests, like an in-memory one, but it is a *file* on purpose:
//!
//! - An SQLite `:memory:` database belongs to one connection and dies with it. sqlx
//!   closes a connection whose query was cancelled mid-way (a client hanging up drops the
//!   request's future), the pool opens a fresh one, and that one is a new, empty
//!   database: every order gone, every request failing with "no such table". A file
//!   outlives any connection, so the pool can close and open connections as it likes.
//! - Several connections can work at once: WAL journaling lets reads go on while one
//!   write commits, and a writer waits (`busy_timeout`) rather than failing when another
//!   holds the lock. The fulfilment worker and the requests do not queue on one
//!   connection.
//!
//! (A named shared-cache in-memory database with one connection pinned open would also
//! survive churn, but its table-level locks fail concurrent writers with
//! `SQLITE_LOCKED` instead of waiting.)
//!
//! The readiness check ([`Store::check_schema`]) reads the tables, not just `SELECT 1`,
//! so a database that lost its schema is reported, not only one that is unreachable.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

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
    /// Embedded SQLite, a file in a temporary directory (see the
    /// [module docs](self#the-embedded-database)).
    Sqlite(EmbeddedSqlite),
    /// Postgres.
    Postgres(PgPool),
}

/// The embedded SQLite database: its pool, and the temporary directory holding its file
/// (removed when the last clone is dropped).
#[derive(Clone, Debug)]
pub struct EmbeddedSqlite {
    pool: SqlitePool,
    _dir: Arc<tempfile::TempDir>,
}

impl EmbeddedSqlite {
    /// The connection pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Runs the same query code on whichever pool the store holds (the SQL uses `$N`
/// placeholders, which both Postgres and sqlx's SQLite driver accept).
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            Store::Sqlite(db) => {
                let $p = db.pool();
                $body
            }
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
    /// Connects: `None` or `sqlite::memory:` gives the embedded SQLite (a throwaway file,
    /// see the [module docs](self#the-embedded-database)); a `postgres://` URL a Postgres
    /// pool. The Postgres pool connects lazily, so the service starts (and reports
    /// not-ready) while the database is down.
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
                let dir = tempfile::Builder::new().prefix("orders-api-").tempdir()?;
                let options = SqliteConnectOptions::new()
                    .filename(dir.path().join("orders.sqlite"))
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // Durable enough for a throwaway database, and no fsync per commit.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(2))
                    .connect_with(options)
                    .await?;
                let store = Store::Sqlite(EmbeddedSqlite {
                    pool,
                    _dir: Arc::new(dir),
                });
                store.migrate().await?;
                Ok(store)
            }
        }
    }

    /// Succeeds when both tables can be read: what the `db` readiness check runs. Unlike
    /// `SELECT 1` it fails for a database that answers but lost (or never got) its schema.
    pub async fn check_schema(&self) -> Result<(), sqlx::Error> {
        // `LIMIT 0`: the tables must exist, no row is read.
        const SQL: &str = "SELECT 1 FROM orders, jobs LIMIT 0";
        on_pool!(self, p => sqlx::query(SQL).execute(p).await.map(drop))
    }

    /// Creates the tables if missing.
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

    /// One order by id (the id as stored: the hyphenated lower-case form of a UUID).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str) -> Order {
        Order {
            id: id.to_owned(),
            sku: "sku-apple".to_owned(),
            quantity: 1,
            status: "placed".to_owned(),
            created_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn the_embedded_database_outlives_its_connections() {
        let store = Store::connect(None).await.unwrap();
        store.insert_with_job(&order("a"), "q", "").await.unwrap();
        let Store::Sqlite(db) = &store else { unreachable!() };
        // Every connection closed (what a cancelled query does to one): an in-memory
        // database would be gone with them.
        db.pool().close().await;
        let reopened = SqlitePoolOptions::new()
            .connect_with(db.pool().connect_options().as_ref().clone())
            .await
            .unwrap();
        let store = Store::Sqlite(EmbeddedSqlite {
            pool: reopened,
            _dir: db._dir.clone(),
        });
        assert_eq!(store.get("a").await.unwrap(), Some(order("a")));
        store.check_schema().await.unwrap();
    }

    #[tokio::test]
    async fn the_schema_check_fails_when_a_table_is_missing() {
        let store = Store::connect(None).await.unwrap();
        store.check_schema().await.unwrap();
        on_pool!(&store, p => sqlx::query("DROP TABLE jobs").execute(p).await.map(drop).unwrap());
        let err = store.check_schema().await.unwrap_err();
        assert!(err.to_string().contains("no such table"), "{err}");
    }

    #[tokio::test]
    async fn the_temporary_directory_is_removed_with_the_last_store() {
        let store = Store::connect(None).await.unwrap();
        let Store::Sqlite(db) = &store else { unreachable!() };
        let dir = db._dir.path().to_owned();
        assert!(dir.join("orders.sqlite").exists());
        let clone = store.clone();
        drop(store);
        assert!(dir.exists(), "a clone still uses it");
        drop(clone);
        assert!(!dir.exists());
    }
}

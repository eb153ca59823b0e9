//! sqlx pool check (feature `sqlx`).

use std::time::Duration;

use sqlx::{Database, Executor, Pool};

use crate::{CheckError, ReadinessCheck};

/// Healthy when a connection can be taken from the pool and `SELECT 1` runs on it.
/// Works for every sqlx database (tested with Postgres and SQLite).
///
/// Taking the connection goes through the pool, so the check sees what requests see:
/// an exhausted pool fails the check. Acquiring is bounded by the check's timeout
/// (the registry cancels the run) and the pool's own `acquire_timeout`; set
/// [`SqlxCheck::acquire_timeout`] to bound it separately and get an error that says
/// the pool, not the query, was the problem.
///
/// ```
/// # async fn f() -> Result<(), sqlx::Error> {
/// let pool = sqlx::sqlite::SqlitePool::connect("sqlite::memory:").await?;
/// let health = telltale_health::Health::builder()
///     .check("db", telltale_health::checks::sqlx(pool))
///     .build()
///     .unwrap();
/// # let _ = health; Ok(()) }
/// ```
pub fn sqlx<DB: Database>(pool: Pool<DB>) -> SqlxCheck<DB> {
    SqlxCheck {
        pool,
        acquire_timeout: None,
    }
}

/// See [`sqlx()`].
#[derive(Debug, Clone)]
pub struct SqlxCheck<DB: Database> {
    pool: Pool<DB>,
    acquire_timeout: Option<Duration>,
}

impl<DB: Database> SqlxCheck<DB> {
    /// Fails with "no connection from the pool within ..." when taking a connection
    /// takes longer than `timeout` (keep it below the check's timeout).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }
}

impl<DB> ReadinessCheck for SqlxCheck<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn check(&self) -> Result<(), CheckError> {
        let mut conn = match self.acquire_timeout {
            None => self.pool.acquire().await?,
            Some(limit) => tokio::time::timeout(limit, self.pool.acquire())
                .await
                .map_err(|_| {
                    CheckError::msg(format!(
                        "no connection from the pool within {}ms (pool exhausted or database unreachable)",
                        limit.as_millis()
                    ))
                })??,
        };
        sqlx::raw_sql("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }
}

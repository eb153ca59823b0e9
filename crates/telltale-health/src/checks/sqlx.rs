//! sqlx pool check (feature `sqlx`).

use sqlx::{Database, Executor, Pool};

use crate::{CheckError, ReadinessCheck};

/// Healthy when a connection can be taken from the pool and `SELECT 1` runs on it.
/// Works for every sqlx database (tested with Postgres and SQLite).
///
/// Taking the connection goes through the pool, so the check sees what requests see:
/// an exhausted pool fails the check. Acquiring is bounded by the check's timeout
/// (the registry cancels the run) as well as by the pool's own `acquire_timeout`.
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
    SqlxCheck { pool }
}

/// See [`sqlx()`].
#[derive(Debug, Clone)]
pub struct SqlxCheck<DB: Database> {
    pool: Pool<DB>,
}

impl<DB> ReadinessCheck for SqlxCheck<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn check(&self) -> Result<(), CheckError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::raw_sql("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }
}

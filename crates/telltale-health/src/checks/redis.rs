//! Redis `PING` checks (feature `redis`).
//!
//! Why redis-rs (`redis` crate): it is the most used Redis client for Rust, actively
//! maintained, tokio-native, and its `ConnectionLike` trait covers the connection types
//! services actually hold (`MultiplexedConnection`, `ConnectionManager`, cluster
//! connections), so the check works with whatever the application already uses. `fred`
//! is a fine client too but brings its own connection management and a larger tree.

use redis::aio::ConnectionLike;

use crate::{CheckError, ReadinessCheck};

/// `PING` over a connection the application already holds (`MultiplexedConnection`,
/// `ConnectionManager`, ...). Note that a plain `MultiplexedConnection` does not
/// reconnect once Redis went away; `ConnectionManager` does, and [`redis_client`] opens
/// a fresh connection per run.
pub fn redis<C>(conn: C) -> RedisCheck<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    RedisCheck { conn }
}

/// See [`redis()`].
#[derive(Clone)]
pub struct RedisCheck<C> {
    conn: C,
}

impl<C> std::fmt::Debug for RedisCheck<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisCheck")
    }
}

impl<C> ReadinessCheck for RedisCheck<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn check(&self) -> Result<(), CheckError> {
        let mut conn = self.conn.clone();
        ping(&mut conn).await
    }
}

/// Opens a connection with `client` and sends `PING` on every run: detects "Redis
/// went away and came back" without any reconnect logic. Cheap enough because runs are
/// cached (see [`HealthBuilder::cache_for`](crate::HealthBuilder::cache_for)).
///
/// ```
/// let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
/// let check = telltale_health::checks::redis_client(client);
/// # let _ = check;
/// ```
pub fn redis_client(client: redis::Client) -> RedisClientCheck {
    RedisClientCheck { client }
}

/// See [`redis_client`].
#[derive(Debug, Clone)]
pub struct RedisClientCheck {
    client: redis::Client,
}

impl ReadinessCheck for RedisClientCheck {
    async fn check(&self) -> Result<(), CheckError> {
        let mut conn = self.client.get_multiplexed_async_connection().await?;
        ping(&mut conn).await
    }
}

async fn ping<C: ConnectionLike + Send>(conn: &mut C) -> Result<(), CheckError> {
    let pong: String = redis::cmd("PING").query_async(conn).await?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(CheckError::msg(format!("PING answered {pong:?}")))
    }
}

//! The `redis` key-value backend (`[key_value_store.<label>] type = "redis"`, `url`), as
//! Spin's `spin-key-value-redis` keeps a store: each key is a plain Redis string key of
//! the server and database the URL names (no prefix, no hash; the label is not part of
//! the key, so labels pointing at the same URL share their keys, and `get-keys` lists
//! every key of that database, as `KEYS *` does).
//!
//! Operations map to one command each: `GET`, `SET`, `DEL`, `EXISTS`, `KEYS *`, `MGET`,
//! `MSET`, `DEL` of many keys, and `INCRBY` for `wasi:keyvalue/atomics.increment` (so the
//! counter is a decimal string in Redis, readable by `redis-cli`, and incrementing a value
//! that is not an integer fails with Redis's message). A compare-and-swap gets a
//! connection of its own: it `WATCH`es the key and reads it when created, and its swap is
//! `MULTI`/`SET`/`EXEC`, which Redis aborts when the key changed in between; the swap
//! then reports the conflict with the key read and watched again, ready for a retry.
//!
//! Connections: one multiplexed connection per store, opened when a guest first opens
//! the store (a server that is down makes `open` fail with `other`, as in Spin) and
//! opened again after the server dropped it. `redis://` is plain TCP; `rediss://` uses
//! the client TLS configuration of [`crate::tls`] (`#insecure` is refused). This module
//! owns the connections and the commands; it knows nothing of labels, grants or the
//! guest interfaces ([`super`] does).

use std::fmt;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo,
    RedisError, Value,
};
use tokio::sync::Mutex;

/// Errors of the Redis backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime config's `url` is not a Redis URL spinlet can use.
    #[error("url `{url}` is not a usable Redis URL ({reason}); expected redis://[user:password@]host[:port][/db] or rediss://...")]
    Url {
        /// The URL, its password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to Redis at {addr}: {message}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        message: String,
    },
    /// The server refused a command, or the connection broke during it.
    #[error("Redis at {addr}: {source}")]
    Command {
        /// `host:port`.
        addr: String,
        /// The client's error, with the server's message.
        #[source]
        source: RedisError,
    },
}

/// A store kept in a Redis database.
pub struct RedisStore {
    info: ConnectionInfo,
    addr: String,
    shared: Mutex<Option<MultiplexedConnection>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// `url` with the password of its user info replaced by `***`, for messages.
fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl RedisStore {
    /// A store at `url` (checked now; nothing is connected until [`Self::connect`]).
    pub fn new(url: &str) -> Result<RedisStore, Error> {
        let bad = |reason: String| Error::Url {
            url: masked(url),
            reason,
        };
        let info = url.into_connection_info().map_err(|e| bad(e.to_string()))?;
        let addr = match info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                if *insecure {
                    return Err(bad(
                        "rediss:// without certificate checks is not supported".into()
                    ));
                }
                format!("{host}:{port}")
            }
            _ => return Err(bad("only redis:// and rediss:// are supported".into())),
        };
        Ok(RedisStore {
            info,
            addr,
            shared: Mutex::new(None),
        })
    }

    /// Opens the store's connection unless it is open.
    pub async fn connect(&self) -> Result<(), Error> {
        self.conn().await.map(drop)
    }

    /// The shared connection, opened first if needed.
    async fn conn(&self) -> Result<MultiplexedConnection, Error> {
        let mut shared = self.shared.lock().await;
        if let Some(conn) = shared.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.open_connection().await?;
        *shared = Some(conn.clone());
        Ok(conn)
    }

    /// A new connection of its own.
    async fn open_connection(&self) -> Result<MultiplexedConnection, Error> {
        let failed = |message: String| Error::Connect {
            addr: self.addr.clone(),
            message,
        };
        match self.info.addr() {
            ConnectionAddr::TcpTls { host, port, .. } => {
                let stream = crate::tls::connect(host, *port)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let (conn, driver) = MultiplexedConnection::new_with_config(
                    self.info.redis_settings(),
                    stream,
                    AsyncConnectionConfig::new(),
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                // The driver reads replies and ends when every handle is gone.
                tokio::spawn(driver);
                Ok(conn)
            }
            _ => redis::Client::open(self.info.clone())
                .map_err(|e| failed(e.to_string()))?
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| failed(e.to_string())),
        }
    }

    /// Sends `cmd` on the shared connection; a connection the server dropped is
    /// forgotten, so the next command connects again.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let mut conn = self.conn().await?;
        match cmd.query_async(&mut conn).await {
            Ok(v) => Ok(v),
            Err(source) => {
                if source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_unrecoverable_error()
                {
                    tracing::debug!(addr = %self.addr, error = %source, "redis connection lost");
                    *self.shared.lock().await = None;
                }
                Err(self.command_error(source))
            }
        }
    }

    fn command_error(&self, source: RedisError) -> Error {
        Error::Command {
            addr: self.addr.clone(),
            source,
        }
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    /// `SET key value`.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.query(redis::cmd("SET").arg(key).arg(value)).await
    }

    /// `DEL key`.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let _: i64 = self.query(redis::cmd("DEL").arg(key)).await?;
        Ok(())
    }

    /// `EXISTS key`.
    pub async fn exists(&self, key: &str) -> Result<bool, Error> {
        self.query(redis::cmd("EXISTS").arg(key)).await
    }

    /// `KEYS *`: every key of the database.
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        self.query(redis::cmd("KEYS").arg("*")).await
    }

    /// `MGET keys...`, each key with its value.
    pub async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(&keys)).await?;
        Ok(keys.into_iter().zip(values).collect())
    }

    /// `MSET key value...`.
    pub async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> Result<(), Error> {
        if key_values.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("MSET");
        for (k, v) in &key_values {
            cmd.arg(k).arg(v);
        }
        self.query(&cmd).await
    }

    /// `DEL keys...`.
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let _: i64 = self.query(redis::cmd("DEL").arg(keys)).await?;
        Ok(())
    }

    /// `INCRBY key delta`: the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.query(redis::cmd("INCRBY").arg(key).arg(delta)).await
    }

    /// Starts a compare-and-swap of `key` on a connection of its own: `WATCH`, then `GET`.
    pub async fn compare_and_swap(&self, key: String) -> Result<Cas, Error> {
        let conn = self.open_connection().await?;
        let mut cas = Cas {
            conn,
            key,
            current: None,
            addr: self.addr.clone(),
        };
        cas.watch_and_read().await?;
        Ok(cas)
    }
}

/// A compare-and-swap in progress: its own connection, watching its key.
pub struct Cas {
    conn: MultiplexedConnection,
    key: String,
    current: Option<Vec<u8>>,
    addr: String,
}

impl Cas {
    /// The value the key had when it was (last) read.
    pub fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    fn error(&self, source: RedisError) -> Error {
        Error::Command {
            addr: self.addr.clone(),
            source,
        }
    }

    async fn watch_and_read(&mut self) -> Result<(), Error> {
        let _: () = redis::cmd("WATCH")
            .arg(&self.key)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.error(e))?;
        self.current = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Sets the key to `value` unless it changed since it was read: `true` when set;
    /// `false` when Redis aborted the transaction, the key then read and watched again.
    pub async fn swap(&mut self, value: Vec<u8>) -> Result<bool, Error> {
        let reply: Value = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&self.key)
            .arg(value)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.error(e))?;
        if matches!(reply, Value::Nil) {
            self.watch_and_read().await?;
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_with_the_password_masked() {
        assert!(RedisStore::new("redis://127.0.0.1:6380/2").is_ok());
        assert!(RedisStore::new("rediss://cache.example:6380").is_ok());
        let err = RedisStore::new("http://user:hunter2@host").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("http://user:***@host"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let err = RedisStore::new("rediss://host:6380/#insecure").unwrap_err();
        assert!(err.to_string().contains("certificate checks"), "{err}");
    }
}

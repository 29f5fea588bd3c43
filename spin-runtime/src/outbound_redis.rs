//! Outbound Redis: the guest interface `fermyon:spin/redis@2.0.0`, with the `redis` crate.
//!
//! This module owns the host side of outbound Redis as Spin's `outbound-redis` factor
//! does it: `open(address)` checks the address (`redis://host[:port]`, or
//! `rediss://host[:port]` for TLS; default port 6379, optional `user:password@` and
//! `/db`) against the component's `allowed_outbound_hosts` (the scheme must match: a
//! `redis://` entry does not allow `rediss://`) and fails with `invalid-address` when it
//! is not allowed or does not parse, then opens a multiplexed async connection (a
//! connection failure, an untrusted server certificate included, is `other`). TLS uses
//! the shared client configuration of [`crate::tls`] (system or `SSL_CERT_FILE` roots
//! plus the Mozilla ones); `rediss://...#insecure` (no certificate check) is refused with
//! `other`, and client certificates are not supported. Each command is sent as the
//! Redis command of the same name; a reply of the wrong type (`WRONGTYPE`, or a value
//! that does not convert, or `INCR` of a non-integer) is `type-error`, anything else
//! `other` with the server's message. `execute` flattens arrays and sets into its result
//! list as Spin does.
//!
//! Not implemented yet: `spin:redis/redis@3.0.0`, whose functions are component-model
//! `async` (WASI 0.3 apps).

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo,
    RedisError, Value,
};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::outbound::AllowedHosts;

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/redis",
        imports: { default: async },
        with: {
            "fermyon:spin/redis.connection": super::Connection,
        },
    });
}

use gen_::fermyon::spin::redis as v2;
use v2::{Error, RedisParameter, RedisResult};

/// An open connection, the host side of a guest `connection` resource.
pub struct Connection {
    conn: MultiplexedConnection,
}

/// Per-instance Redis state: the component's allow list.
#[derive(Debug, Clone)]
pub struct RedisCtx {
    allowed: Arc<AllowedHosts>,
}

impl RedisCtx {
    /// A context allowing the addresses `allowed` permits.
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self { allowed }
    }
}

/// A borrowed view of [`RedisCtx`] plus the resource table; the guest interface is
/// implemented on it.
pub struct RedisCtxView<'a> {
    /// The context.
    pub ctx: &'a RedisCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by store data that holds a [`RedisCtx`].
pub trait RedisView: Send {
    /// Borrows the Redis context and the resource table.
    fn redis(&mut self) -> RedisCtxView<'_>;
}

struct Redis;

impl HasData for Redis {
    type Data<'a> = RedisCtxView<'a>;
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

fn redis_error(e: RedisError) -> Error {
    if matches!(e.kind(), ErrorKind::UnexpectedReturnType) || e.code() == Some("WRONGTYPE") {
        Error::TypeError
    } else {
        other(e)
    }
}

impl RedisCtxView<'_> {
    fn conn(&self, c: &Resource<Connection>) -> Result<MultiplexedConnection, Error> {
        self.table.get(c).map(|c| c.conn.clone()).map_err(other)
    }
}

/// Opens a multiplexed connection to an (allowed) address: plain TCP for `redis://`,
/// TLS with [`crate::tls`] for `rediss://`.
async fn connect(address: &str) -> Result<MultiplexedConnection, Error> {
    let info = address
        .into_connection_info()
        .map_err(|_| Error::InvalidAddress)?;
    match info.addr() {
        ConnectionAddr::Tcp(..) => redis::Client::open(info)
            .map_err(|_| Error::InvalidAddress)?
            .get_multiplexed_async_connection()
            .await
            .map_err(other),
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => {
            if *insecure {
                return Err(other(
                    "rediss:// without certificate checks is not supported",
                ));
            }
            let stream = crate::tls::connect(host, *port).await.map_err(other)?;
            let (conn, driver) = MultiplexedConnection::new_with_config(
                info.redis_settings(),
                stream,
                AsyncConnectionConfig::new(),
            )
            .await
            .map_err(other)?;
            // The driver reads replies and ends when every handle to the connection is gone.
            tokio::spawn(driver);
            Ok(conn)
        }
        _ => Err(Error::InvalidAddress),
    }
}

/// Sends `cmd` on `conn` (a clone of the resource's connection: the borrow of the
/// resource table must not live across the await).
async fn query<T: FromRedisValue>(
    mut conn: MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<T, Error> {
    cmd.query_async(&mut conn).await.map_err(redis_error)
}

impl v2::Host for RedisCtxView<'_> {}

impl v2::HostConnection for RedisCtxView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        if !self.ctx.allowed.allows_address(&address) {
            tracing::debug!(%address, "redis address denied by allowed_outbound_hosts");
            return Err(Error::InvalidAddress);
        }
        let conn = connect(&address).await?;
        self.table.push(Connection { conn }).map_err(other)
    }

    async fn publish(
        &mut self,
        c: Resource<Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), Error> {
        let _: i64 = query(
            self.conn(&c)?,
            redis::cmd("PUBLISH").arg(channel).arg(payload),
        )
        .await?;
        Ok(())
    }

    async fn get(
        &mut self,
        c: Resource<Connection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        query(self.conn(&c)?, redis::cmd("GET").arg(key)).await
    }

    async fn set(
        &mut self,
        c: Resource<Connection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        query(self.conn(&c)?, redis::cmd("SET").arg(key).arg(value)).await
    }

    async fn incr(&mut self, c: Resource<Connection>, key: String) -> Result<i64, Error> {
        let mut conn = self.conn(&c)?;
        redis::cmd("INCR")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| match e.detail() {
                Some(d) if d.contains("not an integer") => Error::TypeError,
                _ => redis_error(e),
            })
    }

    async fn del(&mut self, c: Resource<Connection>, keys: Vec<String>) -> Result<u32, Error> {
        query(self.conn(&c)?, redis::cmd("DEL").arg(keys)).await
    }

    async fn sadd(
        &mut self,
        c: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        query(self.conn(&c)?, redis::cmd("SADD").arg(key).arg(values)).await
    }

    async fn smembers(
        &mut self,
        c: Resource<Connection>,
        key: String,
    ) -> Result<Vec<String>, Error> {
        query(self.conn(&c)?, redis::cmd("SMEMBERS").arg(key)).await
    }

    async fn srem(
        &mut self,
        c: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        query(self.conn(&c)?, redis::cmd("SREM").arg(key).arg(values)).await
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, Error> {
        let mut cmd = redis::cmd(&command);
        for a in arguments {
            match a {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: Value = query(self.conn(&c)?, &cmd).await?;
        let mut results = Vec::new();
        flatten(value, &mut results)?;
        Ok(results)
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

/// A reply as `execute`'s result list: arrays and sets flattened, as Spin does.
fn flatten(value: Value, out: &mut Vec<RedisResult>) -> Result<(), Error> {
    match value {
        Value::Nil => out.push(RedisResult::Nil),
        Value::Int(i) => out.push(RedisResult::Int64(i)),
        Value::BulkString(b) => out.push(RedisResult::Binary(b)),
        Value::SimpleString(s) => out.push(RedisResult::Status(s)),
        Value::Okay => out.push(RedisResult::Status("OK".into())),
        Value::Double(d) => out.push(RedisResult::Binary(d.to_string().into_bytes())),
        Value::Boolean(b) => out.push(RedisResult::Int64(i64::from(b))),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        other => return Err(Error::Other(format!("cannot convert the reply {other:?}"))),
    }
    Ok(())
}

/// Links `fermyon:spin/redis@2.0.0` into `linker`.
pub fn add_to_linker<T: RedisView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Redis>(linker, T::redis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        let allowed = AllowedHosts::parse(&["redis://127.0.0.1:6380".to_string()]).unwrap();
        assert!(allowed.allows_address("redis://127.0.0.1:6380"));
        assert!(allowed.allows_address("redis://user:pw@127.0.0.1:6380/2"));
        assert!(!allowed.allows_address("redis://127.0.0.1"));
        assert!(!allowed.allows_address("redis://127.0.0.2:6380"));
        assert!(!allowed.allows_address("not a url"));
        let default = AllowedHosts::parse(&["redis://localhost".to_string()]).unwrap();
        assert!(default.allows_address("redis://localhost:6379"));
        assert!(!allowed.allows_address("rediss://127.0.0.1:6380"));
        let tls = AllowedHosts::parse(&["rediss://localhost".to_string()]).unwrap();
        assert!(tls.allows_address("rediss://localhost:6379"));
        assert!(!tls.allows_address("redis://localhost:6379"));
    }

    #[test]
    fn replies_flatten() {
        let mut out = Vec::new();
        let reply = Value::Array(vec![
            Value::Int(1),
            Value::Okay,
            Value::Set(vec![Value::BulkString(b"x".to_vec()), Value::Nil]),
        ]);
        flatten(reply, &mut out).unwrap();
        assert_eq!(out.len(), 4);
        assert!(matches!(&out[2], RedisResult::Binary(b) if b == b"x"));
        assert!(flatten(Value::Map(vec![]), &mut Vec::new()).is_err());
    }
}

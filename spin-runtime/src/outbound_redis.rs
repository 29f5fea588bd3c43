//! Outbound Redis: the guest interfaces `fermyon:spin/redis@2.0.0` and
//! `spin:redis/redis@3.0.0`, with the `redis` crate.
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
//! The 3.0 interface has the same functions as component-model `async` functions (WASI
//! 0.3 apps, spin-sdk 7): each takes what it needs from the store, awaits the server
//! without holding the store, and shares the connection type, the commands and the error
//! mapping with 2.0 (a connection opened through one version is a resource of that
//! version only, as the component model types them). Neither version limits the number
//! of connections (`too-many-connections` is never returned) or the size of a reply.
//! Not implemented: the inbound Redis trigger (`spin:redis/inbound-redis`).

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo,
    RedisError, Value,
};
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};

use crate::outbound::AllowedHosts;

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/redis",
        imports: { default: async },
        with: {
            "fermyon:spin/redis.connection": super::Connection,
            "spin:redis/redis.connection": super::Connection,
        },
    });
}

use gen_::fermyon::spin::redis as v2;
use gen_::spin::redis::redis as v3;

/// An open connection, the host side of a guest `connection` resource (either version).
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

/// A borrowed view of [`RedisCtx`] plus the resource table; the guest interfaces are
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

/// A failure of either version, converted into that version's `error`.
#[derive(Debug)]
enum Failure {
    InvalidAddress,
    TypeError,
    Other(String),
}

fn other(e: impl std::fmt::Display) -> Failure {
    Failure::Other(e.to_string())
}

fn redis_error(e: RedisError) -> Failure {
    if matches!(e.kind(), ErrorKind::UnexpectedReturnType) || e.code() == Some("WRONGTYPE") {
        Failure::TypeError
    } else {
        other(e)
    }
}

impl From<Failure> for v2::Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::InvalidAddress => Self::InvalidAddress,
            Failure::TypeError => Self::TypeError,
            Failure::Other(m) => Self::Other(m),
        }
    }
}

impl From<Failure> for v3::Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::InvalidAddress => Self::InvalidAddress,
            Failure::TypeError => Self::TypeError,
            Failure::Other(m) => Self::Other(m),
        }
    }
}

impl RedisCtxView<'_> {
    /// Checks `address` against the allow list and opens a connection resource.
    fn allowed(&self, address: &str) -> Result<(), Failure> {
        if self.ctx.allowed.allows_address(address) {
            Ok(())
        } else {
            tracing::debug!(%address, "redis address denied by allowed_outbound_hosts");
            Err(Failure::InvalidAddress)
        }
    }

    /// A clone of the resource's connection: the borrow of the resource table must not
    /// live across an await.
    fn conn(&self, rep: u32) -> Result<MultiplexedConnection, Failure> {
        self.table
            .get(&Resource::<Connection>::new_borrow(rep))
            .map(|c| c.conn.clone())
            .map_err(other)
    }
}

/// Opens a multiplexed connection to an (allowed) address: plain TCP for `redis://`,
/// TLS with [`crate::tls`] for `rediss://`.
async fn connect(address: &str) -> Result<MultiplexedConnection, Failure> {
    let info = address
        .into_connection_info()
        .map_err(|_| Failure::InvalidAddress)?;
    match info.addr() {
        ConnectionAddr::Tcp(..) => redis::Client::open(info)
            .map_err(|_| Failure::InvalidAddress)?
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
        _ => Err(Failure::InvalidAddress),
    }
}

/// The commands, shared by both versions; each works on its own clone of a connection.
mod ops {
    use super::*;

    async fn query<T: FromRedisValue>(
        mut conn: MultiplexedConnection,
        cmd: &redis::Cmd,
    ) -> Result<T, Failure> {
        cmd.query_async(&mut conn).await.map_err(redis_error)
    }

    pub async fn publish(
        conn: MultiplexedConnection,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), Failure> {
        let _: i64 = query(conn, redis::cmd("PUBLISH").arg(channel).arg(payload)).await?;
        Ok(())
    }

    pub async fn get(conn: MultiplexedConnection, key: String) -> Result<Option<Vec<u8>>, Failure> {
        query(conn, redis::cmd("GET").arg(key)).await
    }

    pub async fn set(
        conn: MultiplexedConnection,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Failure> {
        query(conn, redis::cmd("SET").arg(key).arg(value)).await
    }

    pub async fn incr(mut conn: MultiplexedConnection, key: String) -> Result<i64, Failure> {
        redis::cmd("INCR")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| match e.detail() {
                Some(d) if d.contains("not an integer") => Failure::TypeError,
                _ => redis_error(e),
            })
    }

    pub async fn del(conn: MultiplexedConnection, keys: Vec<String>) -> Result<u32, Failure> {
        query(conn, redis::cmd("DEL").arg(keys)).await
    }

    pub async fn sadd(
        conn: MultiplexedConnection,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Failure> {
        query(conn, redis::cmd("SADD").arg(key).arg(values)).await
    }

    pub async fn smembers(
        conn: MultiplexedConnection,
        key: String,
    ) -> Result<Vec<String>, Failure> {
        query(conn, redis::cmd("SMEMBERS").arg(key)).await
    }

    pub async fn srem(
        conn: MultiplexedConnection,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Failure> {
        query(conn, redis::cmd("SREM").arg(key).arg(values)).await
    }

    /// Sends `cmd`; the reply flattened into `execute`'s result list.
    pub async fn execute(
        conn: MultiplexedConnection,
        cmd: redis::Cmd,
    ) -> Result<Vec<Reply>, Failure> {
        let value: Value = query(conn, &cmd).await?;
        let mut results = Vec::new();
        flatten(value, &mut results)?;
        Ok(results)
    }
}

/// One entry of `execute`'s result list, before conversion to a version's `redis-result`.
#[derive(Debug)]
enum Reply {
    Nil,
    Status(String),
    Int64(i64),
    Binary(Vec<u8>),
}

/// A reply as `execute`'s result list: arrays and sets flattened, as Spin does.
fn flatten(value: Value, out: &mut Vec<Reply>) -> Result<(), Failure> {
    match value {
        Value::Nil => out.push(Reply::Nil),
        Value::Int(i) => out.push(Reply::Int64(i)),
        Value::BulkString(b) => out.push(Reply::Binary(b)),
        Value::SimpleString(s) => out.push(Reply::Status(s)),
        Value::Okay => out.push(Reply::Status("OK".into())),
        Value::Double(d) => out.push(Reply::Binary(d.to_string().into_bytes())),
        Value::Boolean(b) => out.push(Reply::Int64(i64::from(b))),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        other => {
            return Err(Failure::Other(format!(
                "cannot convert the reply {other:?}"
            )))
        }
    }
    Ok(())
}

macro_rules! conversions {
    ($v:ident) => {
        impl From<Reply> for $v::RedisResult {
            fn from(r: Reply) -> Self {
                match r {
                    Reply::Nil => Self::Nil,
                    Reply::Status(s) => Self::Status(s),
                    Reply::Int64(i) => Self::Int64(i),
                    Reply::Binary(b) => Self::Binary(b),
                }
            }
        }

        impl redis::ToRedisArgs for $v::RedisParameter {
            fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
                match self {
                    Self::Int64(i) => i.write_redis_args(out),
                    Self::Binary(b) => b.write_redis_args(out),
                }
            }
        }
    };
}
conversions!(v2);
conversions!(v3);

fn command<A: redis::ToRedisArgs>(name: &str, arguments: &[A]) -> redis::Cmd {
    let mut cmd = redis::cmd(name);
    for a in arguments {
        cmd.arg(a);
    }
    cmd
}

impl v2::Host for RedisCtxView<'_> {}

impl v2::HostConnection for RedisCtxView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, v2::Error> {
        self.allowed(&address)?;
        let conn = connect(&address).await?;
        Ok(self.table.push(Connection { conn }).map_err(other)?)
    }

    async fn publish(
        &mut self,
        c: Resource<Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v2::Error> {
        Ok(ops::publish(self.conn(c.rep())?, channel, payload).await?)
    }

    async fn get(
        &mut self,
        c: Resource<Connection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v2::Error> {
        Ok(ops::get(self.conn(c.rep())?, key).await?)
    }

    async fn set(
        &mut self,
        c: Resource<Connection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v2::Error> {
        Ok(ops::set(self.conn(c.rep())?, key, value).await?)
    }

    async fn incr(&mut self, c: Resource<Connection>, key: String) -> Result<i64, v2::Error> {
        Ok(ops::incr(self.conn(c.rep())?, key).await?)
    }

    async fn del(&mut self, c: Resource<Connection>, keys: Vec<String>) -> Result<u32, v2::Error> {
        Ok(ops::del(self.conn(c.rep())?, keys).await?)
    }

    async fn sadd(
        &mut self,
        c: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        Ok(ops::sadd(self.conn(c.rep())?, key, values).await?)
    }

    async fn smembers(
        &mut self,
        c: Resource<Connection>,
        key: String,
    ) -> Result<Vec<String>, v2::Error> {
        Ok(ops::smembers(self.conn(c.rep())?, key).await?)
    }

    async fn srem(
        &mut self,
        c: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        Ok(ops::srem(self.conn(c.rep())?, key, values).await?)
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        command_name: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> Result<Vec<v2::RedisResult>, v2::Error> {
        let cmd = command(&command_name, &arguments);
        let replies = ops::execute(self.conn(c.rep())?, cmd).await?;
        Ok(replies.into_iter().map(Into::into).collect())
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

/// The connection behind `c`, taken from the store without holding it.
fn conn_of<U>(
    store: &Accessor<U, Redis>,
    c: &Resource<Connection>,
) -> Result<MultiplexedConnection, Failure> {
    store.with(|mut view| view.get().conn(c.rep()))
}

impl v3::Host for RedisCtxView<'_> {}

impl v3::HostConnection for RedisCtxView<'_> {
    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl<U> v3::HostConnectionWithStore<U> for Redis {
    async fn open(
        store: &Accessor<U, Self>,
        address: String,
    ) -> Result<Resource<Connection>, v3::Error> {
        store.with(|mut view| view.get().allowed(&address))?;
        let conn = connect(&address).await?;
        Ok(store.with(|mut view| view.get().table.push(Connection { conn }).map_err(other))?)
    }

    async fn publish(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v3::Error> {
        Ok(ops::publish(conn_of(store, &c)?, channel, payload).await?)
    }

    async fn get(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v3::Error> {
        Ok(ops::get(conn_of(store, &c)?, key).await?)
    }

    async fn set(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v3::Error> {
        Ok(ops::set(conn_of(store, &c)?, key, value).await?)
    }

    async fn incr(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        key: String,
    ) -> Result<i64, v3::Error> {
        Ok(ops::incr(conn_of(store, &c)?, key).await?)
    }

    async fn del(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        keys: Vec<String>,
    ) -> Result<u32, v3::Error> {
        Ok(ops::del(conn_of(store, &c)?, keys).await?)
    }

    async fn sadd(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        Ok(ops::sadd(conn_of(store, &c)?, key, values).await?)
    }

    async fn smembers(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        key: String,
    ) -> Result<Vec<String>, v3::Error> {
        Ok(ops::smembers(conn_of(store, &c)?, key).await?)
    }

    async fn srem(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        Ok(ops::srem(conn_of(store, &c)?, key, values).await?)
    }

    async fn execute(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        command_name: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> Result<Vec<v3::RedisResult>, v3::Error> {
        let cmd = command(&command_name, &arguments);
        let replies = ops::execute(conn_of(store, &c)?, cmd).await?;
        Ok(replies.into_iter().map(Into::into).collect())
    }
}

/// Links `fermyon:spin/redis@2.0.0` and `spin:redis/redis@3.0.0` into `linker`.
pub fn add_to_linker<T: RedisView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Redis>(linker, T::redis)?;
    v3::add_to_linker::<T, Redis>(linker, T::redis)
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
        assert!(matches!(&out[2], Reply::Binary(b) if b == b"x"));
        assert!(flatten(Value::Map(vec![]), &mut Vec::new()).is_err());
    }
}

//! Outbound PostgreSQL: the guest interfaces `fermyon:spin/postgres@2.0.0`,
//! `spin:postgres/postgres@3.0.0` and `spin:postgres/postgres@4.2.0` (which also serves
//! 4.0.0 and 4.1.0 imports), with `tokio-postgres`.
//!
//! This module owns the host side of outbound PostgreSQL as Spin's `outbound-pg` factor
//! does it: `open(address)` parses the connection string (`postgres://host[:port]/db` or
//! `host=... port=...`, default port 5432), checks each host it names against the
//! component's `allowed_outbound_hosts` and fails with `connection-failed` naming the
//! host and port when one is not allowed; then it connects (a parse or connection
//! failure is `connection-failed` too). Each guest connection is its own client whose
//! connection task runs on tokio until the guest drops it.
//!
//! The 4.x types are the working set: 2.0.0 and 3.0.0 parameters are converted up
//! (2.0.0's unsigned integers are `value-conversion-failed`, Postgres has none) and
//! results converted down (values and column types the older interface cannot express
//! become `unsupported` / `other`), as Spin does ([`versions`]). The conversions between
//! Postgres and WIT values live in [`types`], the guest-facing trait implementations
//! (4.1.0's connection builder and 4.2.0's component-model `async` functions included)
//! in [`hosts`]. A statement the server rejects is `query-failed` (with the server's
//! structured error in 4.x); a parameter that does not convert is `bad-parameter`; a
//! column value that does not convert is `value-conversion-failed` naming the column.
//!
//! TLS (`sslmode=prefer`, the default, or `require`) uses the shared rustls client
//! configuration of [`crate::tls`]; `sslmode=disable` is plain text.
//!
//! Not implemented yet: per-connection root certificates (a connection builder's
//! `set-ca-root` makes `build` fail with `connection-failed`), `sslmode=verify-ca` and
//! `verify-full` (tokio-postgres does not parse them: `connection-failed`; the certificate
//! and host name are always verified when TLS is used), and streaming `query-async` rows as they arrive (the whole result set is read
//! first).

#![allow(
    clippy::result_large_err,
    reason = "the errors are the WIT interface's own (4.x's carries the server's structured error)"
)]

use std::sync::Arc;

use tokio_postgres::types::ToSql;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::outbound::AllowedHosts;

mod hosts;
mod types;
mod versions;

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/postgres",
        imports: {
            // A constructor cannot return an error to the guest; a full resource table traps.
            "spin:postgres/postgres.[constructor]connection-builder": async | trappable,
            default: async,
        },
        with: {
            "fermyon:spin/postgres.connection": super::Connection,
            "spin:postgres/postgres.connection": super::Connection,
            "spin:postgres/postgres.connection-builder": super::ConnectionBuilder,
        },
    });
}

use gen_::fermyon::spin::postgres as v2;
use gen_::fermyon::spin::rdbms_types as v2_types;
use gen_::spin::postgres3_0_0::postgres as v3;
use gen_::spin::postgres4_2_0::postgres as v4;

/// An open connection, the host side of a guest `connection` resource. The client is
/// shared so that the component-model `async` functions can use it without holding the
/// store.
pub struct Connection {
    client: Arc<tokio_postgres::Client>,
}

/// A guest `connection-builder` (4.1.0): an address and, optionally, a root certificate.
pub struct ConnectionBuilder {
    address: String,
    ca_root: Option<String>,
}

/// Per-instance PostgreSQL state: the component's allow list.
#[derive(Debug, Clone)]
pub struct PgCtx {
    allowed: Arc<AllowedHosts>,
}

impl PgCtx {
    /// A context allowing the addresses `allowed` permits.
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self { allowed }
    }
}

/// A borrowed view of [`PgCtx`] plus the resource table; the guest interfaces are
/// implemented on it.
pub struct PgCtxView<'a> {
    /// The context.
    pub ctx: &'a PgCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by store data that holds a [`PgCtx`].
pub trait PgView: Send {
    /// Borrows the PostgreSQL context and the resource table.
    fn pg(&mut self) -> PgCtxView<'_>;
}

/// The `HasData` marker the bindings are linked with.
struct Pg;

impl HasData for Pg {
    type Data<'a> = PgCtxView<'a>;
}

fn other(e: impl std::fmt::Display) -> v4::Error {
    v4::Error::Other(e.to_string())
}

impl PgCtxView<'_> {
    fn push(&mut self, connection: Connection) -> Result<Resource<Connection>, v4::Error> {
        self.table.push(connection).map_err(other)
    }

    fn client(
        &mut self,
        c: &Resource<Connection>,
    ) -> Result<Arc<tokio_postgres::Client>, v4::Error> {
        self.table.get(c).map(|c| c.client.clone()).map_err(other)
    }
}

/// Connects to `address` if every host it names is allowed: in plain text with
/// `sslmode=disable`, else with TLS through the shared client configuration of
/// [`crate::tls`] (`prefer`, the default, falls back to plain text when the server has no
/// TLS; `require` does not). A CA root from a 4.1.0 connection builder is refused: the
/// host's trusted roots (`SSL_CERT_FILE`) are the only ones.
async fn connect(
    allowed: &AllowedHosts,
    address: &str,
    ca_root: Option<&str>,
) -> Result<Connection, v4::Error> {
    let config = checked_config(allowed, address)?;
    if ca_root.is_some() {
        return Err(v4::Error::ConnectionFailed(
            "per-connection root certificates are not supported: the host trusts the roots \
             of SSL_CERT_FILE or the system store"
                .into(),
        ));
    }
    let failed = |e: tokio_postgres::Error| v4::Error::ConnectionFailed(error_chain(&e));
    let client = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        tokio::spawn(drive(connection));
        client
    } else {
        let tls = crate::tls::client_config().map_err(other)?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
        let (client, connection) = config.connect(tls).await.map_err(failed)?;
        tokio::spawn(drive(connection));
        client
    };
    Ok(Connection {
        client: Arc::new(client),
    })
}

/// Runs a client's connection until the client is dropped.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "postgres connection closed with an error");
    }
}

async fn execute(
    client: &tokio_postgres::Client,
    statement: &str,
    params: &[v4::ParameterValue],
) -> Result<u64, v4::Error> {
    let params = types::to_sql_parameters(params)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    client.execute(statement, &refs).await.map_err(query_failed)
}

async fn query(
    client: &tokio_postgres::Client,
    statement: &str,
    params: &[v4::ParameterValue],
) -> Result<v4::RowSet, v4::Error> {
    let params = types::to_sql_parameters(params)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    let statement = client.prepare(statement).await.map_err(query_failed)?;
    let rows = client
        .query(&statement, &refs)
        .await
        .map_err(query_failed)?;
    let columns = statement
        .columns()
        .iter()
        .map(|c| v4::Column {
            name: c.name().to_string(),
            data_type: types::data_type(c.type_()),
        })
        .collect();
    let rows = rows.iter().map(types::row).collect::<Result<Vec<_>, _>>()?;
    Ok(v4::RowSet { columns, rows })
}

/// Parses a connection string (a `postgres://` URL or `key=value` pairs) and checks
/// every host it names against `allowed`, as Spin does (`hostaddr`, which would connect
/// somewhere other than the checked host, and Unix sockets are refused).
fn checked_config(
    allowed: &AllowedHosts,
    address: &str,
) -> Result<tokio_postgres::Config, v4::Error> {
    let failed = |m: String| Err(v4::Error::ConnectionFailed(m));
    let config: tokio_postgres::Config = match address.parse() {
        Ok(c) => c,
        Err(e) => return failed(format!("invalid Postgres connection string: {e}")),
    };
    if !config.get_hostaddrs().is_empty() {
        return failed("`hostaddr` is not supported: name the server with `host`".into());
    }
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        match host {
            tokio_postgres::config::Host::Tcp(host) => {
                let port = match ports {
                    [] => 5432,
                    [p] => *p,
                    _ => ports.get(i).copied().unwrap_or(5432),
                };
                if !allowed.allows("postgres", host, Some(port)) {
                    tracing::debug!(%host, port, "postgres address denied by allowed_outbound_hosts");
                    return failed(format!(
                        "address postgres://{host}:{port} is not permitted by the component's allowed_outbound_hosts"
                    ));
                }
            }
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => {
                return failed("Unix sockets are not supported".into());
            }
        }
    }
    Ok(config)
}

/// An error's message followed by its sources' (tokio-postgres puts the cause, such as
/// "Connection refused", in the source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// A failed statement: the server's structured error when it sent one.
fn query_failed(e: tokio_postgres::Error) -> v4::Error {
    let text = error_chain(&e);
    let query_error = match e.as_db_error() {
        None => v4::QueryError::Text(text),
        Some(db) => {
            let mut extras = Vec::new();
            let mut extra = |name: &str, value: Option<String>| {
                if let Some(v) = value {
                    extras.push((name.to_string(), v));
                }
            };
            extra("column", db.column().map(str::to_string));
            extra("constraint", db.constraint().map(str::to_string));
            extra("routine", db.routine().map(str::to_string));
            extra("hint", db.hint().map(str::to_string));
            extra("table", db.table().map(str::to_string));
            extra("datatype", db.datatype().map(str::to_string));
            extra("schema", db.schema().map(str::to_string));
            extra("file", db.file().map(str::to_string));
            extra("line", db.line().map(|l| l.to_string()));
            extra("where_", db.where_().map(str::to_string));
            v4::QueryError::DbError(v4::DbError {
                as_text: text,
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                extras,
            })
        }
    };
    v4::Error::QueryFailed(query_error)
}

/// Links the PostgreSQL interfaces (2.0.0, 3.0.0, 4.2.0) into `linker`.
pub fn add_to_linker<T: PgView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Pg>(linker, T::pg)?;
    v3::add_to_linker::<T, Pg>(linker, T::pg)?;
    v4::add_to_linker::<T, Pg>(linker, T::pg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        let allowed = AllowedHosts::parse(&["postgres://127.0.0.1:5433".to_string()]).unwrap();
        let ok = |a: &str| checked_config(&allowed, a).is_ok();
        assert!(ok("postgres://user:pw@127.0.0.1:5433/db"));
        assert!(ok("host=127.0.0.1 port=5433 user=u dbname=db"));
        assert!(!ok("postgres://127.0.0.1/db"));
        assert!(!ok("host=127.0.0.1,127.0.0.2 port=5433"));
        assert!(!ok("host=127.0.0.1 port=5433 hostaddr=10.0.0.1"));
        assert!(!ok("host=/var/run/postgresql"));
        match checked_config(&allowed, "postgres://u:secret@127.0.0.2:5433/db") {
            Err(v4::Error::ConnectionFailed(m)) => {
                assert!(
                    m.contains("postgres://127.0.0.2:5433") && !m.contains("secret"),
                    "{m}"
                )
            }
            other => panic!("expected connection-failed, got {:?}", other.err()),
        }
        let default = AllowedHosts::parse(&["postgres://localhost".to_string()]).unwrap();
        assert!(checked_config(&default, "postgres://localhost/db").is_ok());
    }
}

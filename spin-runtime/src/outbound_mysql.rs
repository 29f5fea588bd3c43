//! Outbound MySQL: the guest interfaces `fermyon:spin/mysql@2.0.0` and
//! `spin:mysql/mysql@3.0.0` (component-model `async`, spin-sdk 7), with `mysql_async`.
//!
//! This module owns the host side of outbound MySQL (and MariaDB) as Spin's
//! `outbound-mysql` factor does it: `open(address)` checks the address
//! (`mysql://user:password@host[:port]/db`, default port 3306) against the component's
//! `allowed_outbound_hosts` and fails with `connection-failed` naming the address when it
//! is not allowed; then it connects (a bad URL or a failed connection is
//! `connection-failed` too). Statements run as prepared statements with positional
//! parameters; a statement the server rejects is `query-failed` with its message.
//!
//! Columns are typed as Spin types them: integer columns by width and signedness, `FLOAT`
//! and `DOUBLE`, text and binary string columns (`CHAR`/`VARCHAR`/`TEXT` vs
//! `BINARY`/`VARBINARY`/`BLOB`); every other column type (dates, decimals, ...) is
//! `other`, and a non-null value in such a column fails the query with
//! `value-conversion-failed` naming the column, as in Spin.
//!
//! 3.0.0 has the same types and behaviour, its functions `async` ([`v3_async`]).
//!
//! TLS follows the address's `ssl-mode` (MySQL's names, any case; also `sslmode`):
//! `DISABLED` (the default) is plain text; `REQUIRED`, `VERIFY_CA` and `VERIFY_IDENTITY`
//! use TLS and always verify the server's certificate and name, against the Mozilla roots
//! plus the platform's (or `SSL_CERT_FILE`'s, see [`crate::tls`]), as outbound
//! PostgreSQL does; `PREFERRED` uses TLS when the server offers it and plain text when it
//! does not. mysql_async's own `require_ssl=true` works as `REQUIRED` does. Client
//! certificates are not supported.

use std::sync::Arc;

use tokio::sync::Mutex;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, Params, Value};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::outbound::AllowedHosts;

mod v3_async;

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/mysql",
        imports: { default: async },
        with: {
            "fermyon:spin/mysql.connection": super::Connection,
            "spin:mysql/mysql.connection": super::Connection,
        },
    });
}

use gen_::fermyon::spin::mysql as v2;
use gen_::fermyon::spin::rdbms_types::{
    Column, DbDataType, DbValue, Error, ParameterValue, RowSet,
};
use gen_::spin::mysql::mysql as v3;

/// An open connection, the host side of a guest `connection` resource. Shared and
/// locked so that the component-model `async` functions (3.0.0) can use it without
/// holding the store; one statement runs at a time on it.
pub struct Connection {
    conn: Arc<Mutex<Conn>>,
}

/// Per-instance MySQL state: the component's allow list.
#[derive(Debug, Clone)]
pub struct MysqlCtx {
    allowed: Arc<AllowedHosts>,
}

impl MysqlCtx {
    /// A context allowing the addresses `allowed` permits.
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self { allowed }
    }
}

/// A borrowed view of [`MysqlCtx`] plus the resource table; the guest interface is
/// implemented on it.
pub struct MysqlCtxView<'a> {
    /// The context.
    pub ctx: &'a MysqlCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by store data that holds a [`MysqlCtx`].
pub trait MysqlView: Send {
    /// Borrows the MySQL context and the resource table.
    fn mysql(&mut self) -> MysqlCtxView<'_>;
}

struct Mysql;

impl HasData for Mysql {
    type Data<'a> = MysqlCtxView<'a>;
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

impl MysqlCtxView<'_> {
    fn push(&mut self, connection: Connection) -> Result<Resource<Connection>, Error> {
        self.table.push(connection).map_err(other)
    }

    fn conn(&mut self, c: &Resource<Connection>) -> Result<Arc<Mutex<Conn>>, Error> {
        self.table.get(c).map(|c| c.conn.clone()).map_err(other)
    }

    fn close(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        let connection = self.table.delete(c)?;
        // Disconnect politely when no call is still using the connection.
        if let Ok(conn) = Arc::try_unwrap(connection.conn) {
            tokio::spawn(async move {
                if let Err(e) = conn.into_inner().disconnect().await {
                    tracing::debug!(error = %e, "mysql disconnect failed");
                }
            });
        }
        Ok(())
    }
}

/// What an address's `ssl-mode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disabled,
    Preferred,
    Required,
}

/// Connection options from a `mysql://` URL. mysql_async rejects `ssl-mode` query
/// parameters, so they are taken out here and turned into its TLS options.
fn opts(address: &str) -> Result<(Opts, SslMode), Error> {
    let failed = |e: &dyn std::fmt::Display| Error::ConnectionFailed(e.to_string());
    let mut url = url::Url::parse(address).map_err(|e| failed(&e))?;
    let is_ssl = |k: &str| matches!(k.to_ascii_lowercase().as_str(), "ssl-mode" | "sslmode");
    let mut mode = SslMode::Disabled;
    for (k, v) in url.query_pairs().filter(|(k, _)| is_ssl(k)) {
        mode = match v.to_ascii_uppercase().as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY" => SslMode::Required,
            _ => {
                return Err(failed(&format!(
                    "invalid {k} `{v}`: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
                )))
            }
        };
    }
    let rest: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_ssl(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !rest.is_empty() {
        url.query_pairs_mut().extend_pairs(rest);
    }
    let opts = Opts::from_url(url.as_str()).map_err(|e| failed(&e))?;
    Ok((opts, mode))
}

/// `opts` with TLS on, trusting the platform's roots besides mysql_async's built-in ones.
fn with_tls(opts: Opts) -> Opts {
    let roots = crate::tls::platform_roots()
        .iter()
        .map(|c| c.as_ref().to_vec().into())
        .collect();
    let ssl = opts
        .ssl_opts()
        .cloned()
        .unwrap_or_default()
        .with_root_certs(roots);
    OptsBuilder::from_opts(opts).ssl_opts(ssl).into()
}

/// `mysql://host:port` of an address, for messages (never its password); the address as
/// given when it is not a URL.
fn shown_address(address: &str) -> String {
    match url::Url::parse(address) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port().unwrap_or(3306)
        ),
        Err(_) => address.to_string(),
    }
}

fn to_value(p: ParameterValue) -> Value {
    match p {
        ParameterValue::Boolean(v) => v.into(),
        ParameterValue::Int8(v) => v.into(),
        ParameterValue::Int16(v) => v.into(),
        ParameterValue::Int32(v) => v.into(),
        ParameterValue::Int64(v) => v.into(),
        ParameterValue::Uint8(v) => v.into(),
        ParameterValue::Uint16(v) => v.into(),
        ParameterValue::Uint32(v) => v.into(),
        ParameterValue::Uint64(v) => v.into(),
        ParameterValue::Floating32(v) => v.into(),
        ParameterValue::Floating64(v) => v.into(),
        ParameterValue::Str(v) => v.into(),
        ParameterValue::Binary(v) => v.into(),
        ParameterValue::DbNull => Value::NULL,
    }
}

fn params(params: Vec<ParameterValue>) -> Params {
    Params::Positional(params.into_iter().map(to_value).collect())
}

/// The `db-data-type` of a column, as Spin decides it.
fn data_type(column: &mysql_async::Column) -> DbDataType {
    use ColumnType::*;
    let ty = column.column_type();
    let flags = column.flags();
    let signed = !flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = flags.contains(ColumnFlags::BINARY_FLAG);
    if ty.is_numeric_type() {
        match (ty, signed) {
            (MYSQL_TYPE_DOUBLE, _) => DbDataType::Floating64,
            (MYSQL_TYPE_FLOAT, _) => DbDataType::Floating32,
            (MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG, true) => DbDataType::Int32,
            (MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG, false) => DbDataType::Uint32,
            (MYSQL_TYPE_LONGLONG, true) => DbDataType::Int64,
            (MYSQL_TYPE_LONGLONG, false) => DbDataType::Uint64,
            (MYSQL_TYPE_SHORT, true) => DbDataType::Int16,
            (MYSQL_TYPE_SHORT, false) => DbDataType::Uint16,
            (MYSQL_TYPE_TINY, true) => DbDataType::Int8,
            (MYSQL_TYPE_TINY, false) => DbDataType::Uint8,
            _ => DbDataType::Other,
        }
    } else if ty.is_character_type() {
        match (ty, binary) {
            (MYSQL_TYPE_BLOB | MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING, true) => {
                DbDataType::Binary
            }
            (MYSQL_TYPE_BLOB | MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING, false) => DbDataType::Str,
            _ => DbDataType::Other,
        }
    } else {
        DbDataType::Other
    }
}

fn convert<T: FromValue>(value: Value, wrap: fn(T) -> DbValue) -> Result<DbValue, String> {
    mysql_async::from_value_opt::<T>(value)
        .map(wrap)
        .map_err(|e| e.to_string())
}

/// One column value as the column's `db-data-type`.
fn db_value(value: Value, column: &Column) -> Result<DbValue, Error> {
    let converted = match column.data_type {
        _ if value == Value::NULL => Ok(DbValue::DbNull),
        DbDataType::Boolean => convert(value, DbValue::Boolean),
        DbDataType::Int8 => convert(value, DbValue::Int8),
        DbDataType::Int16 => convert(value, DbValue::Int16),
        DbDataType::Int32 => convert(value, DbValue::Int32),
        DbDataType::Int64 => convert(value, DbValue::Int64),
        DbDataType::Uint8 => convert(value, DbValue::Uint8),
        DbDataType::Uint16 => convert(value, DbValue::Uint16),
        DbDataType::Uint32 => convert(value, DbValue::Uint32),
        DbDataType::Uint64 => convert(value, DbValue::Uint64),
        DbDataType::Floating32 => convert(value, DbValue::Floating32),
        DbDataType::Floating64 => convert(value, DbValue::Floating64),
        DbDataType::Str => convert(value, DbValue::Str),
        DbDataType::Binary => convert(value, DbValue::Binary),
        DbDataType::Other => Err(format!("unsupported column type, value {value:?}")),
    };
    converted.map_err(|e| {
        Error::ValueConversionFailed(format!(
            "cannot convert the value of column `{}`: {e}",
            column.name
        ))
    })
}

/// Connects to `address` if it is allowed.
async fn connect(allowed: &AllowedHosts, address: &str) -> Result<Connection, Error> {
    if !allowed.allows_address(address) {
        let shown = shown_address(address);
        tracing::debug!(address = %shown, "mysql address denied by allowed_outbound_hosts");
        return Err(Error::ConnectionFailed(format!(
            "address {shown} is not permitted by the component's allowed_outbound_hosts"
        )));
    }
    let failed = |e: mysql_async::Error| Error::ConnectionFailed(e.to_string());
    let (opts, mode) = opts(address)?;
    let conn = match mode {
        SslMode::Disabled if opts.ssl_opts().is_none() => Conn::new(opts).await.map_err(failed)?,
        SslMode::Disabled | SslMode::Required => Conn::new(with_tls(opts)).await.map_err(failed)?,
        SslMode::Preferred => match Conn::new(with_tls(opts.clone())).await {
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) => Conn::new(opts).await.map_err(failed)?,
            other => other.map_err(failed)?,
        },
    };
    Ok(Connection {
        conn: Arc::new(Mutex::new(conn)),
    })
}

async fn query(
    conn: &Mutex<Conn>,
    statement: &str,
    parameters: Vec<ParameterValue>,
) -> Result<RowSet, Error> {
    let mut conn = conn.lock().await;
    let query_failed = |e: mysql_async::Error| Error::QueryFailed(e.to_string());
    let result = conn
        .exec_iter(statement, params(parameters))
        .await
        .map_err(query_failed)?;
    let columns: Vec<Column> = result
        .columns()
        .map(|cs| {
            cs.iter()
                .map(|c| Column {
                    name: c.name_str().into_owned(),
                    data_type: data_type(c),
                })
                .collect()
        })
        .unwrap_or_default();
    let raw: Vec<mysql_async::Row> = result.collect_and_drop().await.map_err(query_failed)?;
    let mut rows = Vec::with_capacity(raw.len());
    for row in raw {
        let values = row.unwrap_raw();
        if values.len() != columns.len() {
            return Err(Error::Other(format!(
                "a row has {} values for {} columns",
                values.len(),
                columns.len()
            )));
        }
        rows.push(
            values
                .into_iter()
                .zip(&columns)
                .map(|(v, c)| db_value(v.unwrap_or(Value::NULL), c))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(RowSet { columns, rows })
}

async fn execute(
    conn: &Mutex<Conn>,
    statement: &str,
    parameters: Vec<ParameterValue>,
) -> Result<(), Error> {
    conn.lock()
        .await
        .exec_drop(statement, params(parameters))
        .await
        .map_err(|e| Error::QueryFailed(e.to_string()))
}

impl v2::Host for MysqlCtxView<'_> {}

impl v2::HostConnection for MysqlCtxView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        let connection = connect(&self.ctx.allowed, &address).await?;
        self.push(connection)
    }

    async fn query(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        query(&*self.conn(&c)?, &statement, parameters).await
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<ParameterValue>,
    ) -> Result<(), Error> {
        execute(&*self.conn(&c)?, &statement, parameters).await
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(c)
    }
}

/// Links `fermyon:spin/mysql@2.0.0` and `spin:mysql/mysql@3.0.0` into `linker`.
pub fn add_to_linker<T: MysqlView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Mysql>(linker, T::mysql)?;
    v3::add_to_linker::<T, Mysql>(linker, T::mysql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_mode_is_taken_out_and_read() {
        let (o, mode) =
            opts("mysql://u:p@127.0.0.1:3307/db?ssl-mode=DISABLED&pool_max=10").unwrap();
        assert_eq!(o.tcp_port(), 3307);
        assert_eq!(o.db_name(), Some("db"));
        assert_eq!(mode, SslMode::Disabled);
        assert!(o.ssl_opts().is_none());
        let mode = |a| opts(a).map(|(_, m)| m);
        assert_eq!(mode("mysql://h/db").ok(), Some(SslMode::Disabled));
        assert_eq!(
            mode("mysql://h/db?sslmode=verify_ca").ok(),
            Some(SslMode::Required)
        );
        assert_eq!(
            mode("mysql://h/db?ssl-mode=Preferred").ok(),
            Some(SslMode::Preferred)
        );
        assert!(matches!(
            opts("mysql://127.0.0.1/db?ssl-mode=sometimes"),
            Err(Error::ConnectionFailed(m)) if m.contains("ssl-mode `sometimes`")
        ));
        assert!(matches!(opts("not a url"), Err(Error::ConnectionFailed(_))));
        let (o, _) = opts("mysql://h/db?require_ssl=true").unwrap();
        assert!(with_tls(o).ssl_opts().is_some());
    }

    #[test]
    fn values_convert_by_column_type() {
        let col = |data_type| Column {
            name: "c".into(),
            data_type,
        };
        assert!(matches!(
            db_value(Value::Int(-3), &col(DbDataType::Int8)),
            Ok(DbValue::Int8(-3))
        ));
        assert!(matches!(
            db_value(Value::NULL, &col(DbDataType::Other)),
            Ok(DbValue::DbNull)
        ));
        assert!(matches!(
            db_value(Value::Int(300), &col(DbDataType::Uint8)),
            Err(Error::ValueConversionFailed(m)) if m.contains("`c`")
        ));
        assert!(matches!(
            db_value(Value::Date(2024, 1, 2, 0, 0, 0, 0), &col(DbDataType::Other)),
            Err(Error::ValueConversionFailed(_))
        ));
    }
}

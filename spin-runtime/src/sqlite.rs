//! SQLite databases: the `default` database at `<state_dir>/sqlite_db.db` (in memory
//! without a state directory, as Spin does for registry apps), other labels from the
//! runtime config's `[sqlite_database.<label>]`, and the guest interfaces
//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.1.0` (which also serves guests
//! importing 3.0.0; its component-model `async` functions, used by spin-sdk 7, are in
//! [`v3_async`]).
//!
//! This module owns the database locations, access control and statement execution.
//! [`SqliteDatabases`] is set up once per app (each granted file is opened once at start
//! so a bad path stops the app; databases no component is granted are never opened); each instance gets a [`SqliteCtx`] holding the labels its
//! component was granted in `sqlite_databases`. Opening a label that is not granted
//! fails with `access-denied`, an unknown one with `no-such-database`; a granted label
//! with no configured database stops the app at start (as Spin does).
//!
//! Every guest `open` of a file database gets its own rusqlite connection (so
//! `last-insert-rowid` and `changes` are the guest's own); in-memory databases share one
//! connection. Opening and executing run on tokio's blocking pool, never on the reactor.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod v3_async;

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/sqlite",
        imports: { default: async },
        with: {
            "fermyon:spin/sqlite.connection": super::Connection,
            "spin:sqlite/sqlite.connection": super::Connection,
        },
    });
}

use gen_::fermyon::spin::sqlite as v2;
use gen_::spin::sqlite::sqlite as v3;

/// The label of the database every app gets.
pub const DEFAULT_DATABASE: &str = "default";

/// File name of the default database under the state directory (as Spin names it).
pub const DEFAULT_DB_FILE: &str = "sqlite_db.db";

/// Errors from setting up databases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A database file could not be opened or created.
    #[error("cannot open sqlite database `{label}` at {path}: {source}")]
    Open {
        /// The label.
        label: String,
        /// The file.
        path: PathBuf,
        /// The rusqlite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A component was granted a label with no configured database.
    #[error("component `{component}` uses sqlite database `{label}`, which is not configured (add [sqlite_database.{label}] to the runtime config file)")]
    Unconfigured {
        /// The component id.
        component: String,
        /// The label.
        label: String,
    },
}

#[derive(Debug)]
enum Location {
    File(PathBuf),
    Memory(Arc<Mutex<rusqlite::Connection>>),
}

/// The databases of one app, by label.
#[derive(Debug, Default)]
pub struct SqliteDatabases {
    /// Every configured label and its file (`None`: in memory).
    configured: HashMap<String, Option<PathBuf>>,
    /// The opened databases: the configured labels some component is granted.
    dbs: HashMap<String, Location>,
}

impl SqliteDatabases {
    /// The `default` database under `state_dir`, or in memory without one. Nothing is
    /// opened until [`Self::open_granted`].
    pub fn new(state_dir: Option<&Path>) -> SqliteDatabases {
        let mut dbs = SqliteDatabases::default();
        dbs.add(DEFAULT_DATABASE, state_dir.map(|d| d.join(DEFAULT_DB_FILE)));
        dbs
    }

    /// Configures (or replaces) the database `label`: a file at `path` (created if
    /// missing when opened), or an in-memory database.
    pub fn add(&mut self, label: &str, path: Option<PathBuf>) {
        self.configured.insert(label.to_string(), path);
    }

    /// Opens the configured databases some component is `granted`, and no other (an app
    /// that uses no database creates no file): each file once, so a bad path stops the
    /// app at start. A granted label that is not configured is reported by
    /// [`Self::check_grants`].
    pub fn open_granted(&mut self, granted: &HashSet<&str>) -> Result<(), Error> {
        for (label, path) in &self.configured {
            if !granted.contains(label.as_str()) || self.dbs.contains_key(label) {
                continue;
            }
            let open_err = |path: &Path, source| Error::Open {
                label: label.clone(),
                path: path.to_owned(),
                source,
            };
            let location = match path {
                Some(path) => {
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    rusqlite::Connection::open(path).map_err(|e| open_err(path, e))?;
                    Location::File(path.clone())
                }
                None => {
                    let conn = rusqlite::Connection::open_in_memory()
                        .map_err(|e| open_err(Path::new(":memory:"), e))?;
                    Location::Memory(Arc::new(Mutex::new(conn)))
                }
            };
            self.dbs.insert(label.clone(), location);
        }
        Ok(())
    }

    /// Checks that every label a component was granted has a database.
    pub fn check_grants<'a>(
        &self,
        component: &str,
        labels: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Error> {
        match labels.into_iter().find(|l| !self.dbs.contains_key(*l)) {
            Some(label) => Err(Error::Unconfigured {
                component: component.to_string(),
                label: label.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// An open connection, the host side of a guest `connection` resource.
pub struct Connection {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

/// Per-instance sqlite state: the app's databases and the component's grants.
#[derive(Debug, Clone)]
pub struct SqliteCtx {
    dbs: Arc<SqliteDatabases>,
    granted: Arc<HashSet<String>>,
}

impl SqliteCtx {
    /// A context allowing the `granted` labels of `dbs`.
    pub fn new(dbs: Arc<SqliteDatabases>, granted: Arc<HashSet<String>>) -> Self {
        Self { dbs, granted }
    }
}

/// A borrowed view of [`SqliteCtx`] plus the resource table; the guest interfaces are
/// implemented on it.
pub struct SqliteCtxView<'a> {
    /// The context.
    pub ctx: &'a SqliteCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by store data that holds a [`SqliteCtx`].
pub trait SqliteView: Send {
    /// Borrows the sqlite context and the resource table.
    fn sqlite(&mut self) -> SqliteCtxView<'_>;
}

struct Sqlite;

impl HasData for Sqlite {
    type Data<'a> = SqliteCtxView<'a>;
}

/// The errors both interface versions share.
enum DbError {
    NoSuchDatabase,
    AccessDenied,
    InvalidConnection,
    Io(String),
}

fn io(e: impl std::fmt::Display) -> DbError {
    DbError::Io(e.to_string())
}

/// Rows of one statement, in host types.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
}

impl SqliteCtx {
    /// The connection a guest `open(label)` gets: the shared one of an in-memory
    /// database, or a new one to the file (opened on the blocking pool).
    async fn connect(&self, label: &str) -> Result<Arc<Mutex<rusqlite::Connection>>, DbError> {
        if !self.granted.contains(label) {
            return Err(DbError::AccessDenied);
        }
        match self.dbs.dbs.get(label) {
            None => Err(DbError::NoSuchDatabase),
            Some(Location::Memory(conn)) => Ok(conn.clone()),
            Some(Location::File(path)) => {
                let path = path.clone();
                let conn = tokio::task::spawn_blocking(move || rusqlite::Connection::open(path))
                    .await
                    .map_err(io)?
                    .map_err(io)?;
                Ok(Arc::new(Mutex::new(conn)))
            }
        }
    }
}

/// Runs one statement on the blocking pool.
async fn run(
    conn: Arc<Mutex<rusqlite::Connection>>,
    statement: String,
    params: Vec<SqlValue>,
) -> Result<Rows, DbError> {
    tokio::task::spawn_blocking(move || {
        let conn = conn.lock().map_err(io)?;
        execute(&conn, &statement, params).map_err(io)
    })
    .await
    .map_err(io)?
}

impl SqliteCtxView<'_> {
    async fn open(&mut self, label: String) -> Result<Resource<Connection>, DbError> {
        let conn = self.ctx.connect(&label).await?;
        self.table.push(Connection { conn }).map_err(io)
    }

    fn conn(&self, c: &Resource<Connection>) -> Result<Arc<Mutex<rusqlite::Connection>>, DbError> {
        self.table
            .get(c)
            .map(|c| c.conn.clone())
            .map_err(|_| DbError::InvalidConnection)
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<SqlValue>,
    ) -> Result<Rows, DbError> {
        run(self.conn(&c)?, statement, params).await
    }

    /// `last-insert-rowid` and `changes` only read connection fields: no blocking hop.
    fn with_conn<R: Default>(
        &self,
        c: &Resource<Connection>,
        f: impl FnOnce(&rusqlite::Connection) -> R,
    ) -> R {
        match self.conn(c) {
            Ok(conn) => conn.lock().map(|conn| f(&conn)).unwrap_or_default(),
            Err(_) => R::default(),
        }
    }
}

fn execute(
    conn: &rusqlite::Connection,
    statement: &str,
    params: Vec<SqlValue>,
) -> rusqlite::Result<Rows> {
    let mut stmt = conn.prepare_cached(statement)?;
    let columns: Vec<String> = stmt.column_names().map(String::from).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(i) => SqlValue::Integer(i),
                ValueRef::Real(f) => SqlValue::Real(f),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

/// Conversions between host types and one interface version's generated types (the two
/// versions have the same shapes).
macro_rules! conversions {
    ($m:ident) => {
        impl From<DbError> for $m::Error {
            fn from(e: DbError) -> Self {
                match e {
                    DbError::NoSuchDatabase => $m::Error::NoSuchDatabase,
                    DbError::AccessDenied => $m::Error::AccessDenied,
                    DbError::InvalidConnection => $m::Error::InvalidConnection,
                    DbError::Io(m) => $m::Error::Io(m),
                }
            }
        }

        impl From<$m::Value> for SqlValue {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => SqlValue::Integer(i),
                    $m::Value::Real(f) => SqlValue::Real(f),
                    $m::Value::Text(t) => SqlValue::Text(t),
                    $m::Value::Blob(b) => SqlValue::Blob(b),
                    $m::Value::Null => SqlValue::Null,
                }
            }
        }

        impl From<Rows> for $m::QueryResult {
            fn from(r: Rows) -> Self {
                let value = |v| match v {
                    SqlValue::Integer(i) => $m::Value::Integer(i),
                    SqlValue::Real(f) => $m::Value::Real(f),
                    SqlValue::Text(t) => $m::Value::Text(t),
                    SqlValue::Blob(b) => $m::Value::Blob(b),
                    SqlValue::Null => $m::Value::Null,
                };
                $m::QueryResult {
                    columns: r.columns,
                    rows: r
                        .rows
                        .into_iter()
                        .map(|values| $m::RowResult {
                            values: values.into_iter().map(value).collect(),
                        })
                        .collect(),
                }
            }
        }
    };
}

conversions!(v2);
conversions!(v3);

impl v2::Host for SqliteCtxView<'_> {}

impl v2::HostConnection for SqliteCtxView<'_> {
    async fn open(&mut self, database: String) -> Result<Resource<Connection>, v2::Error> {
        Ok(SqliteCtxView::open(self, database).await?)
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> Result<v2::QueryResult, v2::Error> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(SqliteCtxView::execute(self, c, statement, params)
            .await?
            .into())
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl v3::Host for SqliteCtxView<'_> {}

impl v3::HostConnection for SqliteCtxView<'_> {
    async fn open(&mut self, database: String) -> Result<Resource<Connection>, v3::Error> {
        Ok(SqliteCtxView::open(self, database).await?)
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<v3::QueryResult, v3::Error> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(SqliteCtxView::execute(self, c, statement, params)
            .await?
            .into())
    }

    async fn last_insert_rowid(&mut self, c: Resource<Connection>) -> i64 {
        self.with_conn(&c, rusqlite::Connection::last_insert_rowid)
    }

    async fn changes(&mut self, c: Resource<Connection>) -> u64 {
        self.with_conn(&c, rusqlite::Connection::changes)
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

/// Links `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.1.0` into `linker`.
pub fn add_to_linker<T: SqliteView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Sqlite>(linker, T::sqlite)?;
    v3::add_to_linker::<T, Sqlite>(linker, T::sqlite)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_round_trips_every_value_type() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        execute(
            &conn,
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)",
            vec![],
        )
        .unwrap();
        let params = vec![
            SqlValue::Integer(7),
            SqlValue::Real(1.5),
            SqlValue::Text("x".into()),
            SqlValue::Blob(vec![0, 1]),
            SqlValue::Null,
        ];
        execute(
            &conn,
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            params.clone(),
        )
        .unwrap();
        let rows = execute(&conn, "SELECT * FROM t", vec![]).unwrap();
        assert_eq!(rows.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(rows.rows, vec![params]);
        assert!(execute(&conn, "SELECT * FROM missing", vec![]).is_err());
    }

    #[test]
    fn grants_must_be_configured() {
        let dir = std::env::temp_dir().join(format!("spinlet-sqlite-lazy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut dbs = SqliteDatabases::new(Some(&dir));
        dbs.open_granted(&HashSet::new()).unwrap();
        assert!(
            !dir.join(DEFAULT_DB_FILE).exists(),
            "opened without a grant"
        );
        dbs.open_granted(&HashSet::from(["default", "other"]))
            .unwrap();
        assert!(dir.join(DEFAULT_DB_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(dbs.check_grants("c", &["default".to_string()]).is_ok());
        let err = dbs.check_grants("c", &["other".to_string()]).unwrap_err();
        assert!(err.to_string().contains("[sqlite_database.other]"), "{err}");
    }
}

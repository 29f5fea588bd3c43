//! The component-model `async` functions of `spin:sqlite/sqlite@3.1.0` (spin-sdk 7):
//! `open-async`, `execute-async`, `last-insert-rowid-async` and `changes-async`.
//!
//! They share grants, connections and statement execution with the synchronous
//! functions ([`SqliteCtx::connect`], [`super::run`]). Each takes what it needs out of
//! the store, runs without holding it, and puts the result back; `execute-async` returns
//! the rows as a stream and completion as a future, both already resolved (the whole
//! result set is read first, on the blocking pool).

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{io, run, v3, Connection, Sqlite, SqliteCtx};

impl<T> v3::HostConnectionWithStore<T> for Sqlite {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> Result<Resource<Connection>, v3::Error> {
        let ctx: SqliteCtx = accessor.with(|mut a| a.get().ctx.clone());
        let conn = ctx.connect(&database).await?;
        Ok(accessor.with(|mut a| a.get().table.push(Connection { conn }).map_err(io))?)
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<
        (
            Vec<String>,
            StreamReader<v3::RowResult>,
            FutureReader<Result<(), v3::Error>>,
        ),
        v3::Error,
    > {
        let conn = accessor.with(|mut a| a.get().conn(&c))?;
        let params = parameters.into_iter().map(Into::into).collect();
        let v3::QueryResult { columns, rows } = run(conn, statement, params).await?.into();
        let (rows, done) = crate::filled_stream::filled(accessor, rows, Ok(()))
            .map_err(|e| v3::Error::Io(e.to_string()))?;
        Ok((columns, rows, done))
    }

    async fn last_insert_rowid_async(accessor: &Accessor<T, Self>, c: Resource<Connection>) -> i64 {
        accessor.with(|mut a| {
            a.get()
                .with_conn(&c, rusqlite::Connection::last_insert_rowid)
        })
    }

    async fn changes_async(accessor: &Accessor<T, Self>, c: Resource<Connection>) -> u64 {
        accessor.with(|mut a| a.get().with_conn(&c, rusqlite::Connection::changes))
    }
}

//! `spin:mysql/mysql@3.0.0`: the 2.0.0 interface with component-model `async` functions
//! (spin-sdk 7).
//!
//! Its types are 2.0.0's, redeclared in the package, so they are converted case by case
//! and the calls run through the shared [`super::connect`], [`super::query`] and
//! [`super::execute`]. Each function reads what it needs out of the store, runs without
//! holding it, and puts the result back; `query` returns the rows as a stream and
//! completion as a future, both already resolved (the whole result set is read first).

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{connect, execute, query, v3, Column, DbDataType, DbValue, Error, ParameterValue};
use super::{Connection, Mysql, MysqlCtxView};

impl From<v3::ParameterValue> for ParameterValue {
    fn from(p: v3::ParameterValue) -> Self {
        use v3::ParameterValue as P;
        match p {
            P::Boolean(v) => Self::Boolean(v),
            P::Int8(v) => Self::Int8(v),
            P::Int16(v) => Self::Int16(v),
            P::Int32(v) => Self::Int32(v),
            P::Int64(v) => Self::Int64(v),
            P::Uint8(v) => Self::Uint8(v),
            P::Uint16(v) => Self::Uint16(v),
            P::Uint32(v) => Self::Uint32(v),
            P::Uint64(v) => Self::Uint64(v),
            P::Floating32(v) => Self::Floating32(v),
            P::Floating64(v) => Self::Floating64(v),
            P::Str(v) => Self::Str(v),
            P::Binary(v) => Self::Binary(v),
            P::DbNull => Self::DbNull,
        }
    }
}

impl From<DbValue> for v3::DbValue {
    fn from(v: DbValue) -> Self {
        match v {
            DbValue::Boolean(v) => Self::Boolean(v),
            DbValue::Int8(v) => Self::Int8(v),
            DbValue::Int16(v) => Self::Int16(v),
            DbValue::Int32(v) => Self::Int32(v),
            DbValue::Int64(v) => Self::Int64(v),
            DbValue::Uint8(v) => Self::Uint8(v),
            DbValue::Uint16(v) => Self::Uint16(v),
            DbValue::Uint32(v) => Self::Uint32(v),
            DbValue::Uint64(v) => Self::Uint64(v),
            DbValue::Floating32(v) => Self::Floating32(v),
            DbValue::Floating64(v) => Self::Floating64(v),
            DbValue::Str(v) => Self::Str(v),
            DbValue::Binary(v) => Self::Binary(v),
            DbValue::DbNull => Self::DbNull,
            DbValue::Unsupported => Self::Unsupported,
        }
    }
}

impl From<Column> for v3::Column {
    fn from(c: Column) -> Self {
        let data_type = match c.data_type {
            DbDataType::Boolean => v3::DbDataType::Boolean,
            DbDataType::Int8 => v3::DbDataType::Int8,
            DbDataType::Int16 => v3::DbDataType::Int16,
            DbDataType::Int32 => v3::DbDataType::Int32,
            DbDataType::Int64 => v3::DbDataType::Int64,
            DbDataType::Uint8 => v3::DbDataType::Uint8,
            DbDataType::Uint16 => v3::DbDataType::Uint16,
            DbDataType::Uint32 => v3::DbDataType::Uint32,
            DbDataType::Uint64 => v3::DbDataType::Uint64,
            DbDataType::Floating32 => v3::DbDataType::Floating32,
            DbDataType::Floating64 => v3::DbDataType::Floating64,
            DbDataType::Str => v3::DbDataType::Str,
            DbDataType::Binary => v3::DbDataType::Binary,
            DbDataType::Other => v3::DbDataType::Other,
        };
        Self {
            name: c.name,
            data_type,
        }
    }
}

impl From<Error> for v3::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::ConnectionFailed(m) => Self::ConnectionFailed(m),
            Error::BadParameter(m) => Self::BadParameter(m),
            Error::QueryFailed(m) => Self::QueryFailed(m),
            Error::ValueConversionFailed(m) => Self::ValueConversionFailed(m),
            Error::Other(m) => Self::Other(m),
        }
    }
}

fn params(params: Vec<v3::ParameterValue>) -> Vec<ParameterValue> {
    params.into_iter().map(Into::into).collect()
}

impl v3::Host for MysqlCtxView<'_> {}

impl v3::HostConnection for MysqlCtxView<'_> {
    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(c)
    }
}

impl<T> v3::HostConnectionWithStore<T> for Mysql {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<Connection>, v3::Error> {
        let allowed = accessor.with(|mut a| a.get().ctx.allowed.clone());
        let connection = connect(&allowed, &address).await?;
        Ok(accessor.with(|mut a| a.get().push(connection))?)
    }

    async fn query(
        accessor: &Accessor<T, Self>,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::ParameterValue>,
    ) -> Result<
        (
            Vec<v3::Column>,
            StreamReader<v3::Row>,
            FutureReader<Result<(), v3::Error>>,
        ),
        v3::Error,
    > {
        let conn = accessor.with(|mut a| a.get().conn(&c))?;
        let result = query(&conn, &statement, params(parameters)).await?;
        let columns = result.columns.into_iter().map(Into::into).collect();
        let rows: Vec<v3::Row> = result
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(Into::into).collect())
            .collect();
        let (rows, done) = crate::filled_stream::filled(accessor, rows, Ok(()))
            .map_err(|e| v3::Error::Other(e.to_string()))?;
        Ok((columns, rows, done))
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::ParameterValue>,
    ) -> Result<(), v3::Error> {
        let conn = accessor.with(|mut a| a.get().conn(&c))?;
        Ok(execute(&conn, &statement, params(parameters)).await?)
    }
}

//! The guest-facing trait implementations of the PostgreSQL interfaces: 2.0.0, 3.0.0 and
//! 4.2.0 (which also serves guests importing 4.0.0 or 4.1.0: wasmtime links a semver-
//! compatible import to it).
//!
//! Each call converts to and from the 4.x types ([`super::versions`]) and runs through
//! the shared [`super::connect`], [`super::execute`] and [`super::query`]. The 4.2.0
//! component-model `async` functions take the client out of the store, run without
//! holding it, and put the result back; `query-async` returns the rows as a stream and
//! completion as a future, both already resolved (the whole result set is read first).

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{connect, execute, other, query, v2, v2_types, v3, v4};
use super::{Connection, ConnectionBuilder, Pg, PgCtxView};

impl v4::Host for PgCtxView<'_> {}

impl v4::HostConnection for PgCtxView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, v4::Error> {
        let connection = connect(&self.ctx.allowed, &address, None).await?;
        self.push(connection)
    }

    async fn query(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<v4::RowSet, v4::Error> {
        query(&*self.client(&c)?, &statement, &params).await
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<u64, v4::Error> {
        execute(&*self.client(&c)?, &statement, &params).await
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl v4::HostConnectionBuilder for PgCtxView<'_> {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<ConnectionBuilder>> {
        Ok(self.table.push(ConnectionBuilder {
            address,
            ca_root: None,
        })?)
    }

    async fn set_ca_root(
        &mut self,
        b: Resource<ConnectionBuilder>,
        certificate: String,
    ) -> Result<(), v4::Error> {
        self.table.get_mut(&b).map_err(other)?.ca_root = Some(certificate);
        Ok(())
    }

    async fn build(
        &mut self,
        b: Resource<ConnectionBuilder>,
    ) -> Result<Resource<Connection>, v4::Error> {
        let builder = self.table.get(&b).map_err(other)?;
        let (address, ca_root) = (builder.address.clone(), builder.ca_root.clone());
        let connection = connect(&self.ctx.allowed, &address, ca_root.as_deref()).await?;
        self.push(connection)
    }

    async fn drop(&mut self, b: Resource<ConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

/// Connects as `connect` does, reading the allow list out of the store first and
/// putting the connection into it afterwards.
async fn open_async<T>(
    accessor: &Accessor<T, Pg>,
    address: &str,
    ca_root: Option<&str>,
) -> Result<Resource<Connection>, v4::Error> {
    let allowed = accessor.with(|mut a| a.get().ctx.allowed.clone());
    let connection = connect(&allowed, address, ca_root).await?;
    accessor.with(|mut a| a.get().push(connection))
}

impl<T> v4::HostConnectionWithStore<T> for Pg {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<Connection>, v4::Error> {
        open_async(accessor, &address, None).await
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<u64, v4::Error> {
        let client = accessor.with(|mut a| a.get().client(&c))?;
        execute(&client, &statement, &params).await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<
        (
            Vec<v4::Column>,
            StreamReader<v4::Row>,
            FutureReader<Result<(), v4::Error>>,
        ),
        v4::Error,
    > {
        let client = accessor.with(|mut a| a.get().client(&c))?;
        let v4::RowSet { columns, rows } = query(&client, &statement, &params).await?;
        let (rows, done) = crate::filled_stream::filled(accessor, rows, Ok(())).map_err(other)?;
        Ok((columns, rows, done))
    }
}

impl<T> v4::HostConnectionBuilderWithStore<T> for Pg {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        b: Resource<ConnectionBuilder>,
    ) -> Result<Resource<Connection>, v4::Error> {
        let (address, ca_root) = accessor.with(|mut a| {
            let view = a.get();
            let builder = view.table.get(&b).map_err(other)?;
            Ok::<_, v4::Error>((builder.address.clone(), builder.ca_root.clone()))
        })?;
        open_async(accessor, &address, ca_root.as_deref()).await
    }
}

impl v3::Host for PgCtxView<'_> {}

impl v3::HostConnection for PgCtxView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, v3::Error> {
        let connection = connect(&self.ctx.allowed, &address, None).await?;
        Ok(self.push(connection)?)
    }

    async fn query(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Result<v3::RowSet, v3::Error> {
        let params: Vec<v4::ParameterValue> = params.into_iter().map(Into::into).collect();
        Ok(query(&*self.client(&c)?, &statement, &params).await?.into())
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Result<u64, v3::Error> {
        let params: Vec<v4::ParameterValue> = params.into_iter().map(Into::into).collect();
        Ok(execute(&*self.client(&c)?, &statement, &params).await?)
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl v2::Host for PgCtxView<'_> {}

impl v2_types::Host for PgCtxView<'_> {}

/// 2.0.0 parameters as 4.x ones (unsigned integers fail).
fn v2_params(
    params: Vec<v2_types::ParameterValue>,
) -> Result<Vec<v4::ParameterValue>, v2_types::Error> {
    params.into_iter().map(TryInto::try_into).collect()
}

impl v2::HostConnection for PgCtxView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, v2_types::Error> {
        let connection = connect(&self.ctx.allowed, &address, None).await?;
        Ok(self.push(connection)?)
    }

    async fn query(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<v2_types::RowSet, v2_types::Error> {
        let params = v2_params(params)?;
        Ok(query(&*self.client(&c)?, &statement, &params).await?.into())
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<u64, v2_types::Error> {
        let params = v2_params(params)?;
        Ok(execute(&*self.client(&c)?, &statement, &params).await?)
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

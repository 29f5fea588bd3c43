//! `spin:key-value/key-value@3.0.0`: the 2.0.0 store with component-model `async`
//! functions (spin-sdk 7).
//!
//! Same stores, grants and operations as 2.0 ([`super::ops`]): each function takes the
//! store's backend out of the store data and awaits it without holding the store (sled
//! writes flush on tokio's blocking pool, Redis answers over the network). `get-keys`
//! answers with a stream of every key and a completion future that is already resolved
//! (an error, such as a store that failed to read, arrives there after an empty stream).

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{ops, spin_v3, Backend, KeyValue, KeyValueCtxView, OpenError, OpenStore};

fn other(e: impl std::fmt::Display) -> spin_v3::Error {
    spin_v3::Error::Other(e.to_string())
}

impl From<OpenError> for spin_v3::Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::AccessDenied => Self::AccessDenied,
            OpenError::NoSuchStore => Self::NoSuchStore,
        }
    }
}

/// The backend behind the guest's `store`, taken from the store data without holding it.
fn backend_of<T>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
) -> Result<Backend, spin_v3::Error> {
    accessor.with(|mut a| {
        a.get()
            .table
            .get(store)
            .map(|s| s.backend.clone())
            .map_err(other)
    })
}

impl spin_v3::Host for KeyValueCtxView<'_> {}

impl spin_v3::HostStore for KeyValueCtxView<'_> {
    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T> spin_v3::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> Result<Resource<OpenStore>, spin_v3::Error> {
        let backend = accessor.with(|mut a| a.get().granted_backend(&label))?;
        ops::connect(&backend).await.map_err(other)?;
        accessor.with(|mut a| {
            a.get()
                .table
                .push(OpenStore { backend })
                .map_err(|_| spin_v3::Error::StoreTableFull)
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, spin_v3::Error> {
        let backend = backend_of(accessor, &store)?;
        ops::get(&backend, &key).await.map_err(other)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), spin_v3::Error> {
        let backend = backend_of(accessor, &store)?;
        ops::set(&backend, key, value).await.map_err(other)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<(), spin_v3::Error> {
        let backend = backend_of(accessor, &store)?;
        ops::delete(&backend, key).await.map_err(other)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, spin_v3::Error> {
        let backend = backend_of(accessor, &store)?;
        ops::exists(&backend, &key).await.map_err(other)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), spin_v3::Error>>,
    )> {
        let keys = match backend_of(accessor, &store) {
            Ok(backend) => ops::keys(&backend).await.map_err(other),
            Err(e) => Err(e),
        };
        let (keys, done) = match keys {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        crate::filled_stream::filled(accessor, keys, done)
    }
}

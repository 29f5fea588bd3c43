//! `spin:key-value/key-value@3.0.0`: the 2.0.0 store with component-model `async`
//! functions (spin-sdk 7).
//!
//! Same stores, grants and operations as 2.0 ([`super::ops`]): each function takes the
//! sled tree out of the store and runs without holding it; writes, which flush to disk
//! before they return, run on tokio's blocking pool. `get-keys` answers with a stream of
//! every key and a completion future that is already resolved (an error, such as a store
//! that failed to read, arrives there after an empty stream).

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{ops, spin_v3, KeyValue, KeyValueCtxView, OpenError, OpenStore};

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

/// The tree behind the guest's `store`, taken from the store data without holding it.
fn tree_of<T>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
) -> Result<sled::Tree, spin_v3::Error> {
    accessor.with(|mut a| {
        a.get()
            .table
            .get(store)
            .map(|s| s.tree.clone())
            .map_err(other)
    })
}

/// Runs a flushing write on the blocking pool.
async fn write(
    f: impl FnOnce() -> sled::Result<()> + Send + 'static,
) -> Result<(), spin_v3::Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(other)?
        .map_err(other)
}

impl spin_v3::Host for KeyValueCtxView<'_> {}

impl spin_v3::HostStore for KeyValueCtxView<'_> {
    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T> spin_v3::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> Result<Resource<OpenStore>, spin_v3::Error> {
        accessor.with(|mut a| {
            let view = a.get();
            let tree = view.granted_tree(&label)?;
            view.table
                .push(OpenStore { tree })
                .map_err(|_| spin_v3::Error::StoreTableFull)
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, spin_v3::Error> {
        ops::get(&tree_of(accessor, &store)?, &key).map_err(other)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), spin_v3::Error> {
        let tree = tree_of(accessor, &store)?;
        write(move || ops::set(&tree, &key, value)).await
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<(), spin_v3::Error> {
        let tree = tree_of(accessor, &store)?;
        write(move || ops::delete(&tree, &key)).await
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, spin_v3::Error> {
        ops::exists(&tree_of(accessor, &store)?, &key).map_err(other)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), spin_v3::Error>>,
    )> {
        let keys = tree_of(accessor, &store).and_then(|tree| ops::keys(&tree).map_err(other));
        let (keys, done) = match keys {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        crate::filled_stream::filled(accessor, keys, done)
    }
}

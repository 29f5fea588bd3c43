//! Key-value storage: the `default` store in sled under the state directory, the stores
//! the runtime config names (`spin`: a sled database; `redis`: a Redis database, see
//! [`redis`]), and the guest interfaces `fermyon:spin/key-value@2.0.0`, its
//! component-model `async` successor `spin:key-value/key-value@3.0.0` (spin-sdk 7, in
//! [`v3_async`]) and `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`; a bucket
//! identifier is a store label).
//!
//! This module owns the store backends and access control. [`KeyValueStores`] is opened
//! once per app, only for the labels its components are granted (one sled database at
//! `<state_dir>/key_value.sled`, one tree per label; a Redis store connects when a guest
//! first opens it); each instance gets a [`KeyValueCtx`] holding the labels its component
//! was granted in `key_value_stores`. Opening a label that is not granted fails with
//! `access-denied`; a granted label with no configured store stops the app at start (as
//! Spin does). Writes to sled are flushed to disk (on tokio's blocking pool) before they
//! return, so values survive a restart or a crash; sled's periodic background flush is off
//! (it would fsync twice a second while idle). Every interface reaches the backends
//! through [`ops`], so a backend behaves the same under each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::runtime_config::KeyValueStoreConfig;

pub mod redis;
mod v3_async;

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/key-value",
        imports: {
            // Its result has no error case for a lost resource: that is a trap.
            "spin:key-value/key-value.[method]store.get-keys": trappable,
            // A Redis store answers over the network.
            default: async,
        },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
            "spin:key-value/key-value.store": super::OpenStore,
        },
    });
}

mod gen_wasi {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/wasi-keyvalue",
        imports: { default: async },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });
}

use gen_::fermyon::spin::key_value as spin_v2;
use gen_::spin::key_value::key_value as spin_v3;
use gen_wasi::wasi::keyvalue::{atomics as wasi_atomics, batch as wasi_batch, store as wasi_store};

/// The label of the store every app gets.
pub const DEFAULT_STORE: &str = "default";

/// File name of the sled database under the state directory.
pub const DB_DIR_NAME: &str = "key_value.sled";

/// Errors from setting up key-value stores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sled database could not be opened.
    #[error("cannot open key-value database {path}: {source}")]
    Open {
        /// Database directory.
        path: PathBuf,
        /// The sled error.
        #[source]
        source: sled::Error,
    },
    /// A Redis store's settings are unusable.
    #[error("key_value_store.{label}: {source}")]
    Redis {
        /// The label.
        label: String,
        /// What is wrong.
        #[source]
        source: redis::Error,
    },
    /// A component was granted a label with no configured store.
    #[error("component `{component}` uses key-value store `{label}`, which is not configured (add [key_value_store.{label}] to the runtime config file)")]
    Unconfigured {
        /// The component id.
        component: String,
        /// The label.
        label: String,
    },
}

/// Where one store's keys live.
#[derive(Debug, Clone)]
enum Backend {
    /// A tree of a sled database.
    Sled(sled::Tree),
    /// A Redis database.
    Redis(Arc<redis::RedisStore>),
}

/// The key-value stores of one app.
#[derive(Debug, Clone)]
pub struct KeyValueStores {
    dbs: Vec<sled::Db>,
    stores: HashMap<String, Backend>,
}

impl KeyValueStores {
    /// Opens the stores that some component of the app is `granted`, and no other:
    ///
    /// - `default` and every runtime-config label of type `spin` without a path are trees
    ///   of the main database, `<state_dir>/key_value.sled` (in memory without a state
    ///   directory, as Spin does for apps from a registry);
    /// - a runtime-config label with a path (`configured`, from
    ///   `[key_value_store.<label>]`, which may also move `default`) is its own database;
    /// - a label of type `redis` is kept in the Redis database its URL names.
    ///
    /// An app whose components use no key-value store opens no database at all: sled's
    /// start-up (its thread pool, recovery and an fsync) would otherwise be most of the
    /// app's start time. A granted label that is not configured is left out here and
    /// reported by [`Self::check_grants`].
    pub fn open_granted(
        state_dir: Option<&Path>,
        configured: &BTreeMap<String, KeyValueStoreConfig>,
        granted: &HashSet<&str>,
    ) -> Result<KeyValueStores, Error> {
        let mut stores = KeyValueStores {
            dbs: Vec::new(),
            stores: HashMap::new(),
        };
        let mut main: Option<sled::Db> = None;
        let mut labels: Vec<&str> = granted.iter().copied().collect();
        labels.sort_unstable();
        for label in labels {
            let path = match configured.get(label) {
                Some(KeyValueStoreConfig::Spin(path)) => path.as_deref(),
                Some(KeyValueStoreConfig::Redis { url }) => {
                    let store = redis::RedisStore::new(url).map_err(|source| Error::Redis {
                        label: label.to_string(),
                        source,
                    })?;
                    stores
                        .stores
                        .insert(label.to_string(), Backend::Redis(Arc::new(store)));
                    continue;
                }
                None if label == DEFAULT_STORE => None,
                None => continue,
            };
            match path {
                Some(path) => stores.add_store(label, path)?,
                None => {
                    let db = match &main {
                        Some(db) => db.clone(),
                        None => {
                            let db = open_main(state_dir)?;
                            stores.dbs.push(db.clone());
                            main = Some(db.clone());
                            db
                        }
                    };
                    let tree = db.open_tree(label).map_err(|source| Error::Open {
                        path: PathBuf::from(format!("(tree {label})")),
                        source,
                    })?;
                    stores.stores.insert(label.to_string(), Backend::Sled(tree));
                }
            }
        }
        Ok(stores)
    }

    /// Adds (or replaces) the store `label`, kept in its own sled database at `path`
    /// (from a runtime config `[key_value_store.<label>]` of type `spin`).
    pub fn add_store(&mut self, label: &str, path: &Path) -> Result<(), Error> {
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(None)
            .open()
            .map_err(open_err)?;
        let tree = db.open_tree(label).map_err(open_err)?;
        self.stores.insert(label.to_string(), Backend::Sled(tree));
        self.dbs.push(db);
        Ok(())
    }

    /// Checks that every label a component was granted has a store.
    pub fn check_grants<'a>(
        &self,
        component: &str,
        labels: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Error> {
        for label in labels {
            if !self.stores.contains_key(label) {
                return Err(Error::Unconfigured {
                    component: component.to_string(),
                    label: label.clone(),
                });
            }
        }
        Ok(())
    }

    /// Flushes everything to disk (called at shutdown; Redis keeps its own).
    pub fn flush(&self) -> Result<(), sled::Error> {
        for db in &self.dbs {
            db.flush()?;
        }
        Ok(())
    }
}

/// The main database: `<state_dir>/key_value.sled`, or a temporary one.
fn open_main(state_dir: Option<&Path>) -> Result<sled::Db, Error> {
    let Some(state_dir) = state_dir else {
        return sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| Error::Open {
                path: PathBuf::from("(memory)"),
                source,
            });
    };
    let path = state_dir.join(DB_DIR_NAME);
    sled::Config::new()
        .path(&path)
        .flush_every_ms(None)
        .open()
        .map_err(|source| Error::Open { path, source })
}

/// An open store, the host side of a guest `store` resource.
pub struct OpenStore {
    backend: Backend,
}

/// An open bucket, the host side of a guest `wasi:keyvalue/store.bucket` resource.
pub struct Bucket {
    backend: Backend,
}

/// A compare-and-swap handle, the host side of `wasi:keyvalue/atomics.cas`.
pub enum Cas {
    /// The tree, the key and the value it was read at.
    Sled {
        /// The bucket's tree.
        tree: sled::Tree,
        /// The key.
        key: String,
        /// The value when read.
        current: Option<sled::IVec>,
    },
    /// A Redis transaction watching the key.
    Redis(redis::Cas),
}

/// Per-instance key-value state: the app's stores and the component's grants.
#[derive(Debug, Clone)]
pub struct KeyValueCtx {
    stores: Arc<KeyValueStores>,
    granted: Arc<HashSet<String>>,
}

impl KeyValueCtx {
    /// A context allowing the `granted` labels of `stores`.
    pub fn new(stores: Arc<KeyValueStores>, granted: Arc<HashSet<String>>) -> Self {
        Self { stores, granted }
    }
}

/// A borrowed view of [`KeyValueCtx`] plus the resource table; the guest interface is
/// implemented on it.
pub struct KeyValueCtxView<'a> {
    /// The context.
    pub ctx: &'a KeyValueCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by store data that holds a [`KeyValueCtx`].
pub trait KeyValueView: Send {
    /// Borrows the key-value context and the resource table.
    fn key_value(&mut self) -> KeyValueCtxView<'_>;
}

struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KeyValueCtxView<'a>;
}

fn other(e: impl std::fmt::Display) -> spin_v2::Error {
    spin_v2::Error::Other(e.to_string())
}

/// Why a store label cannot be opened, in every interface's terms.
enum OpenError {
    AccessDenied,
    NoSuchStore,
}

impl From<OpenError> for spin_v2::Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::AccessDenied => Self::AccessDenied,
            OpenError::NoSuchStore => Self::NoSuchStore,
        }
    }
}

impl From<OpenError> for wasi_store::Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::AccessDenied => Self::AccessDenied,
            OpenError::NoSuchStore => Self::NoSuchStore,
        }
    }
}

impl KeyValueCtxView<'_> {
    /// The store `label`, if the component was granted it and it is configured.
    fn granted_backend(&self, label: &str) -> Result<Backend, OpenError> {
        if !self.ctx.granted.contains(label) {
            return Err(OpenError::AccessDenied);
        }
        self.ctx
            .stores
            .stores
            .get(label)
            .cloned()
            .ok_or(OpenError::NoSuchStore)
    }

    fn store(&self, store: &Resource<OpenStore>) -> Result<Backend, spin_v2::Error> {
        self.table
            .get(store)
            .map(|s| s.backend.clone())
            .map_err(other)
    }
}

impl spin_v2::Host for KeyValueCtxView<'_> {}

impl spin_v2::HostStore for KeyValueCtxView<'_> {
    async fn open(&mut self, label: String) -> Result<Resource<OpenStore>, spin_v2::Error> {
        let backend = self.granted_backend(&label)?;
        ops::connect(&backend).await.map_err(other)?;
        self.table
            .push(OpenStore { backend })
            .map_err(|_| spin_v2::Error::StoreTableFull)
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, spin_v2::Error> {
        ops::get(&self.store(&store)?, &key).await.map_err(other)
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), spin_v2::Error> {
        ops::set(&self.store(&store)?, key, value)
            .await
            .map_err(other)
    }

    async fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<(), spin_v2::Error> {
        ops::delete(&self.store(&store)?, key).await.map_err(other)
    }

    async fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, spin_v2::Error> {
        ops::exists(&self.store(&store)?, &key).await.map_err(other)
    }

    async fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> Result<Vec<String>, spin_v2::Error> {
        ops::keys(&self.store(&store)?).await.map_err(other)
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

fn wasi_other(e: impl std::fmt::Display) -> wasi_store::Error {
    wasi_store::Error::Other(e.to_string())
}

impl KeyValueCtxView<'_> {
    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<Backend, wasi_store::Error> {
        self.table
            .get(bucket)
            .map(|b| b.backend.clone())
            .map_err(wasi_other)
    }
}

impl wasi_store::Host for KeyValueCtxView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, wasi_store::Error> {
        let backend = self.granted_backend(&identifier)?;
        ops::connect(&backend).await.map_err(wasi_other)?;
        self.table.push(Bucket { backend }).map_err(wasi_other)
    }
}

impl wasi_store::HostBucket for KeyValueCtxView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, wasi_store::Error> {
        ops::get(&self.bucket(&bucket)?, &key)
            .await
            .map_err(wasi_other)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), wasi_store::Error> {
        ops::set(&self.bucket(&bucket)?, key, value)
            .await
            .map_err(wasi_other)
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<(), wasi_store::Error> {
        ops::delete(&self.bucket(&bucket)?, key)
            .await
            .map_err(wasi_other)
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<bool, wasi_store::Error> {
        ops::exists(&self.bucket(&bucket)?, &key)
            .await
            .map_err(wasi_other)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<wasi_store::KeyResponse, wasi_store::Error> {
        // All keys in one response, as Spin does; a cursor is therefore never returned.
        if cursor.is_some() {
            return Err(wasi_other("list-keys cursors are not used by this host"));
        }
        let keys = ops::keys(&self.bucket(&bucket)?)
            .await
            .map_err(wasi_other)?;
        Ok(wasi_store::KeyResponse { keys, cursor: None })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl wasi_atomics::Host for KeyValueCtxView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, wasi_store::Error> {
        ops::increment(&self.bucket(&bucket)?, key, delta)
            .await
            .map_err(wasi_other)
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> Result<(), wasi_atomics::CasError> {
        let store_err = |e: wasi_store::Error| wasi_atomics::CasError::StoreError(e);
        let c = self
            .table
            .get_mut(&cas)
            .map_err(|e| store_err(wasi_other(e)))?;
        let swapped = match c {
            Cas::Sled { tree, key, current } => {
                match tree.compare_and_swap(key.as_bytes(), current.clone(), Some(value)) {
                    Ok(Ok(())) => {
                        let tree = tree.clone();
                        ops::blocking(move || tree.flush().map(drop))
                            .await
                            .map_err(|e| store_err(wasi_other(e)))?;
                        true
                    }
                    Ok(Err(conflict)) => {
                        *current = conflict.current;
                        false
                    }
                    Err(e) => return Err(store_err(wasi_other(e))),
                }
            }
            Cas::Redis(c) => c.swap(value).await.map_err(|e| store_err(wasi_other(e)))?,
        };
        if swapped {
            let _ = self.table.delete(cas);
            Ok(())
        } else {
            // The handle now holds the value that won, for the guest to retry with.
            Err(wasi_atomics::CasError::CasFailed(cas))
        }
    }
}

impl wasi_atomics::HostCas for KeyValueCtxView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Resource<Cas>, wasi_store::Error> {
        let cas = match self.bucket(&bucket)? {
            Backend::Sled(tree) => {
                let current = tree.get(key.as_bytes()).map_err(wasi_other)?;
                Cas::Sled { tree, key, current }
            }
            Backend::Redis(store) => {
                Cas::Redis(store.compare_and_swap(key).await.map_err(wasi_other)?)
            }
        };
        self.table.push(cas).map_err(wasi_other)
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, wasi_store::Error> {
        Ok(match self.table.get(&cas).map_err(wasi_other)? {
            Cas::Sled { current, .. } => current.as_ref().map(|v| v.to_vec()),
            Cas::Redis(c) => c.current().map(<[u8]>::to_vec),
        })
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl wasi_batch::Host for KeyValueCtxView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, wasi_store::Error> {
        ops::get_many(&self.bucket(&bucket)?, keys)
            .await
            .map_err(wasi_other)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), wasi_store::Error> {
        ops::set_many(&self.bucket(&bucket)?, key_values)
            .await
            .map_err(wasi_other)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), wasi_store::Error> {
        ops::delete_many(&self.bucket(&bucket)?, keys)
            .await
            .map_err(wasi_other)
    }
}

/// Links `fermyon:spin/key-value@2.0.0`, `spin:key-value/key-value@3.0.0` and
/// `wasi:keyvalue@0.2.0-draft2` into `linker`.
pub fn add_to_linker<T: KeyValueView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    spin_v2::add_to_linker::<T, KeyValue>(linker, T::key_value)?;
    spin_v3::add_to_linker::<T, KeyValue>(linker, T::key_value)?;
    wasi_store::add_to_linker::<T, KeyValue>(linker, T::key_value)?;
    wasi_atomics::add_to_linker::<T, KeyValue>(linker, T::key_value)?;
    wasi_batch::add_to_linker::<T, KeyValue>(linker, T::key_value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spin_v2::HostStore;

    #[tokio::test]
    async fn access_control_and_persistence() {
        let dir = std::env::temp_dir().join(format!("spinlet-kv-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let stores = Arc::new(
            KeyValueStores::open_granted(
                Some(&dir),
                &BTreeMap::new(),
                &HashSet::from([DEFAULT_STORE]),
            )
            .unwrap(),
        );
        let granted: HashSet<String> = [DEFAULT_STORE.to_string()].into();
        let ctx = KeyValueCtx::new(stores.clone(), Arc::new(granted));
        let mut table = ResourceTable::new();
        let mut view = KeyValueCtxView {
            ctx: &ctx,
            table: &mut table,
        };
        assert!(matches!(
            view.open("other".into()).await,
            Err(spin_v2::Error::AccessDenied)
        ));
        let s = view.open(DEFAULT_STORE.into()).await.unwrap();
        let s2 = Resource::<OpenStore>::new_borrow(s.rep());
        view.set(s2, "k".into(), b"v".to_vec()).await.unwrap();
        let s3 = Resource::<OpenStore>::new_borrow(s.rep());
        assert_eq!(view.get(s3, "k".into()).await.unwrap(), Some(b"v".to_vec()));
        assert!(stores.check_grants("c", &["nope".to_string()]).is_err());
        drop(ctx);
        drop(stores);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_granted_stores_are_opened() {
        let dir = std::env::temp_dir().join(format!("spinlet-kv-lazy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join("own.sled");
        let configured = BTreeMap::from([
            ("shared".to_string(), KeyValueStoreConfig::Spin(None)),
            (
                "own".to_string(),
                KeyValueStoreConfig::Spin(Some(own.clone())),
            ),
            (
                "remote".to_string(),
                KeyValueStoreConfig::Redis {
                    url: "redis://127.0.0.1:1".into(),
                },
            ),
        ]);

        let none = KeyValueStores::open_granted(Some(&dir), &configured, &HashSet::new()).unwrap();
        assert!(none.dbs.is_empty() && none.stores.is_empty());
        assert!(!dir.join(DB_DIR_NAME).exists() && !own.exists());
        drop(none);

        let granted = HashSet::from([DEFAULT_STORE, "shared", "own", "remote", "unconfigured"]);
        let some = KeyValueStores::open_granted(Some(&dir), &configured, &granted).unwrap();
        assert!(dir.join(DB_DIR_NAME).exists() && own.exists());
        // `default` and `shared` share the main database; `own` has its own.
        assert_eq!(some.dbs.len(), 2);
        let mut labels: Vec<&str> = some.stores.keys().map(String::as_str).collect();
        labels.sort_unstable();
        // A Redis store connects only when a guest opens it (nothing listens on port 1).
        assert_eq!(labels, [DEFAULT_STORE, "own", "remote", "shared"]);
        assert!(matches!(some.stores["remote"], Backend::Redis(_)));
        let err = some
            .check_grants("c", &["unconfigured".to_string()])
            .unwrap_err();
        assert!(
            err.to_string().contains("[key_value_store.unconfigured]"),
            "{err}"
        );
        drop(some);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The store operations every interface shares, per backend; each interface maps the
/// errors to its own type. Sled writes are flushed on tokio's blocking pool before they
/// return.
mod ops {
    use super::{redis, Backend};

    /// A failure of either backend.
    #[derive(Debug, thiserror::Error)]
    pub(super) enum OpError {
        #[error(transparent)]
        Sled(#[from] sled::Error),
        #[error(transparent)]
        Redis(#[from] redis::Error),
        #[error("the value is not a 64-bit integer")]
        NotAnInteger,
        #[error("a blocking store task failed: {0}")]
        Join(#[from] tokio::task::JoinError),
    }

    type Result<T> = std::result::Result<T, OpError>;

    /// Runs `f` (a write that flushes) on the blocking pool.
    pub(super) async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> sled::Result<T> + Send + 'static,
    ) -> Result<T> {
        Ok(tokio::task::spawn_blocking(f).await??)
    }

    /// Makes sure the store can be used: a Redis store's connection is opened.
    pub(super) async fn connect(b: &Backend) -> Result<()> {
        match b {
            Backend::Sled(_) => Ok(()),
            Backend::Redis(r) => Ok(r.connect().await?),
        }
    }

    pub(super) async fn get(b: &Backend, key: &str) -> Result<Option<Vec<u8>>> {
        match b {
            Backend::Sled(tree) => Ok(tree.get(key.as_bytes())?.map(|v| v.to_vec())),
            Backend::Redis(r) => Ok(r.get(key).await?),
        }
    }

    pub(super) async fn set(b: &Backend, key: String, value: Vec<u8>) -> Result<()> {
        match b {
            Backend::Sled(tree) => {
                let tree = tree.clone();
                blocking(move || {
                    tree.insert(key.as_bytes(), value)?;
                    tree.flush().map(drop)
                })
                .await
            }
            Backend::Redis(r) => Ok(r.set(&key, &value).await?),
        }
    }

    pub(super) async fn delete(b: &Backend, key: String) -> Result<()> {
        match b {
            Backend::Sled(tree) => {
                let tree = tree.clone();
                blocking(move || {
                    tree.remove(key.as_bytes())?;
                    tree.flush().map(drop)
                })
                .await
            }
            Backend::Redis(r) => Ok(r.delete(&key).await?),
        }
    }

    pub(super) async fn exists(b: &Backend, key: &str) -> Result<bool> {
        match b {
            Backend::Sled(tree) => Ok(tree.contains_key(key.as_bytes())?),
            Backend::Redis(r) => Ok(r.exists(key).await?),
        }
    }

    pub(super) async fn keys(b: &Backend) -> Result<Vec<String>> {
        match b {
            Backend::Sled(tree) => Ok(tree
                .iter()
                .keys()
                .map(|k| k.map(|k| String::from_utf8_lossy(&k).into_owned()))
                .collect::<sled::Result<_>>()?),
            Backend::Redis(r) => Ok(r.keys().await?),
        }
    }

    /// Adds `delta` to the integer at `key` (absent: 0). Sled keeps it as 8 little-endian
    /// bytes, Redis as its decimal string (`INCRBY`), as Spin's backends do.
    pub(super) async fn increment(b: &Backend, key: String, delta: i64) -> Result<i64> {
        match b {
            Backend::Sled(tree) => {
                let tree = tree.clone();
                let mut result = Ok(0);
                tree.update_and_fetch(key.as_bytes(), |old| {
                    let current = match old {
                        None => 0,
                        Some(bytes) => match <[u8; 8]>::try_from(bytes) {
                            Ok(b) => i64::from_le_bytes(b),
                            Err(_) => {
                                result = Err(OpError::NotAnInteger);
                                return old.map(<[u8]>::to_vec);
                            }
                        },
                    };
                    let next = current.wrapping_add(delta);
                    result = Ok(next);
                    Some(next.to_le_bytes().to_vec())
                })?;
                blocking(move || tree.flush().map(drop)).await?;
                result
            }
            Backend::Redis(r) => Ok(r.increment(&key, delta).await?),
        }
    }

    pub(super) async fn get_many(
        b: &Backend,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        match b {
            Backend::Sled(tree) => keys
                .into_iter()
                .map(|k| {
                    let v = tree.get(k.as_bytes())?;
                    Ok((k, v.map(|v| v.to_vec())))
                })
                .collect(),
            Backend::Redis(r) => Ok(r.get_many(keys).await?),
        }
    }

    pub(super) async fn set_many(b: &Backend, key_values: Vec<(String, Vec<u8>)>) -> Result<()> {
        match b {
            Backend::Sled(tree) => {
                let mut batch = sled::Batch::default();
                for (k, v) in key_values {
                    batch.insert(k.as_bytes(), v);
                }
                let tree = tree.clone();
                blocking(move || {
                    tree.apply_batch(batch)?;
                    tree.flush().map(drop)
                })
                .await
            }
            Backend::Redis(r) => Ok(r.set_many(key_values).await?),
        }
    }

    pub(super) async fn delete_many(b: &Backend, keys: Vec<String>) -> Result<()> {
        match b {
            Backend::Sled(tree) => {
                let mut batch = sled::Batch::default();
                for k in keys {
                    batch.remove(k.as_bytes());
                }
                let tree = tree.clone();
                blocking(move || {
                    tree.apply_batch(batch)?;
                    tree.flush().map(drop)
                })
                .await
            }
            Backend::Redis(r) => Ok(r.delete_many(keys).await?),
        }
    }
}

//! Key-value storage: the `default` store in sled under the state directory, and the
//! guest interface `fermyon:spin/key-value@2.0.0`.
//!
//! This module owns the store backends and access control. [`KeyValueStores`] is opened
//! once per app (one sled database at `<state_dir>/key_value.sled`, one tree per label);
//! each instance gets a [`KeyValueCtx`] holding the labels its component was granted in
//! `key_value_stores`. Opening a label that is not granted fails with `access-denied`;
//! a granted label with no configured store stops the app at start (as Spin does).
//! Writes are flushed to disk before returning, so values survive a restart or a crash.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/key-value",
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
        },
    });
}

use gen_::fermyon::spin::key_value as spin_v2;

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
    /// A component was granted a label with no configured store.
    #[error("component `{component}` uses key-value store `{label}`, which is not configured (only `default` is available without a runtime config)")]
    Unconfigured {
        /// The component id.
        component: String,
        /// The label.
        label: String,
    },
}

/// The key-value stores of one app.
#[derive(Debug, Clone)]
pub struct KeyValueStores {
    db: sled::Db,
    trees: HashMap<String, sled::Tree>,
}

impl KeyValueStores {
    /// Opens the sled database under `state_dir` and the `default` store in it.
    pub fn open(state_dir: &Path) -> Result<KeyValueStores, Error> {
        let path = state_dir.join(DB_DIR_NAME);
        let open_err = |source| Error::Open {
            path: path.clone(),
            source,
        };
        let db = sled::Config::new()
            .path(&path)
            .flush_every_ms(Some(500))
            .open()
            .map_err(open_err)?;
        let tree = db.open_tree(DEFAULT_STORE).map_err(open_err)?;
        let mut trees = HashMap::new();
        trees.insert(DEFAULT_STORE.to_string(), tree);
        Ok(KeyValueStores { db, trees })
    }

    /// An in-memory database (nothing persists), for apps without a state directory.
    pub fn in_memory() -> Result<KeyValueStores, Error> {
        let open_err = |source| Error::Open {
            path: PathBuf::from("(memory)"),
            source,
        };
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(open_err)?;
        let tree = db.open_tree(DEFAULT_STORE).map_err(open_err)?;
        let mut trees = HashMap::new();
        trees.insert(DEFAULT_STORE.to_string(), tree);
        Ok(KeyValueStores { db, trees })
    }

    /// Checks that every label a component was granted has a store.
    pub fn check_grants<'a>(
        &self,
        component: &str,
        labels: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Error> {
        for label in labels {
            if !self.trees.contains_key(label) {
                return Err(Error::Unconfigured {
                    component: component.to_string(),
                    label: label.clone(),
                });
            }
        }
        Ok(())
    }

    /// Flushes everything to disk (called at shutdown).
    pub fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush().map(|_| ())
    }
}

/// An open store, the host side of a guest `store` resource.
pub struct OpenStore {
    tree: sled::Tree,
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

impl KeyValueCtxView<'_> {
    fn tree(&self, store: &Resource<OpenStore>) -> Result<sled::Tree, spin_v2::Error> {
        self.table.get(store).map(|s| s.tree.clone()).map_err(other)
    }
}

impl spin_v2::Host for KeyValueCtxView<'_> {}

impl spin_v2::HostStore for KeyValueCtxView<'_> {
    fn open(&mut self, label: String) -> Result<Resource<OpenStore>, spin_v2::Error> {
        if !self.ctx.granted.contains(&label) {
            return Err(spin_v2::Error::AccessDenied);
        }
        let tree = self
            .ctx
            .stores
            .trees
            .get(&label)
            .cloned()
            .ok_or(spin_v2::Error::NoSuchStore)?;
        self.table
            .push(OpenStore { tree })
            .map_err(|_| spin_v2::Error::StoreTableFull)
    }

    fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, spin_v2::Error> {
        let tree = self.tree(&store)?;
        tree.get(key.as_bytes())
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(other)
    }

    fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), spin_v2::Error> {
        let tree = self.tree(&store)?;
        tree.insert(key.as_bytes(), value).map_err(other)?;
        tree.flush().map_err(other)?;
        Ok(())
    }

    fn delete(&mut self, store: Resource<OpenStore>, key: String) -> Result<(), spin_v2::Error> {
        let tree = self.tree(&store)?;
        tree.remove(key.as_bytes()).map_err(other)?;
        tree.flush().map_err(other)?;
        Ok(())
    }

    fn exists(&mut self, store: Resource<OpenStore>, key: String) -> Result<bool, spin_v2::Error> {
        let tree = self.tree(&store)?;
        tree.contains_key(key.as_bytes()).map_err(other)
    }

    fn get_keys(&mut self, store: Resource<OpenStore>) -> Result<Vec<String>, spin_v2::Error> {
        let tree = self.tree(&store)?;
        tree.iter()
            .keys()
            .map(|k| {
                k.map_err(other)
                    .map(|k| String::from_utf8_lossy(&k).into_owned())
            })
            .collect()
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

/// Links `fermyon:spin/key-value@2.0.0` into `linker`.
pub fn add_to_linker<T: KeyValueView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    spin_v2::add_to_linker::<T, KeyValue>(linker, T::key_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spin_v2::HostStore;

    #[test]
    fn access_control_and_persistence() {
        let dir = std::env::temp_dir().join(format!("spinlet-kv-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let stores = Arc::new(KeyValueStores::open(&dir).unwrap());
        let granted: HashSet<String> = [DEFAULT_STORE.to_string()].into();
        let ctx = KeyValueCtx::new(stores.clone(), Arc::new(granted));
        let mut table = ResourceTable::new();
        let mut view = KeyValueCtxView {
            ctx: &ctx,
            table: &mut table,
        };
        assert!(matches!(
            view.open("other".into()),
            Err(spin_v2::Error::AccessDenied)
        ));
        let s = view.open(DEFAULT_STORE.into()).unwrap();
        let s2 = Resource::<OpenStore>::new_borrow(s.rep());
        view.set(s2, "k".into(), b"v".to_vec()).unwrap();
        let s3 = Resource::<OpenStore>::new_borrow(s.rep());
        assert_eq!(view.get(s3, "k".into()).unwrap(), Some(b"v".to_vec()));
        assert!(stores.check_grants("c", &["nope".to_string()]).is_err());
        drop(ctx);
        drop(stores);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

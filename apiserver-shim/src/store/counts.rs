//! How many objects a collection holds, without walking it: what a list page needs for
//! `remainingItemCount` (etcd answers a range's count from its in-memory index; sled has
//! none, and counting 10,000 keys after a page of 500 cost more than the page itself).
//!
//! A resource's counts, per namespace and in all, are learnt on its first count — one
//! walk over its keys, not its values — and from then on kept by every creation and
//! deletion. Both happen under the store's write lock ([`Counts::get`] and
//! [`Counts::changed`] take its guard as proof), so a count always matches one revision,
//! the one a snapshot scan reads at.
//!
//! Owns the in-memory index only; knows nothing of pages or tokens. Why in memory, not in
//! sled: nothing on disk to keep in step through the write-ahead log's replay and the
//! store's rebuilds, and a resource nobody lists in pages costs nothing.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{prefix_bytes, Result};

/// The counts of the resources counted so far.
#[derive(Default)]
pub(crate) struct Counts {
    by_resource: Mutex<HashMap<(String, String), Resource>>,
}

#[derive(Default)]
struct Resource {
    total: u64,
    namespaces: HashMap<String, u64>,
}

impl Counts {
    fn index(&self) -> MutexGuard<'_, HashMap<(String, String), Resource>> {
        self.by_resource
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An object of `group`/`resource` in `namespace` was created (`added`) or deleted.
    /// A resource not counted yet is left to its first count.
    pub(crate) fn changed(
        &self,
        _held: &MutexGuard<'_, ()>,
        (group, resource, namespace): (&str, &str, &str),
        added: bool,
    ) {
        let mut index = self.index();
        let Some(r) = index.get_mut(&(group.to_string(), resource.to_string())) else {
            return;
        };
        let n = r.namespaces.entry(namespace.to_string()).or_default();
        if added {
            *n += 1;
            r.total += 1;
        } else {
            *n = n.saturating_sub(1);
            r.total = r.total.saturating_sub(1);
            if *n == 0 {
                r.namespaces.remove(namespace);
            }
        }
    }

    /// The objects of `group`/`resource` in `namespace` (all namespaces: `None`), counted
    /// in `tree` the first time.
    pub(crate) fn get(
        &self,
        _held: &MutexGuard<'_, ()>,
        tree: &sled::Tree,
        (group, resource, namespace): (&str, &str, Option<&str>),
    ) -> Result<u64> {
        let mut index = self.index();
        let key = (group.to_string(), resource.to_string());
        if !index.contains_key(&key) {
            let prefix = prefix_bytes(group, resource, None);
            let mut counted = Resource::default();
            for k in tree.scan_prefix(&prefix).keys() {
                let k = k?;
                let rest = k.get(prefix.len()..).unwrap_or_default();
                let ns = rest.split(|b| *b == 0).next().unwrap_or_default();
                let ns = String::from_utf8_lossy(ns).into_owned();
                *counted.namespaces.entry(ns).or_default() += 1;
                counted.total += 1;
            }
            index.insert(key.clone(), counted);
        }
        let r = index.get(&key).map_or((0, None), |r| {
            (r.total, namespace.map(|ns| r.namespaces.get(ns)))
        });
        Ok(match r {
            (total, None) => total,
            (_, Some(n)) => n.copied().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::store::testing::{cm, delete, put};
    use crate::store::{Store, StoreConfig};

    fn counts(store: &Store) -> (u64, u64, u64) {
        let held = store.lock();
        let tree = store.tree();
        let get = |ns| {
            store
                .counts
                .get(&held, &tree, ("", "configmaps", ns))
                .unwrap()
        };
        (get(None), get(Some("a")), get(Some("b")))
    }

    #[tokio::test]
    async fn counts_are_learnt_once_then_kept_by_creations_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for i in 0..5 {
            put(&store, &cm("a", &format!("x{i}")), json!({})).await;
        }
        put(&store, &cm("b", "y"), json!({})).await;
        // Another resource and a namespace whose name extends "a" are not counted.
        put(&store, &cm("ab", "z"), json!({})).await;
        let mut secret = cm("a", "s");
        secret.resource = "secrets".into();
        put(&store, &secret, json!({})).await;
        assert_eq!(counts(&store), (7, 5, 1));

        put(&store, &cm("a", "x0"), json!({})).await; // a modification
        put(&store, &cm("b", "y2"), json!({})).await;
        delete(&store, &cm("a", "x1")).await;
        delete(&store, &cm("a", "missing")).await;
        assert_eq!(counts(&store), (7, 4, 2));
        for i in 2..5 {
            delete(&store, &cm("a", &format!("x{i}"))).await;
        }
        delete(&store, &cm("a", "x0")).await;
        assert_eq!(counts(&store), (3, 0, 2));

        // What was kept is what a fresh count finds.
        drop(store);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(counts(&store), (3, 0, 2));
    }
}

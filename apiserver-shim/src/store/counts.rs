//! How many objects a collection holds, without walking it: what a list page needs for
//! `remainingItemCount` (etcd answers a range's count from its in-memory index; sled has
//! none, and counting 10,000 keys after a page of 500 cost more than the page itself).
//!
//! A resource's counts, per namespace and in all, are learnt once — one walk over its
//! keys, not its values — and from then on kept by every creation and deletion, which
//! happen under the store's write lock ([`Counts::get`] and [`Counts::changed`] take its
//! guard as proof), so a count always matches one revision, the one a snapshot scan reads
//! at.
//!
//! The walk ([`Counts::learn`]) runs without the write lock: walking 500,000 Events under
//! it held every writer up for the whole walk. Writers go on meanwhile, and each creation
//! or deletion of the resource is noted by key with where the walk was: an object changed
//! ahead of the walk is skipped when the walk reaches it, one changed behind it was
//! counted by the walk as it was before its first change. At the end, under the index's
//! mutex, each changed object counts as it is now, so the total is the one at the latest
//! write, whatever the walk saw of the writes beside it. For that the store notes a change
//! before sled holds it: the walk can only find a change already noted.
//!
//! Owns the in-memory index only; knows nothing of pages or tokens. Why in memory, not in
//! sled: nothing on disk to keep in step through the write-ahead log's replay and the
//! store's rebuilds, and a resource nobody lists in pages costs nothing.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{prefix_bytes, Result};

/// (group, resource).
type ResourceKey = (String, String);

/// The counts of the resources counted so far.
#[derive(Default)]
pub(crate) struct Counts {
    by_resource: Mutex<HashMap<ResourceKey, Entry>>,
    /// Signalled when a walk ends.
    learnt: Condvar,
}

enum Entry {
    /// A walk is counting the resource beside the writers.
    Learning(Learning),
    /// Counted, and kept by every creation and deletion since.
    Known(Resource),
}

#[derive(Default)]
struct Resource {
    total: u64,
    namespaces: HashMap<String, u64>,
}

impl Resource {
    fn add(&mut self, namespace: &str, by: i64) {
        let n = self.namespaces.entry(namespace.to_string()).or_default();
        *n = n.saturating_add_signed(by);
        self.total = self.total.saturating_add_signed(by);
        if *n == 0 {
            self.namespaces.remove(namespace);
        }
    }
}

#[derive(Default)]
struct Learning {
    /// What the walk counted, without the objects changed ahead of it.
    walked: Resource,
    /// The last key the walk reached (empty before the first).
    cursor: Vec<u8>,
    /// The objects created or deleted since the walk began, by key.
    touched: HashMap<Vec<u8>, Touch>,
}

struct Touch {
    namespace: String,
    /// The walk counted it: it had passed the object before the object's first change,
    /// and the object existed then.
    walked: bool,
    /// It exists after its latest change.
    present: bool,
}

impl Learning {
    /// The counts once the walk is over: the walk's, corrected by each changed object.
    fn finish(mut self) -> Resource {
        for touch in self.touched.into_values() {
            let by = i64::from(touch.present) - i64::from(touch.walked);
            if by != 0 {
                self.walked.add(&touch.namespace, by);
            }
        }
        self.walked
    }
}

/// The namespace of an object key, from the key's part after its resource prefix.
fn namespace_of(rest: &[u8]) -> String {
    let ns = rest.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(ns).into_owned()
}

impl Counts {
    fn index(&self) -> MutexGuard<'_, HashMap<ResourceKey, Entry>> {
        self.by_resource
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The object at `key` (the store's key) of `group`/`resource` in `namespace` was
    /// created (`added`) or deleted. A resource not counted yet is left to its first count.
    pub(crate) fn changed(
        &self,
        _held: &MutexGuard<'_, ()>,
        (group, resource, namespace): (&str, &str, &str),
        key: &[u8],
        added: bool,
    ) {
        let mut index = self.index();
        match index.get_mut(&(group.to_string(), resource.to_string())) {
            None => {}
            Some(Entry::Known(r)) => r.add(namespace, if added { 1 } else { -1 }),
            Some(Entry::Learning(l)) => {
                let behind = !l.cursor.is_empty() && key <= l.cursor.as_slice();
                l.touched
                    .entry(key.to_vec())
                    .and_modify(|t| t.present = added)
                    .or_insert_with(|| Touch {
                        namespace: namespace.to_string(),
                        // Its first change since the walk began: it existed before
                        // unless this is its creation.
                        walked: behind && !added,
                        present: added,
                    });
            }
        }
    }

    /// Counts `group`/`resource` in `tree` if it is not counted yet, without the write
    /// lock (the caller must not hold it: writers go on during the walk). Another caller's
    /// walk of the same resource is waited for.
    pub(crate) fn learn(&self, tree: &sled::Tree, (group, resource): (&str, &str)) -> Result<()> {
        let key = (group.to_string(), resource.to_string());
        if !self.begin(&key) {
            return Ok(());
        }
        let walked = walk(tree, (group, resource), |k, namespace| {
            self.step(&key, k, namespace)
        });
        self.end(key, walked.is_ok());
        walked
    }

    /// Starts learning `key`; `false` when it is counted already (after waiting for
    /// another caller's walk).
    fn begin(&self, key: &ResourceKey) -> bool {
        let mut index = self.index();
        loop {
            match index.get(key) {
                Some(Entry::Known(_)) => return false,
                Some(Entry::Learning(_)) => {
                    index = self
                        .learnt
                        .wait(index)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                None => {
                    index.insert(key.clone(), Entry::Learning(Learning::default()));
                    return true;
                }
            }
        }
    }

    /// The walk reached `k`: counted unless it changed ahead of the walk. `false` when the
    /// resource is no longer being learnt (counted under the lock meanwhile).
    fn step(&self, key: &ResourceKey, k: &[u8], namespace: &str) -> bool {
        let mut index = self.index();
        let Some(Entry::Learning(l)) = index.get_mut(key) else {
            return false;
        };
        if !l.touched.contains_key(k) {
            l.walked.add(namespace, 1);
        }
        l.cursor.clear();
        l.cursor.extend_from_slice(k);
        true
    }

    /// Ends the walk: its counts corrected by the changes beside it become the resource's
    /// (or, when it failed, the next caller walks again).
    fn end(&self, key: ResourceKey, ok: bool) {
        let mut index = self.index();
        // A count taken under the write lock meanwhile (`get`) replaced the walk's entry.
        if matches!(index.get(&key), Some(Entry::Learning(_))) {
            if let Some(Entry::Learning(l)) = index.remove(&key) {
                if ok {
                    index.insert(key, Entry::Known(l.finish()));
                }
            }
        }
        drop(index);
        self.learnt.notify_all();
    }

    /// The objects of `group`/`resource` in `namespace` (all namespaces: `None`). A
    /// resource [`Counts::learn`] has not counted is counted here, under the lock.
    pub(crate) fn get(
        &self,
        _held: &MutexGuard<'_, ()>,
        tree: &sled::Tree,
        (group, resource, namespace): (&str, &str, Option<&str>),
    ) -> Result<u64> {
        let key = (group.to_string(), resource.to_string());
        let mut index = self.index();
        if !matches!(index.get(&key), Some(Entry::Known(_))) {
            // Not learnt yet, or being learnt: no write runs beside this walk, so its
            // count is the one at the current revision.
            let mut counted = Resource::default();
            walk(tree, (group, resource), |_, namespace| {
                counted.add(namespace, 1);
                true
            })?;
            index.insert(key.clone(), Entry::Known(counted));
        }
        Ok(match (index.get(&key), namespace) {
            (Some(Entry::Known(r)), None) => r.total,
            (Some(Entry::Known(r)), Some(ns)) => r.namespaces.get(ns).copied().unwrap_or(0),
            _ => 0,
        })
    }
}

/// Walks the stored keys of `group`/`resource` in key order, giving `each` every key
/// and its namespace (`""` for cluster-scoped objects), until `each` returns `false`.
/// The one walk of both [`Counts::learn`] and [`Counts::get`].
fn walk(
    tree: &sled::Tree,
    (group, resource): (&str, &str),
    mut each: impl FnMut(&[u8], &str) -> bool,
) -> Result<()> {
    let prefix = prefix_bytes(group, resource, None);
    for k in tree.scan_prefix(&prefix).keys() {
        let k = k?;
        if !each(&k, &namespace_of(k.get(prefix.len()..).unwrap_or_default())) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;

    use super::Counts;
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
        let store = crate::store::testing::reopen(dir.path(), StoreConfig::default()).await;
        assert_eq!(counts(&store), (3, 0, 2));
    }

    /// The store's key of ConfigMap `ns`/`name`.
    fn key(ns: &str, name: &str) -> Vec<u8> {
        cm(ns, name).encode()
    }

    #[test]
    fn a_walk_beside_writers_counts_each_object_as_it_is_at_its_end() {
        let counts = Counts::default();
        let lock = Mutex::new(());
        let resource = (String::new(), "configmaps".to_string());
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        // Stored when the walk begins: a/1 a/3 a/5 b/7 b/9.
        assert!(counts.begin(&resource));
        let change = |ns: &str, name: &str, added: bool| {
            let held = lock.lock().unwrap();
            counts.changed(&held, ("", "configmaps", ns), &key(ns, name), added);
        };
        assert!(counts.step(&resource, &key("a", "1"), "a"));
        change("a", "1", false); // behind the walk, which counted it
        change("a", "2", true); // ahead, so the walk never sees it
        change("a", "3", false); // ahead: the walk had read it just before
        assert!(counts.step(&resource, &key("a", "3"), "a"));
        assert!(counts.step(&resource, &key("a", "5"), "a"));
        change("a", "4", true); // behind, new
        change("a", "5", false); // behind, gone and back
        change("a", "5", true);
        change("b", "8", true); // ahead, come and gone
        change("b", "8", false);
        assert!(counts.step(&resource, &key("b", "7"), "b"));
        assert!(counts.step(&resource, &key("b", "9"), "b"));
        counts.end(resource.clone(), true);
        let get = |ns| {
            let held = lock.lock().unwrap();
            counts.get(&held, &tree, ("", "configmaps", ns)).unwrap()
        };
        // a/2 a/4 a/5 and b/7 b/9: the tree (empty here) is not walked again.
        assert_eq!((get(None), get(Some("a")), get(Some("b"))), (5, 3, 2));
        change("b", "10", true);
        assert_eq!((get(None), get(Some("b"))), (6, 3));
        assert!(!counts.begin(&resource), "counted once");
    }

    const OBJECTS: usize = 20_000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_learnt_while_objects_come_and_go_match_a_count_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        // Enough keys that the walk takes a while, written 64 at a time (one sync each).
        let stored = futures::stream::iter(0..OBJECTS)
            .map(|i| {
                let store = store.clone();
                async move {
                    put(
                        &store,
                        &cm(["a", "b", "c"][i % 3], &format!("x{i:05}")),
                        json!({}),
                    )
                    .await
                }
            })
            .buffer_unordered(64);
        stored.collect::<Vec<()>>().await;
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (store, stop) = (store.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = w;
                    while !stop.load(Ordering::SeqCst) {
                        let ns = ["a", "b", "c"][i % 3];
                        // Spread over the whole key range, before and after the walk.
                        let name = format!("x{:05}", (i * 7919) % OBJECTS);
                        if i % 2 == 0 {
                            delete(&store, &cm(ns, &name)).await;
                        } else {
                            put(&store, &cm(ns, &format!("{name}-new")), json!({})).await;
                        }
                        i += 8;
                    }
                    i / 8
                })
            })
            .collect();
        // Let the writers get going, then count beside them.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let learner = store.clone();
        tokio::task::spawn_blocking(move || learner.learn_count("", "configmaps"))
            .await
            .unwrap()
            .unwrap();
        stop.store(true, Ordering::SeqCst);
        let mut writes = 0;
        for w in writers {
            writes += w.await.unwrap();
        }
        assert!(writes > 0);
        let kept = counts(&store);
        let fresh = {
            let held = store.lock();
            let tree = store.tree();
            let once = Counts::default();
            let get = |ns| once.get(&held, &tree, ("", "configmaps", ns)).unwrap();
            (get(None), get(Some("a")), get(Some("b")))
        };
        assert_eq!(kept, fresh);
    }
}

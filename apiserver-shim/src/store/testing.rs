//! Helpers for the store's unit tests: ConfigMap keys and writes through the one write
//! path (`Store::mutate`). Test-only.

use serde_json::{json, Value};

use super::{Mutation, ObjectKey, Store};

/// The key of ConfigMap `ns`/`name`.
pub(crate) fn cm(ns: &str, name: &str) -> ObjectKey {
    ObjectKey {
        group: String::new(),
        resource: "configmaps".into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

/// Creates or replaces the object at `k`, with `data`.
pub(crate) async fn put(store: &Store, k: &ObjectKey, data: Value) {
    let object = json!({"metadata": {"name": k.name, "namespace": k.namespace}, "data": data});
    store
        .mutate::<()>(k, |_| Ok(Mutation::Put(object)))
        .await
        .expect("store write")
        .expect("no refusal");
}

/// Deletes the object at `k` (nothing when there is none).
pub(crate) async fn delete(store: &Store, k: &ObjectKey) {
    store
        .mutate::<()>(k, |_| Ok(Mutation::Delete))
        .await
        .expect("store write")
        .expect("no refusal");
}

/// Opens the store in `dir` again after the test dropped its handle. The store's
/// background tasks (group commit, checkpoints) may still hold the database for a moment
/// after the drop, and sled refuses a second opener meanwhile: retried for up to 10 s.
pub(crate) async fn reopen(
    dir: &std::path::Path,
    config: super::StoreConfig,
) -> std::sync::Arc<Store> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir, config.clone()) {
            Ok(store) => return store,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

/// Opens the store's sled database directly (to set up what a crash or an earlier version
/// leaves) after the test dropped its store, retried like [`reopen`].
pub(crate) async fn open_sled(dir: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return db,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("opening sled: {e}"),
        }
    }
}

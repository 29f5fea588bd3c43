//! Which sled database holds the store, and rebuilding it into a fresh one so disk space
//! comes back.
//!
//! Owns the layout of the sled files under the store's directory and the rebuild; knows
//! nothing of objects, events or the write-ahead log's format (the log lives beside the
//! databases in `wal/` and is replayed into whichever database is current).
//!
//! Why: sled 0.34 reuses the space of deleted data but never returns it — its file only
//! shrinks when the segments at its very end are free. After a flood of short-lived
//! objects (a million Events under `--event-ttl`) expires, the file keeps its high-water
//! mark (1.2 GB for what had been 170,000 Events, and then none). etcd has the same
//! property and `etcdctl defrag` for it; here the store does it by itself: when the file is
//! over `defrag_min_bytes` and over four times what is stored, and what is stored is small
//! enough to copy in a short pause (≤ 32 MiB), every key is copied into a new database
//! under the write lock, the new database is made durable, `CURRENT` is switched to it
//! (write, fsync, rename, fsync the directory), and the old one is removed.
//!
//! Layout: the first database is the store's directory itself (sled's `conf`, `db`,
//! `snap.*`, `blobs/`); later ones are `gen-<n>/`, and `CURRENT` names the one in use.
//! A database that is not current is left-over from a rebuild a crash interrupted and is
//! removed at open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Result, Store, StoreError};

const CURRENT: &str = "CURRENT";
/// The files sled keeps in a database directory.
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];
/// The largest amount of stored data a rebuild copies, so writers wait only briefly.
const MAX_COPY_BYTES: u64 = 32 * 1024 * 1024;
/// Entries per batch while copying.
const COPY_BATCH: usize = 1024;

/// An open sled database and the tree the store lives in.
pub(super) struct Engine {
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    /// sled's log file, synced with `fdatasync` at each checkpoint: sled itself only
    /// issues `sync_file_range`, which does not flush the disk's write cache.
    pub(super) log: Arc<std::fs::File>,
    /// The database's directory.
    path: PathBuf,
    /// 0 for the store's directory itself, `n` for `gen-<n>`.
    generation: u64,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::Flush(format!("{what}: {e}"))
}

fn generation_path(dir: &Path, generation: u64) -> PathBuf {
    match generation {
        0 => dir.to_path_buf(),
        n => dir.join(format!("gen-{n}")),
    }
}

/// The generation `CURRENT` names (0 without it).
fn current_generation(dir: &Path) -> Result<u64> {
    match std::fs::read_to_string(dir.join(CURRENT)) {
        Ok(text) => text
            .trim()
            .strip_prefix("gen-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                StoreError::Flush(format!(
                    "{} names no database: {:?}",
                    dir.join(CURRENT).display(),
                    text.trim()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io(format!("reading {}", dir.join(CURRENT).display()))(e)),
    }
}

/// Removes the databases that are not `keep`.
fn remove_others(dir: &Path, keep: u64) -> Result<()> {
    if keep != 0 {
        remove_database(dir, 0)?;
    }
    let entries = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix("gen-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if n != keep {
            remove_database(dir, n)?;
        }
    }
    Ok(())
}

fn remove_database(dir: &Path, generation: u64) -> Result<()> {
    let path = generation_path(dir, generation);
    if generation != 0 {
        return match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("removing {}", path.display()))(e))
            }
            _ => Ok(()),
        };
    }
    let entries = std::fs::read_dir(&path).map_err(io(format!("reading {}", path.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(SLED_FILES.contains(&name.as_ref()) || name.starts_with("snap.")) {
            continue;
        }
        let p = entry.path();
        let gone = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        gone.map_err(io(format!("removing {}", p.display())))?;
    }
    Ok(())
}

fn open_at(dir: &Path, generation: u64, cache_bytes: u64) -> Result<Engine> {
    let path = generation_path(dir, generation);
    let db = sled::Config::new()
        .path(&path)
        .cache_capacity(cache_bytes)
        .flush_every_ms(None)
        .mode(sled::Mode::LowSpace)
        .open()?;
    let tree = db.open_tree("objects")?;
    let log_path = path.join("db");
    let log = Arc::new(
        std::fs::File::open(&log_path).map_err(io(format!("opening {}", log_path.display())))?,
    );
    Ok(Engine {
        db,
        tree,
        log,
        path,
        generation,
    })
}

/// Opens the current database of the store in `dir`, removing any other.
pub(super) fn open(dir: &Path, cache_bytes: u64) -> Result<Engine> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let generation = current_generation(dir)?;
    remove_others(dir, generation)?;
    open_at(dir, generation, cache_bytes)
}

impl Engine {
    /// The size of sled's file.
    fn file_bytes(&self) -> u64 {
        std::fs::metadata(self.path.join("db")).map_or(0, |m| m.len())
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defragmented {
    /// sled's file before, in bytes.
    pub before: u64,
    /// sled's file after, in bytes.
    pub after: u64,
}

impl Store {
    /// Rebuilds the database into a fresh one when its file is over `min_bytes` and over
    /// four times what it stores, and what it stores is small enough to copy in a short
    /// pause. `None` when it did not.
    pub fn defragment(&self, min_bytes: u64) -> Result<Option<Defragmented>> {
        let (before, tree) = {
            let engine = self.engine();
            (engine.file_bytes(), engine.tree.clone())
        };
        if before <= min_bytes {
            return Ok(None);
        }
        // What is stored, read without the lock: an estimate is enough to decide.
        let mut stored = 0u64;
        for item in tree.iter() {
            let (k, v) = item?;
            stored += (k.len() + v.len()) as u64;
            if stored > MAX_COPY_BYTES {
                return Ok(None);
            }
        }
        if stored.saturating_mul(4) > before {
            return Ok(None);
        }
        let _writers = self.lock();
        let (dir, old_generation, cache_bytes) = {
            let engine = self.engine();
            let dir = match engine.generation {
                0 => engine.path.clone(),
                _ => engine
                    .path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| engine.path.clone()),
            };
            (dir, engine.generation, self.cache_bytes)
        };
        let generation = old_generation + 1;
        remove_database(&dir, generation)?;
        let fresh = open_at(&dir, generation, cache_bytes)?;
        let old_tree = self.engine().tree.clone();
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in old_tree.iter() {
            let (k, v) = item?;
            batch.insert(k, v);
            n += 1;
            if n == COPY_BATCH {
                fresh.tree.apply_batch(std::mem::take(&mut batch))?;
                n = 0;
            }
        }
        fresh.tree.apply_batch(batch)?;
        fresh.db.flush()?;
        fresh
            .log
            .sync_data()
            .map_err(io(format!("syncing {}", fresh.path.display())))?;
        // Switch: the new name, durable, then atomically in place.
        let tmp = dir.join("CURRENT.tmp");
        {
            use std::io::Write;
            let mut f =
                std::fs::File::create(&tmp).map_err(io(format!("writing {}", tmp.display())))?;
            f.write_all(format!("gen-{generation}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(io(format!("writing {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, dir.join(CURRENT))
            .map_err(io(format!("renaming {}", tmp.display())))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", dir.display())))?;
        let after = fresh.file_bytes();
        let old = std::mem::replace(&mut *self.engine_mut(), fresh);
        drop(_writers);
        drop(old);
        remove_database(&dir, old_generation)?;
        tracing::info!(before, after, stored, generation, "store defragmented");
        Ok(Some(Defragmented { before, after }))
    }
}

/// Checks once a minute whether the database should be rebuilt; stops with the store.
pub(super) fn spawn(store: std::sync::Weak<Store>, min_bytes: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(s) = store.upgrade() else { return };
            let done = tokio::task::spawn_blocking(move || s.defragment(min_bytes)).await;
            match done {
                Ok(Err(e)) => tracing::warn!(error = %e, "defragmenting the store"),
                Err(e) => tracing::warn!(error = %e, "defragmenting the store"),
                Ok(Ok(_)) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mutation, ObjectKey, StoreConfig};
    use serde_json::json;

    fn key(i: usize) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            resource: "events".into(),
            namespace: "default".into(),
            name: format!("ev-{i:05}"),
        }
    }

    async fn put(store: &Store, i: usize) {
        let k = key(i);
        store
            .mutate::<()>(&k, |_| {
                Ok(Mutation::Put(
                    json!({"metadata": {"name": k.name, "namespace": "default"}, "message": "x".repeat(2000)}),
                ))
            })
            .await
            .unwrap()
            .unwrap();
    }

    /// Rebuilds, retried while sled's file is not yet over the threshold it checks.
    async fn defragment(store: &Store) -> Defragmented {
        for _ in 0..600 {
            if let Some(done) = store.defragment(1024 * 1024).unwrap() {
                return done;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the store was never rebuilt");
    }

    #[tokio::test]
    async fn a_rebuild_gives_space_back_and_keeps_every_object_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            history_events: 50,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config.clone()).unwrap();
        for i in 0..3000 {
            put(&store, i).await;
        }
        for i in 10..3000 {
            store
                .mutate::<()>(&key(i), |_| Ok(Mutation::Delete))
                .await
                .unwrap()
                .unwrap();
        }
        store.flush().await.unwrap();
        let rev = store.current_revision();
        let done = defragment(&store).await;
        assert!(done.after * 4 < done.before, "{done:?}");
        assert!(dir.path().join("gen-1/db").exists());
        assert!(
            !dir.path().join("db").exists(),
            "the first database is gone"
        );
        // Still a store: reads, writes, history.
        assert!(store.get(&key(3)).unwrap().is_some());
        assert!(store.get(&key(11)).unwrap().is_none());
        put(&store, 5000).await;
        assert_eq!(store.current_revision(), rev + 1);
        assert!(store.history(rev, rev + 1).unwrap().is_some());
        // A second rebuild moves on to the next generation.
        for i in 5001..6000 {
            put(&store, i).await;
        }
        for i in 5001..6000 {
            store
                .mutate::<()>(&key(i), |_| Ok(Mutation::Delete))
                .await
                .unwrap()
                .unwrap();
        }
        store.flush().await.unwrap();
        defragment(&store).await;
        assert!(dir.path().join("gen-2/db").exists());
        assert!(!dir.path().join("gen-1").exists());
        let last = store.current_revision();
        drop(store);

        // Reopened: the current database, the writes since the rebuild (from the log).
        let store = crate::store::testing::reopen(dir.path(), config).await;
        assert_eq!(store.current_revision(), last);
        let (events, _) = store.list("", "events", Some("default")).unwrap();
        let names: Vec<&str> = events.iter().map(crate::object::name_of).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        assert_eq!(names.last(), Some(&"ev-05000"));
    }

    #[tokio::test]
    async fn a_small_database_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for i in 0..100 {
            put(&store, i).await;
        }
        store.flush().await.unwrap();
        // Under the size floor: nothing is even read.
        assert_eq!(store.defragment(u64::MAX).unwrap(), None);
        assert!(!dir.path().join("gen-1").exists());
    }

    #[test]
    fn a_database_left_by_an_interrupted_rebuild_is_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("gen-7")).unwrap();
        std::fs::write(dir.path().join("gen-7/db"), b"half a copy").unwrap();
        let engine = open(dir.path(), 1024 * 1024).unwrap();
        assert_eq!(engine.generation, 0);
        assert!(!dir.path().join("gen-7").exists());
        drop(engine);
        std::fs::write(dir.path().join(CURRENT), "gen-x\n").unwrap();
        let refused = open(dir.path(), 1024 * 1024).err().unwrap().to_string();
        assert!(refused.contains("names no database"), "{refused}");
    }
}

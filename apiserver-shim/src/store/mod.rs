//! The object store: every API object and one global revision counter in one sled tree,
//! and the recent changes (the watch history) in memory.
//!
//! Owns durability and ordering. Each write takes the store's write lock, reads the
//! current object, lets the caller decide (`Mutation`), assigns the next revision, writes
//! the object and then the revision counter to sled, one operation each (`apply_write`
//! says why not a batch; a sweep's deletions under one hold write the counter once), adds
//! the change to the history and releases the lock. The caller then waits for
//! the *group commit*: one task appends the writes that arrived meanwhile to the
//! write-ahead log and syncs it, and only then publishes the events to watchers and
//! acknowledges the writers. So an acknowledged write is on disk, watchers never see a
//! write that could be lost, and revisions are delivered in order; after a crash the log's
//! replay completes a write sled holds only part of.
//!
//! Key layout (one tree):
//! - `o<group>\0<resource>\0<namespace>\0<name>` → object JSON
//! - `mrev` → the current revision.
//!
//! The watch history (each change's event record and, for a modification, the object as
//! it was before it — what a selected watch resumed from the history needs to tell an
//! object leaving its selection, as etcd's `prevKV` and kube-apiserver's watch cache
//! `PrevObject` do) is kept in memory, not in sled (`history` says why). Data dirs of
//! earlier versions kept it under `e<revision>` and `p<revision>` keys, with
//! `mcompacted`; `open` removes them.
//!
//! The write path — one change's steps in order, the history record's format, deletions
//! in bulk for sweeps — is `write`. The sled database in use can be replaced by a fresh
//! copy when deleted data leaves its file mostly empty (`generation`); reading a
//! collection by pages and its changes since a revision is `scan`.
//!
//! It knows nothing of HTTP, kinds or validation: those live in the handlers.

mod counts;
mod fanout;
mod generation;
mod history;
mod scan;
mod stored_object;
#[cfg(test)]
mod testing;
mod write;

pub use generation::Defragmented;
pub use scan::{Change, Consistency, ScanStart, Stored, Visit};
pub use stored_object::{Head, StoredObject};
use write::{apply_write, set_revision};
pub use write::{Pace, DELETES_PER_HOLD};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, watch, Notify};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed to read or write.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record could not be decoded.
    #[error("corrupt record at {key}: {source}")]
    Corrupt {
        /// The key of the record.
        key: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// Flushing to disk failed, so the write is not acknowledged.
    #[error("flush to disk failed: {0}")]
    Flush(String),
    /// The write-ahead log could not be read or written.
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
    /// A write-ahead log record does not decode.
    #[error("corrupt write-ahead log record: {0}")]
    CorruptWal(&'static str),
    /// The store is shutting down.
    #[error("store is shutting down")]
    Closed,
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where one object lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKey {
    /// API group, "" for core.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Namespace, "" for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjectKey {
    fn encode(&self) -> Vec<u8> {
        let mut k = prefix_bytes(&self.group, &self.resource, Some(&self.namespace));
        k.extend_from_slice(self.name.as_bytes());
        k
    }
}

fn prefix_bytes(group: &str, resource: &str, namespace: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    k.push(b'o');
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(resource.as_bytes());
    k.push(0);
    if let Some(ns) = namespace {
        k.extend_from_slice(ns.as_bytes());
        k.push(0);
    }
    k
}

/// The kind of change an event records, as watch clients spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// The object was created.
    #[serde(rename = "ADDED")]
    Added,
    /// The object changed.
    #[serde(rename = "MODIFIED")]
    Modified,
    /// The object is gone.
    #[serde(rename = "DELETED")]
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watchers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    /// The revision of this change.
    pub rev: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// API group of the object.
    pub group: String,
    /// Resource of the object.
    pub resource: String,
    /// Namespace of the object.
    pub namespace: String,
    /// The object after the change (before it, for deletions, with the deletion's
    /// revision), decoded when first looked at.
    pub object: StoredObject,
    /// For a modification, the object before it, so a watch with selectors can tell an
    /// object entering or leaving its selection. Kept in the history beside the event
    /// (read back by [`Store::history_with_previous`]); `None` for additions, deletions,
    /// and modifications written before the history kept it.
    #[serde(skip)]
    pub previous: Option<Value>,
}

/// What a write decides to do with the current object.
pub enum Mutation {
    /// Store this object (created if absent).
    Put(Value),
    /// Delete the object.
    Delete,
    /// Change nothing.
    Keep,
}

/// The outcome of a write.
#[derive(Debug)]
pub enum Written {
    /// The object as stored, with its new resourceVersion.
    Stored(Value),
    /// The object as it was when deleted, with the deletion's resourceVersion.
    Deleted(Value),
    /// Nothing changed; the current object if there is one.
    Unchanged(Option<Value>),
}

/// How far the group commit has got.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durable {
    /// Every revision up to this one is on disk.
    pub(crate) rev: u64,
    /// Set when the log could not be written: later writes are not acknowledged.
    pub(crate) error: Option<String>,
}

/// Tunables of the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// How many events the history keeps for watch resumption.
    pub history_events: u64,
    /// At most this many bytes of history records (fewer events when they are large).
    pub history_bytes: u64,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Size of a write-ahead log segment; sled is checkpointed when one is full.
    pub wal_segment_bytes: u64,
    /// How many published events a watcher may fall behind before it catches up from the
    /// history instead.
    pub watch_buffer_events: usize,
    /// sled's file size above which the store considers rebuilding its database to give
    /// space back (see `generation`).
    pub defrag_min_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_events: DEFAULT_HISTORY_EVENTS,
            history_bytes: DEFAULT_HISTORY_BYTES,
            cache_bytes: 8 * 1024 * 1024,
            wal_segment_bytes: crate::wal::SEGMENT_BYTES,
            watch_buffer_events: DEFAULT_WATCH_BUFFER_EVENTS,
            defrag_min_bytes: DEFAULT_DEFRAG_MIN_BYTES,
        }
    }
}

/// Default size of the watch history, in events.
pub const DEFAULT_HISTORY_EVENTS: u64 = 10_000;

/// Default bound of the watch history's records, in bytes: an idle server's memory stays
/// bounded however large its objects are.
pub const DEFAULT_HISTORY_BYTES: u64 = 4 * 1024 * 1024;

/// Default sled file size above which a rebuild is considered: no more than a rebuild
/// copies at most (32 MiB), since a rebuild made while that much was still stored leaves
/// a file about that size once the rest expires, and a larger minimum kept it for good
/// (42 MiB of sled file holding no Events, session 21, when it was 64 MiB).
pub const DEFAULT_DEFRAG_MIN_BYTES: u64 = 32 * 1024 * 1024;

/// Default number of published events a watcher may fall behind.
pub const DEFAULT_WATCH_BUFFER_EVENTS: usize = 4096;

/// The object store. Cheap to share behind an `Arc`.
pub struct Store {
    /// The sled database in use (replaced by a rebuild, see `generation`).
    engine: RwLock<generation::Engine>,
    cache_bytes: u64,
    write_lock: Mutex<()>,
    rev: AtomicU64,
    /// The latest changes, for watches and older snapshots (`history`).
    history: history::History,
    pending: Mutex<Pending>,
    wake: Arc<Notify>,
    pub(crate) durable: watch::Sender<Durable>,
    /// Durable changes to their followers (`fanout`).
    pub(crate) fanout: fanout::Fanout,
    /// Objects per collection, for snapshot scans (`counts`).
    counts: counts::Counts,
}

/// Writes applied to sled and waiting for the group commit.
#[derive(Default)]
pub(crate) struct Pending {
    /// Their events, in revision order.
    pub(crate) events: Vec<Arc<Event>>,
    /// Their write-ahead log records, framed.
    pub(crate) records: Vec<u8>,
}

const REV_KEY: &[u8] = b"mrev";

impl Store {
    /// Opens (or creates) the store in `dir` and starts its flusher task on the current
    /// tokio runtime.
    pub fn open(dir: &std::path::Path, config: StoreConfig) -> Result<Arc<Store>> {
        let engine = generation::open(dir, config.cache_bytes)?;
        let (tree, log) = (engine.tree.clone(), engine.log.clone());
        let wal_dir = dir.join("wal");
        let rev = replay(&tree, &log, &wal_dir)?;
        remove_stored_history(&tree)?;
        let wal = crate::wal::Wal::create(&wal_dir, config.wal_segment_bytes.max(4096))?;
        let (durable, _) = watch::channel(Durable { rev, error: None });
        let store = Arc::new(Store {
            engine: RwLock::new(engine),
            cache_bytes: config.cache_bytes,
            write_lock: Mutex::new(()),
            rev: AtomicU64::new(rev),
            history: history::History::new(rev, config.history_events, config.history_bytes),
            pending: Mutex::new(Pending::default()),
            wake: Arc::new(Notify::new()),
            durable,
            fanout: fanout::Fanout::new(config.watch_buffer_events),
            counts: counts::Counts::default(),
        });
        tokio::spawn(crate::commit::run(
            Arc::downgrade(&store),
            store.wake.clone(),
            wal,
        ));
        generation::spawn(Arc::downgrade(&store), config.defrag_min_bytes);
        Ok(store)
    }

    fn engine(&self) -> RwLockReadGuard<'_, generation::Engine> {
        self.engine
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn engine_mut(&self) -> RwLockWriteGuard<'_, generation::Engine> {
        self.engine
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tree the store lives in.
    pub(crate) fn tree(&self) -> sled::Tree {
        self.engine().tree.clone()
    }

    /// sled's log file, synced at checkpoints.
    pub(crate) fn sled_log(&self) -> Arc<std::fs::File> {
        self.engine().log.clone()
    }

    /// The newest revision written (possibly not yet durable).
    pub fn current_revision(&self) -> u64 {
        self.rev.load(Ordering::SeqCst)
    }

    /// The newest revision that is on disk and published to watchers.
    pub fn durable_revision(&self) -> u64 {
        self.durable.borrow().rev
    }

    /// The oldest revision a watch can resume from.
    pub fn compacted_revision(&self) -> u64 {
        self.history.compacted()
    }

    /// Reads one object.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        let k = key.encode();
        match self.tree().get(&k)? {
            None => Ok(None),
            Some(bytes) => decode(&k, &bytes).map(Some),
        }
    }

    /// Reads one object's stored JSON bytes, undecoded (for answers that can send them as
    /// they are).
    pub fn get_raw(&self, key: &ObjectKey) -> Result<Option<sled::IVec>> {
        Ok(self.tree().get(key.encode())?)
    }

    /// Lists the objects of a resource, in one namespace or all (`None`), with the revision
    /// the list is consistent at.
    pub fn list(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Result<(Vec<Value>, u64)> {
        let prefix = prefix_bytes(group, resource, namespace);
        // The write lock makes the scan a snapshot at one revision.
        let _guard = self.lock();
        let rev = self.current_revision();
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(&prefix) {
            let (k, v) = item?;
            out.push(decode(&k, &v)?);
        }
        Ok((out, rev))
    }

    /// Counts the objects under a resource and namespace without decoding them.
    pub fn count(&self, group: &str, resource: &str, namespace: Option<&str>) -> Result<usize> {
        let prefix = prefix_bytes(group, resource, namespace);
        let mut n = 0;
        for item in self.tree().scan_prefix(&prefix) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Counts the objects of `group`/`resource` once, without the write lock, so a
    /// snapshot scan's [`ScanStart::count`] finds them counted (see `counts`). Must not be
    /// called with the write lock held.
    pub fn learn_count(&self, group: &str, resource: &str) -> Result<()> {
        self.counts.learn(&self.tree(), (group, resource))
    }

    /// Subscribes to every published (durable) change.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.fanout.subscribe_all()
    }

    /// Subscribes to the published (durable) changes of one resource.
    pub fn subscribe_resource(
        &self,
        group: &str,
        resource: &str,
    ) -> broadcast::Receiver<Arc<Event>> {
        self.fanout.subscribe(group, resource)
    }

    /// Reads history events with revision in `(after, upto]`, without the objects before
    /// modifications. Returns `None` when `after` is older than the history kept (the
    /// caller answers 410 Expired).
    pub fn history(&self, after: u64, upto: u64) -> Result<Option<Vec<Arc<Event>>>> {
        self.read_history(after, upto, false)
    }

    /// Like [`Store::history`], with each modification's [`Event::previous`] read back, as
    /// a watch replaying the history needs it.
    pub fn history_with_previous(&self, after: u64, upto: u64) -> Result<Option<Vec<Arc<Event>>>> {
        self.read_history(after, upto, true)
    }

    fn read_history(
        &self,
        after: u64,
        upto: u64,
        with_previous: bool,
    ) -> Result<Option<Vec<Arc<Event>>>> {
        let mut out = Vec::new();
        let read = self.walk_history(after, upto, |k, entry| {
            let mut ev: Event =
                serde_json::from_slice(&entry.record).map_err(|source| corrupt(k, source))?;
            if with_previous {
                ev.previous = previous_object(entry)?;
            }
            out.push(Arc::new(ev));
            Ok(())
        })?;
        Ok(read.then_some(out))
    }

    /// Hands each history entry with revision in `(after, upto]` to `each` (with a key
    /// naming it in errors), in order; `false` when the history no longer reaches back to
    /// `after`. The entries are copied out first: `each` runs without the history's lock.
    fn walk_history(
        &self,
        after: u64,
        upto: u64,
        mut each: impl FnMut(&[u8], &history::Entry) -> Result<()>,
    ) -> Result<bool> {
        let Some(entries) = self.history.between(after, upto) else {
            return Ok(false);
        };
        for entry in &entries {
            each(&revision_key(b'e', entry.rev), entry)?;
        }
        Ok(true)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Flushes everything to disk (used at shutdown).
    pub async fn flush(&self) -> Result<()> {
        let db = self.engine().db.clone();
        db.flush_async().await?;
        Ok(())
    }
}

/// Replays the write-ahead log's records newer than sled's revision into sled and makes
/// them durable there; returns the revision. The log's records are in revision order, and
/// sled holds a prefix of them, so before a record is applied the tree holds its key as
/// it was just before that write: that is the modification's previous object, which the
/// log does not repeat.
fn replay(tree: &sled::Tree, log: &std::fs::File, wal_dir: &std::path::Path) -> Result<u64> {
    let mut rev = read_u64(tree, REV_KEY)?;
    let mut replayed = 0u64;
    for payload in crate::wal::Wal::read_all(wal_dir)? {
        let (r, kind, key, record) = parse_wal_payload(&payload)?;
        if r <= rev {
            continue;
        }
        if r != rev + 1 {
            tracing::error!(expected = rev + 1, found = r, "write-ahead log has a gap");
        }
        let object_bytes = match kind {
            EventType::Deleted => &[][..],
            _ => object_of_record(record)?,
        };
        apply_write(tree, kind, key, object_bytes)?;
        rev = r;
        replayed += 1;
    }
    if replayed > 0 {
        set_revision(tree, rev)?;
        tree.flush()?;
        log.sync_data()
            .map_err(|e| StoreError::Flush(format!("syncing the store after replay: {e}")))?;
        tracing::info!(replayed, rev, "replayed the write-ahead log");
    }
    Ok(rev)
}

fn parse_wal_payload(p: &[u8]) -> Result<(u64, EventType, &[u8], &[u8])> {
    let bad = StoreError::CorruptWal;
    let rev = u64::from_be_bytes(
        p.get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(bad("short header"))?,
    );
    let kind = match p.get(8) {
        Some(0) => EventType::Added,
        Some(1) => EventType::Modified,
        Some(2) => EventType::Deleted,
        _ => return Err(bad("unknown event type")),
    };
    let key_len = u32::from_be_bytes(
        p.get(9..13)
            .and_then(|b| b.try_into().ok())
            .ok_or(bad("short header"))?,
    ) as usize;
    let key = p.get(13..13 + key_len).ok_or(bad("short key"))?;
    let record = p.get(13 + key_len..).ok_or(bad("short record"))?;
    Ok((rev, kind, key, record))
}

/// The object's bytes inside an event record made by [`event_record`].
fn object_of_record(record: &[u8]) -> Result<&[u8]> {
    const MARK: &[u8] = b",\"object\":";
    let at = record
        .windows(MARK.len())
        .position(|w| w == MARK)
        .ok_or(StoreError::CorruptWal("event record without an object"))?;
    record
        .get(at + MARK.len()..record.len().saturating_sub(1))
        .ok_or(StoreError::CorruptWal("short event record"))
}

/// Removes the watch history an earlier version kept in sled (`e<revision>` and
/// `p<revision>` records, `mcompacted`), 128 keys to a batch; nothing to do on a data dir
/// this version made.
fn remove_stored_history(tree: &sled::Tree) -> Result<()> {
    let mut removed = 0usize;
    for prefix in [&b"e"[..], &b"p"[..], &b"mcompacted"[..]] {
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in tree.scan_prefix(prefix).take(128) {
                let (k, _) = item?;
                batch.remove(k);
                n += 1;
            }
            if n == 0 {
                break;
            }
            tree.apply_batch(batch)?;
            removed += n;
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "removed the watch history an earlier version stored"
        );
    }
    Ok(())
}

/// The object before a modification, when the history entry keeps it.
fn previous_object(entry: &history::Entry) -> Result<Option<Value>> {
    match &entry.previous {
        Some(bytes) => {
            let k = revision_key(b'p', entry.rev);
            Ok(Some(decode(&k, bytes)?))
        }
        None => Ok(None),
    }
}

fn revision_key(tag: u8, rev: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&rev.to_be_bytes());
    k
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> Result<u64> {
    Ok(match tree.get(key)? {
        Some(v) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v);
            u64::from_be_bytes(b)
        }
        _ => 0,
    })
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|source| corrupt(key, source))
}

fn corrupt(key: &[u8], source: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    }
}

/// An object's JSON as stored. Into a buffer that starts at 1 KiB, the size of a typical
/// object (an Event is ~0.8): `to_vec` starts at 128 bytes and grows three times on the
/// way there, under the write lock, and the reallocations made glibc consolidate its
/// free chunks (1.6 % of the server's samples while Events expired, session 24).
fn encode(object: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    // Serializing a serde_json::Value into a Vec cannot fail.
    if serde_json::to_writer(&mut out, object).is_err() {
        out.clear();
    }
    out
}

/// Writes `metadata.resourceVersion`.
pub fn set_resource_version(object: &mut Value, rev: u64) {
    if let Some(obj) = object.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert("resourceVersion".into(), Value::String(rev.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    /// A crash between a write's operations (sled holds the new object, not the revision
    /// counter): the replay completes the write from the log. The history starts after the
    /// replay: a watch from before the restart is told its revision expired.
    #[tokio::test]
    async fn a_write_cut_short_by_a_crash_is_replayed_and_the_history_starts_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        for v in ["one", "two"] {
            let obj = json!({"metadata": {"name": "a"}, "data": {"v": v}});
            store
                .mutate::<()>(&key("a"), |_| Ok(Mutation::Put(obj)))
                .await
                .expect("store")
                .expect("decide");
        }
        assert_eq!(store.durable_revision(), 2);
        drop(store);
        // What a crash before the revision counter's write leaves (the log keeps record 2).
        {
            let db = testing::open_sled(dir.path()).await;
            let tree = db.open_tree("objects").expect("tree");
            tree.insert(REV_KEY, &1u64.to_be_bytes()).expect("rewind");
            db.flush().expect("flush");
        }
        let reopened = testing::reopen(dir.path(), StoreConfig::default()).await;
        assert_eq!(reopened.current_revision(), 2);
        let got = reopened.get(&key("a")).expect("get").expect("stored");
        assert_eq!(got["data"]["v"], "two");
        assert_eq!(reopened.compacted_revision(), 2);
        assert!(reopened.history(1, 2).expect("read").is_none(), "expired");
        let now = reopened.history(2, 2).expect("read").expect("in window");
        assert!(now.is_empty());
        put(&reopened, "a", json!({"v": "three"})).await;
        let after = reopened
            .history_with_previous(2, 3)
            .expect("read")
            .expect("in window");
        assert_eq!(after.len(), 1);
        let previous = after[0].previous.as_ref().expect("previous object");
        assert_eq!(previous["data"]["v"], "two", "{previous}");
    }

    /// A sweep writes the revision counter once after its deletions: a crash before that
    /// write leaves sled with the deletions and an older counter, and the replay applies
    /// them again, harmlessly.
    #[tokio::test]
    async fn deletions_sled_holds_before_their_revision_are_replayed_harmlessly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let written = put_numbered(&store, "d", 10).await;
        let names: Vec<String> = written.iter().map(|(n, _)| n.clone()).collect();
        let keys: Vec<(ObjectKey, u64)> = written[..6].iter().map(|(n, r)| (key(n), *r)).collect();
        let deleted = store
            .delete_unchanged(&keys, Pace::EAGER)
            .await
            .expect("delete");
        assert_eq!(deleted, 6);
        assert_eq!(store.durable_revision(), 16);
        drop(store);
        // The deletions are in sled, the counter still says 10.
        {
            let db = testing::open_sled(dir.path()).await;
            let tree = db.open_tree("objects").expect("tree");
            tree.insert(REV_KEY, &10u64.to_be_bytes()).expect("rewind");
            db.flush().expect("flush");
        }
        let reopened = testing::reopen(dir.path(), StoreConfig::default()).await;
        assert_eq!(reopened.current_revision(), 16);
        for (i, name) in names.iter().enumerate() {
            let kept = reopened.get(&key(name)).expect("get");
            assert_eq!(kept.is_some(), i >= 6, "{name}");
        }
        put(&reopened, "after", json!({"v": "x"})).await;
        assert_eq!(reopened.current_revision(), 17);
    }

    /// A data dir of an earlier version kept the history in sled: opening it removes
    /// those records and keeps every object.
    #[tokio::test]
    async fn the_history_an_earlier_version_stored_is_removed_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        put(&store, "a", json!({"v": "1"})).await;
        drop(store);
        {
            let db = testing::open_sled(dir.path()).await;
            let tree = db.open_tree("objects").expect("tree");
            for rev in 1..=300u64 {
                tree.insert(revision_key(b'e', rev), &b"{}"[..])
                    .expect("event");
                tree.insert(revision_key(b'p', rev), &b"{}"[..])
                    .expect("previous");
            }
            tree.insert(b"mcompacted", &1u64.to_be_bytes())
                .expect("compacted");
            db.flush().expect("flush");
        }
        let reopened = testing::reopen(dir.path(), StoreConfig::default()).await;
        let tree = reopened.tree();
        for prefix in [&b"e"[..], &b"p"[..], &b"mcompacted"[..]] {
            assert_eq!(tree.scan_prefix(prefix).count(), 0, "{prefix:?} left");
        }
        let got = reopened.get(&key("a")).expect("get").expect("kept");
        assert_eq!(got["data"]["v"], "1");
        assert_eq!(reopened.current_revision(), 1);
    }

    /// Paced: holds of 3 a millisecond apart delete every unchanged object once, in key
    /// order, and the call returns when the last is durable.
    #[tokio::test]
    async fn paced_deletions_are_all_made_and_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let written = put_numbered(&store, "p", 10).await;
        let names: Vec<String> = written.iter().map(|(n, _)| n.clone()).collect();
        let keys: Vec<(ObjectKey, u64)> = written.iter().map(|(n, r)| (key(n), *r)).collect();
        // p7 changes after its revision was taken: it stays.
        put(&store, "p7", json!({"v": "again"})).await;
        let pace = Pace {
            per_hold: 3,
            pause: std::time::Duration::from_millis(1),
        };
        let deleted = store.delete_unchanged(&keys, pace).await.expect("delete");
        assert_eq!(deleted, 9);
        assert_eq!(store.durable_revision(), 20);
        for name in &names {
            assert_eq!(
                store.get(&key(name)).expect("get").is_some(),
                name == "p7",
                "{name}"
            );
        }
        let history = store.history(11, 20).expect("read").expect("in window");
        let gone: Vec<String> = history
            .iter()
            .map(|ev| crate::object::name_of(&ev.object).to_string())
            .collect();
        let expected: Vec<&String> = names.iter().filter(|n| *n != "p7").collect();
        assert_eq!(gone.iter().collect::<Vec<_>>(), expected);
    }

    /// Deletions on a resourceVersion precondition: those whose revision is stale or
    /// whose object is missing are skipped.
    #[tokio::test]
    async fn conditional_deletions_are_events_like_any_deletion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        // More than one hold of the lock's worth.
        let names: Vec<String> = (0..DELETES_PER_HOLD + 8)
            .map(|i| format!("o{i:03}"))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let age = if i % 2 == 0 { "old" } else { "new" };
            let obj = json!({"metadata": {"name": name}, "age": age});
            store
                .mutate::<()>(&key(name), |_| Ok(Mutation::Put(obj)))
                .await
                .expect("store")
                .expect("decide");
        }
        let before = store.current_revision();
        let mut events = store.subscribe();
        // The old ones with the revision they were written at, the new ones with another.
        let mut keys: Vec<(ObjectKey, u64)> = (0..names.len())
            .map(|i| {
                (
                    key(&names[i]),
                    if i % 2 == 0 { i as u64 + 1 } else { i as u64 },
                )
            })
            .collect();
        keys.push((key("missing"), 1));
        let deleted = store
            .delete_unchanged(&keys, Pace::EAGER)
            .await
            .expect("delete");
        let old = names.len().div_ceil(2);
        assert_eq!(deleted, old);
        // Durable once it returns, published in order, each with its own revision and the
        // revision the object had.
        assert_eq!(store.durable_revision(), before + old as u64);
        let history = store
            .history(before, store.current_revision())
            .expect("read")
            .expect("in window");
        assert_eq!(history.len(), old);
        for (n, ev) in history.iter().enumerate() {
            let rev = before + 1 + n as u64;
            assert_eq!((ev.rev, ev.kind), (rev, EventType::Deleted));
            assert_eq!(ev.object["metadata"]["resourceVersion"], rev.to_string());
            assert_eq!(ev.object["age"], "old");
            let published = events.try_recv().expect("published");
            assert_eq!(published.rev, rev);
            // The live event's object is the stored JSON with the deletion's revision.
            assert_eq!(
                published.object.head().name,
                crate::object::name_of(&ev.object)
            );
            assert_eq!(*published.object, *ev.object);
        }
        for (i, name) in names.iter().enumerate() {
            let kept = store.get(&key(name)).expect("get");
            assert_eq!(kept.is_some(), i % 2 == 1, "{name}");
        }
        // A scan sees what is left; the changes since carry each object as it was.
        let mut seen = Vec::new();
        store
            .scan(
                ("", "configmaps", Some("default")),
                None,
                Consistency::Live,
                |_| Ok(()),
                |s| {
                    seen.push(s.name.to_string());
                    Ok(Visit::Next)
                },
            )
            .expect("scan");
        assert_eq!(seen.len(), names.len() - old);
        let changes = store
            .collection_changes(
                ("", "configmaps", Some("default")),
                before,
                store.current_revision(),
            )
            .expect("changes")
            .expect("in window");
        assert_eq!(changes.len(), old);
        assert!(changes.iter().all(|c| c.before.as_ref().is_some_and(|b| {
            b["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
                < Some(before + 1)
        })));
        drop(store);
        let reopened = testing::reopen(dir.path(), StoreConfig::default()).await;
        assert_eq!(reopened.current_revision(), before + old as u64);
        assert!(reopened.get(&key(&names[0])).expect("get").is_none());
    }

    #[tokio::test]
    async fn writes_are_durable_ordered_and_replayable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        for (i, name) in ["a", "b"].iter().enumerate() {
            let obj = json!({"metadata": {"name": name}, "data": {"i": i}});
            let w = store
                .mutate::<()>(&key(name), |_| Ok(Mutation::Put(obj)))
                .await
                .expect("store")
                .expect("decide");
            assert!(matches!(w, Written::Stored(_)));
        }
        store
            .mutate::<()>(&key("a"), |_| Ok(Mutation::Delete))
            .await
            .expect("store")
            .expect("decide");
        assert_eq!(store.durable_revision(), 3);
        let history = store.history(0, 3).expect("read").expect("in window");
        let kinds: Vec<(u64, EventType, String)> = history
            .iter()
            .map(|e| {
                (
                    e.rev,
                    e.kind,
                    e.object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (1, EventType::Added, "1".into()),
                (2, EventType::Added, "2".into()),
                (3, EventType::Deleted, "3".into())
            ]
        );
        assert_eq!(history[1].object["data"]["i"], 1);
        assert!(store.get(&key("a")).expect("get").is_none());
        drop(store);
        let reopened = testing::reopen(dir.path(), StoreConfig::default()).await;
        assert_eq!(reopened.current_revision(), 3);
        assert!(reopened.get(&key("b")).expect("get").is_some());
    }

    #[tokio::test]
    async fn log_rotation_checkpoints_and_the_history_window_keep_every_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StoreConfig {
            history_events: 50,
            wal_segment_bytes: 8192,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config.clone()).expect("open");
        for i in 0..400 {
            let name = format!("cm{i}");
            let obj = json!({"metadata": {"name": name}, "data": {"i": i}});
            store
                .mutate::<()>(&key(&name), |_| Ok(Mutation::Put(obj)))
                .await
                .expect("store")
                .expect("decide");
        }
        assert_eq!(store.durable_revision(), 400);
        // History older than the window answers "expired"; the window itself is intact.
        assert!(store.history(0, 400).expect("read").is_none());
        let recent = store.history(350, 400).expect("read").expect("in window");
        assert_eq!(recent.len(), 50);
        // Checkpoints deleted the segments whose writes sled holds durably.
        let mut segments = 0;
        for _ in 0..100 {
            segments = std::fs::read_dir(dir.path().join("wal"))
                .expect("wal dir")
                .count();
            if segments <= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(segments <= 3, "{segments} segments left");
        drop(store);
        let reopened = testing::reopen(dir.path(), config).await;
        assert_eq!(reopened.current_revision(), 400);
        for i in [0, 199, 399] {
            let obj = reopened
                .get(&key(&format!("cm{i}")))
                .expect("get")
                .expect("present");
            assert_eq!(obj["data"]["i"], i);
        }
    }

    /// Puts `{prefix}0` … `{prefix}{n-1}`; returns each name with the revision it was
    /// written at.
    async fn put_numbered(store: &Store, prefix: &str, n: usize) -> Vec<(String, u64)> {
        let mut written = Vec::new();
        for i in 0..n {
            let name = format!("{prefix}{i}");
            put(store, &name, json!({"v": name})).await;
            written.push((name, store.current_revision()));
        }
        written
    }

    async fn put(store: &Store, name: &str, data: Value) {
        let obj = json!({"metadata": {"name": name}, "data": data});
        store
            .mutate::<()>(&key(name), |_| Ok(Mutation::Put(obj)))
            .await
            .expect("store")
            .expect("decide");
    }

    /// (revision, the previous object's `data.v`) of each history event after `after`.
    fn previous_values(store: &Store, after: u64) -> Vec<(u64, Option<Value>)> {
        store
            .history_with_previous(after, store.current_revision())
            .expect("read")
            .expect("in window")
            .iter()
            .map(|e| (e.rev, e.previous.as_ref().map(|p| p["data"]["v"].clone())))
            .collect()
    }

    #[tokio::test]
    async fn history_keeps_the_object_before_each_modification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        put(&store, "a", json!({"v": "1"})).await;
        put(&store, "a", json!({"v": "2"})).await;
        put(&store, "a", json!({"v": "3"})).await;
        store
            .mutate::<()>(&key("a"), |_| Ok(Mutation::Delete))
            .await
            .expect("store")
            .expect("decide");
        let expected = vec![
            (1, None),
            (2, Some(json!("1"))),
            (3, Some(json!("2"))),
            (4, None),
        ];
        assert_eq!(previous_values(&store, 0), expected);
        // The plain history does not read them.
        let plain = store.history(0, 4).expect("read").expect("in window");
        assert!(plain.iter().all(|e| e.previous.is_none()));

        // A store rebuilt from the write-ahead log alone (sled empty, as after losing
        // every write since the last checkpoint) has every object; its history starts
        // after the replay.
        let rebuilt = tempfile::tempdir().expect("tempdir");
        let wal_copy = rebuilt.path().join("wal");
        std::fs::create_dir_all(&wal_copy).expect("wal dir");
        for entry in std::fs::read_dir(dir.path().join("wal")).expect("wal") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), wal_copy.join(entry.file_name())).expect("copy");
        }
        let replayed = Store::open(rebuilt.path(), StoreConfig::default()).expect("replay");
        assert_eq!(replayed.current_revision(), 4);
        assert!(replayed.get(&key("a")).expect("get").is_none());
        assert!(replayed.history(0, 4).expect("read").is_none());
    }

    /// The history keeps the last `history_events` changes, with their previous objects,
    /// in memory: nothing of it is written to sled.
    #[tokio::test]
    async fn the_history_is_a_window_of_the_last_changes_kept_out_of_sled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StoreConfig {
            history_events: 8,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config).expect("open");
        for i in 0..40 {
            put(&store, "a", json!({"v": i.to_string()})).await;
        }
        assert_eq!(store.compacted_revision(), 32);
        assert!(store.history(31, 40).expect("read").is_none());
        let last = previous_values(&store, 32);
        assert_eq!(last.len(), 8);
        assert_eq!(last.first(), Some(&(33, Some(json!("31")))));
        assert_eq!(last.last(), Some(&(40, Some(json!("38")))));
        let tree = store.tree();
        assert_eq!(tree.scan_prefix(b"e").count(), 0);
        assert_eq!(tree.scan_prefix(b"p").count(), 0);
    }
}

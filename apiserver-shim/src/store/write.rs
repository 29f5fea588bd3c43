//! The write path: one change under the write lock (`mutate`, `delete_unchanged`), its
//! revision, history record, sled operations and history entry, and the wait for the
//! group commit that makes it durable. A sweep's deletions rewrite the stored JSON's
//! resourceVersion instead of decoding it (`stored_object`).
//!
//! Owns the order of a write's steps and the format of its history record and
//! write-ahead log payload (`replay` in the parent reads them back). Knows nothing of
//! kinds, HTTP or validation: callers decide what is written (`Mutation`, the
//! resourceVersions a sweep's deletions are conditional on). The log itself is the
//! group commit's (`crate::commit`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::history::Entry;
use super::stored_object::with_resource_version;
use super::{
    decode, encode, set_resource_version, Event, EventType, Mutation, ObjectKey, Result, Store,
    StoreError, StoredObject, Written, REV_KEY,
};

/// Deletions under one hold of the write lock in [`Pace::EAGER`], and the fewest a sweep
/// makes in one (`event_ttl::pace`); a deletion holds the lock ~20 µs.
pub const DELETES_PER_HOLD: usize = 8;

/// How [`Store::delete_unchanged`] spreads its deletions: `per_hold` under one hold of the
/// write lock, then `pause` before the next hold (zero: a yield to other tasks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub per_hold: usize,
    pub pause: Duration,
}

impl Pace {
    /// As fast as the lock allows, [`DELETES_PER_HOLD`] at a time.
    pub const EAGER: Pace = Pace {
        per_hold: DELETES_PER_HOLD,
        pause: Duration::ZERO,
    };
}

impl Store {
    /// Reads, decides and writes one object atomically, then waits until the write is
    /// durable. `decide` sees the current object and returns the mutation or its own error;
    /// the store sets `metadata.resourceVersion` on what it stores.
    pub async fn mutate<E>(
        &self,
        key: &ObjectKey,
        decide: impl FnOnce(Option<Value>) -> Result<Mutation, E>,
    ) -> Result<Result<Written, E>>
    where
        E: Send,
    {
        let event = {
            let guard = self.lock();
            let k = key.encode();
            let current_bytes = self.tree().get(&k)?;
            let current = match &current_bytes {
                None => None,
                Some(bytes) => Some(decode(&k, bytes)?),
            };
            // One copy for `decide` to consume: the kept one is what a Keep answers, a
            // deletion deletes and a modification's event carries as the object before.
            let previous = current.clone();
            let mutation = match decide(current) {
                Ok(m) => m,
                Err(e) => return Ok(Err(e)),
            };
            let (kind, object, before) = match (mutation, previous) {
                (Mutation::Keep, previous) => return Ok(Ok(Written::Unchanged(previous))),
                (Mutation::Delete, None) => return Ok(Ok(Written::Unchanged(None))),
                (Mutation::Delete, Some(obj)) => (EventType::Deleted, obj, None),
                (Mutation::Put(obj), None) => (EventType::Added, obj, None),
                (Mutation::Put(obj), Some(before)) => (EventType::Modified, obj, Some(before)),
            };
            let prior = match kind {
                EventType::Modified => current_bytes.as_deref(),
                _ => None,
            };
            let event = self.write(&guard, key, &k, kind, object, before, prior)?;
            set_revision(&self.tree(), event.rev)?;
            event
        };
        // The caller's copy is made once the lock is released: other writers wait for
        // every microsecond it is held.
        let written = match event.kind {
            EventType::Deleted => Written::Deleted(event.object.value().clone()),
            _ => Written::Stored(event.object.value().clone()),
        };
        self.committed(event.rev).await?;
        Ok(Ok(written))
    }

    /// Deletes each object of `keys` that still has the resourceVersion given beside it
    /// (as a delete with `preconditions.resourceVersion` would: one changed since is
    /// kept), `pace.per_hold` under one hold of the write lock, and waits until the
    /// deletions are durable; returns how many went. For sweeps (expired Events): the
    /// precondition is read from the stored JSON while its resourceVersion is rewritten
    /// for the deletion's event, so no object is decoded (see `stored_object`), and the
    /// holds are pipelined: each wakes the group commit and lets other tasks run (for
    /// `pace.pause`, or a yield), and only the last is waited for. (Waiting for each
    /// hold's commit made the sweep's pace the group commits'; without a pause, a sweep
    /// of 5,000 Events ran at 30,000 a second on one core and doubled the creates' p99
    /// while it ran.)
    pub async fn delete_unchanged(&self, keys: &[(ObjectKey, u64)], pace: Pace) -> Result<usize> {
        let mut deleted = 0;
        let mut last = None;
        for (i, chunk) in keys.chunks(pace.per_hold.max(1)).enumerate() {
            if i > 0 {
                if pace.pause.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(pace.pause).await;
                }
            }
            let guard = self.lock();
            let mut held_last = None;
            for (key, expected) in chunk {
                let k = key.encode();
                let Some(bytes) = self.tree().get(&k)? else {
                    continue;
                };
                if let Some(rev) = self.delete_stored(&guard, key, &k, &bytes, *expected)? {
                    held_last = Some(rev);
                    deleted += 1;
                }
            }
            if let Some(rev) = held_last {
                set_revision(&self.tree(), rev)?;
                self.wake.notify_one();
                last = held_last;
            }
            drop(guard);
        }
        if let Some(rev) = last {
            self.wait_durable(rev).await?;
        }
        Ok(deleted)
    }

    /// Writes one change under the write lock (`held`): the next revision on `object`,
    /// then [`Store::record`]. The caller then records the revision in sled
    /// (`set_revision`), once for all the changes it makes under one hold of the lock.
    /// `before`: a modification's object before it (for watchers); `prior`: its stored
    /// bytes (for the history).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        held: &MutexGuard<'_, ()>,
        key: &ObjectKey,
        k: &[u8],
        kind: EventType,
        mut object: Value,
        before: Option<Value>,
        prior: Option<&[u8]>,
    ) -> Result<Arc<Event>> {
        let rev = self.current_revision() + 1;
        // A deletion's record keeps the revision the object had (see `scan`).
        let was = match kind {
            EventType::Deleted => object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|r| r.parse().ok()),
            _ => None,
        };
        set_resource_version(&mut object, rev);
        let object_bytes = encode(&object);
        let event = change(rev, kind, key, object.into(), before);
        self.record(held, key, k, &event, &object_bytes, was, prior)?;
        Ok(event)
    }

    /// Deletes the object stored at `k` as `stored` under the write lock (`held`) if its
    /// resourceVersion is still `expected`, its resourceVersion rewritten in its JSON
    /// rather than decoded and encoded again (JSON it cannot rewrite is decoded and takes
    /// [`Store::write`]'s way); returns the deletion's revision, or `None` when the object
    /// has changed.
    fn delete_stored(
        &self,
        held: &MutexGuard<'_, ()>,
        key: &ObjectKey,
        k: &[u8],
        stored: &[u8],
        expected: u64,
    ) -> Result<Option<u64>> {
        let rev = self.current_revision() + 1;
        let Some((json, was)) = with_resource_version(stored, rev) else {
            let object = decode(k, stored)?;
            let was = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|r| r.parse::<u64>().ok());
            if was != Some(expected) {
                return Ok(None);
            }
            let event = self.write(held, key, k, EventType::Deleted, object, None, None)?;
            return Ok(Some(event.rev));
        };
        if was != expected {
            return Ok(None);
        }
        let event = change(
            rev,
            EventType::Deleted,
            key,
            StoredObject::from_json(json.into_boxed_slice()),
            None,
        );
        let json = event.object.json().unwrap_or_default();
        self.record(held, key, k, &event, json, Some(was), None)?;
        Ok(Some(rev))
    }

    /// Records one change made under the write lock (`held`): its history record, sled
    /// (`apply_write`), the counts, the history and the group commit's queue.
    /// `object_bytes`: the object's JSON as stored (with its new resourceVersion); `was`:
    /// a deletion's revision before it; `prior`: a modification's stored bytes before it.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        held: &MutexGuard<'_, ()>,
        key: &ObjectKey,
        k: &[u8],
        event: &Arc<Event>,
        object_bytes: &[u8],
        was: Option<u64>,
        prior: Option<&[u8]>,
    ) -> Result<()> {
        let (rev, kind) = (event.rev, event.kind);
        let record = event_record(event, object_bytes, was);
        // Replay needs only a deletion's key: its record stays in the history alone.
        let logged = match kind {
            EventType::Deleted => &[][..],
            _ => &record,
        };
        let payload = wal_payload(rev, kind, k, logged);
        // Counted before sled holds the change: a count being learnt beside this write
        // (`counts`) must hear of it before its walk can see it.
        if kind != EventType::Modified {
            let collection = (
                key.group.as_str(),
                key.resource.as_str(),
                key.namespace.as_str(),
            );
            self.counts
                .changed(held, collection, k, kind == EventType::Added);
        }
        apply_write(&self.tree(), kind, k, object_bytes)?;
        self.history.push(Entry {
            rev,
            record: record.into_boxed_slice(),
            previous: prior.map(Box::from),
        });
        self.rev.store(rev, Ordering::SeqCst);
        let mut pending = self.lock_pending();
        pending.events.push(event.clone());
        crate::wal::frame(&payload, &mut pending.records);
        drop(pending);
        Ok(())
    }

    /// After writes up to `rev` (the lock released): wakes the group commit and waits
    /// until `rev` is durable.
    async fn committed(&self, rev: u64) -> Result<()> {
        self.wake.notify_one();
        self.wait_durable(rev).await
    }

    /// Waits until `rev` is on disk.
    async fn wait_durable(&self, rev: u64) -> Result<()> {
        let mut rx = self.durable.subscribe();
        let state = rx
            .wait_for(|d| d.rev >= rev || d.error.is_some())
            .await
            .map_err(|_| StoreError::Closed)?;
        match &state.error {
            Some(e) if state.rev < rev => Err(StoreError::Flush(e.clone())),
            _ => Ok(()),
        }
    }
}

/// The change at `rev` to the object at `key`.
fn change(
    rev: u64,
    kind: EventType,
    key: &ObjectKey,
    object: StoredObject,
    previous: Option<Value>,
) -> Arc<Event> {
    Arc::new(Event {
        rev,
        kind,
        group: key.group.clone(),
        resource: key.resource.clone(),
        namespace: key.namespace.clone(),
        object,
        previous,
    })
}

/// The event's history record: the [`Event`] JSON, with the object's bytes spliced in so
/// the object is serialised once per write. `was`: for a deletion, the object's revision
/// before it.
fn event_record(event: &Event, object_bytes: &[u8], was: Option<u64>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Head<'a> {
        rev: u64,
        #[serde(rename = "type")]
        kind: EventType,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
        /// For a deletion, the resourceVersion the object had (the event's object carries
        /// the deletion's), so a snapshot older than the deletion can be rebuilt.
        #[serde(skip_serializing_if = "Option::is_none")]
        was: Option<u64>,
    }
    let head = Head {
        rev: event.rev,
        kind: event.kind,
        group: &event.group,
        resource: &event.resource,
        namespace: &event.namespace,
        was,
    };
    // Sized once and the head written in place: growing the record as it was assembled
    // copied it twice (1.4 % of the server's samples while a sweep ran, session 23). The
    // head's fixed part (field names, two 20-digit revisions, the kind) is under 128
    // bytes.
    const OBJECT: &[u8] = b",\"object\":";
    let names = event.group.len() + event.resource.len() + event.namespace.len();
    let mut out = Vec::with_capacity(128 + names + OBJECT.len() + object_bytes.len() + 1);
    // Serializing a plain struct of strings and numbers into a Vec cannot fail.
    if serde_json::to_writer(&mut out, &head).is_err() {
        out.clear();
    }
    out.pop(); // its closing brace
    out.extend_from_slice(OBJECT);
    out.extend_from_slice(object_bytes);
    out.push(b'}');
    out
}

/// Applies one write to sled: the object, or its removal — a single operation, not part of
/// a `sled::Batch`. sled 0.34 writes its log buffer out before and after every batch
/// (`pin_log` rolls it twice) and each of those writes waits for the disk: a batch per API
/// write cost ~2.6 device writes (15,000 a second at 5,800 Event creates a second, the
/// disk's limit here). Single operations fill the buffer, which goes out when full or at
/// a checkpoint. Atomicity comes from the write-ahead log instead: sled recovers a prefix
/// of its log, so after a crash it holds a prefix of the operations, and replay
/// re-applies, in order, every record newer than the revision counter ([`set_revision`],
/// written after the changes it covers). Re-applying a change sled already holds is
/// harmless (the same insert or removal, in the same order). An I/O error part-way leaves
/// sled failed: every later operation returns the error.
pub(super) fn apply_write(
    tree: &sled::Tree,
    kind: EventType,
    key: &[u8],
    object_bytes: &[u8],
) -> Result<()> {
    match kind {
        EventType::Deleted => {
            tree.remove(key)?;
        }
        _ => {
            tree.insert(key, object_bytes)?;
        }
    }
    Ok(())
}

/// Records in sled that it holds every change up to `rev`: after the changes, once per
/// hold of the write lock (a sweep's 32 deletions write it once, not 32 times).
pub(super) fn set_revision(tree: &sled::Tree, rev: u64) -> Result<()> {
    tree.insert(REV_KEY, &rev.to_be_bytes())?;
    Ok(())
}

/// One write's write-ahead log payload: `rev u64 BE | kind u8 | key len u32 BE | key |
/// event record`, where the record ends with the object's bytes and `}`; a deletion's
/// record is empty (replay removes the key; logs of earlier versions carry one, unread).
fn wal_payload(rev: u64, kind: EventType, key: &[u8], record: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(13 + key.len() + record.len());
    p.extend_from_slice(&rev.to_be_bytes());
    p.push(match kind {
        EventType::Added => 0,
        EventType::Modified => 1,
        EventType::Deleted => 2,
    });
    p.extend_from_slice(&(key.len() as u32).to_be_bytes());
    p.extend_from_slice(key);
    p.extend_from_slice(record);
    p
}

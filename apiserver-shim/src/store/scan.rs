//! Reading one collection piece by piece: objects in key order from a start key, and the
//! collection's changes since a revision with what each object was before its change.
//!
//! Owns the walk over the `o…` keys and the filtered read of the `e…`/`p…` history; knows
//! nothing of pages, tokens or selectors (the list handler's `pages` builds pages and older
//! snapshots from these two reads). Why not [`Store::list`]: a page of 500 out of 10,000
//! objects should decode 500 objects, not 10,000, and a snapshot a few revisions old should
//! read the few changes since, not the whole history window.

use std::borrow::Cow;
use std::ops::Bound;

use serde::Deserialize;
use serde_json::Value;

use super::{
    corrupt, decode, prefix_bytes, previous_object, set_resource_version, Event, EventType, Result,
    Store,
};

/// One stored object met by a scan, not yet decoded.
pub struct Stored<'a> {
    /// Its namespace ("" for cluster-scoped objects).
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    key: &'a [u8],
    bytes: &'a [u8],
}

impl Stored<'_> {
    /// The object.
    pub fn decode(&self) -> Result<Value> {
        decode(self.key, self.bytes)
    }

    /// The stored JSON.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }
}

/// Whether a scan goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    /// Show me the next object.
    Next,
    /// Done.
    Stop,
}

/// Where a scan starts, handed to its `at` callback before the first object.
pub struct ScanStart<'a> {
    /// The revision the scan reads at (with [`Consistency::Live`], when it starts).
    pub rev: u64,
    store: &'a Store,
    /// The write lock, held by a snapshot scan.
    held: Option<&'a std::sync::MutexGuard<'a, ()>>,
    collection: (&'a str, &'a str, Option<&'a str>),
}

impl ScanStart<'_> {
    /// How many objects the collection holds at [`ScanStart::rev`], without walking it
    /// (a resource not counted before by [`Store::learn_count`] is walked here, under the
    /// lock): known in a snapshot scan, `None` in a live one.
    pub fn count(&self) -> Result<Option<u64>> {
        let Some(held) = self.held else {
            return Ok(None);
        };
        let tree = self.store.tree();
        self.store
            .counts
            .get(held, &tree, self.collection)
            .map(Some)
    }
}

/// How a scan relates to concurrent writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Under the write lock: the scan sees the store at one revision (lists and pages).
    Snapshot,
    /// Without the lock: writers are not held up, and an object written meanwhile may be
    /// seen either way (sweeps that re-check each object under its own write).
    Live,
}

/// One change to an object of a collection, as [`Store::collection_changes`] reads it.
#[derive(Debug)]
pub struct Change {
    /// The change.
    pub event: Event,
    /// The object just before the change, with the resourceVersion it had; `None` when it
    /// did not exist (an addition), or when the history does not say (written before the
    /// store kept it: the caller treats the history as too short).
    pub before: Option<Value>,
}

/// The fields of an event record needed to pick a collection's events without decoding
/// their objects.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(borrow)]
    group: Cow<'a, str>,
    #[serde(borrow)]
    resource: Cow<'a, str>,
    #[serde(borrow)]
    namespace: Cow<'a, str>,
    /// For a deletion, the resourceVersion the object had before it.
    #[serde(default)]
    was: Option<u64>,
}

impl Store {
    /// Visits the objects of a resource (in one namespace or all), in key order —
    /// namespace, then name — starting just after `after`. `at` is called first with the
    /// revision the scan reads at and the collection's size (see [`ScanStart`]). Returns
    /// that revision.
    pub fn scan(
        &self,
        (group, resource, namespace): (&str, &str, Option<&str>),
        after: Option<(&str, &str)>,
        consistency: Consistency,
        at: impl FnOnce(ScanStart<'_>) -> Result<()>,
        mut visit: impl FnMut(Stored<'_>) -> Result<Visit>,
    ) -> Result<u64> {
        let prefix = prefix_bytes(group, resource, namespace);
        let start = match after {
            Some((ns, name)) => {
                let mut k = prefix_bytes(group, resource, Some(ns));
                k.extend_from_slice(name.as_bytes());
                if k < prefix {
                    Bound::Included(prefix.clone())
                } else {
                    Bound::Excluded(k)
                }
            }
            None => Bound::Included(prefix.clone()),
        };
        let guard = (consistency == Consistency::Snapshot).then(|| self.lock());
        let rev = self.current_revision();
        at(ScanStart {
            rev,
            store: self,
            held: guard.as_ref(),
            collection: (group, resource, namespace),
        })?;
        let tree = self.tree();
        for item in tree.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let text = std::str::from_utf8(rest).unwrap_or_default();
            let (ns, name) = match namespace {
                Some(ns) => (ns, text),
                None => text.split_once('\0').unwrap_or(("", text)),
            };
            let stored = Stored {
                namespace: ns,
                name,
                key: &k,
                bytes: &v,
            };
            if visit(stored)? == Visit::Stop {
                break;
            }
        }
        Ok(rev)
    }

    /// The changes to the objects of one resource (in one namespace or all) with revision
    /// in `(after, upto]`, in revision order, each with the object as it was before it.
    /// Events of other collections are skipped without decoding their objects. `None` when
    /// the history no longer reaches back to `after` (the caller answers 410 Expired).
    pub fn collection_changes(
        &self,
        (group, resource, namespace): (&str, &str, Option<&str>),
        after: u64,
        upto: u64,
    ) -> Result<Option<Vec<Change>>> {
        let mut out = Vec::new();
        let read = self.walk_history(after, upto, |k, entry| {
            let v = &entry.record;
            let head: Head = serde_json::from_slice(v).map_err(|source| corrupt(k, source))?;
            if head.group != group
                || head.resource != resource
                || namespace.is_some_and(|ns| head.namespace != ns)
            {
                return Ok(());
            }
            let event: Event = serde_json::from_slice(v).map_err(|source| corrupt(k, source))?;
            let before = match head.kind {
                EventType::Added => None,
                EventType::Modified => previous_object(entry)?,
                // The deleted object is the event's, but for its resourceVersion.
                EventType::Deleted => head.was.map(|was| {
                    let mut o = event.object.value().clone();
                    set_resource_version(&mut o, was);
                    o
                }),
            };
            out.push(Change { event, before });
            Ok(())
        })?;
        Ok(read.then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{cm, delete, put};
    use crate::store::{ObjectKey, StoreConfig};
    use serde_json::json;

    fn names(store: &Store, ns: Option<&str>, after: Option<(&str, &str)>) -> Vec<String> {
        let mut seen = Vec::new();
        store
            .scan(
                ("", "configmaps", ns),
                after,
                Consistency::Snapshot,
                |_| Ok(()),
                |s| {
                    seen.push(format!("{}/{}", s.namespace, s.name));
                    Ok(Visit::Next)
                },
            )
            .unwrap();
        seen
    }

    #[tokio::test]
    async fn scans_start_after_a_key_and_stay_in_their_collection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for (ns, name) in [("a", "x"), ("a", "y"), ("ab", "a"), ("b", "z")] {
            put(&store, &cm(ns, name), json!({"v": "1"})).await;
        }
        // Another resource sorting right after: never visited.
        let secret = ObjectKey {
            resource: "configmapsx".into(),
            ..cm("a", "s")
        };
        put(&store, &secret, json!({"v": "1"})).await;
        assert_eq!(names(&store, None, None), ["a/x", "a/y", "ab/a", "b/z"]);
        assert_eq!(names(&store, None, Some(("a", "y"))), ["ab/a", "b/z"]);
        assert_eq!(
            names(&store, None, Some(("a", "x"))),
            ["a/y", "ab/a", "b/z"]
        );
        assert_eq!(names(&store, Some("a"), Some(("a", "x"))), ["a/y"]);
        assert_eq!(names(&store, Some("a"), Some(("", ""))), ["a/x", "a/y"]);
        assert!(names(&store, Some("a"), Some(("b", ""))).is_empty());
    }

    #[tokio::test]
    async fn changes_carry_the_object_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        put(&store, &cm("a", "x"), json!({"v": "1"})).await;
        let at = store.current_revision();
        put(&store, &cm("a", "x"), json!({"v": "2"})).await;
        put(&store, &cm("a", "new"), json!({"v": "1"})).await;
        put(&store, &cm("b", "other-ns"), json!({"v": "1"})).await;
        delete(&store, &cm("a", "x")).await;
        let changes = store
            .collection_changes(("", "configmaps", Some("a")), at, store.current_revision())
            .unwrap()
            .unwrap();
        let seen: Vec<(EventType, Option<String>, Option<String>)> = changes
            .iter()
            .map(|c| {
                (
                    c.event.kind,
                    c.before
                        .as_ref()
                        .map(|b| b["data"]["v"].as_str().unwrap().to_string()),
                    c.before.as_ref().map(|b| {
                        b["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    }),
                )
            })
            .collect();
        let modified_rev = (at + 1).to_string();
        assert_eq!(
            seen,
            [
                (EventType::Modified, Some("1".into()), Some(at.to_string())),
                (EventType::Added, None, None),
                (EventType::Deleted, Some("2".into()), Some(modified_rev)),
            ]
        );
    }
}

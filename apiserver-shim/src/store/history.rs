//! The watch history: the most recent changes, in memory, for a watch resuming from a
//! revision (or catching up after it fell behind) and for a snapshot scan at an older
//! revision (a continue token, `resourceVersionMatch=Exact`).
//!
//! Owns the window (how many changes, how many bytes), what one change keeps (its history
//! record, as `write` formats it, and a modification's object before it) and which
//! revisions it still answers for. Knows nothing of sled, the write-ahead log or kinds;
//! writers push under the store's write lock, readers take copies of the records they
//! want and decode them outside it.
//!
//! Why in memory: kube-apiserver serves watches from its watch cache, an in-memory
//! window; etcd's on-disk history behind it is there for its own MVCC reads. Kept in sled,
//! each write cost two more inserts there (the record and, for a modification, the object
//! before it) and their removal at compaction: with 1 M Events created 32 at once, the
//! server ran 3,723 creates/s with the history in sled and 4,924/s without, and the create
//! p99 before expiry deletions began fell from ~19 to ~9 ms (docs/PERFORMANCE.md, "API at
//! scale", session 20). After a restart the history is empty from the store's revision
//! on: a watch or continue token from before it gets 410 Expired and the client lists
//! again, as after kube-apiserver's restart.
//!
//! Window: the last `max_events` changes, fewer when their records exceed `max_bytes`
//! (the server's idle memory is bounded whatever the objects' size). Revisions are
//! contiguous, one change each, so a revision's record is found by its distance from the
//! oldest.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// One change as the history keeps it.
pub(crate) struct Entry {
    /// Its revision.
    pub(crate) rev: u64,
    /// The history record (`write::event_record`): the event's JSON with the object.
    pub(crate) record: Box<[u8]>,
    /// For a modification, the object's stored JSON before it.
    pub(crate) previous: Option<Box<[u8]>>,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.record.len() + self.previous.as_ref().map_or(0, |p| p.len())
    }
}

/// The history of one store.
pub(crate) struct History {
    window: Mutex<Window>,
    max_events: usize,
    max_bytes: usize,
}

struct Window {
    /// Consecutive revisions, oldest first.
    entries: VecDeque<Arc<Entry>>,
    /// Bytes of the entries' records and previous objects.
    bytes: usize,
    /// Every change after this revision is in `entries`.
    compacted: u64,
}

impl History {
    /// An empty history that answers from revision `rev` on (the store's current one).
    pub(crate) fn new(rev: u64, max_events: u64, max_bytes: u64) -> History {
        History {
            window: Mutex::new(Window {
                entries: VecDeque::new(),
                bytes: 0,
                compacted: rev,
            }),
            max_events: usize::try_from(max_events.max(1)).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(max_bytes.max(1)).unwrap_or(usize::MAX),
        }
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the change at `entry.rev`, the revision after the newest one kept (the caller
    /// holds the store's write lock), and drops the oldest beyond the window. The newest
    /// change is kept even when it alone exceeds the byte bound.
    pub(crate) fn push(&self, entry: Entry) {
        let mut w = self.window();
        let expected = w.entries.back().map_or(w.compacted, |e| e.rev) + 1;
        if entry.rev != expected {
            // Not contiguous (cannot happen under the write lock): start the window over
            // rather than answer for revisions it does not hold.
            tracing::error!(
                expected,
                found = entry.rev,
                "watch history out of order: restarted"
            );
            w.entries.clear();
            w.bytes = 0;
            w.compacted = entry.rev.saturating_sub(1);
        }
        w.bytes += entry.bytes();
        w.entries.push_back(Arc::new(entry));
        while w.entries.len() > 1 && (w.entries.len() > self.max_events || w.bytes > self.max_bytes)
        {
            if let Some(old) = w.entries.pop_front() {
                w.bytes -= old.bytes();
                w.compacted = old.rev;
            }
        }
    }

    /// The oldest revision a reader can start after.
    pub(crate) fn compacted(&self) -> u64 {
        self.window().compacted
    }

    /// The changes with revision in `(after, upto]`, oldest first; `None` when the window
    /// no longer reaches back to `after`.
    pub(crate) fn between(&self, after: u64, upto: u64) -> Option<Vec<Arc<Entry>>> {
        let w = self.window();
        if after < w.compacted {
            return None;
        }
        let skip = usize::try_from(after - w.compacted).unwrap_or(usize::MAX);
        let take = usize::try_from(upto.saturating_sub(after)).unwrap_or(usize::MAX);
        Some(w.entries.iter().skip(skip).take(take).cloned().collect())
    }

    /// Bytes held (records and previous objects).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.window().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rev: u64, len: usize, previous: bool) -> Entry {
        Entry {
            rev,
            record: vec![b'r'; len].into(),
            previous: previous.then(|| vec![b'p'; len].into()),
        }
    }

    fn revs(h: &History, after: u64, upto: u64) -> Option<Vec<u64>> {
        h.between(after, upto)
            .map(|es| es.iter().map(|e| e.rev).collect())
    }

    #[test]
    fn answers_from_the_revision_it_starts_at() {
        let h = History::new(10, 100, 1 << 20);
        assert_eq!(revs(&h, 10, 10), Some(vec![]));
        assert_eq!(revs(&h, 9, 10), None, "before its start: expired");
        h.push(entry(11, 8, false));
        h.push(entry(12, 8, true));
        assert_eq!(revs(&h, 10, 12), Some(vec![11, 12]));
        assert_eq!(revs(&h, 11, 12), Some(vec![12]));
        assert_eq!(revs(&h, 10, 11), Some(vec![11]), "only up to `upto`");
        assert_eq!(revs(&h, 12, 20), Some(vec![]));
        let kept = h.between(10, 12).expect("in window");
        assert!(kept[0].previous.is_none(), "kept as pushed");
        assert!(kept[1].previous.is_some(), "kept as pushed");
    }

    #[test]
    fn keeps_the_last_events_within_the_count() {
        let h = History::new(0, 3, 1 << 20);
        for rev in 1..=5 {
            h.push(entry(rev, 8, false));
        }
        assert_eq!(h.compacted(), 2);
        assert_eq!(revs(&h, 2, 5), Some(vec![3, 4, 5]));
        assert_eq!(revs(&h, 1, 5), None);
        assert_eq!(h.bytes(), 24);
    }

    #[test]
    fn keeps_the_last_events_within_the_bytes() {
        let h = History::new(0, 100, 100);
        for rev in 1..=4 {
            h.push(entry(rev, 20, true)); // 40 bytes each
        }
        assert_eq!(revs(&h, 2, 4), Some(vec![3, 4]), "two fit in 100 bytes");
        assert_eq!(h.bytes(), 80);
        // One change larger than the bound is still kept, alone.
        h.push(entry(5, 200, false));
        assert_eq!(revs(&h, 4, 5), Some(vec![5]));
        assert_eq!(h.compacted(), 4);
        assert_eq!(h.bytes(), 200);
    }
}

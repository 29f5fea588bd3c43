//! Expectations: the pods a controller created or deleted that its cache has not shown
//! yet, as kube-controller-manager's `ControllerExpectations`.
//!
//! A controller that reads pods from a watch-fed cache instead of listing them fresh
//! must not act on a cache that lags its own writes: a pass that created three pods,
//! followed at once by a pass that still sees none of them, would create three more.
//! So each owner (keyed by its uid) records the uids of the pods a pass created and
//! deleted; until the cache shows every creation and every deletion (gone, or carrying
//! a `deletionTimestamp`), the owner's next passes write status only. An expectation
//! older than [`Expectations::ttl`] counts as met, as upstream's five-minute expiry,
//! so a watch event lost for good cannot wedge an owner.
//!
//! Owns only this bookkeeping; it never reads the API or the cache itself (callers hand
//! in a lookup of the cache).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one owner's last writes are still waiting to see.
#[derive(Debug)]
struct Pending {
    created: HashSet<String>,
    deleted: HashSet<String>,
    since: Instant,
}

/// What the cache says of a pod uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not in the cache.
    Absent,
    /// In the cache, not being deleted.
    Present,
    /// In the cache with a `deletionTimestamp`.
    Deleting,
}

/// Per-owner expectations of one controller.
#[derive(Debug)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
    ttl: Duration,
}

impl Expectations {
    /// Expectations that count as met after `ttl` at the latest.
    pub fn new(ttl: Duration) -> Expectations {
        Expectations {
            pending: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// How long an expectation is waited for at most.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records that a pass of `owner` created `created` and deleted `deleted` (pod uids).
    pub fn expect(&self, owner: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        // Owners deleted while waiting are never asked again: drop what has expired.
        pending.retain(|_, p| p.since.elapsed() < self.ttl);
        let entry = pending.entry(owner.to_string()).or_insert_with(|| Pending {
            created: HashSet::new(),
            deleted: HashSet::new(),
            since: Instant::now(),
        });
        entry.created.extend(created);
        entry.deleted.extend(deleted);
        entry.since = Instant::now();
    }

    /// Whether the cache (as `seen` reports it) shows every write `owner`'s passes made;
    /// met (or expired) expectations are forgotten.
    pub fn satisfied(&self, owner: &str, seen: impl Fn(&str) -> Seen) -> bool {
        let Ok(mut pending) = self.pending.lock() else {
            return true;
        };
        let Some(entry) = pending.get_mut(owner) else {
            return true;
        };
        entry.created.retain(|uid| seen(uid) == Seen::Absent);
        entry.deleted.retain(|uid| seen(uid) == Seen::Present);
        let met = (entry.created.is_empty() && entry.deleted.is_empty())
            || entry.since.elapsed() >= self.ttl;
        if met {
            pending.remove(owner);
        }
        met
    }

    /// Lowers `owner`'s expectations by one sighting of pod `pod` in the watch (as
    /// upstream's `CreationObserved`/`DeletionObserved` from its informer handlers): any
    /// sighting meets its creation, and one `seen` not [`Seen::Present`] its deletion. A
    /// pod created and gone again before the owner's next pass is never in the cache that
    /// pass reads; without this its creation would be waited for until the TTL.
    pub fn observe(&self, owner: &str, pod: &str, seen: Seen) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some(entry) = pending.get_mut(owner) {
            entry.created.remove(pod);
            if seen != Seen::Present {
                entry.deleted.remove(pod);
            }
        }
    }

    /// Forgets `owner` (it is gone).
    pub fn forget(&self, owner: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_are_waited_for_until_the_cache_shows_them() {
        let e = Expectations::new(Duration::from_secs(300));
        assert!(e.satisfied("rs", |_| Seen::Absent), "nothing expected");
        e.expect("rs", vec!["a".into(), "b".into()], vec![]);
        assert!(!e.satisfied("rs", |_| Seen::Absent));
        assert!(!e.satisfied("rs", |u| if u == "a" {
            Seen::Present
        } else {
            Seen::Absent
        }));
        // "a" was seen: only "b" is still awaited, even if "a" is gone again by now.
        assert!(e.satisfied("rs", |u| if u == "b" {
            Seen::Present
        } else {
            Seen::Absent
        }));
        assert!(
            e.satisfied("rs", |_| Seen::Absent),
            "met expectations are forgotten"
        );
    }

    #[test]
    fn a_creation_seen_in_the_watch_is_met_even_if_the_pod_is_gone_by_the_pass() {
        let e = Expectations::new(Duration::from_secs(300));
        e.expect("rs", vec!["a".into()], vec!["b".into()]);
        e.observe("rs", "a", Seen::Present);
        e.observe("rs", "b", Seen::Present);
        let b_present = |u: &str| {
            if u == "b" {
                Seen::Present
            } else {
                Seen::Absent
            }
        };
        assert!(!e.satisfied("rs", b_present), "b is still there");
        e.observe("rs", "b", Seen::Deleting);
        assert!(e.satisfied("rs", b_present), "b's deletion was seen");
        e.observe("other", "x", Seen::Absent); // nothing expected: nothing to do
    }

    #[test]
    fn deletions_are_met_by_absence_or_a_deletion_timestamp() {
        let e = Expectations::new(Duration::from_secs(300));
        e.expect("rs", vec![], vec!["a".into(), "b".into()]);
        assert!(!e.satisfied("rs", |_| Seen::Present));
        assert!(e.satisfied("rs", |u| if u == "a" {
            Seen::Absent
        } else {
            Seen::Deleting
        }));
    }

    #[test]
    fn expectations_expire_and_owners_are_kept_apart() {
        let e = Expectations::new(Duration::ZERO);
        e.expect("one", vec!["a".into()], vec![]);
        assert!(e.satisfied("one", |_| Seen::Absent), "expired");
        let e = Expectations::new(Duration::from_secs(300));
        e.expect("one", vec!["a".into()], vec![]);
        assert!(e.satisfied("two", |_| Seen::Absent));
        e.forget("one");
        assert!(e.satisfied("one", |_| Seen::Absent));
    }
}

//! Events expire: kube-apiserver stores each Event with an etcd lease of `--event-ttl`
//! (default one hour, renewed by each update), so old Events vanish by themselves. The
//! store here has no leases, so a sweep does the same: every second (or every tenth of
//! the TTL, if shorter) it deletes the Events last seen longer ago than the TTL. Often,
//! so that each sweep is small: the deletions of a busy stream come as an even load beside
//! the creates rather than as bursts they wait behind (a sweep every 6 s, at 5,000 Events
//! a second, deleted 30,000 at a time). A sweep with nothing due reads only the front of
//! the index.
//!
//! Owns only that deletion, and the index it runs from: the Events by when they were last
//! seen and at which resourceVersion, read once at start (a walk without the write lock
//! that parses only their times) and then kept from the store's stream of changes, as
//! etcd keeps leases, so a sweep takes the expired Events from the front and deletes them
//! through `Store::delete_unchanged`: each only if its resourceVersion is still the one
//! it was seen at (an update since keeps it until the stream has noted it; its times are
//! not parsed again), a few to a hold of the lock, the holds spread over half the interval
//! ([`pace`]) so that a writer never waits behind more than one, and the sweep does not
//! take a core for itself (deleting as fast as the lock allowed, a sweep of 5,000 Events
//! ran at 30,000 a second and doubled the creates' p99 while it ran).
//! (A sweep that listed every Event under the write lock held up all writers while it
//! listed; one deleting one Event per group commit fell behind a stream of new Events:
//! 1 M Events at 6,500/s with a 60 s TTL left 1.7 GB in the data dir. Deleting through
//! `Store::mutate`, 64 at a time, decoded and copied every Event and cost more server
//! time than the creates beside it: 41 % of the server's CPU against 31 % for the HTTP
//! creates, session 18's profile.)
//!
//! "Last seen" is the newest of `series.lastObservedTime`, `lastTimestamp`, `eventTime`
//! and `creationTimestamp`, so an Event that keeps recurring stays. Events of both groups
//! share one storage (see `conversion`), so one sweep covers them.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::api::Api;
use crate::error::ApiResult;
use crate::object;
use crate::store::{Consistency, Event, EventType, ObjectKey, Pace, Visit, DELETES_PER_HOLD};

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The time at `path` (field names, outermost first). Not `Value::pointer`: it allocates
/// for each segment, and this runs for every Event written.
fn time_at(ev: &Value, path: &[&str]) -> Option<jiff::Timestamp> {
    path.iter()
        .try_fold(ev, |v, field| v.get(field))?
        .as_str()?
        .parse()
        .ok()
}

/// When the Event was last seen.
pub fn last_seen(ev: &Value) -> Option<jiff::Timestamp> {
    [
        &["series", "lastObservedTime"][..],
        &["lastTimestamp"],
        &["eventTime"],
        &["metadata", "creationTimestamp"],
    ]
    .iter()
    .filter_map(|p| time_at(ev, p))
    .max()
}

/// The times an Event's "last seen" is made of, read from its stored JSON without
/// decoding the rest.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Times<'a> {
    #[serde(borrow)]
    metadata: MetaTimes<'a>,
    #[serde(borrow)]
    last_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    series: Option<SeriesTimes<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct MetaTimes<'a> {
    #[serde(borrow)]
    creation_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SeriesTimes<'a> {
    #[serde(borrow)]
    last_observed_time: Option<Cow<'a, str>>,
}

/// When a stored Event was last seen and its resourceVersion, from its JSON (`None` when
/// it says nothing readable).
fn stored_last_seen(stored: &[u8]) -> Option<(jiff::Timestamp, u64)> {
    let times = serde_json::from_slice::<Times>(stored).ok()?;
    let rev = times.metadata.resource_version.as_deref()?.parse().ok()?;
    Some((times.last_seen()?, rev))
}

impl Times<'_> {
    fn last_seen(&self) -> Option<jiff::Timestamp> {
        [
            self.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_deref()),
            self.last_timestamp.as_deref(),
            self.event_time.as_deref(),
            self.metadata.creation_timestamp.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|t| t.parse().ok())
        .max()
    }
}

/// An Event's place: (namespace, name).
type Key = (String, String);

/// The Events by when they were last seen, so a sweep takes the expired ones from the
/// front instead of reading every Event; beside each, the resourceVersion it was last
/// seen at, the sweep's precondition (an Event changed since is not deleted for what
/// it was).
#[derive(Default)]
struct Expiry {
    queue: BTreeSet<(jiff::Timestamp, Key)>,
    seen: HashMap<Key, (jiff::Timestamp, u64)>,
}

impl Expiry {
    /// The Event at `key` was last seen at a time, at a resourceVersion (`None`: it has no
    /// time to expire by, and leaves the index).
    fn note(&mut self, key: Key, seen: Option<(jiff::Timestamp, u64)>) {
        let old = match seen {
            Some(seen) => self.seen.insert(key.clone(), seen),
            None => self.seen.remove(&key),
        };
        match (old, seen) {
            // Only the resourceVersion moved: its place in the queue stays.
            (Some((was, _)), Some((at, _))) if was == at => {}
            (old, seen) => {
                if let Some((was, _)) = old {
                    self.queue.remove(&(was, key.clone()));
                }
                if let Some((at, _)) = seen {
                    self.queue.insert((at, key));
                }
            }
        }
    }

    /// One change from the store's stream; other resources are ignored.
    fn apply(&mut self, ev: &Event) {
        if !ev.group.is_empty() || ev.resource != "events" {
            return;
        }
        let key = |name: &str| (ev.namespace.clone(), name.to_string());
        match ev.kind {
            // Kept until it is due: the sweep's precondition then finds nothing to delete.
            // Most deletions are the sweep's own, already taken from the index, and
            // reading a deleted Event's name would parse its JSON (2.7 µs of the ~30 a
            // deletion cost, session 24); an Event created again under the name replaces
            // the entry.
            EventType::Deleted => {}
            EventType::Added | EventType::Modified => self.note(
                key(object::name_of(&ev.object)),
                last_seen(&ev.object).map(|at| (at, ev.rev)),
            ),
        }
    }

    /// Rebuilt from the Events stored, reading only their times, without the write lock.
    fn read(api: &Api) -> ApiResult<Expiry> {
        let mut expiry = Expiry::default();
        api.store.scan(
            ("", "events", None),
            None,
            Consistency::Live,
            |_| Ok(()),
            |stored| {
                let key = (stored.namespace.to_string(), stored.name.to_string());
                expiry.note(key, stored_last_seen(stored.bytes()));
                Ok(Visit::Next)
            },
        )?;
        Ok(expiry)
    }

    /// Takes the Events last seen before `cutoff`, each with the resourceVersion it was
    /// seen at.
    fn due(&mut self, cutoff: jiff::Timestamp) -> Vec<(Key, u64)> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.queue.first() {
            if *at >= cutoff {
                break;
            }
            if let Some((_, key)) = self.queue.pop_first() {
                if let Some((_, rev)) = self.seen.remove(&key) {
                    out.push((key, rev));
                }
            }
        }
        out
    }
}

fn cutoff(ttl: Duration) -> Option<jiff::Timestamp> {
    jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(ttl).ok()?)
        .ok()
}

/// How a sweep of `due` Events spreads its deletions when sweeps come `every` so often:
/// over about half of that time, one hold of the write lock a millisecond, each of at
/// least [`DELETES_PER_HOLD`]. A sweep that runs over its time gives the next one more
/// to delete, and so more a hold: the pace follows the stream. (etcd, likewise, revokes
/// expired leases at a bounded rate rather than all at once.)
fn pace(due: usize, every: Duration) -> Pace {
    let holds = (every.as_millis() / 2).max(1) as usize;
    Pace {
        per_hold: due.div_ceil(holds).max(DELETES_PER_HOLD),
        pause: Duration::from_millis(1),
    }
}

/// Deletes these Events unless they changed since the resourceVersion beside each (the
/// change is noted, and the Event swept again if it is still old), `pace` a hold of the
/// lock; returns how many went once they are durable.
async fn delete(api: &Api, keys: Vec<(Key, u64)>, pace: Pace) -> ApiResult<usize> {
    let keys: Vec<(ObjectKey, u64)> = keys
        .into_iter()
        .map(|((namespace, name), rev)| (object_key(namespace, name), rev))
        .collect();
    Ok(api.store.delete_unchanged(&keys, pace).await?)
}

/// Where the Event `namespace/name` is stored (both groups share core/v1's storage).
fn object_key(namespace: String, name: String) -> ObjectKey {
    ObjectKey {
        group: String::new(),
        resource: "events".into(),
        namespace,
        name,
    }
}

/// Sweeps until the store is dropped; a zero TTL keeps Events forever. The Events' times
/// are read once at start and then kept from the store's stream of changes (read again
/// if the stream ran ahead of this task); a sweep deletes what is due while the next
/// changes are noted.
pub fn spawn(api: Arc<Api>, ttl: Duration) {
    if ttl.is_zero() {
        return;
    }
    let every = (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut changes = api.store.subscribe_resource("", "events");
    let weak = Arc::downgrade(&api);
    drop(api);
    tokio::spawn(async move {
        let mut expiry: Option<Expiry> = None;
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let mut sweeping: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(ev) => {
                        if let Some(e) = expiry.as_mut() {
                            e.apply(&ev);
                        }
                    }
                    // Ran behind: read the Events again at the next sweep.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "event expiry fell behind the store's changes");
                        expiry = None
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if sweeping.as_ref().is_some_and(|t| !t.is_finished()) {
                        continue;
                    }
                    let Some(api) = weak.upgrade() else { return };
                    if expiry.is_none() {
                        let started = std::time::Instant::now();
                        match Expiry::read(&api) {
                            Ok(e) => {
                                tracing::debug!(events = e.seen.len(), ms = started.elapsed().as_secs_f64() * 1e3, "events read for expiry");
                                expiry = Some(e)
                            }
                            Err(e) => {
                                tracing::warn!(error = %e.message, "reading Events for expiry");
                                continue;
                            }
                        }
                    }
                    let (Some(e), Some(cutoff)) = (expiry.as_mut(), cutoff(ttl)) else {
                        continue;
                    };
                    let keys = e.due(cutoff);
                    if keys.is_empty() {
                        continue;
                    }
                    let pace = pace(keys.len(), every);
                    sweeping = Some(tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        match delete(&api, keys, pace).await {
                            Ok(n) => tracing::debug!(deleted = n, ms = started.elapsed().as_secs_f64() * 1e3, "expired events removed"),
                            Err(e) => tracing::warn!(error = %e.message, "event expiry sweep"),
                        }
                    }));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiOptions;
    use crate::store::Mutation;
    use crate::store::{Store, StoreConfig};
    use serde_json::json;

    /// An API over a fresh store in a temporary directory (kept alive with it).
    async fn api() -> (tempfile::TempDir, Arc<Api>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let api = Api::new(store, ApiOptions::default());
        crate::bootstrap(&api).await.unwrap();
        (dir, api)
    }

    fn event_key(name: &str) -> ObjectKey {
        object_key("default".into(), name.into())
    }

    /// Stores a core/v1 Event `name` in `default` with these times (`metadata` fields
    /// merged over its name and namespace, the rest at the top).
    async fn put_event(api: &Api, name: &str, metadata: Value, times: Value) {
        let mut ev = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p"}});
        if let (Some(meta), Value::Object(extra)) = (ev["metadata"].as_object_mut(), metadata) {
            meta.extend(extra);
        }
        if let (Some(top), Value::Object(extra)) = (ev.as_object_mut(), times) {
            top.extend(extra);
        }
        api.store
            .mutate::<()>(&event_key(name), move |_| Ok(Mutation::Put(ev)))
            .await
            .unwrap()
            .unwrap();
    }

    /// One sweep: deletes the Events last seen before now − `ttl`, reading them all once;
    /// returns how many.
    async fn sweep(api: &Arc<Api>, ttl: Duration) -> ApiResult<usize> {
        let Some(cutoff) = cutoff(ttl) else {
            return Ok(0);
        };
        let keys = Expiry::read(api)?.due(cutoff);
        delete(api, keys, Pace::EAGER).await
    }

    #[test]
    fn the_newest_time_counts() {
        let ev = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                        "lastTimestamp": "2026-01-01T02:00:00Z",
                        "series": {"lastObservedTime": "2026-01-01T03:00:00.000000Z"}});
        assert_eq!(
            last_seen(&ev).map(|t| t.to_string()),
            Some("2026-01-01T03:00:00Z".to_string())
        );
    }

    #[test]
    fn a_sweep_spreads_its_deletions_over_half_its_interval() {
        let second = Duration::from_secs(1);
        // 6,000 due once a second: 500 holds of 12, a millisecond apart.
        assert_eq!(
            pace(6_000, second),
            Pace {
                per_hold: 12,
                pause: Duration::from_millis(1)
            }
        );
        // A few: never fewer than the store's minimum a hold.
        assert_eq!(pace(3, second).per_hold, DELETES_PER_HOLD);
        // A sweep that fell behind takes more a hold; a tiny interval still spreads.
        assert_eq!(pace(60_000, second).per_hold, 120);
        assert_eq!(pace(100, Duration::from_millis(1)).per_hold, 100);
    }

    #[tokio::test]
    async fn old_events_go_and_recent_ones_stay() {
        let (_dir, api) = api().await;
        let old = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string();
        let fresh = jiff::Timestamp::now().to_string();
        for (name, last) in [("old", &old), ("fresh", &fresh)] {
            let created = json!({"creationTimestamp": old});
            put_event(&api, name, created, json!({"lastTimestamp": last})).await;
        }
        assert_eq!(sweep(&api, DEFAULT_TTL).await.unwrap(), 1);
        let (left, _) = api.store.list("", "events", Some("default")).unwrap();
        let names: Vec<&str> = left.iter().map(crate::object::name_of).collect();
        assert_eq!(names, ["fresh"]);
    }

    fn change(rev: u64, kind: EventType, name: &str, last: &str) -> Event {
        Event {
            rev,
            kind,
            group: String::new(),
            resource: "events".into(),
            namespace: "default".into(),
            object:
                json!({"metadata": {"name": name, "namespace": "default"}, "lastTimestamp": last})
                    .into(),
            previous: None,
        }
    }

    #[test]
    fn the_index_follows_updates_and_deletions() {
        let mut e = Expiry::default();
        e.apply(&change(1, EventType::Added, "a", "2026-01-01T00:00:00Z"));
        e.apply(&change(2, EventType::Added, "b", "2026-01-01T00:00:01Z"));
        e.apply(&change(3, EventType::Added, "c", "2026-01-01T00:00:02Z"));
        e.apply(&change(4, EventType::Added, "d", "2026-01-01T00:00:03Z"));
        // a recurs later; c goes; d changes but keeps its times.
        e.apply(&change(5, EventType::Modified, "a", "2026-01-01T00:00:09Z"));
        e.apply(&change(6, EventType::Deleted, "c", "2026-01-01T00:00:02Z"));
        e.apply(&change(7, EventType::Deleted, "e", "2026-01-01T00:00:02Z"));
        e.apply(&change(8, EventType::Added, "e", "2026-01-01T00:00:08Z"));
        e.apply(&change(9, EventType::Modified, "d", "2026-01-01T00:00:03Z"));
        let mut other = change(10, EventType::Added, "cm", "2026-01-01T00:00:00Z");
        other.resource = "configmaps".into();
        e.apply(&other);
        let key = |name: &str| ("default".to_string(), name.to_string());
        let cutoff: jiff::Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        // Each with the resourceVersion it was last seen at: the sweep's precondition. The
        // deleted c is still there (the store will find nothing to delete); e, created
        // again, is there as it is now.
        assert_eq!(e.due(cutoff), [(key("b"), 2), (key("c"), 3), (key("d"), 9)]);
        assert!(e.due(cutoff).is_empty());
        let later: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(e.due(later), [(key("e"), 8), (key("a"), 5)]);
    }

    /// An Event changed after the index saw it is not deleted for what it was: the sweep
    /// skips it, and deletes it once the index has its new resourceVersion.
    #[tokio::test]
    async fn an_event_changed_since_it_was_seen_waits_for_the_next_sweep() {
        let (_dir, api) = api().await;
        let key = event_key("old");
        let old = "2020-01-01T00:00:00Z";
        let times = json!({"lastTimestamp": old});
        put_event(
            &api,
            "old",
            json!({"creationTimestamp": old}),
            times.clone(),
        )
        .await;
        let cutoff = cutoff(DEFAULT_TTL).unwrap();
        let due = Expiry::read(&api).unwrap().due(cutoff);
        assert_eq!(due.len(), 1);
        // A label added since, the times as they were.
        let labelled = json!({"creationTimestamp": old, "labels": {"seen": "again"}});
        put_event(&api, "old", labelled, times).await;
        assert_eq!(delete(&api, due, Pace::EAGER).await.unwrap(), 0);
        assert!(api.store.get(&key).unwrap().is_some());
        let due = Expiry::read(&api).unwrap().due(cutoff);
        assert_eq!(delete(&api, due, Pace::EAGER).await.unwrap(), 1);
        assert!(api.store.get(&key).unwrap().is_none());
    }

    #[tokio::test]
    async fn the_running_sweep_removes_events_written_before_and_after_it_started() {
        let (_dir, api) = api().await;
        let put = |name: &'static str| {
            let api = api.clone();
            async move {
                let created = json!({"creationTimestamp": jiff::Timestamp::now().to_string()});
                put_event(&api, name, created, json!({})).await;
            }
        };
        put("before").await;
        spawn(api.clone(), Duration::from_secs(2));
        // After the first sweep has read the Events: this one reaches it through the stream.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        put("after").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (left, _) = api.store.list("", "events", Some("default")).unwrap();
            if left.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still stored: {:?}",
                left.iter().map(crate::object::name_of).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

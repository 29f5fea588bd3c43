//! Publishing durable changes to whoever follows them: one channel carrying every change
//! (the garbage collector follows owners of every kind) and one per resource, made when
//! it is first subscribed (each watch, the Event expiry), so a follower wakes only for
//! the changes it wants — as kube-apiserver keeps one watch cache per resource.
//!
//! Owns the channels and their capacity. Knows nothing of watches, selectors or the
//! group commit: it is handed each change once it is durable, in revision order, and
//! hands it on in that order. A follower that falls more than the capacity behind gets
//! `Lagged` and catches up from the history.
//!
//! Why: with one channel for everything, every watch task woke for every change of every
//! resource (the controllers' and the agent's watches on pods, nodes, leases … for each
//! Event written). With 1 M Events the server spent ~14 % of its CPU in context switches
//! and wake-ups (docs/PERFORMANCE.md, "API at scale", session 20); the create rate did
//! not move measurably with this change (4,668/s against 4,551–4,656), but no watch wakes
//! for a resource it does not follow.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use super::Event;

type Channel = broadcast::Sender<Arc<Event>>;

/// group → resource → channel.
type ByResource = HashMap<String, HashMap<String, Channel>>;

/// The channels of one store.
pub(crate) struct Fanout {
    all: Channel,
    by_resource: RwLock<ByResource>,
    capacity: usize,
}

impl Fanout {
    /// Channels that hold up to `capacity` changes a follower has not read yet.
    pub(crate) fn new(capacity: usize) -> Fanout {
        let capacity = capacity.max(1);
        Fanout {
            all: broadcast::channel(capacity).0,
            by_resource: RwLock::default(),
            capacity,
        }
    }

    /// Every change from now on.
    pub(crate) fn subscribe_all(&self) -> broadcast::Receiver<Arc<Event>> {
        self.all.subscribe()
    }

    /// The changes of `group`/`resource` from now on.
    pub(crate) fn subscribe(&self, group: &str, resource: &str) -> broadcast::Receiver<Arc<Event>> {
        if let Some(tx) = self.read().get(group).and_then(|m| m.get(resource)) {
            return tx.subscribe();
        }
        let mut map = self
            .by_resource
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(group.to_string())
            .or_default()
            .entry(resource.to_string())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Hands a durable change to the followers of every change and of its resource.
    pub(crate) fn publish(&self, ev: Arc<Event>) {
        if let Some(tx) = self.read().get(&ev.group).and_then(|m| m.get(&ev.resource)) {
            if tx.receiver_count() > 0 {
                // A send fails only when the last receiver went meanwhile.
                let _ = tx.send(ev.clone());
            }
        }
        if self.all.receiver_count() > 0 {
            let _ = self.all.send(ev);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ByResource> {
        self.by_resource
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventType;
    use serde_json::json;

    fn event(rev: u64, group: &str, resource: &str) -> Arc<Event> {
        Arc::new(Event {
            rev,
            kind: EventType::Added,
            group: group.into(),
            resource: resource.into(),
            namespace: "default".into(),
            object: json!({"metadata": {"name": format!("o{rev}")}}).into(),
            previous: None,
        })
    }

    fn revs(rx: &mut broadcast::Receiver<Arc<Event>>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            out.push(ev.rev);
        }
        out
    }

    #[test]
    fn a_follower_gets_its_resource_and_the_all_follower_everything() {
        let f = Fanout::new(16);
        f.publish(event(1, "", "pods")); // nobody follows yet: dropped
        let mut pods = f.subscribe("", "pods");
        let mut pods_too = f.subscribe("", "pods");
        let mut deployments = f.subscribe("apps", "deployments");
        let mut all = f.subscribe_all();
        f.publish(event(2, "", "pods"));
        f.publish(event(3, "", "events"));
        f.publish(event(4, "apps", "deployments"));
        f.publish(event(5, "", "pods"));
        f.publish(event(6, "apps", "pods")); // another group's resource of that name
        assert_eq!(revs(&mut pods), [2, 5]);
        assert_eq!(revs(&mut pods_too), [2, 5]);
        assert_eq!(revs(&mut deployments), [4]);
        assert_eq!(revs(&mut all), [2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_follower_that_falls_behind_is_told() {
        let f = Fanout::new(2);
        let mut pods = f.subscribe("", "pods");
        for rev in 1..=5 {
            f.publish(event(rev, "", "pods"));
        }
        assert!(matches!(
            pods.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(3))
        ));
        assert_eq!(revs(&mut pods), [4, 5]);
    }
}

//! Kinds served under two API groups with different shapes and stored once, as
//! kube-apiserver stores them: `events.k8s.io/v1` Events are core/v1 Events with renamed
//! fields, so an Event written by kube-runtime's recorder (events.k8s.io) is listed by
//! `kubectl get events` and `kubectl describe` (core/v1), and the other way round.
//!
//! Owns the renaming; which kinds are stored in another group's shape, and their field
//! mapping, are their strategy's [`SharedStorage`] (`kinds/events.rs`). The handlers call
//! [`to_storage`] before a write and [`from_storage`] when presenting. Both are idempotent
//! (a field already in the target shape is left alone), so an object passes through
//! either any number of times.

use serde_json::{Map, Value};

use crate::kinds::SharedStorage;
use crate::registry::Resource;

fn shared(r: &Resource) -> Option<&'static SharedStorage> {
    r.strategy().shared_storage()
}

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    for (from, to) in pairs {
        if let Some(v) = m.remove(from) {
            if !m.contains_key(to) {
                m.insert(to.to_string(), v);
            }
        }
    }
}

/// The object as stored, from the shape of `r`'s group.
pub fn to_storage(r: &Resource, mut obj: Value) -> Value {
    if let Some(shared) = shared(r) {
        rename(&mut obj, shared.fields.iter().copied());
    }
    obj
}

/// The object in the shape of `r`'s group, from storage.
pub fn from_storage(r: &Resource, mut obj: Value) -> Value {
    if let Some(shared) = shared(r) {
        rename(&mut obj, shared.fields.iter().map(|&(a, b)| (b, a)));
        if let Some(m) = obj.as_object_mut() {
            for key in shared.dropped_when_empty {
                drop_empty(m, key);
            }
        }
    }
    obj
}

fn drop_empty(m: &mut Map<String, Value>, key: &str) {
    if m.get(key)
        .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        m.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn events_convert_both_ways_and_idempotently() {
        let registry = Registry::new();
        let table = registry.snapshot();
        let new = table.get("events.k8s.io", "v1", "events").unwrap();
        let core = table.get("", "v1", "events").unwrap();
        assert_eq!(new.storage_group, "", "stored with core events");

        let written = json!({
            "metadata": {"name": "e1"}, "reason": "ScalingReplicaSet",
            "regarding": {"kind": "Deployment", "name": "web"},
            "note": "Scaled up replica set web-1 from 0 to 2",
            "reportingController": "deployment-controller", "type": "Normal",
        });
        let stored = to_storage(new, written.clone());
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], written["note"]);
        assert_eq!(stored["reportingComponent"], "deployment-controller");
        assert!(stored.get("note").is_none());
        assert_eq!(to_storage(new, stored.clone()), stored, "idempotent");
        assert_eq!(
            from_storage(core, stored.clone()),
            stored,
            "core is the stored shape"
        );
        assert_eq!(from_storage(new, stored), written);
    }
}

//! Whether a server-side apply would change nothing: the SpinApp controller skips
//! applying a child whose cached copy already holds every field it would send.
//!
//! An apply of fields the object already has with the same values is a no-op on the API
//! server (no write, no event), but it still costs a request, a merge and a managedFields
//! pass; during a burst of new apps every Deployment status change wakes the app's
//! reconcile, and applying its Deployment and Service each time was most of the API
//! server's work (docs/PERFORMANCE.md, "SpinApps"). Owns only the comparison; the caller
//! decides with what (a watch-fed cache may lag: a stale copy that looks right is caught
//! by the next watch event, which wakes the reconcile again).

use serde_json::Value;

/// Whether `have` holds every field of `want` with its value: objects by key (extra keys
/// in `have` — server defaults, other managers' fields — are fine), lists element by
/// element with the same length, scalars equal (a `null` in `want` only where `have` has
/// nothing or `null`).
pub fn covers(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| covers(hv, wv)) || wv.is_null()),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| covers(hv, wv))
        }
        (h, w) => h == w,
    }
}

/// [`covers`] for typed objects (serialised as they would be sent).
pub fn already_applied<T: serde::Serialize>(have: Option<&T>, want: &T) -> bool {
    let Some(have) = have else {
        return false;
    };
    match (serde_json::to_value(have), serde_json::to_value(want)) {
        (Ok(h), Ok(w)) => covers(&h, &w),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_fields_on_the_server_are_covered() {
        let have = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"},
            "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "c", "image": "i",
            "imagePullPolicy": "IfNotPresent"}]}}}});
        let want = json!({"metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(covers(&have, &want));
    }

    #[test]
    fn a_changed_or_missing_field_or_list_length_is_not_covered() {
        let have = json!({"spec": {"replicas": 1, "ports": [{"port": 80}]}});
        assert!(!covers(&have, &json!({"spec": {"replicas": 2}})));
        assert!(!covers(&have, &json!({"spec": {"paused": true}})));
        assert!(!covers(
            &have,
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(!covers(&have, &json!({"spec": {"ports": [{"port": 81}]}})));
        assert!(!covers(&json!({"a": "1"}), &json!({"a": 1})));
    }

    #[test]
    fn nothing_cached_is_never_applied() {
        assert!(!already_applied::<Value>(None, &json!({})));
        assert!(already_applied(Some(&json!({"a": 1})), &json!({"a": 1})));
    }
}

//! The `pod-template-hash`: what names a Deployment's ReplicaSets (`<deploy>-<hash>`)
//! and is added to their selector, template labels and labels, so the pods of two
//! revisions never overlap.
//!
//! Computed as upstream's `ComputeHash`: FNV-32a over the pod template, then the
//! `collisionCount` (when set) as 8 bytes little-endian, the 32-bit sum printed in decimal
//! and each digit mapped onto the "safe" alphabet `bcdfghjklmnpqrstvwxz2456789`. The one
//! difference: upstream feeds FNV the template as Go's `spew` prints the Go struct, which
//! has no Rust equivalent; here it is fed the template's canonical JSON (keys sorted,
//! empty values dropped). The value is therefore stable for a template across restarts
//! and versions of spinlet, but not equal to the hash kube-controller-manager would
//! pick for the same template — nothing compares the two: a ReplicaSet is matched to its
//! Deployment by template equality ([`equal_ignoring_hash`]), as upstream does.
//!
//! Pure.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};

/// The label (and ReplicaSet selector key) that carries the hash.
pub const LABEL: &str = "pod-template-hash";

const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv32a(data: &[u8], mut hash: u32) -> u32 {
    for b in data {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The value with object keys sorted and nulls, empty lists and empty objects dropped.
fn canonical(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|x| canonical(x).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let out: Map<String, Value> = keys
                .into_iter()
                .filter_map(|k| canonical(&m[k]).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

fn canonical_template(t: &PodTemplateSpec, drop_hash_label: bool) -> Value {
    let mut t = t.clone();
    if drop_hash_label {
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(LABEL);
        }
    }
    serde_json::to_value(&t)
        .ok()
        .and_then(|v| canonical(&v))
        .unwrap_or(Value::Null)
}

/// Maps a decimal string onto the safe alphabet, as upstream's `SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    s.chars()
        .map(|c| SAFE[(c as usize) % SAFE.len()] as char)
        .collect()
}

/// The pod-template-hash of `template` with `collision_count`.
pub fn compute(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let text = canonical_template(template, false).to_string();
    let mut hash = fnv32a(text.as_bytes(), 0x811c_9dc5);
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash = fnv32a(&bytes, hash);
    }
    safe_encode(&hash.to_string())
}

/// Whether two templates are equal once the `pod-template-hash` label is ignored
/// (upstream's `EqualIgnoreHash`; absent and empty values are equal, as its semantic
/// equality has them).
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical_template(a, true) == canonical_template(b, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).expect("template")
    }

    #[test]
    fn fnv32a_matches_the_reference_values() {
        assert_eq!(fnv32a(b"", 0x811c_9dc5), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a", 0x811c_9dc5), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar", 0x811c_9dc5), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_maps_digits_as_upstream() {
        // '0' is 48: 48 % 27 = 21 → '4'; '9' is 57: 57 % 27 = 3 → 'f'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn the_hash_is_stable_and_follows_the_template_and_collisions() {
        let a = template(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}));
        let b = template(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i:2"}]}}));
        let h = compute(&a, None);
        assert_eq!(h, compute(&a.clone(), None));
        assert!(h.chars().all(|c| SAFE.contains(&(c as u8))), "{h}");
        assert!((1..=10).contains(&h.len()));
        assert_ne!(h, compute(&b, None));
        assert_ne!(h, compute(&a, Some(0)));
        assert_ne!(compute(&a, Some(0)), compute(&a, Some(1)));
    }

    #[test]
    fn equality_ignores_the_hash_label_and_empty_values() {
        let a = template(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}));
        let with_hash = template(json!({"metadata": {"labels": {"app": "web", LABEL: "abc"}},
            "spec": {"containers": [{"name": "c", "image": "i:1", "env": []}]}}));
        assert!(equal_ignoring_hash(&a, &with_hash));
        let other = template(json!({"metadata": {"labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}));
        assert!(!equal_ignoring_hash(&a, &other));
    }
}

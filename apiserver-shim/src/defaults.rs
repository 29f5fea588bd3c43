//! The defaulting primitive the kinds' strategies (`kinds/`) build their defaults from:
//! [`set_default`] fills a field that is absent or null, as Go's `SetDefaults_*` fill
//! zero values. Which fields a kind defaults, at create (`prepare_for_create`) and on
//! every write (`default`, as kube-apiserver defaults every decoded body), is the kind's
//! own; only fields a client reads back are defaulted. Knows no kind.

use serde_json::{json, Value};

/// Sets the field at the JSON pointer `pointer` to `value` when it is absent or null,
/// creating the maps on the way (a non-map on the way leaves `obj` unchanged).
pub fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    let mut cur = obj;
    while let Some(p) = parts.next() {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            let slot = map.entry(p).or_insert(Value::Null);
            if slot.is_null() {
                *slot = value;
            }
            return;
        }
        let slot = map.entry(p).or_insert(Value::Null);
        if slot.is_null() {
            *slot = json!({});
        }
        cur = slot;
    }
}

//! The object a change carries: the value its writer had, or the JSON the store held,
//! decoded on first use.
//!
//! Owns that laziness, the cheap reads of an undecoded object's identity ([`Head`]) and
//! the rewrite of a stored object's `metadata.resourceVersion` in its JSON
//! ([`with_resource_version`]). Knows nothing of kinds, watchers or sled.
//!
//! Why: a sweep deletes Events by the thousand a second (`crate::event_ttl`), and a
//! deletion's event carries the object as it was. Decoding each into a `serde_json::Value`
//! to set its resourceVersion, encoding it again for the history, and dropping the value
//! once the last subscriber has seen the change cost as much server time as the HTTP
//! creates beside them (session 21's profile: decoding alone 8.5 % of the server's CPU,
//! dropping 5 %). Most changes are only ever looked at by name (the garbage collector, the
//! Events' expiry), so the value is decoded only when a watcher or a caller asks for it.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// An object as a change carries it: dereferences to its `Value`, decoded from the
/// store's JSON the first time anyone looks.
#[derive(Clone)]
pub struct StoredObject {
    value: OnceLock<Value>,
    /// The JSON, when the object was not made from a value.
    json: Option<Box<[u8]>>,
}

impl StoredObject {
    /// An object from its JSON as the store wrote it.
    pub(crate) fn from_json(json: Box<[u8]>) -> StoredObject {
        StoredObject {
            value: OnceLock::new(),
            json: Some(json),
        }
    }

    /// The object's JSON, when it was made from it (not from a value).
    pub(crate) fn json(&self) -> Option<&[u8]> {
        self.json.as_deref()
    }

    /// The object. JSON the store wrote always decodes; if it somehow does not, the
    /// object is `null` and the failure is logged.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            let json = self.json.as_deref().unwrap_or(b"null");
            serde_json::from_slice(json).unwrap_or_else(|e| {
                tracing::error!(error = %e, "a stored object's JSON does not decode");
                Value::Null
            })
        })
    }

    /// Its name, uid and whether it has owner references, without decoding the object.
    pub fn head(&self) -> Head<'_> {
        if self.value.get().is_none() {
            if let Some(head) = self.json.as_deref().and_then(Head::of_json) {
                return head;
            }
        }
        Head::of_value(self.value())
    }
}

impl From<Value> for StoredObject {
    fn from(value: Value) -> StoredObject {
        StoredObject {
            value: OnceLock::from(value),
            json: None,
        }
    }
}

impl Deref for StoredObject {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value().fmt(f)
    }
}

impl Serialize for StoredObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for StoredObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StoredObject, D::Error> {
        Value::deserialize(d).map(StoredObject::from)
    }
}

/// What most followers of the store's changes need of an object: who it is.
#[derive(Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// `metadata.name`, or "".
    pub name: Cow<'a, str>,
    /// `metadata.uid`, or "".
    pub uid: Cow<'a, str>,
    /// Whether `metadata.ownerReferences` is there (and not null).
    pub owned: bool,
}

impl<'a> Head<'a> {
    fn of_value(v: &'a Value) -> Head<'a> {
        Head {
            name: Cow::Borrowed(crate::object::name_of(v)),
            uid: Cow::Borrowed(crate::object::uid_of(v)),
            owned: v
                .pointer("/metadata/ownerReferences")
                .is_some_and(|r| !r.is_null()),
        }
    }

    /// Reads the head from JSON, skipping the rest; `None` if it is not a JSON object.
    fn of_json(json: &'a [u8]) -> Option<Head<'a>> {
        #[derive(Deserialize)]
        struct Top<'a> {
            #[serde(borrow, default)]
            metadata: Option<Meta<'a>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Meta<'a> {
            #[serde(borrow, default)]
            name: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            uid: Option<Cow<'a, str>>,
            #[serde(default)]
            owner_references: Option<IgnoredAny>,
        }
        let top: Top = serde_json::from_slice(json).ok()?;
        let meta = top.metadata?;
        Some(Head {
            name: meta.name.unwrap_or_default(),
            uid: meta.uid.unwrap_or_default(),
            owned: meta.owner_references.is_some(),
        })
    }
}

/// `json` with `metadata.resourceVersion` set to `rev`, rewritten in place of the one it
/// has, and the revision it had; `None` when the JSON has no string resourceVersion at
/// `metadata` (or repeats a key on the way there), for the caller to decode and set it.
pub(crate) fn with_resource_version(json: &[u8], rev: u64) -> Option<(Vec<u8>, u64)> {
    #[derive(Deserialize)]
    struct Top<'a> {
        #[serde(borrow)]
        metadata: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(borrow, rename = "resourceVersion")]
        resource_version: Option<&'a RawValue>,
    }
    let top: Top = serde_json::from_slice(json).ok()?;
    let meta: Meta = serde_json::from_str(top.metadata?.get()).ok()?;
    let old = meta.resource_version?.get();
    let was: u64 = serde_json::from_str::<Cow<str>>(old).ok()?.parse().ok()?;
    // `old` is a slice of `json`: where it starts is the distance between the two.
    let start = (old.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
    let end = start.checked_add(old.len())?;
    let (before, after) = (json.get(..start)?, json.get(end..)?);
    let rv = rev.to_string();
    // Its exact size: a boxed slice of it is then not copied again.
    let mut out = Vec::with_capacity(before.len() + rv.len() + 2 + after.len());
    out.extend_from_slice(before);
    out.push(b'"');
    out.extend_from_slice(rv.as_bytes());
    out.push(b'"');
    out.extend_from_slice(after);
    Some((out, was))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_resource_version_of_metadata_is_rewritten_and_no_other() {
        // An Event's involvedObject has a resourceVersion of its own, before metadata.
        let ev = json!({"involvedObject": {"kind": "Pod", "resourceVersion": "7"},
                        "metadata": {"name": "e", "resourceVersion": "42", "uid": "u"},
                        "message": "m \"quoted\" \u{e9}"});
        let json = serde_json::to_vec(&ev).unwrap();
        let (out, was) = with_resource_version(&json, 1234).unwrap();
        assert_eq!(was, 42);
        let mut expected = ev.clone();
        expected["metadata"]["resourceVersion"] = json!("1234");
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), expected);
    }

    #[test]
    fn json_it_cannot_rewrite_is_left_to_the_caller() {
        for json in [
            &br#"{"metadata": {"name": "a"}}"#[..],
            br#"{"metadata": {"resourceVersion": 5}}"#,
            br#"{"metadata": {"resourceVersion": "x"}}"#,
            br#"{"metadata": {"resourceVersion": "1"}, "metadata": {"resourceVersion": "2"}}"#,
            br#"["metadata"]"#,
            b"{",
        ] {
            assert!(
                with_resource_version(json, 9).is_none(),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn the_head_is_read_without_decoding_and_the_value_on_demand() {
        let ev = json!({"metadata": {"name": "e", "uid": "u",
                                     "ownerReferences": [{"uid": "o"}]}, "x": [1, 2]});
        let stored = StoredObject::from_json(serde_json::to_vec(&ev).unwrap().into());
        let head = stored.head();
        assert_eq!((&*head.name, &*head.uid, head.owned), ("e", "u", true));
        assert!(stored.value.get().is_none(), "the head decoded the object");
        assert_eq!(*stored, ev);
        let plain = StoredObject::from(json!({"metadata": {"name": "p"}}));
        let head = plain.head();
        assert_eq!((&*head.name, &*head.uid, head.owned), ("p", "", false));
    }
}

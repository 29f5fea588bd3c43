//! Events, served as core/v1 and as events.k8s.io/v1 and stored once in the core shape
//! (`conversion.rs`): printer columns, the field labels kube-apiserver registers, and the
//! events.k8s.io spelling of their selectors (`regarding.*` is the stored
//! `involvedObject.*`).

use serde_json::json;

use super::{Kind, KindStrategy, SharedStorage};
use crate::table::cells::{col, s};
use crate::table::{name_column, Column};

/// `/api/v1/events`.
pub const CORE_EVENT: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    status: false,
    scale: false,
    strategy: &CoreEvent,
};

/// `/apis/events.k8s.io/v1/events`.
pub const EVENT: Kind = Kind {
    group: "events.k8s.io",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    status: false,
    scale: false,
    strategy: &Event,
};

/// events.k8s.io/v1 Events are stored as core/v1 Events: field → core/v1 field
/// (kube-apiserver's conversion); `source`, core/v1-only bookkeeping, is dropped when
/// empty.
const STORED_AS_CORE: SharedStorage = SharedStorage {
    group: "",
    fields: &[
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("reportingController", "reportingComponent"),
    ],
    dropped_when_empty: &["source"],
};

const FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The core/v1 Event strategy.
pub struct CoreEvent;

impl KindStrategy for CoreEvent {
    /// Left out of the garbage collector, as upstream's; events.k8s.io Events are stored
    /// as core ones, so this covers both groups.
    fn garbage_collected(&self) -> bool {
        false
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.clear();
        c.push(col("Last Seen", 0, |o| {
            let t = o
                .get("lastTimestamp")
                .filter(|v| !v.is_null())
                .or(o.get("eventTime"))
                .or(o.pointer("/metadata/creationTimestamp"));
            json!(crate::table::age(t))
        }));
        c.push(col("Type", 0, |o| json!(s(o, "/type"))));
        c.push(col("Reason", 0, |o| json!(s(o, "/reason"))));
        c.push(col("Object", 0, |o| {
            json!(format!(
                "{}/{}",
                s(o, "/involvedObject/kind").to_ascii_lowercase(),
                s(o, "/involvedObject/name")
            ))
        }));
        c.push(col("Message", 0, |o| json!(s(o, "/message"))));
        let mut name = name_column();
        name.priority = 1;
        c.push(name);
        c
    }

    fn field_labels(&self) -> &'static [&'static str] {
        FIELDS
    }
}

/// The events.k8s.io/v1 Event strategy: the core one's, its selectors spelled as events.k8s.io names the fields.
pub struct Event;

impl KindStrategy for Event {
    fn columns(&self) -> Vec<Column> {
        CoreEvent.columns()
    }

    fn garbage_collected(&self) -> bool {
        CoreEvent.garbage_collected()
    }

    fn field_labels(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn shared_storage(&self) -> Option<&'static SharedStorage> {
        Some(&STORED_AS_CORE)
    }

    fn field_label_aliases(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("regarding", "involvedObject"),
            ("reportingController", "reportingComponent"),
            ("deprecatedSource", "source"),
        ]
    }
}

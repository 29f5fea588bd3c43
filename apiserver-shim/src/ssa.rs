//! Server-side apply and `managedFields`: which field manager owns which fields, what an
//! apply (`application/apply-patch+yaml`) does to an object, and how ordinary writes move
//! ownership, as kube-apiserver's structured-merge-diff does.
//!
//! An apply by manager M with configuration C: (1) C's field set is computed; (2) fields C
//! sets that another manager owns with a different value are conflicts — a 409 listing
//! them, unless `force=true`, which takes them over; (3) C is merged into the live object
//! (maps by field, lists by their merge key, atomic lists whole); (4) fields M applied
//! before but no longer sets, and nobody else owns, are removed; (5) M's `Apply` entry
//! becomes C's set. Other writes (create, update, patch) with a field manager take the
//! fields they changed (`Update` entries).
//!
//! List semantics come from the strategic merge patch table for built-ins and from
//! `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` in a CRD's schema. Hand-written:
//! structured-merge-diff has no Rust port.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::strategic::merge_keys::{list_kind, ListKind};

/// Where list semantics come from.
struct Rules<'a> {
    r: &'a Resource,
    version: &'a str,
}

/// How one list is merged and owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ListRule {
    /// One value, replaced whole.
    Atomic,
    /// Items identified by this key.
    Map(String),
    /// Scalars forming a set.
    Set,
}

impl Rules<'_> {
    fn list(&self, path: &str) -> ListRule {
        if !self.r.custom {
            return match list_kind(self.r.strategy().merge_schema(), path) {
                ListKind::Atomic => ListRule::Atomic,
                ListKind::Map(k) => ListRule::Map(k.to_string()),
                ListKind::Set => ListRule::Set,
            };
        }
        let Some(mut node) = self.r.schemas.get(self.version) else {
            return ListRule::Atomic;
        };
        for seg in path.split('.') {
            let (field, items) = match seg.strip_suffix("[]") {
                Some(f) => (f, true),
                None => (seg, false),
            };
            match node.pointer(&format!("/properties/{field}")) {
                Some(n) => node = n,
                None => return ListRule::Atomic,
            }
            if items {
                match node.get("items") {
                    Some(n) => node = n,
                    None => return ListRule::Atomic,
                }
            }
        }
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListRule::Set,
            Some("map") => ListRule::Map(
                node.pointer("/x-kubernetes-list-map-keys/0")
                    .and_then(Value::as_str)
                    .unwrap_or("name")
                    .to_string(),
            ),
            _ => ListRule::Atomic,
        }
    }
}

/// A set of owned fields, as a tree keyed by fieldsV1 path elements
/// (`f:name`, `k:{"name":"x"}`, `v:"a"`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSet {
    own: bool,
    children: BTreeMap<String, FieldSet>,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

impl FieldSet {
    fn of(rules: &Rules, v: &Value, path: &str) -> FieldSet {
        match v {
            Value::Object(m) if m.is_empty() => FieldSet {
                own: true,
                children: BTreeMap::new(),
            },
            Value::Object(m) => FieldSet {
                own: false,
                children: m
                    .iter()
                    .map(|(k, v)| (format!("f:{k}"), FieldSet::of(rules, v, &join(path, k))))
                    .collect(),
            },
            Value::Array(items) => match rules.list(path) {
                ListRule::Atomic => FieldSet {
                    own: true,
                    children: BTreeMap::new(),
                },
                ListRule::Set => FieldSet {
                    own: false,
                    children: items
                        .iter()
                        .map(|i| {
                            (
                                format!("v:{i}"),
                                FieldSet {
                                    own: true,
                                    children: BTreeMap::new(),
                                },
                            )
                        })
                        .collect(),
                },
                ListRule::Map(key) => FieldSet {
                    own: false,
                    children: items
                        .iter()
                        .filter_map(|i| {
                            let k = i.get(&key)?;
                            let mut child = FieldSet::of(rules, i, &format!("{path}[]"));
                            child.own = true;
                            Some((format!("k:{}", json!({ key.as_str(): k })), child))
                        })
                        .collect(),
                },
            },
            _ => FieldSet {
                own: true,
                children: BTreeMap::new(),
            },
        }
    }

    /// The fields an object sets that field management tracks: everything but
    /// apiVersion/kind/status and the server-owned metadata.
    fn of_object(rules: &Rules, obj: &Value) -> FieldSet {
        let mut tracked = Map::new();
        if let Some(m) = obj.as_object() {
            for (k, v) in m {
                match k.as_str() {
                    "apiVersion" | "kind" | "status" => {}
                    "metadata" => {
                        let keep: Map<String, Value> = v
                            .as_object()
                            .map(|meta| {
                                meta.iter()
                                    .filter(|(k, _)| {
                                        matches!(
                                            k.as_str(),
                                            "labels"
                                                | "annotations"
                                                | "ownerReferences"
                                                | "finalizers"
                                        )
                                    })
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if !keep.is_empty() {
                            tracked.insert(k.clone(), Value::Object(keep));
                        }
                    }
                    _ => {
                        tracked.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if tracked.is_empty() {
            return FieldSet::default();
        }
        FieldSet::of(rules, &Value::Object(tracked), "")
    }

    /// Encodes as `fieldsV1`.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.own && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Decodes `fieldsV1`.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let Some(m) = v.as_object() else {
            return FieldSet::default();
        };
        if m.is_empty() {
            return FieldSet {
                own: true,
                children: BTreeMap::new(),
            };
        }
        FieldSet {
            own: m.contains_key("."),
            children: m
                .iter()
                .filter(|(k, _)| k.as_str() != ".")
                .map(|(k, v)| (k.clone(), FieldSet::from_fields_v1(v)))
                .collect(),
        }
    }

    /// Every owned node's path.
    fn owned(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.own && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.owned(prefix, out);
            prefix.pop();
        }
    }

    fn owned_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.owned(&mut Vec::new(), &mut out);
        out
    }

    fn owns(&self, path: &[String]) -> bool {
        let mut node = self;
        for p in path {
            match node.children.get(p) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.own
    }

    fn disown(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            self.own = false;
            return;
        };
        if let Some(child) = self.children.get_mut(first) {
            child.disown(rest);
            if !child.own && child.children.is_empty() {
                self.children.remove(first);
            }
        }
    }

    fn union(&mut self, other: &FieldSet) {
        self.own |= other.own;
        for (k, c) in &other.children {
            self.children.entry(k.clone()).or_default().union(c);
        }
    }

    fn is_empty(&self) -> bool {
        !self.own && self.children.is_empty()
    }
}

fn item_matches(item: &Value, elem: &str) -> bool {
    if let Some(key) = elem.strip_prefix("k:") {
        let Ok(Value::Object(k)) = serde_json::from_str::<Value>(key) else {
            return false;
        };
        k.iter().all(|(f, v)| item.get(f) == Some(v))
    } else if let Some(v) = elem.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|v| *item == v)
    } else {
        false
    }
}

fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for p in path {
        cur = match p.strip_prefix("f:") {
            Some(f) => cur.get(f)?,
            None => cur.as_array()?.iter().find(|i| item_matches(i, p))?,
        };
    }
    Some(cur)
}

fn delete_at(obj: &mut Value, path: &[String]) {
    let Some((last, head)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in head {
        cur = match p.strip_prefix("f:") {
            Some(f) => match cur.get_mut(f) {
                Some(v) => v,
                None => return,
            },
            None => match cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| item_matches(i, p)))
            {
                Some(v) => v,
                None => return,
            },
        };
    }
    match last.strip_prefix("f:") {
        Some(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        None => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| !item_matches(i, last));
            }
        }
    }
}

/// `.spec.containers[name="web"].image`, as kube-apiserver prints field paths.
fn render(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let inner = serde_json::from_str::<Value>(k)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            s.push_str(&format!("[{inner}]"));
        } else if let Some(v) = p.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Merges an applied configuration into the live object.
fn merge(rules: &Rules, live: &Value, cfg: &Value, path: &str) -> Value {
    match (live, cfg) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, v) in c {
                let merged = match l.get(k) {
                    Some(lv) => merge(rules, lv, v, &join(path, k)),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match rules.list(path) {
            ListRule::Map(key) => {
                let mut out = l.clone();
                for item in c {
                    let id = item.get(&key);
                    match out.iter_mut().find(|x| id.is_some() && x.get(&key) == id) {
                        Some(existing) => {
                            *existing = merge(rules, existing, item, &format!("{path}[]"))
                        }
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            ListRule::Set => {
                let mut out = l.clone();
                for item in c {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListRule::Atomic => cfg.clone(),
        },
        _ => cfg.clone(),
    }
}

#[derive(Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    set: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    Entry {
                        manager: s("manager"),
                        operation: s("operation"),
                        api_version: s("apiVersion"),
                        time: s("time"),
                        subresource: e
                            .get("subresource")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        set: FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, list: Vec<Entry>) {
    let arr: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = Map::new();
            // `manager` is omitted when empty, as metav1.ManagedFieldsEntry's omitempty.
            if !e.manager.is_empty() {
                v.insert("manager".into(), json!(e.manager));
            }
            v.insert("operation".into(), json!(e.operation));
            v.insert("apiVersion".into(), json!(e.api_version));
            v.insert("time".into(), json!(e.time));
            v.insert("fieldsType".into(), json!("FieldsV1"));
            v.insert("fieldsV1".into(), e.set.to_fields_v1());
            if let Some(s) = e.subresource {
                v.insert("subresource".into(), json!(s));
            }
            Value::Object(v)
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if arr.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(arr));
        }
    }
}

/// Applies `config` as `manager`. `live` is `None` when the object does not exist yet.
/// Returns the object to store (managedFields updated), or a 409 listing conflicts.
pub fn apply(
    r: &Resource,
    version: &str,
    live: Option<&Value>,
    mut config: Value,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let rules = Rules { r, version };
    if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        if m.contains_key("managedFields") {
            return Err(ApiError::bad_request(
                "metadata.managedFields must be nil in an apply configuration",
            ));
        }
    }
    let api_version = r.api_version(version);
    let new_set = FieldSet::of_object(&rules, &config);
    let empty = json!({});
    let live_obj = live.unwrap_or(&empty);
    let mut list = entries(live_obj);

    // Conflicts with every other manager.
    let mut conflicts: Vec<(String, String, Vec<String>)> = Vec::new();
    for e in list
        .iter()
        .filter(|e| e.manager != manager || e.operation != "Apply")
    {
        for p in new_set.owned_paths() {
            if !p.last().is_some_and(|l| l.starts_with("f:")) || !e.set.owns(&p) {
                continue;
            }
            if value_at(&config, &p) != value_at(live_obj, &p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let n = conflicts.len();
        let mut by_manager: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (m, av, p) in &conflicts {
            by_manager
                .entry((m.clone(), av.clone()))
                .or_default()
                .push(render(p));
        }
        let mut msg = format!(
            "Apply failed with {n} conflict{}: ",
            if n == 1 { "" } else { "s" }
        );
        let parts: Vec<String> = by_manager
            .iter()
            .map(|((m, av), paths)| {
                if paths.len() == 1 {
                    format!("conflict with \"{m}\" using {av}: {}", paths[0])
                } else {
                    format!(
                        "conflicts with \"{m}\" using {av}:\n{}",
                        paths
                            .iter()
                            .map(|p| format!("- {p}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                }
            })
            .collect();
        msg.push_str(&parts.join("\n"));
        let name = config
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut e = ApiError::conflict_msg(&r.group, &r.plural, name, msg);
        if let Some(d) = e.details.as_mut() {
            d["causes"] = Value::Array(
                conflicts
                    .iter()
                    .map(|(m, av, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {av}"), "field": render(p)}))
                    .collect(),
            );
        }
        return Err(e);
    }
    // Forced: the other managers lose the conflicting fields.
    for (m, _, p) in &conflicts {
        for e in list.iter_mut().filter(|e| &e.manager == m) {
            e.set.disown(p);
        }
    }

    let mut merged = match live {
        Some(l) => merge(&rules, l, &config, ""),
        None => config.clone(),
    };
    // Fields this manager applied before and no longer does, owned by nobody else.
    let previous = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut removed: Vec<Vec<String>> = previous
        .owned_paths()
        .into_iter()
        .filter(|p| !new_set.owns(p))
        .filter(|p| {
            !list
                .iter()
                .any(|e| !(e.manager == manager && e.operation == "Apply") && e.set.owns(p))
        })
        .collect();
    removed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in &removed {
        delete_at(&mut merged, p);
    }

    let time = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.set == new_set)
        .map(|e| e.time.clone())
        .unwrap_or_else(crate::object::now);
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version,
        time,
        subresource: None,
        set: new_set,
    });
    write_entries(&mut merged, list);
    Ok(merged)
}

/// kube-apiserver's limit on a field manager's length, in bytes.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The field manager of a write that names none, as kube-apiserver's
/// `prefixFromUserAgent`: the User-Agent up to its first `/`, non-printable characters
/// dropped, cut at [`FIELD_MANAGER_MAX_LENGTH`] bytes. Empty without a User-Agent
/// (kube-rs and raw HTTP clients send none); such a write is still recorded.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let product = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in product.chars() {
        // Go's unicode.IsPrint: graphic characters and the ASCII space.
        if c != ' ' && (c.is_control() || c.is_whitespace()) {
            continue;
        }
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// Records an ordinary write by `manager` (`None`: the server's own write, not recorded):
/// it takes the fields whose values changed (all fields on create), which other managers
/// lose. As in kube-apiserver, an `Update` entry is one per manager *and* API version, so
/// the entry says which version the writer used, and a manager may be empty (a client
/// that sent neither `fieldManager` nor a User-Agent).
pub fn track_update(
    r: &Resource,
    version: &str,
    old: Option<&Value>,
    new: &mut Value,
    manager: Option<&str>,
) {
    let Some(manager) = manager else {
        return;
    };
    let api_version = r.api_version(version);
    let rules = Rules { r, version };
    let new_set = FieldSet::of_object(&rules, new);
    let mut list = match old {
        Some(o) => entries(o),
        None => Vec::new(),
    };
    let changed: Vec<Vec<String>> = new_set
        .owned_paths()
        .into_iter()
        .filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p)))
        .collect();
    if changed.is_empty() && old.is_some() {
        // Keep whatever the new object says about managedFields only if it came from the
        // old one; clients cannot rewrite ownership through an update.
        write_entries(new, list);
        return;
    }
    let is_mine =
        |e: &Entry| e.manager == manager && e.operation == "Update" && e.api_version == api_version;
    for e in list.iter_mut().filter(|e| !is_mine(e)) {
        for p in &changed {
            e.set.disown(p);
        }
    }
    let mut mine = FieldSet::default();
    for p in &changed {
        let mut node = &mut mine;
        for elem in p {
            node = node.children.entry(elem.clone()).or_default();
        }
        node.own = true;
    }
    match list.iter_mut().find(|e| is_mine(e)) {
        Some(e) => {
            e.set.union(&mine);
            e.time = crate::object::now();
        }
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version,
            time: crate::object::now(),
            subresource: None,
            set: mine,
        }),
    }
    write_entries(new, list);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn configmaps() -> std::sync::Arc<Resource> {
        Registry::new()
            .snapshot()
            .get("", "v1", "configmaps")
            .cloned()
            .expect("configmaps")
    }

    fn deployments() -> std::sync::Arc<Resource> {
        Registry::new()
            .snapshot()
            .get("apps", "v1", "deployments")
            .cloned()
            .expect("deployments")
    }

    #[test]
    fn apply_twice_removes_what_the_manager_dropped() {
        let r = configmaps();
        let c1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let o1 = apply(&r, "v1", None, c1, "m", false).expect("apply");
        let c2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let o2 = apply(&r, "v1", Some(&o1), c2, "m", false).expect("apply");
        assert_eq!(o2["data"], json!({"a": "1"}));
        assert_eq!(
            o2["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:a": {}}})
        );
    }

    #[test]
    fn second_manager_conflicts_unless_forced() {
        let r = configmaps();
        let c1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let o1 = apply(&r, "v1", None, c1, "one", false).expect("apply");
        let c2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
        let err = apply(&r, "v1", Some(&o1), c2.clone(), "two", false).expect_err("conflict");
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"one\""),
            "{}",
            err.message
        );
        assert!(err.message.contains(".data.a"), "{}", err.message);
        let o2 = apply(&r, "v1", Some(&o1), c2, "two", true).expect("forced");
        assert_eq!(o2["data"]["a"], "2");
        let managers: Vec<&str> = o2["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["two"]);
        // Same value from another manager is shared ownership, not a conflict.
        let c3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
        apply(&r, "v1", Some(&o2), c3, "three", false).expect("no conflict");
    }

    #[test]
    fn containers_merge_by_name() {
        let r = deployments();
        let c = |img: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": img}]}}}})
        };
        let o1 = apply(&r, "v1", None, c("a"), "m", false).expect("apply");
        let mut live = o1.clone();
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("list")
            .push(json!({"name": "sidecar", "image": "s"}));
        let o2 = apply(&r, "v1", Some(&live), c("b"), "m", false).expect("apply");
        let names: Vec<&str> = o2["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["web", "sidecar"]);
        assert_eq!(
            o2["spec"]["template"]["spec"]["containers"][0]["image"],
            "b"
        );
    }

    #[test]
    fn the_manager_without_field_manager_is_the_user_agents_product() {
        assert_eq!(
            manager_from_user_agent("kubectl/v1.31.0 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent(""), "");
        assert_eq!(manager_from_user_agent("my tool\t\u{7}x/1"), "my toolx");
        let long = "é".repeat(100);
        let cut = manager_from_user_agent(&long);
        assert_eq!(cut.len(), FIELD_MANAGER_MAX_LENGTH);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn writes_without_a_manager_are_recorded_with_their_api_version() {
        let r = configmaps();
        let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let mut internal = created.clone();
        track_update(&r, "v1", None, &mut internal, None);
        assert!(internal.pointer("/metadata/managedFields").is_none());

        track_update(&r, "v1", None, &mut created, Some(""));
        let entries = created["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        assert_eq!(entries.len(), 1, "{created}");
        assert!(entries[0].get("manager").is_none(), "{created}");
        assert_eq!(entries[0]["operation"], "Update");
        assert_eq!(entries[0]["apiVersion"], "v1");

        // The same (empty) manager through another version gets an entry of its own for
        // the field it changed; the first keeps the rest.
        let mut updated = created.clone();
        updated["data"]["b"] = json!("3");
        track_update(&r, "v2", Some(&created), &mut updated, Some(""));
        let entries = updated["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        let versions: Vec<&str> = entries
            .iter()
            .filter_map(|e| e["apiVersion"].as_str())
            .collect();
        assert_eq!(versions, ["v1", "v2"], "{updated}");
        assert!(entries[0]["fieldsV1"]["f:data"].get("f:a").is_some());
        assert!(entries[0]["fieldsV1"]["f:data"].get("f:b").is_none());
        assert!(entries[1]["fieldsV1"]["f:data"].get("f:b").is_some());
    }
}

//! Object metadata semantics: what the apiserver sets and checks on create, update and
//! delete (names, uid, creationTimestamp, generation, namespace, finalizers,
//! deletionTimestamp), in the order kube-apiserver's generic store runs a kind's strategy
//! (`kinds/`): reset status, `PrepareForCreate` / defaults, `Canonicalize`, generation.
//!
//! Pure functions over JSON values; storage and HTTP stay elsewhere.

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::kinds::{KindStrategy, NameRule};
use crate::registry::Resource;

/// Current time as RFC 3339 with second precision and `Z`, as Kubernetes writes it.
pub fn now() -> String {
    let ts = jiff::Timestamp::now();
    let secs = ts.as_second();
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ts.to_string())
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    m.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// `metadata.name`, or "".
pub fn name_of(obj: &Value) -> &str {
    meta(obj)
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.namespace`, or "".
pub fn namespace_of(obj: &Value) -> &str {
    meta(obj)
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.uid`, or "".
pub fn uid_of(obj: &Value) -> &str {
    meta(obj)
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.resourceVersion`, or "".
pub fn rv_of(obj: &Value) -> &str {
    meta(obj)
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.finalizers` is non-empty.
pub fn has_finalizers(obj: &Value) -> bool {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// Validates a name as kube-apiserver does under the kind's rule.
pub fn name_causes(rule: NameRule, name: &str, field: &str) -> Vec<Cause> {
    let label = rule == NameRule::Label;
    let max = if label { 63 } else { 253 };
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.'));
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: name or generateName is required".into(),
            field: field.into(),
        });
        return causes;
    }
    if !ok_chars || !ends_ok || (!label && name.split('.').any(str::is_empty)) {
        let msg = if label {
            format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
        } else {
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
        };
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: msg,
            field: field.into(),
        });
    }
    if name.len() > max {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {name:?}: must be no more than {max} characters"),
            field: field.into(),
        });
    }
    causes
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The part of an object that `generation` follows: everything but metadata and status.
fn generation_view(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Prepares a new object for storage: namespace, name (or generateName), uid,
/// creationTimestamp, generation, cleared status for kinds with a status subresource,
/// and the kind's defaults. Returns 422 with causes for invalid metadata.
pub fn prepare_create(r: &Resource, namespace: Option<&str>, mut obj: Value) -> ApiResult<Value> {
    let kind = r.kind.clone();
    let strategy = r.strategy();
    {
        let m = meta_mut(&mut obj)?;
        match (r.namespaced, namespace) {
            (true, Some(ns)) => {
                if let Some(body_ns) = m.get("namespace").and_then(Value::as_str) {
                    if !body_ns.is_empty() && body_ns != ns {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                }
                m.insert("namespace".into(), json!(ns));
            }
            (true, None) => {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced: create it under /namespaces/<namespace>/",
                    r.plural
                )))
            }
            (false, _) => {
                m.remove("namespace");
            }
        }
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            if let Some(gen) = m.get("generateName").and_then(Value::as_str) {
                if !gen.is_empty() {
                    let mut base = gen.to_string();
                    base.truncate(58);
                    m.insert("name".into(), json!(format!("{base}{}", random_suffix())));
                }
            }
        }
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let causes = name_causes(strategy.name_rule(), &name, "metadata.name");
        if !causes.is_empty() {
            return Err(ApiError::invalid(&r.group, &kind, &name, causes));
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("resourceVersion");
        m.remove("selfLink");
        if strategy.tracks_generation() {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    if r.status && strategy.resets_status_on_create() {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    strategy.prepare_for_create(&mut obj);
    strategy.canonicalize(&mut obj);
    Ok(obj)
}

/// Merges an update into the stored object. `subresource` is `None` for the main
/// resource (status kept from `old`), `Some("status")` for the status (only status taken
/// from `new`). Immutable metadata is kept from `old`; generation bumps on spec changes.
pub fn prepare_update(
    r: &Resource,
    old: &Value,
    mut new: Value,
    subresource: Option<&str>,
) -> ApiResult<Value> {
    if !new.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if subresource == Some("status") {
        let mut merged = old.clone();
        let status = new.get("status").cloned();
        if let Some(o) = merged.as_object_mut() {
            match status {
                Some(s) => o.insert("status".into(), s),
                None => o.remove("status"),
            };
        }
        return Ok(merged);
    }
    let old_meta = meta(old).cloned().unwrap_or_default();
    {
        let m = meta_mut(&mut new)?;
        for k in [
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_meta.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.remove("selfLink");
        if old_meta.get("deletionTimestamp").is_some() {
            // Finalizers can only be removed once deletion started, never added.
            let old_f: Vec<Value> = old_meta
                .get("finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(new_f) = m.get("finalizers").and_then(Value::as_array) {
                if let Some(added) = new_f.iter().find(|f| !old_f.contains(f)) {
                    return Err(ApiError::invalid(
                        &r.group,
                        &r.kind,
                        old_meta.get("name").and_then(Value::as_str).unwrap_or(""),
                        vec![Cause {
                            reason: "FieldValueForbidden",
                            message: format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [{}]", added.as_str().unwrap_or("")),
                            field: "metadata.finalizers".into(),
                        }],
                    ));
                }
            }
        }
    }
    if r.status {
        if let Some(o) = new.as_object_mut() {
            match old.get("status") {
                Some(s) => o.insert("status".into(), s.clone()),
                None => o.remove("status"),
            };
        }
    }
    let strategy = r.strategy();
    strategy.default(&mut new);
    strategy.canonicalize(&mut new);
    if strategy.tracks_generation() {
        let old_gen = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let gen = if generation_view(old) != generation_view(&new) {
            old_gen + 1
        } else {
            old_gen
        };
        meta_mut(&mut new)?.insert("generation".into(), json!(gen));
    }
    Ok(new)
}

/// Whether an update changed nothing but the resourceVersion.
pub fn same_content(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(old) == strip(new)
}

/// Marks an object as being deleted (deletionTimestamp, grace period).
pub fn mark_deleting(obj: &mut Value, grace: i64) -> ApiResult<()> {
    let m = meta_mut(obj)?;
    if m.get("deletionTimestamp").is_none() {
        m.insert("deletionTimestamp".into(), json!(now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    Ok(())
}

/// `metadata.deletionGracePeriodSeconds`, if set.
pub fn deletion_grace(obj: &Value) -> Option<i64> {
    meta(obj)
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64)
}

fn rfc3339_after(seconds: i64) -> String {
    let at = jiff::Timestamp::now().as_second().saturating_add(seconds);
    jiff::Timestamp::from_second(at)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now())
}

/// Starts a graceful deletion: `deletionTimestamp` is when the grace period ends (now +
/// `grace` seconds), as kube-apiserver records it.
pub fn start_graceful_deletion(obj: &mut Value, grace: i64) -> ApiResult<()> {
    let m = meta_mut(obj)?;
    m.insert("deletionTimestamp".into(), json!(rfc3339_after(grace)));
    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    Ok(())
}

/// Shortens a pending graceful deletion from `current` to `shorter` seconds: the
/// `deletionTimestamp` moves earlier by the difference.
pub fn shorten_deletion(obj: &mut Value, current: i64, shorter: i64) -> ApiResult<()> {
    let m = meta_mut(obj)?;
    let at = m
        .get("deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| {
            t.as_second()
                .saturating_sub(current.saturating_sub(shorter))
        })
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(now);
    m.insert("deletionTimestamp".into(), json!(at));
    m.insert("deletionGracePeriodSeconds".into(), json!(shorter));
    Ok(())
}

/// What deleting an object means when nothing else is asked (the garbage collector and
/// namespace cleanup): a kind deleted gracefully (its `strategy` says so: pods) starts
/// its grace period once, and is left alone during it; otherwise mark it if finalizers
/// hold it (once), else remove it.
pub fn deletion(mut cur: Value, strategy: &dyn KindStrategy) -> ApiResult<crate::store::Mutation> {
    use crate::store::Mutation;
    if strategy.deletes_gracefully() {
        match (is_deleting(&cur), deletion_grace(&cur)) {
            (true, Some(g)) if g > 0 => return Ok(Mutation::Keep),
            (false, _) => {
                let period = strategy.grace_period(&cur, None);
                if period > 0 || has_finalizers(&cur) {
                    start_graceful_deletion(&mut cur, period)?;
                    return Ok(Mutation::Put(cur));
                }
                return Ok(Mutation::Delete);
            }
            _ => {}
        }
    }
    if has_finalizers(&cur) {
        if is_deleting(&cur) {
            return Ok(Mutation::Keep);
        }
        mark_deleting(&mut cur, 0)?;
        return Ok(Mutation::Put(cur));
    }
    Ok(Mutation::Delete)
}

/// Adds a finalizer if absent.
pub fn add_finalizer(obj: &mut Value, f: &str) -> ApiResult<()> {
    let m = meta_mut(obj)?;
    let list = m
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(a) = list.as_array_mut() {
        if !a.iter().any(|x| x == f) {
            a.push(json!(f));
        }
    }
    Ok(())
}

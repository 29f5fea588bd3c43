//! The garbage collector: deletes dependents whose owners are gone (`ownerReferences`),
//! and carries out the `Foreground` and `Orphan` deletion policies (the
//! `foregroundDeletion` and `orphan` finalizers), as kube-controller-manager's garbage
//! collector does.
//!
//! It follows the store's published events, keeping an index owner uid → dependents, and
//! rescans everything at start and whenever it falls behind. Dependents are deleted with
//! the same rules as an API DELETE (objects with finalizers get `deletionTimestamp`).
//! Owners are checked by a fresh read of the store, never by the index alone, so an
//! owner created after its dependent's event is not mistaken for a missing one.
//!
//! Kinds whose strategy says they are not garbage collected (core Events, as
//! kube-controller-manager's `DefaultIgnoredResources`) are not followed: they are not
//! indexed as dependents and nothing is collected when one goes; only a Foreground or
//! Orphan delete of one is still carried out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::api::Api;
use crate::error::{ApiError, ApiResult};
use crate::kinds::KindStrategy;
use crate::object;
use crate::store::{Event, EventType, Mutation, ObjectKey};

/// Finalizer of a Foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer of an Orphan deletion.
pub const ORPHAN: &str = "orphan";

#[derive(Default)]
struct Index {
    /// owner uid → dependents.
    dependents: HashMap<String, HashSet<Key>>,
    /// dependent → owner uids it was indexed under.
    owners: HashMap<Key, Vec<String>>,
}

type Key = (String, String, String, String);

fn object_key(k: &Key) -> ObjectKey {
    ObjectKey {
        group: k.0.clone(),
        resource: k.1.clone(),
        namespace: k.2.clone(),
        name: k.3.clone(),
    }
}

fn owner_refs(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == f))
}

impl Index {
    fn update(&mut self, key: Key, obj: Option<&Value>) {
        if let Some(old) = self.owners.remove(&key) {
            for uid in old {
                if let Some(set) = self.dependents.get_mut(&uid) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.dependents.remove(&uid);
                    }
                }
            }
        }
        let Some(obj) = obj else { return };
        let uids: Vec<String> = owner_refs(obj)
            .iter()
            .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
            .collect();
        for uid in &uids {
            self.dependents
                .entry(uid.clone())
                .or_default()
                .insert(key.clone());
        }
        if !uids.is_empty() {
            self.owners.insert(key, uids);
        }
    }

    fn of(&self, uid: &str) -> Vec<Key> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Which stored collections the collector follows, learnt from their kinds' strategies
/// once each: storage group → resource → followed.
#[derive(Default)]
struct Followed(HashMap<String, HashMap<String, bool>>);

impl Followed {
    fn of(&mut self, api: &Arc<Api>, group: &str, resource: &str) -> bool {
        if let Some(followed) = self.0.get(group).and_then(|g| g.get(resource)) {
            return *followed;
        }
        let followed = strategy_at(api, group, resource).garbage_collected();
        self.0
            .entry(group.to_string())
            .or_default()
            .insert(resource.to_string(), followed);
        followed
    }
}

/// Starts the collector.
pub fn spawn(api: Arc<Api>) {
    tokio::spawn(async move {
        let mut index = Index::default();
        let mut followed = Followed::default();
        let mut sub = api.store.subscribe();
        let mut rescan = true;
        loop {
            if rescan {
                rescan = false;
                if let Err(e) = full_scan(&api, &mut index).await {
                    tracing::warn!(error = %e.message, "garbage collector scan");
                }
            }
            match sub.recv().await {
                Ok(ev) => {
                    let done = if followed.of(&api, &ev.group, &ev.resource) {
                        on_event(&api, &mut index, &ev).await
                    } else {
                        on_unfollowed(&api, &index, &ev).await
                    };
                    if let Err(e) = done {
                        tracing::warn!(error = %e.message, "garbage collector");
                    }
                }
                Err(RecvError::Lagged(_)) => rescan = true,
                Err(RecvError::Closed) => return,
            }
        }
    });
}

async fn full_scan(api: &Arc<Api>, index: &mut Index) -> ApiResult<()> {
    *index = Index::default();
    let table = api.registry.snapshot();
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    for r in table.all() {
        if !seen.insert((r.storage_group.clone(), r.plural.clone())) {
            continue;
        }
        if !r.strategy().garbage_collected() {
            continue;
        }
        let (items, _) = api.store.list(&r.storage_group, &r.plural, None)?;
        for obj in items {
            let key = (
                r.storage_group.clone(),
                r.plural.clone(),
                obj.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                object::name_of(&obj).to_string(),
            );
            index.update(key.clone(), Some(&obj));
            all.push((key, obj));
        }
    }
    for (key, obj) in all {
        if !owner_refs(&obj).is_empty() {
            check_dependent(api, &key).await?;
        }
        handle_policies(api, index, &obj).await?;
    }
    Ok(())
}

async fn on_event(api: &Arc<Api>, index: &mut Index, ev: &Event) -> ApiResult<()> {
    let key = |name: &str| {
        (
            ev.group.clone(),
            ev.resource.clone(),
            ev.namespace.clone(),
            name.to_string(),
        )
    };
    match ev.kind {
        EventType::Deleted => {
            // Who it was, without decoding it (a sweep deletes thousands a second).
            let head = ev.object.head();
            index.update(key(&head.name), None);
            for dep in index.of(&head.uid) {
                check_dependent(api, &dep).await?;
            }
            // An owner in Foreground deletion may have been waiting for this object.
            if head.owned {
                for r in owner_refs(&ev.object) {
                    if let Some(owner) = resolve_owner(api, &ev.namespace, &r)? {
                        if has_finalizer(&owner.1, FOREGROUND) {
                            foreground(api, index, &owner.1).await?;
                        }
                    }
                }
            }
        }
        EventType::Added | EventType::Modified => {
            let key = key(object::name_of(&ev.object));
            index.update(key.clone(), Some(&ev.object));
            if !owner_refs(&ev.object).is_empty() && ev.kind == EventType::Added {
                check_dependent(api, &key).await?;
            }
            handle_policies(api, index, &ev.object).await?;
        }
    }
    Ok(())
}

/// A change of a kind the collector does not follow: only a Foreground or Orphan delete
/// of the object itself is carried out, so that it does not wait forever for its
/// finalizer (kube-controller-manager leaves such an Event to its TTL).
async fn on_unfollowed(api: &Arc<Api>, index: &Index, ev: &Event) -> ApiResult<()> {
    if ev.kind == EventType::Deleted {
        return Ok(());
    }
    handle_policies(api, index, &ev.object).await
}

async fn handle_policies(api: &Arc<Api>, index: &Index, obj: &Value) -> ApiResult<()> {
    if !object::is_deleting(obj) {
        return Ok(());
    }
    if has_finalizer(obj, ORPHAN) {
        orphan(api, index, obj).await?;
    } else if has_finalizer(obj, FOREGROUND) {
        foreground(api, index, obj).await?;
    }
    Ok(())
}

/// Finds an owner from an ownerReference: `(key, object)` if it exists with that uid.
fn resolve_owner(
    api: &Arc<Api>,
    namespace: &str,
    r: &Value,
) -> ApiResult<Option<(ObjectKey, Value)>> {
    let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let table = api.registry.snapshot();
    let Some(res) = table.all().find(|x| x.group == group && x.kind == kind) else {
        // An owner of a kind nobody serves is treated as absent, as upstream does.
        return Ok(None);
    };
    let key = ObjectKey {
        group: res.storage_group.clone(),
        resource: res.plural.clone(),
        namespace: if res.namespaced {
            namespace.to_string()
        } else {
            String::new()
        },
        name: name.to_string(),
    };
    Ok(api
        .store
        .get(&key)?
        .filter(|o| object::uid_of(o) == uid)
        .map(|o| (key, o)))
}

/// Deletes a dependent whose owners are all gone; drops references to gone owners when
/// some remain.
async fn check_dependent(api: &Arc<Api>, dep: &Key) -> ApiResult<()> {
    let key = object_key(dep);
    let Some(obj) = api.store.get(&key)? else {
        return Ok(());
    };
    let refs = owner_refs(&obj);
    let mut alive = Vec::new();
    for r in &refs {
        if resolve_owner(api, &key.namespace, r)?.is_some() {
            alive.push(r.clone());
        }
    }
    if alive.len() == refs.len() {
        return Ok(());
    }
    let strategy = strategy_at(api, &key.group, &key.resource);
    mutate_same(
        api,
        &key,
        object::uid_of(&obj).to_string(),
        move |mut cur| {
            if !alive.is_empty() {
                cur["metadata"]["ownerReferences"] = Value::Array(alive);
                return Ok(Mutation::Put(cur));
            }
            object::deletion(cur, strategy)
        },
    )
    .await
}

/// Changes the object at `key` if it is still the one with `uid` (it may have been
/// deleted and re-created since the collector looked).
async fn mutate_same(
    api: &Arc<Api>,
    key: &ObjectKey,
    uid: String,
    change: impl FnOnce(Value) -> ApiResult<Mutation> + Send,
) -> ApiResult<()> {
    api.store
        .mutate::<ApiError>(key, move |cur| match cur {
            Some(cur) if object::uid_of(&cur) == uid => change(cur),
            _ => Ok(Mutation::Keep),
        })
        .await??;
    Ok(())
}

async fn remove_finalizer(api: &Arc<Api>, owner: &Value, finalizer: &'static str) -> ApiResult<()> {
    let Some(key) = owner_key(api, owner) else {
        return Ok(());
    };
    mutate_same(
        api,
        &key,
        object::uid_of(owner).to_string(),
        move |mut cur| {
            if let Some(list) = cur
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                list.retain(|f| f != finalizer);
            }
            if object::is_deleting(&cur) && !object::has_finalizers(&cur) {
                return Ok(Mutation::Delete);
            }
            Ok(Mutation::Put(cur))
        },
    )
    .await
}

/// The strategy of the kind stored as `group`/`resource`, which says whether the
/// collector follows it and whether its objects are deleted gracefully (a bound pod gets
/// its grace period when its owner goes, as a DELETE would give it).
fn strategy_at(api: &Arc<Api>, group: &str, resource: &str) -> &'static dyn KindStrategy {
    api.registry
        .snapshot()
        .all()
        .find(|r| r.storage_group == group && r.plural == resource)
        .map_or(crate::kinds::GENERIC, |r| r.strategy())
}

fn owner_key(api: &Arc<Api>, obj: &Value) -> Option<ObjectKey> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str)?;
    let kind = obj.get("kind").and_then(Value::as_str)?;
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let table = api.registry.snapshot();
    let r = table.all().find(|x| x.group == group && x.kind == kind)?;
    Some(ObjectKey {
        group: r.storage_group.clone(),
        resource: r.plural.clone(),
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        name: object::name_of(obj).to_string(),
    })
}

/// Foreground: delete dependents; drop the finalizer once no blocking dependent remains.
async fn foreground(api: &Arc<Api>, index: &Index, owner: &Value) -> ApiResult<()> {
    let mut blocking = 0;
    for dep in index.of(object::uid_of(owner)) {
        let key = object_key(&dep);
        let Some(obj) = api.store.get(&key)? else {
            continue;
        };
        let blocks = owner_refs(&obj).iter().any(|r| {
            r.get("uid").and_then(Value::as_str) == Some(object::uid_of(owner))
                && r.get("blockOwnerDeletion") == Some(&Value::Bool(true))
        });
        if blocks {
            blocking += 1;
        }
        if !object::is_deleting(&obj) {
            let strategy = strategy_at(api, &key.group, &key.resource);
            api.store
                .mutate::<ApiError>(&key, |cur| match cur {
                    Some(cur) => object::deletion(cur, strategy),
                    None => Ok(Mutation::Keep),
                })
                .await??;
        }
    }
    if blocking == 0 {
        remove_finalizer(api, owner, FOREGROUND).await?;
    } else {
        // Blocking dependents that were just deleted outright are gone now.
        let still = index
            .of(object::uid_of(owner))
            .iter()
            .filter(|d| api.store.get(&object_key(d)).ok().flatten().is_some())
            .count();
        if still == 0 {
            remove_finalizer(api, owner, FOREGROUND).await?;
        }
    }
    Ok(())
}

/// Orphan: strip the owner's references from its dependents, then drop the finalizer.
async fn orphan(api: &Arc<Api>, index: &Index, owner: &Value) -> ApiResult<()> {
    let uid = object::uid_of(owner).to_string();
    for dep in index.of(&uid) {
        let uid = uid.clone();
        api.store
            .mutate::<ApiError>(&object_key(&dep), move |cur| {
                let Some(mut cur) = cur else {
                    return Ok(Mutation::Keep);
                };
                let refs: Vec<Value> = owner_refs(&cur)
                    .into_iter()
                    .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()))
                    .collect();
                if let Some(m) = cur.get_mut("metadata").and_then(Value::as_object_mut) {
                    if refs.is_empty() {
                        m.remove("ownerReferences");
                    } else {
                        m.insert("ownerReferences".into(), Value::Array(refs));
                    }
                }
                Ok(Mutation::Put(cur))
            })
            .await??;
    }
    remove_finalizer(api, owner, ORPHAN).await
}

//! DELETE of one object and of a collection: preconditions, dry-run, graceful deletion
//! (pods: `deletionTimestamp` and `deletionGracePeriodSeconds` recorded, the object kept
//! until a DELETE shortens the period to 0), finalizers (`deletionTimestamp` set, object
//! kept until the last finalizer goes), namespaces
//! (phase Terminating, contents removed by `namespaces.rs`) and CRDs (their custom
//! resources removed with them).

use std::sync::Arc;

use serde_json::{json, Value};

use super::write::guaranteed_update;
use super::{dry_run, namespaces, Ctx};
use crate::api::{Api, Call, Reply};
use crate::error::{success_status, ApiError, ApiResult};
use crate::gc;
use crate::kinds::Rest;
use crate::object;
use crate::store::{Mutation, Written};

/// The parts of `DeleteOptions` that matter here.
struct Options {
    policy: Option<String>,
    grace: Option<i64>,
    uid: Option<String>,
    rv: Option<String>,
    dry: bool,
}

fn options(call: &Call) -> ApiResult<Options> {
    let body: Value = if call.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let mut policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(call.query.get("propagationPolicy"))
        .map(str::to_string);
    if body.get("orphanDependents") == Some(&json!(true))
        || call.query.get("orphanDependents") == Some("true")
    {
        policy = Some("Orphan".into());
    }
    if let Some(p) = policy.as_deref() {
        if !matches!(p, "Foreground" | "Background" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    let dry_body = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(Options {
        policy,
        grace: body
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or_else(|| {
                call.query
                    .get("gracePeriodSeconds")
                    .and_then(|g| g.parse().ok())
            }),
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry: dry_body || dry_run(call)?,
    })
}

/// Namespaces Kubernetes refuses to delete.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

fn decide(ctx: &Ctx, cur: &Value, opts: &Options) -> ApiResult<Mutation> {
    let name = object::name_of(cur);
    if opts
        .uid
        .as_deref()
        .is_some_and(|u| u != object::uid_of(cur))
    {
        return Err(ApiError::conflict_msg(
            &ctx.r.group,
            &ctx.r.plural,
            name,
            format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                opts.uid.as_deref().unwrap_or(""),
                object::uid_of(cur)
            ),
        ));
    }
    if opts
        .rv
        .as_deref()
        .is_some_and(|rv| rv != object::rv_of(cur))
    {
        return Err(ApiError::conflict(&ctx.r.group, &ctx.r.plural, name));
    }
    if ctx.r.strategy().rest() == Rest::Namespace {
        let mut next = cur.clone();
        object::mark_deleting(&mut next, 0)?;
        next["status"] = json!({"phase": "Terminating"});
        return Ok(if object::same_content(cur, &next) {
            Mutation::Keep
        } else {
            Mutation::Put(next)
        });
    }
    // kube-apiserver's BeforeDelete: a kind deleted gracefully (pods) first records the
    // deletion and its grace period; a later DELETE may only shorten it, and the object
    // goes once the period is 0 and no finalizer remains.
    let requested = opts.grace.map(|g| if g < 0 { 1 } else { g });
    let mut next = cur.clone();
    let strategy = ctx.r.strategy();
    let graceful = if strategy.deletes_gracefully() {
        match (object::is_deleting(cur), object::deletion_grace(cur)) {
            (true, None | Some(0)) => None,
            (true, Some(current)) => match requested {
                Some(shorter) if shorter < current => {
                    object::shorten_deletion(&mut next, current, shorter)?;
                    Some(shorter)
                }
                // Graceful deletion is pending: nothing changes.
                _ => return Ok(Mutation::Keep),
            },
            (false, _) => {
                let period = strategy.grace_period(cur, requested);
                object::start_graceful_deletion(&mut next, period)?;
                Some(period)
            }
        }
    } else {
        None
    };
    let policy_finalizer = match opts.policy.as_deref() {
        Some("Foreground") => Some(gc::FOREGROUND),
        Some("Orphan") => Some(gc::ORPHAN),
        _ => None,
    };
    if let Some(f) = policy_finalizer {
        if !object::is_deleting(cur) {
            object::add_finalizer(&mut next, f)?;
        }
    }
    let pending_finalizers = object::has_finalizers(&next);
    match graceful {
        Some(period) if period > 0 || pending_finalizers => Ok(Mutation::Put(next)),
        None if pending_finalizers => {
            object::mark_deleting(&mut next, 0)?;
            Ok(if object::same_content(cur, &next) {
                Mutation::Keep
            } else {
                Mutation::Put(next)
            })
        }
        _ => Ok(Mutation::Delete),
    }
}

/// DELETE one object.
pub(super) async fn delete(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    if ctx.subresource.is_some() {
        return Err(ApiError::method_not_allowed("DELETE", &ctx.r.qualified()));
    }
    let name = ctx.name.clone().unwrap_or_default();
    let opts = options(call)?;
    let rest = ctx.r.strategy().rest();
    if rest == Rest::Namespace && PROTECTED_NAMESPACES.contains(&name.as_str()) {
        return Err(ApiError::forbidden(
            "namespaces",
            &name,
            format!("namespace \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    if opts.dry {
        let cur = api
            .store
            .get(&ctx.key(&name))?
            .ok_or_else(|| ctx.not_found(&name))?;
        return Ok(match decide(ctx, &cur, &opts)? {
            Mutation::Put(o) => Reply::ok(ctx.present(o)),
            _ => Reply::ok(ctx.present(cur)),
        });
    }
    if rest == Rest::CustomResourceDefinition {
        if let Some(crd) = api.store.get(&ctx.key(&name))? {
            remove_custom_objects(api, &crd).await?;
        }
    }
    let w = guaranteed_update(api, ctx, &name, |cur| decide(ctx, &cur, &opts)).await?;
    if rest == Rest::Namespace {
        namespaces::spawn_finalizer(api.clone(), name.clone());
    }
    Ok(match w {
        Written::Stored(o) | Written::Unchanged(Some(o)) => Reply::ok(ctx.present(o)),
        Written::Deleted(o) => Reply::ok(ctx.present(o)),
        Written::Unchanged(None) => {
            Reply::ok(success_status(&ctx.r.group, &ctx.r.plural, &name, None))
        }
    })
}

/// Removes every object of the resource a CRD defines.
async fn remove_custom_objects(api: &Arc<Api>, crd: &Value) -> ApiResult<()> {
    let (group, plural) = crate::crd::group_and_plural(crd);
    let shares_storage = crd
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::crd::STORAGE_GROUP_ANNOTATION))
        .is_some_and(|g| g != group);
    if shares_storage {
        return Ok(());
    }
    let (items, _) = api.store.list(group, plural, None)?;
    for item in items {
        let key = crate::store::ObjectKey {
            group: group.into(),
            resource: plural.into(),
            namespace: item
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            name: object::name_of(&item).into(),
        };
        api.store
            .mutate::<ApiError>(&key, |_| Ok(Mutation::Delete))
            .await??;
    }
    Ok(())
}

/// DELETE a collection: deletes every matching object, returns what was deleted.
pub(super) async fn delete_collection(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    let opts = options(call)?;
    let (items, _) = super::read::matching(api, call, ctx)?;
    let mut out = Vec::new();
    for item in items {
        let name = object::name_of(&item).to_string();
        let sub = Ctx {
            r: ctx.r.clone(),
            version: ctx.version.clone(),
            namespace: item
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_string),
            name: Some(name.clone()),
            subresource: None,
            manager: ctx.manager.clone(),
        };
        if opts.dry {
            out.push(item);
            continue;
        }
        match guaranteed_update(api, &sub, &name, |cur| decide(&sub, &cur, &opts)).await {
            Ok(Written::Stored(o)) | Ok(Written::Deleted(o)) => out.push(sub.present(o)),
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::ok(json!({
        "kind": format!("{}List", ctx.r.kind),
        "apiVersion": ctx.r.api_version(&ctx.version),
        "metadata": {"resourceVersion": api.store.current_revision().to_string()},
        "items": out,
    })))
}

//! Writes that store a whole object: create (POST), update (PUT) and patch (PATCH) of the
//! main resource or its `status`, with dry-run, field validation, optimistic concurrency
//! (409 on a stale resourceVersion) and retry of unconditional writes, as kube-apiserver's
//! `GuaranteedUpdate` does.

use std::sync::Arc;

use serde_json::Value;

use super::{dry_run, namespaces, services, Ctx};
use crate::admission::{self, Operation};
use crate::api::{Api, Call, Reply};
use crate::crd;
use crate::decode::{self, FieldValidation};
use crate::error::{ApiError, ApiResult};
use crate::kinds::Rest;
use crate::object;
use crate::ssa;
use crate::store::{Mutation, Written};

/// Why a guarded write did not happen.
pub(super) enum Guard {
    /// The object changed since it was read: read again.
    Retry,
    /// A real error.
    Api(ApiError),
}

fn warnings(mode: FieldValidation, unknown: &[String]) -> Vec<String> {
    if mode == FieldValidation::Warn {
        unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect()
    } else {
        Vec::new()
    }
}

/// Decodes a request body against the context's kind.
fn decode_body(
    call: &Call,
    ctx: &Ctx,
    body: Value,
) -> ApiResult<(Value, Vec<String>, FieldValidation)> {
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let body = decode::typed_body(body, &ctx.r, &ctx.version)?;
    let (obj, unknown) = decode::decode(&ctx.r, &ctx.version, body, mode)?;
    Ok((obj, unknown, mode))
}

/// Parses the body of a create or update.
pub(super) fn body_of(call: &Call) -> ApiResult<Value> {
    let ct = call.header("content-type");
    if ct.starts_with(crate::protobuf::CONTENT_TYPE) {
        if call.body.len() > decode::MAX_BODY_BYTES {
            return Err(ApiError::too_large(decode::MAX_BODY_BYTES));
        }
        return crate::protobuf::decode(&call.body);
    }
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !matches!(mime, "" | "application/json" | "application/yaml" | "*/*") {
        return Err(ApiError::unsupported_media_type(
            mime,
            &[
                "application/json",
                "application/yaml",
                crate::protobuf::CONTENT_TYPE,
            ],
        ));
    }
    decode::parse_body(ct, &call.body)
}

/// POST: create an object.
pub(super) async fn create(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    if ctx.subresource.is_some() {
        return Err(ApiError::method_not_allowed("POST", &ctx.r.qualified()));
    }
    let (obj, unknown, mode) = decode_body(call, ctx, body_of(call)?)?;
    let (stored, code) = create_object(api, ctx, obj, dry_run(call)?, true).await?;
    Ok(Reply::json(code, ctx.present(stored)).with_warnings(warnings(mode, &unknown)))
}

/// Creates a decoded object: metadata, namespace checks, kind hooks, store. `track`
/// records the field manager's ownership (an apply has recorded it already).
pub(super) async fn create_object(
    api: &Arc<Api>,
    ctx: &Ctx,
    obj: Value,
    dry: bool,
    track: bool,
) -> ApiResult<(Value, u16)> {
    let mut obj = object::prepare_create(&ctx.r, ctx.namespace.as_deref(), obj)?;
    check_valid(ctx, &obj)?;
    admit(api, ctx, Operation::Create, None, &mut obj, dry).await?;
    if track {
        ssa::track_update(&ctx.r, &ctx.version, None, &mut obj, ctx.manager.as_deref());
    }
    if let Some(ns) = ctx.namespace.as_deref() {
        namespaces::check_accepting(api, ns)?;
    }
    // Held until the create is stored or failed.
    let mut _reserved = None;
    match ctx.r.strategy().rest() {
        Rest::CustomResourceDefinition => {
            crd::resource_from_crd(&obj)?;
            crd::establish(&mut obj);
        }
        Rest::Service => _reserved = Some(services::allocate(api, &mut obj)?),
        Rest::Generic | Rest::Namespace => {}
    }
    let name = object::name_of(&obj).to_string();
    if dry {
        if api.store.get(&ctx.key(&name))?.is_some() {
            return Err(ApiError::already_exists(&ctx.r.group, &ctx.r.plural, &name));
        }
        return Ok((obj, 201));
    }
    let obj = crate::conversion::to_storage(&ctx.r, obj);
    let (group, plural) = (ctx.r.group.clone(), ctx.r.plural.clone());
    let written = api
        .store
        .mutate(&ctx.key(&name), move |cur| match cur {
            Some(_) => Err(ApiError::already_exists(&group, &plural, &name)),
            None => Ok(Mutation::Put(obj)),
        })
        .await??;
    after_write(api, ctx, &written);
    match written {
        Written::Stored(o) => Ok((o, 201)),
        _ => Err(ApiError::internal("create did not store")),
    }
}

/// Kind-specific effects of a stored write (CRDs change what is served).
pub(super) fn after_write(api: &Arc<Api>, ctx: &Ctx, w: &Written) {
    if ctx.r.strategy().rest() != Rest::CustomResourceDefinition {
        return;
    }
    match w {
        Written::Stored(crd_obj) => match crd::resource_from_crd(crd_obj) {
            Ok(r) => api.registry.put_custom(r),
            Err(e) => tracing::warn!(message = %e.message, "stored CRD is not servable"),
        },
        Written::Deleted(crd_obj) => {
            let (group, plural) = crd::group_and_plural(crd_obj);
            api.registry.remove_custom(group, plural);
        }
        Written::Unchanged(_) => {}
    }
}

/// 422 with every semantic problem of a built-in object.
fn check_valid(ctx: &Ctx, obj: &Value) -> ApiResult<()> {
    check_causes(ctx, obj, crate::validation::validate(&ctx.r, obj))
}

/// 422 listing `causes`, if any.
fn check_causes(ctx: &Ctx, obj: &Value, causes: Vec<crate::error::Cause>) -> ApiResult<()> {
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &ctx.r.group,
        &ctx.r.kind,
        object::name_of(obj),
        causes,
    ))
}

/// Runs the server's admission hooks on an object about to be created or updated
/// (main resource only; subresources are not admitted).
async fn admit(
    api: &Arc<Api>,
    ctx: &Ctx,
    operation: Operation,
    old: Option<&Value>,
    obj: &mut Value,
    dry_run: bool,
) -> ApiResult<()> {
    if ctx.subresource.is_some() || api.options.admission.0.is_empty() {
        return Ok(());
    }
    let request = admission::Request {
        operation,
        group: &ctx.r.group,
        kind: &ctx.r.kind,
        namespace: ctx.namespace.as_deref(),
        old,
        dry_run,
    };
    admission::admit(&api.options.admission, request, obj).await
}

/// Values the server allocated (a Service's cluster IP and node ports) that a user's
/// update leaves out are kept; newly needed ones are allocated.
fn allocated_on_update(
    api: &Arc<Api>,
    ctx: &Ctx,
    old: &Value,
    new: &mut Value,
) -> ApiResult<Option<services::Reservation>> {
    if ctx.subresource.is_none() && ctx.r.strategy().rest() == Rest::Service {
        return services::update(api, old, new).map(Some);
    }
    Ok(None)
}

/// Reads, decides and writes until the object did not change in between.
pub(super) async fn guaranteed_update(
    api: &Arc<Api>,
    ctx: &Ctx,
    name: &str,
    decide: impl Fn(Value) -> ApiResult<Mutation>,
) -> ApiResult<Written> {
    update_admitted(api, ctx, name, false, decide).await
}

/// [`guaranteed_update`] of a user's update (PUT, PATCH): a new object the decision
/// stores passes the admission hooks first.
async fn update_admitted(
    api: &Arc<Api>,
    ctx: &Ctx,
    name: &str,
    admitted: bool,
    decide: impl Fn(Value) -> ApiResult<Mutation>,
) -> ApiResult<Written> {
    let key = ctx.key(name);
    for _ in 0..32 {
        let Some(cur) = api.store.get(&key)? else {
            return Err(ctx.not_found(name));
        };
        let read_rv = object::rv_of(&cur).to_string();
        // Decide on the object as served at this request's group and version (objects
        // shared by two groups are stored under one).
        let presented = ctx.present(cur);
        // Held until this attempt is stored or failed.
        let mut reserved = None;
        let mutation = if admitted {
            let mut mutation = decide(presented.clone())?;
            if let Mutation::Put(new) = &mut mutation {
                reserved = allocated_on_update(api, ctx, &presented, new)?;
                admit(api, ctx, Operation::Update, Some(&presented), new, false).await?;
            }
            mutation
        } else {
            decide(presented)?
        };
        let mutation = match mutation {
            Mutation::Put(o) => Mutation::Put(crate::conversion::to_storage(&ctx.r, o)),
            other => other,
        };
        let not_found = ctx.not_found(name);
        let result = api
            .store
            .mutate(&key, move |now| match now {
                None => Err(Guard::Api(not_found)),
                Some(n) if object::rv_of(&n) != read_rv => Err(Guard::Retry),
                Some(_) => Ok(mutation),
            })
            .await?;
        drop(reserved);
        match result {
            Ok(w) => {
                after_write(api, ctx, &w);
                return Ok(w);
            }
            Err(Guard::Retry) => continue,
            Err(Guard::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::conflict(&ctx.r.group, &ctx.r.plural, name))
}

/// Decides the mutation for a candidate new object: merge with the stored one, enforce
/// the resourceVersion precondition, delete once the last finalizer is gone.
fn decide_update(ctx: &Ctx, cur: &Value, candidate: Value, track: bool) -> ApiResult<Mutation> {
    let name = object::name_of(cur).to_string();
    let wanted_rv = object::rv_of(&candidate);
    if !wanted_rv.is_empty() && wanted_rv != object::rv_of(cur) {
        return Err(ApiError::conflict(&ctx.r.group, &ctx.r.plural, &name));
    }
    let mut new = object::prepare_update(&ctx.r, cur, candidate, ctx.subresource.as_deref())?;
    if ctx.subresource.is_some() {
        // Ownership of status is not tracked; keep the stored record.
        if let (Some(m), Some(mf)) = (
            new.get_mut("metadata").and_then(Value::as_object_mut),
            cur.pointer("/metadata/managedFields"),
        ) {
            m.insert("managedFields".into(), mf.clone());
        }
        ctx.r.strategy().prepare_status_update(cur, &mut new);
    } else if track {
        ssa::track_update(
            &ctx.r,
            &ctx.version,
            Some(cur),
            &mut new,
            ctx.manager.as_deref(),
        );
    }
    if ctx.r.strategy().rest() == Rest::CustomResourceDefinition && ctx.subresource.is_none() {
        crd::resource_from_crd(&new)?;
        crd::establish(&mut new);
    }
    if ctx.subresource.is_none() {
        // The kind's update rules (what may not change) and its validation, in one 422.
        // The stored object is compared with today's defaults applied, as kube-apiserver
        // defaults what it reads from storage: objects stored before a default existed
        // stay updatable.
        let mut old = cur.clone();
        ctx.r.strategy().default(&mut old);
        let mut causes = ctx.r.strategy().validate_update(&old, &new);
        causes.extend(crate::validation::validate(&ctx.r, &new));
        check_causes(ctx, &new, causes)?;
    }
    if should_delete_during_update(ctx, cur, &new) {
        return Ok(Mutation::Delete);
    }
    if object::same_content(cur, &new) {
        return Ok(Mutation::Keep);
    }
    Ok(Mutation::Put(new))
}

/// kube-apiserver's `ShouldDeleteDuringUpdate`: an update deletes the object when it was
/// being deleted, its grace period is over (none, or 0) and the update leaves no
/// finalizer. A pod in its grace period stays whatever is written to it (the kubelet
/// deletes it with grace period 0 once it stopped). Kinds without graceful deletion have
/// no grace period (one recorded by an older spinlet is ignored).
fn should_delete_during_update(ctx: &Ctx, cur: &Value, new: &Value) -> bool {
    object::is_deleting(cur)
        && !object::has_finalizers(new)
        && (!ctx.r.strategy().deletes_gracefully()
            || object::deletion_grace(cur).is_none_or(|g| g == 0))
}

fn reply_for(ctx: &Ctx, w: Written) -> Reply {
    match w {
        Written::Stored(o) | Written::Deleted(o) | Written::Unchanged(Some(o)) => {
            Reply::ok(ctx.present(o))
        }
        Written::Unchanged(None) => ctx.not_found("").into(),
    }
}

/// A dry-run update: decided and admitted as a real one, stored nowhere.
async fn dry_update(
    api: &Arc<Api>,
    ctx: &Ctx,
    cur: Value,
    decide: impl FnOnce(Value) -> ApiResult<Mutation>,
) -> ApiResult<Reply> {
    let presented = ctx.present(cur.clone());
    Ok(match decide(cur)? {
        Mutation::Put(mut o) => {
            let _reserved = allocated_on_update(api, ctx, &presented, &mut o)?;
            admit(api, ctx, Operation::Update, Some(&presented), &mut o, true).await?;
            Reply::ok(ctx.present(o))
        }
        _ => Reply::ok(presented),
    })
}

/// PUT: replace an object or its status.
pub(super) async fn update(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    let name = ctx.name.clone().unwrap_or_default();
    let (obj, unknown, mode) = decode_body(call, ctx, body_of(call)?)?;
    let body_name = object::name_of(&obj);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if dry_run(call)? {
        let cur = api
            .store
            .get(&ctx.key(&name))?
            .ok_or_else(|| ctx.not_found(&name))?;
        return dry_update(api, ctx, cur, |cur| decide_update(ctx, &cur, obj, true)).await;
    }
    let w = update_admitted(api, ctx, &name, true, |cur| {
        decide_update(ctx, &cur, obj.clone(), true)
    })
    .await?;
    Ok(reply_for(ctx, w).with_warnings(warnings(mode, &unknown)))
}

/// The patch types served.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// Applies a patch body to the current object.
fn apply_patch(
    ctx: &Ctx,
    content_type: &str,
    cur: &Value,
    body: &[u8],
    force: bool,
) -> ApiResult<Value> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let mut doc = cur.clone();
    match mime {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            for (i, op) in p.0.iter().enumerate() {
                // As kube-apiserver's json-patch: testing a missing path for null succeeds
                // (kube-runtime's finalizer helper tests `/metadata/finalizers` so).
                if let json_patch::PatchOperation::Test(t) = op {
                    if t.value.is_null() && doc.pointer(t.path.as_str()).is_none() {
                        continue;
                    }
                }
                json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|mut e| {
                    e.operation = i;
                    ApiError::unprocessable_patch(&ctx.r, object::name_of(cur), e.to_string())
                })?;
            }
        }
        "application/merge-patch+json" => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
            json_patch::merge(&mut doc, &p);
        }
        "application/strategic-merge-patch+json" => {
            if ctx.r.custom {
                return Err(ApiError::unsupported_media_type(
                    mime,
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ],
                ));
            }
            let p: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("invalid strategic merge patch: {e}"))
            })?;
            doc = crate::strategic::apply(ctx.r.strategy().merge_schema(), cur, &p)
                .map_err(strategic_error)?;
        }
        "application/apply-patch+yaml" => {
            let config = decode::parse_body(mime, body)?;
            decode::check_type(&config, &ctx.r, &ctx.version)?;
            doc = ssa::apply(
                &ctx.r,
                &ctx.version,
                Some(cur),
                config,
                ctx.manager.as_deref().unwrap_or_default(),
                force,
            )?;
        }
        _ => return Err(ApiError::unsupported_media_type(mime, PATCH_TYPES)),
    }
    Ok(doc)
}

/// The status kube-apiserver gives each strategic merge error
/// (`interpretStrategicMergePatchError`): malformed patch formats are 400, lists of lists
/// and a `$retainKeys` mismatch 422, and everything else passes through as a 500.
fn strategic_error(e: crate::strategic::StrategicError) -> ApiError {
    use crate::strategic::StrategicError as E;
    match e {
        E::NotAnObject { .. }
        | E::BadPrimitiveList { .. }
        | E::BadRetainKeys { .. }
        | E::BadSetElementOrder { .. } => ApiError::bad_request(e.to_string()),
        E::ListOfLists { .. } | E::RetainKeysMismatch { .. } => {
            ApiError::unprocessable(e.to_string())
        }
        _ => ApiError::internal_with_message(e.to_string()),
    }
}

/// PATCH: patch an object or its status (server-side apply creates a missing object).
pub(super) async fn patch(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    let name = ctx.name.clone().unwrap_or_default();
    let ct = call.header("content-type").to_string();
    let is_apply = ct.starts_with("application/apply-patch+yaml");
    if call.body.len() > decode::MAX_BODY_BYTES {
        return Err(ApiError::too_large(decode::MAX_BODY_BYTES));
    }
    if is_apply && call.query.get("fieldManager").unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(
            "PATCH requests with apply content type require fieldManager",
        ));
    }
    let dry = dry_run(call)?;
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let force = call.query.flag("force");
    if is_apply && ctx.subresource.is_none() && api.store.get(&ctx.key(&name))?.is_none() {
        let body = decode::parse_body(&ct, &call.body)?;
        // An apply configuration names its type, whether or not the object exists yet.
        decode::check_type(&body, &ctx.r, &ctx.version)?;
        let (obj, unknown, mode) = decode_body(call, ctx, body)?;
        let obj = ssa::apply(
            &ctx.r,
            &ctx.version,
            None,
            obj,
            ctx.manager.as_deref().unwrap_or_default(),
            force,
        )?;
        let (stored, code) = create_object(api, ctx, obj, dry, false).await?;
        return Ok(Reply::json(code, ctx.present(stored)).with_warnings(warnings(mode, &unknown)));
    }
    let unknown_seen = std::sync::Mutex::new(Vec::new());
    let decide = |cur: Value| -> ApiResult<Mutation> {
        let patched = apply_patch(ctx, &ct, &cur, &call.body, force)?;
        decode::check_type(&patched, &ctx.r, &ctx.version)?;
        let (obj, unknown) = decode::decode(&ctx.r, &ctx.version, patched, mode)?;
        if let Ok(mut u) = unknown_seen.lock() {
            *u = unknown;
        }
        if object::name_of(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name_of(&obj)
            )));
        }
        decide_update(ctx, &cur, obj, !is_apply)
    };
    if dry {
        let cur = api
            .store
            .get(&ctx.key(&name))?
            .ok_or_else(|| ctx.not_found(&name))?;
        return dry_update(api, ctx, cur, decide).await;
    }
    let w = update_admitted(api, ctx, &name, true, decide).await?;
    let unknown = unknown_seen.lock().map(|u| u.clone()).unwrap_or_default();
    Ok(reply_for(ctx, w).with_warnings(warnings(mode, &unknown)))
}

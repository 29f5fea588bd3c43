//! The `scale` subresource (`autoscaling/v1` `Scale`) of Deployments, ReplicaSets and
//! custom resources that declare one (SpinApp): GET, PUT and PATCH read and write the
//! object's replica count through the paths the kind declares.

use std::sync::Arc;

use http::Method;
use serde_json::{json, Value};

use super::write::guaranteed_update;
use super::Ctx;
use crate::api::{Api, Call, Reply};
use crate::decode;
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::store::{Mutation, Written};

fn pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .replace('.', "/")
        .replace("//", "/")
}

fn selector_string(obj: &Value, ctx: &Ctx) -> Option<String> {
    let paths = ctx.r.scale.as_ref()?;
    if ctx.r.custom {
        let p = paths.label_selector.as_deref()?;
        return obj
            .pointer(&format!("/{}", pointer(p)))
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    let labels = obj.pointer("/spec/selector/matchLabels")?.as_object()?;
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn to_scale(ctx: &Ctx, obj: &Value) -> Value {
    let paths = ctx.r.scale.clone();
    let read = |p: Option<&str>| {
        p.and_then(|p| obj.pointer(&format!("/{}", pointer(p))))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let spec = read(paths.as_ref().map(|p| p.spec_replicas.as_str()));
    let status = read(paths.as_ref().map(|p| p.status_replicas.as_str()));
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": spec},
        "status": {"replicas": status},
    });
    if let Some(sel) = selector_string(obj, ctx) {
        scale["status"]["selector"] = json!(sel);
    }
    scale
}

fn set_replicas(ctx: &Ctx, obj: &mut Value, replicas: i64) -> ApiResult<()> {
    let p = ctx
        .r
        .scale
        .as_ref()
        .map(|p| pointer(&p.spec_replicas))
        .unwrap_or_else(|| "spec/replicas".into());
    let mut cur = obj;
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let map = cur
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request(format!("cannot set replicas at {p}")))?;
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), json!(replicas));
            return Ok(());
        }
        cur = map.entry(*part).or_insert_with(|| json!({}));
    }
    Ok(())
}

/// Handles GET/PUT/PATCH on `…/scale`.
pub(super) async fn handle(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    let name = ctx.name.clone().ok_or_else(ApiError::no_route)?;
    let key = ctx.key(&name);
    match call.method {
        Method::GET => {
            let obj = api.store.get(&key)?.ok_or_else(|| ctx.not_found(&name))?;
            Ok(Reply::ok(to_scale(ctx, &obj)))
        }
        Method::PUT | Method::PATCH => {
            let ct = call.header("content-type").to_string();
            let is_patch = call.method == Method::PATCH;
            let decide = |cur: Value| -> ApiResult<Mutation> {
                let mut scale = to_scale(ctx, &cur);
                if is_patch {
                    let p: Value = decode::parse_body(&ct, &call.body)?;
                    match ct.split(';').next().unwrap_or("").trim() {
                        "application/json-patch+json" => {
                            let jp: json_patch::Patch = serde_json::from_value(p).map_err(|e| {
                                ApiError::bad_request(format!("invalid JSON patch: {e}"))
                            })?;
                            json_patch::patch(&mut scale, &jp)
                                .map_err(|e| ApiError::bad_request(e.to_string()))?;
                        }
                        _ => json_patch::merge(&mut scale, &p),
                    }
                } else {
                    let body = decode::parse_body(&ct, &call.body)?;
                    let rv = object::rv_of(&body);
                    if !rv.is_empty() && rv != object::rv_of(&cur) {
                        return Err(ApiError::conflict(&ctx.r.group, &ctx.r.plural, &name));
                    }
                    scale = body;
                }
                let replicas = scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| {
                        ApiError::bad_request("Scale.spec.replicas must be an integer")
                    })?;
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        &name,
                        vec![crate::error::Cause {
                            reason: "FieldValueInvalid",
                            message: format!(
                                "Invalid value: {replicas}: must be greater than or equal to 0"
                            ),
                            field: "spec.replicas".into(),
                        }],
                    ));
                }
                let mut next = cur.clone();
                set_replicas(ctx, &mut next, replicas)?;
                let next = object::prepare_update(&ctx.r, &cur, next, None)?;
                Ok(if object::same_content(&cur, &next) {
                    Mutation::Keep
                } else {
                    Mutation::Put(next)
                })
            };
            match guaranteed_update(api, ctx, &name, decide).await? {
                Written::Stored(o) | Written::Unchanged(Some(o)) | Written::Deleted(o) => {
                    Ok(Reply::ok(to_scale(ctx, &o)))
                }
                Written::Unchanged(None) => Err(ctx.not_found(&name)),
            }
        }
        ref m => Err(ApiError::method_not_allowed(m.as_str(), "scale")),
    }
}

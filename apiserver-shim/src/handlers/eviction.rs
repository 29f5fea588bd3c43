//! `pods/eviction`: POST a policy/v1 (or v1beta1) `Eviction` to delete a pod the way
//! `kubectl drain` asks for it, with the eviction's `deleteOptions` (grace period,
//! preconditions, dry run), answering 201 with a Success `Status` as kube-apiserver does.
//!
//! PodDisruptionBudgets are not served by spinlet, so no budget can refuse an eviction;
//! everything else follows kube-apiserver's eviction REST: the name in the body must match
//! the URL, a missing pod is 404, a pod already being deleted is deleted again with the
//! given options (which may shorten its grace period).

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use super::{delete, Ctx};
use crate::api::{Api, Call, Reply};
use crate::error::{success_status, ApiError, ApiResult};

/// Evicts the pod `name`.
pub(super) async fn evict(api: &Arc<Api>, call: &Call, ctx: &Ctx, name: &str) -> ApiResult<Reply> {
    if call.method != Method::POST {
        return Err(ApiError::method_not_allowed(
            call.method.as_str(),
            "pods/eviction",
        ));
    }
    let body: Value = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("invalid Eviction: {e}")))?;
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "Eviction" || !matches!(api_version, "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::bad_request(format!(
            "the body of pods/eviction must be a policy/v1 Eviction, not {api_version:?} {kind:?}"
        )));
    }
    let body_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let Some(pod) = api.store.get(&ctx.key(name))? else {
        return Err(ctx.not_found(name));
    };
    let options = body.get("deleteOptions").cloned().unwrap_or(Value::Null);
    let delete_call = Call {
        method: Method::DELETE,
        path: call.path.clone(),
        query: call.query.clone(),
        headers: call.headers.clone(),
        body: if options.is_null() {
            Bytes::new()
        } else {
            Bytes::from(options.to_string())
        },
    };
    let pod_ctx = Ctx {
        r: ctx.r.clone(),
        version: ctx.version.clone(),
        namespace: ctx.namespace.clone(),
        name: Some(name.to_string()),
        subresource: None,
        manager: ctx.manager.clone(),
    };
    delete::delete(api, &delete_call, &pod_ctx).await?;
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str);
    Ok(Reply::json(201, success_status("", "pods", name, uid)))
}

//! GET of one object and LIST of a collection, with label and field selectors.

use std::sync::Arc;

use serde_json::{json, Value};

use super::Ctx;
use crate::api::{Api, Call, Reply};
use crate::error::{ApiError, ApiResult};
use crate::selector::{FieldSelector, LabelSelector};

/// GET one object (or its status).
pub(super) fn get(api: &Arc<Api>, ctx: &Ctx) -> ApiResult<Reply> {
    let name = ctx.name.as_deref().unwrap_or("");
    match api.store.get(&ctx.key(name))? {
        Some(obj) => Ok(Reply::ok(ctx.present(obj))),
        None => Err(ctx.not_found(name)),
    }
}

/// The selectors of a list or watch.
pub(crate) fn selectors(call: &Call) -> ApiResult<(LabelSelector, FieldSelector)> {
    Ok((
        LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?,
        FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""))?,
    ))
}

/// Lists matching objects, presented at the request's version, with the list's revision.
pub(crate) fn matching(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<(Vec<Value>, u64)> {
    let (labels, fields) = selectors(call)?;
    let (items, rev) = api.store.list(
        &ctx.r.storage_group,
        &ctx.r.plural,
        ctx.namespace.as_deref(),
    )?;
    let items = items
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|o| ctx.present(o))
        .collect();
    Ok((items, rev))
}

/// LIST a collection.
pub(super) fn list(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    if let Some(rv) = call.query.get("resourceVersion") {
        if !rv.is_empty() && rv.parse::<u64>().is_err() {
            return Err(ApiError::bad_request(format!(
                "invalid resourceVersion {rv:?}: must be an unsigned integer"
            )));
        }
    }
    let (items, rev) = matching(api, call, ctx)?;
    Ok(Reply::ok(json!({
        "kind": format!("{}List", ctx.r.kind),
        "apiVersion": ctx.r.api_version(&ctx.version),
        "metadata": {"resourceVersion": rev.to_string()},
        "items": items,
    })))
}

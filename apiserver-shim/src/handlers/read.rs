//! GET of one object and LIST of a collection, with label and field selectors (in pages:
//! `pages`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::pages::Item;
use super::Ctx;
use crate::api::{Api, Call, Reply};
use crate::error::{ApiError, ApiResult};
use crate::selector::{FieldSelector, LabelSelector};
use crate::table;

/// The content type of Table answers.
const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Answers with a Table when the client asked for one, else with `plain`.
fn maybe_table(
    call: &Call,
    ctx: &Ctx,
    objects: &[Value],
    rev: Option<u64>,
    plain: Value,
) -> ApiResult<Reply> {
    if !table::wants_table(call.header("accept")) {
        return Ok(Reply::ok(plain));
    }
    let include = table::Include::parse(call.query.get("includeObject"))?;
    let cols = table::columns(&ctx.r, &ctx.version);
    Ok(Reply::Json {
        code: 200,
        body: table::build(&cols, objects, rev, include),
        content_type: TABLE_CONTENT_TYPE,
        warnings: Vec::new(),
    })
}

/// The `apiVersion` of a stored object, read without building the whole document (as
/// `pages` does for list items).
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "apiVersion", borrow)]
    api_version: Option<std::borrow::Cow<'a, str>>,
}

/// Whether an object stored at the served version is served as its stored JSON: not when
/// schema defaults or another group's shape (Events stored once for two groups) reshape
/// it on the way out.
fn stored_json_is_served(ctx: &Ctx) -> bool {
    !crate::crd::defaults::declares_defaults(&ctx.r) && ctx.r.strategy().shared_storage().is_none()
}

/// GET one object (or its status).
pub(super) fn get(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    let name = ctx.name.as_deref().unwrap_or("");
    if !table::wants_table(call.header("accept")) && stored_json_is_served(ctx) {
        // Fast path: the stored bytes are the answer when stored at this API version.
        let Some(raw) = api.store.get_raw(&ctx.key(name))? else {
            return Err(ctx.not_found(name));
        };
        let served = ctx.r.api_version(&ctx.version);
        if serde_json::from_slice::<Head>(&raw)
            .ok()
            .and_then(|h| h.api_version)
            .is_some_and(|v| v == served)
        {
            return Ok(Reply::RawJson(bytes::Bytes::copy_from_slice(&raw)));
        }
    }
    match api.store.get(&ctx.key(name))? {
        Some(obj) => {
            let obj = ctx.present(obj);
            maybe_table(call, ctx, std::slice::from_ref(&obj), None, obj.clone())
        }
        None => Err(ctx.not_found(name)),
    }
}

/// The selectors of a list or watch.
pub(crate) fn selectors(call: &Call, ctx: &Ctx) -> ApiResult<(LabelSelector, FieldSelector)> {
    let fields = FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""))?;
    Ok((
        LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?,
        crate::field_labels::check(&ctx.r, fields)?,
    ))
}

/// Lists matching objects, presented at the request's version, with the list's revision.
pub(crate) fn matching(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<(Vec<Value>, u64)> {
    let (labels, fields) = selectors(call, ctx)?;
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
    let (labels, fields) = selectors(call, ctx)?;
    let filtered = !labels.is_empty() || !fields.is_empty();
    let table = table::wants_table(call.header("accept"));
    let served = ctx.r.api_version(&ctx.version);
    // Stored JSON is the answer as it is unless a table, defaults or a shape reshape it.
    let raw_version = (!table && stored_json_is_served(ctx)).then_some(served.as_str());
    let page = super::pages::page(
        api,
        call,
        ctx,
        |o| labels.matches(o) && fields.matches(o),
        filtered,
        raw_version,
    )?;
    let mut meta = json!({"resourceVersion": page.rev.to_string()});
    if let Some(next) = &page.next {
        meta["continue"] = json!(next);
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    if table {
        let items: Vec<Value> = page
            .items
            .into_iter()
            .filter_map(|item| match item {
                Item::Decoded(o) => Some(ctx.present(o)),
                Item::Raw(raw) => serde_json::from_slice(&raw).ok().map(|o| ctx.present(o)),
            })
            .collect();
        let mut reply = maybe_table(call, ctx, &items, Some(page.rev), Value::Null)?;
        if let Reply::Json { body, .. } = &mut reply {
            body["metadata"] = meta;
        }
        return Ok(reply);
    }
    // The list document, with the items' JSON spliced in.
    let head = json!({
        "kind": format!("{}List", ctx.r.kind),
        "apiVersion": served,
        "metadata": meta,
    });
    let mut body = serde_json::to_vec(&head).map_err(ApiError::internal)?;
    body.pop(); // the closing brace
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        match item {
            Item::Raw(raw) => body.extend_from_slice(&raw),
            Item::Decoded(o) => {
                serde_json::to_writer(&mut body, &ctx.present(o)).map_err(ApiError::internal)?
            }
        }
    }
    body.extend_from_slice(b"]}");
    Ok(Reply::RawJson(bytes::Bytes::from(body)))
}

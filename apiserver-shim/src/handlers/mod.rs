//! Resource handlers: one module per verb family. This module resolves the request's
//! resource in the registry and dispatches by method, name and subresource.

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod conversion_tests;
mod delete;
mod eviction;
#[cfg(test)]
mod eviction_tests;
mod namespaces;
mod pages;
#[cfg(test)]
mod pages_tests;
#[cfg(test)]
mod patch_tests;
mod pods;
mod proxy;
mod read;
mod scale;
mod services;
#[cfg(test)]
mod services_tests;
#[cfg(test)]
mod test_fixture;
#[cfg(test)]
mod tests;
mod write;

use std::sync::Arc;

use http::Method;
use serde_json::Value;

use crate::api::{Api, Call, Reply};
use crate::error::{ApiError, ApiResult};
use crate::kinds::Rest;
use crate::registry::Resource;
use crate::request::ResourcePath;
use crate::store::ObjectKey;

pub use namespaces::resume_terminating;
pub use proxy::{node_proxy, upgrade, upgrade_route, UpgradeRoute};
pub(crate) use read::{matching, selectors};
pub use services::DEFAULT_NODE_PORT_RANGE;

/// What a resource request addresses, resolved.
pub(crate) struct Ctx {
    pub r: Arc<Resource>,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The field manager of this write: `fieldManager`, else the User-Agent's product
    /// ([`crate::ssa::manager_from_user_agent`]; empty when there is no User-Agent, and
    /// still recorded, as kube-apiserver does). `None` for the server's own writes
    /// (bootstrap objects, bindings), whose ownership is not recorded.
    pub manager: Option<String>,
}

impl Ctx {
    pub fn key(&self, name: &str) -> ObjectKey {
        ObjectKey {
            group: self.r.storage_group.clone(),
            resource: self.r.plural.clone(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: name.to_string(),
        }
    }

    /// The object as served at the request's version.
    pub fn present(&self, obj: Value) -> Value {
        let mut obj = crate::conversion::from_storage(&self.r, obj);
        crate::crd::defaults::apply(&self.r, &self.version, &mut obj);
        if let Some(o) = obj.as_object_mut() {
            o.insert(
                "apiVersion".into(),
                Value::String(self.r.api_version(&self.version)),
            );
            o.insert("kind".into(), Value::String(self.r.kind.clone()));
        }
        obj
    }

    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.r.group, &self.r.plural, name)
    }
}

/// Whether `dryRun=All` was asked for.
pub(crate) fn dry_run(call: &Call) -> ApiResult<bool> {
    match call.query.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value: {other:?}: supported values: \"All\""
        ))),
    }
}

/// Handles a request for a resource path.
pub async fn handle(api: &Arc<Api>, call: &Call, path: ResourcePath) -> ApiResult<Reply> {
    if let Some(what) = crate::kinds::create_only(&path.group, &path.version, &path.resource) {
        if path.name.is_some() || path.namespace.is_some() != what.namespaced {
            return Err(ApiError::no_route());
        }
        return pods::create_only(api, call, path.namespace, what).await;
    }
    let table = api.registry.snapshot();
    let Some(r) = table
        .get(&path.group, &path.version, &path.resource)
        .cloned()
    else {
        return Err(ApiError::no_route());
    };
    if path.namespace.is_some() && !r.namespaced {
        return Err(ApiError::no_route());
    }
    let ctx = Ctx {
        r,
        version: path.version,
        namespace: path.namespace,
        name: path.name,
        subresource: path.subresource,
        manager: Some(match call.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => crate::ssa::manager_from_user_agent(call.header("user-agent")),
        }),
    };
    let extra = ctx.subresource.as_deref().and_then(|s| {
        let subs = ctx.r.strategy().subresources();
        subs.iter().find(|x| x.name == s).map(|x| x.extra)
    });
    if let (Some(extra), Some(_)) = (extra, &ctx.name) {
        return pods::subresource(api, call, &ctx, extra).await;
    }
    match ctx.subresource.as_deref() {
        None => {}
        Some("status") if ctx.r.status => {}
        Some("scale") if ctx.r.scale.is_some() => return scale::handle(api, call, &ctx).await,
        Some("finalize") if ctx.r.strategy().rest() == Rest::Namespace => {}
        Some(_) => return Err(ApiError::no_route()),
    }
    match (&call.method, ctx.name.is_some()) {
        (&Method::GET, true) => read::get(api, call, &ctx),
        (&Method::GET, false) if call.query.flag("watch") => crate::watch::start(api, call, &ctx),
        (&Method::GET, false) => read::list(api, call, &ctx),
        (&Method::POST, false) => write::create(api, call, &ctx).await,
        (&Method::PUT, true) => write::update(api, call, &ctx).await,
        (&Method::PATCH, true) => write::patch(api, call, &ctx).await,
        (&Method::DELETE, true) => delete::delete(api, call, &ctx).await,
        (&Method::DELETE, false) => delete::delete_collection(api, call, &ctx).await,
        (m, _) => Err(ApiError::method_not_allowed(m.as_str(), &ctx.r.qualified())),
    }
}

/// How bootstrap treats an object that already exists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Leave it as the user left it.
    Keep,
    /// Bring its `spec` and annotations back to the embedded definition (spinlet's own
    /// CRDs, so an upgrade serves the new schema).
    Update,
    /// Bring every field but `metadata` (labels included) back to the given object (the
    /// `kubernetes` Service's Endpoints, which follow the server's address).
    Content,
}

/// Creates an object through the normal create path unless one of that name exists, in
/// which case `existing` decides (used at bootstrap).
pub async fn ensure(
    api: &Arc<Api>,
    (group, version, plural): (&str, &str, &str),
    namespace: Option<&str>,
    obj: Value,
    existing: Existing,
) -> ApiResult<()> {
    let table = api.registry.snapshot();
    let r = table
        .get(group, version, plural)
        .cloned()
        .ok_or_else(ApiError::no_route)?;
    let ctx = Ctx {
        r,
        version: version.into(),
        namespace: namespace.map(str::to_string),
        name: None,
        subresource: None,
        manager: None,
    };
    let name = crate::object::name_of(&obj).to_string();
    if let Some(cur) = api.store.get(&ctx.key(&name))? {
        let same = |p: &str| cur.pointer(p) == obj.pointer(p);
        let unchanged = match existing {
            Existing::Keep => true,
            Existing::Update => same("/spec") && same("/metadata/annotations"),
            Existing::Content => {
                let content = |o: &Value| {
                    let mut o = o.clone();
                    if let Some(m) = o.as_object_mut() {
                        m.retain(|k, _| !matches!(k.as_str(), "metadata" | "apiVersion" | "kind"));
                    }
                    o
                };
                content(&cur) == content(&obj) && same("/metadata/labels")
            }
        };
        if unchanged {
            return Ok(());
        }
        let ctx = Ctx {
            name: Some(name.clone()),
            ..ctx
        };
        write::guaranteed_update(api, &ctx, &name, |cur| {
            let mut next = cur.clone();
            if existing == Existing::Content {
                let mut content = obj.clone();
                content["metadata"] = cur["metadata"].clone();
                content["metadata"]["labels"] = obj
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(Value::Null);
                return Ok(crate::store::Mutation::Put(content));
            }
            next["spec"] = obj.get("spec").cloned().unwrap_or(Value::Null);
            next["metadata"]["annotations"] = obj
                .pointer("/metadata/annotations")
                .cloned()
                .unwrap_or(Value::Null);
            if ctx.r.strategy().rest() == Rest::CustomResourceDefinition {
                crate::crd::resource_from_crd(&next)?;
                crate::crd::establish(&mut next);
            }
            Ok(crate::store::Mutation::Put(next))
        })
        .await?;
        return Ok(());
    }
    let (obj, _) =
        crate::decode::decode(&ctx.r, version, obj, crate::decode::FieldValidation::Strict)?;
    match write::create_object(api, &ctx, obj, false, true).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

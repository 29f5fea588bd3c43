//! Pod subresources beyond `status` (`eviction` has its own module): `binding` (and the
//! legacy `bindings` resource), which assigns a pending pod to a node in one write as kube-apiserver's `BindingREST` does,
//! and `exec` / `attach`, which a pod running a Spin app cannot serve (there is no process
//! to run a command in or attach to), answered with a 400 that says so. `log` and
//! `portforward` (and the nodes' `proxy`) are relayed to the kubelet by `proxy`.

use std::sync::Arc;

use http::Method;
use serde_json::{json, Map, Value};

use super::write::{body_of, guaranteed_update};
use super::{dry_run, Ctx};
use crate::api::{Api, Call, Reply};
use crate::error::{ApiError, ApiResult, Cause};
use crate::kinds::{CreateOnly, Extra};
use crate::object;
use crate::store::Mutation;

/// A request to an extra subresource of a named pod.
pub(super) async fn subresource(
    api: &Arc<Api>,
    call: &Call,
    ctx: &Ctx,
    extra: Extra,
) -> ApiResult<Reply> {
    let name = ctx.name.clone().unwrap_or_default();
    match extra {
        Extra::Binding => {
            if call.method != Method::POST {
                return Err(ApiError::method_not_allowed(
                    call.method.as_str(),
                    "pods/binding",
                ));
            }
            bind(api, call, ctx, Some(&name)).await
        }
        Extra::Log => {
            if call.method != Method::GET {
                return Err(ApiError::method_not_allowed(
                    call.method.as_str(),
                    "pods/log",
                ));
            }
            super::proxy::pod_log(api, call, ctx, &name).await
        }
        Extra::NodeProxy => super::proxy::node_proxy(api, call, &name, "/").await,
        Extra::PortForward => super::proxy::port_forward(api, call, ctx, &name).await,
        Extra::Eviction => super::eviction::evict(api, call, ctx, &name).await,
        Extra::Exec | Extra::Attach => {
            if !matches!(call.method, Method::GET | Method::POST) {
                return Err(ApiError::method_not_allowed(
                    call.method.as_str(),
                    &format!(
                        "pods/{}",
                        if extra == Extra::Exec {
                            "exec"
                        } else {
                            "attach"
                        }
                    ),
                ));
            }
            if api.store.get(&ctx.key(&name))?.is_none() {
                return Err(ctx.not_found(&name));
            }
            let what = if extra == Extra::Exec {
                "it has no process to run a command in"
            } else {
                "it has no process to attach to"
            };
            Err(ApiError::bad_request(format!(
                "pod {name} runs a Spin app in wasmtime: {what}"
            )))
        }
    }
}

/// A request to a create-only resource (`POST …/namespaces/{ns}/bindings`).
pub(super) async fn create_only(
    api: &Arc<Api>,
    call: &Call,
    namespace: Option<String>,
    what: &CreateOnly,
) -> ApiResult<Reply> {
    if call.method != Method::POST {
        return Err(ApiError::method_not_allowed(
            call.method.as_str(),
            what.plural,
        ));
    }
    let table = api.registry.snapshot();
    let pods = table
        .get("", "v1", "pods")
        .cloned()
        .ok_or_else(|| ApiError::internal("pods are not registered"))?;
    let ctx = Ctx {
        r: pods,
        version: "v1".into(),
        namespace,
        name: None,
        subresource: Some("binding".into()),
        manager: None,
    };
    match what.extra {
        Extra::Binding => bind(api, call, &ctx, None).await,
        Extra::Exec
        | Extra::Attach
        | Extra::Log
        | Extra::NodeProxy
        | Extra::PortForward
        | Extra::Eviction => Err(ApiError::no_route()),
    }
}

/// What a `Binding` body asks for.
struct Binding {
    name: String,
    uid: Option<String>,
    resource_version: Option<String>,
    annotations: Map<String, Value>,
    node: String,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> ApiResult<Option<&'a str>> {
    match v.pointer(ptr) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::bad_request(format!(
            "Binding in version \"v1\" cannot be handled as a Binding: {}: expected a string, got {other}",
            ptr.trim_start_matches('/').replace('/', ".")
        ))),
    }
}

/// Reads and validates a `Binding` body (`ValidatePodBinding`): target kind `Node` (or
/// empty) and a target name.
fn parse_binding(call: &Call, namespace: Option<&str>) -> ApiResult<Binding> {
    let body = body_of(call)?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    let kind = str_at(&body, "/kind")?.unwrap_or("Binding");
    let api_version = str_at(&body, "/apiVersion")?.unwrap_or("v1");
    if api_version != "v1" {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version (v1)"
        )));
    }
    if kind != "Binding" {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind (Binding)"
        )));
    }
    if let (Some(body_ns), Some(ns)) = (str_at(&body, "/metadata/namespace")?, namespace) {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let annotations = match body.pointer("/metadata/annotations") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "Binding in version \"v1\" cannot be handled as a Binding: metadata.annotations: expected a map of strings",
            ));
        }
    };
    let name = str_at(&body, "/metadata/name")?.unwrap_or("").to_string();
    let target_kind = str_at(&body, "/target/kind")?.unwrap_or("");
    let node = str_at(&body, "/target/name")?.unwrap_or("").to_string();
    let mut causes = Vec::new();
    if !target_kind.is_empty() && target_kind != "Node" {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {target_kind:?}: supported values: \"Node\", \"<empty>\""
            ),
            field: "target.kind".into(),
        });
    }
    if node.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value".into(),
            field: "target.name".into(),
        });
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("", "Binding", &name, causes));
    }
    Ok(Binding {
        name,
        uid: str_at(&body, "/metadata/uid")?
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        resource_version: str_at(&body, "/metadata/resourceVersion")?
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        annotations,
        node,
    })
}

/// Binds a pod: `url_name` is the pod named in the path (`pods/{name}/binding`), `None`
/// for the legacy `bindings` resource, where the body names the pod.
async fn bind(api: &Arc<Api>, call: &Call, ctx: &Ctx, url_name: Option<&str>) -> ApiResult<Reply> {
    let b = parse_binding(call, ctx.namespace.as_deref())?;
    let name = match url_name {
        Some(n) if n != b.name => {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Binding object",
            ));
        }
        Some(n) => n.to_string(),
        None if b.name.is_empty() => return Err(ApiError::bad_request("Name parameter required.")),
        None => b.name.clone(),
    };
    if dry_run(call)? {
        let cur = api
            .store
            .get(&ctx.key(&name))?
            .ok_or_else(|| ctx.not_found(&name))?;
        assign(&cur, &b)?;
    } else {
        guaranteed_update(api, ctx, &name, |cur| assign(&cur, &b).map(Mutation::Put)).await?;
    }
    Ok(Reply::json(
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// The pod bound to the binding's node (`setPodNodeAndMetadata`): preconditions, then 409
/// if it is being deleted, already assigned or still gated; else `spec.nodeName`, the
/// binding's annotations and `PodScheduled=True`.
fn assign(pod: &Value, b: &Binding) -> ApiResult<Value> {
    let name = object::name_of(pod).to_string();
    let conflict = |plural: &str, why: String| {
        ApiError::conflict_msg(
            "",
            plural,
            &name,
            format!("Operation cannot be fulfilled on {plural} \"{name}\": {why}"),
        )
    };
    if let Some(uid) = b.uid.as_deref().filter(|u| *u != object::uid_of(pod)) {
        return Err(conflict(
            "pods",
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                object::uid_of(pod)
            ),
        ));
    }
    if let Some(rv) = b
        .resource_version
        .as_deref()
        .filter(|rv| *rv != object::rv_of(pod))
    {
        return Err(conflict(
            "pods",
            format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                object::rv_of(pod)
            ),
        ));
    }
    if object::is_deleting(pod) {
        return Err(conflict(
            "pods/binding",
            format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !node.is_empty() {
        return Err(conflict(
            "pods/binding",
            format!("pod {name} is already assigned to node {node:?}"),
        ));
    }
    let gated = pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    if gated {
        return Err(conflict(
            "pods/binding",
            format!("pod {name} has non-empty .spec.schedulingGates"),
        ));
    }
    let mut next = pod.clone();
    let Some(root) = next.as_object_mut() else {
        return Err(ApiError::internal("stored pod is not an object"));
    };
    object_at(root, "spec")?.insert("nodeName".into(), json!(b.node));
    if !b.annotations.is_empty() {
        let ann = object_at(object_at(root, "metadata")?, "annotations")?;
        for (k, v) in &b.annotations {
            ann.insert(k.clone(), v.clone());
        }
    }
    set_scheduled(object_at(root, "status")?);
    Ok(next)
}

/// The object under `key`, made one if absent or not an object.
fn object_at<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> ApiResult<&'a mut Map<String, Value>> {
    let slot = m.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut()
        .ok_or_else(|| ApiError::internal("pod field is not an object"))
}

/// `UpdatePodCondition(PodScheduled=True)`: the condition replaced (its transition time
/// kept when it was already True) or added.
fn set_scheduled(status: &mut Map<String, Value>) {
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    let existing = list
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"));
    let since = existing
        .and_then(|i| list.get(i))
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(object::now()));
    let cond = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": since,
    });
    match existing.and_then(|i| list.get_mut(i)) {
        Some(slot) => *slot = cond,
        None => list.push(cond),
    }
}

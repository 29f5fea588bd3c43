//! API discovery, both forms kubectl and kube-rs use: aggregated
//! (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, chosen by the `Accept` header) and
//! legacy (`APIVersions`, `APIGroupList`, `APIResourceList`).
//!
//! Everything is derived from a registry snapshot; nothing is cached or stored.

use serde_json::{json, Value};

use crate::registry::{Resource, Table};

/// The content type of aggregated discovery.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// The v2beta1 content type, still requested by some clients.
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated version the `Accept` header asks for, if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    let a = accept.replace(' ', "");
    if a.contains("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") {
        Some("v2")
    } else if a.contains("g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") {
        Some("v2beta1")
    } else {
        None
    }
}

fn response_kind(r: &Resource, version: &str) -> Value {
    json!({"group": r.group, "version": version, "kind": r.kind})
}

fn aggregated_resource(r: &Resource, version: &str) -> Value {
    let mut subs = Vec::new();
    if r.status {
        subs.push(json!({
            "subresource": "status",
            "responseKind": response_kind(r, version),
            "verbs": ["get", "patch", "update"],
        }));
    }
    if r.scale.is_some() {
        subs.push(json!({
            "subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"],
        }));
    }
    for extra in r.strategy().subresources() {
        subs.push(json!({
            "subresource": extra.name,
            "responseKind": {"group": extra.group_version.0, "version": extra.group_version.1, "kind": extra.kind},
            "verbs": extra.verbs,
        }));
    }
    let mut v = json!({
        "resource": r.plural,
        "responseKind": response_kind(r, version),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        v["subresources"] = Value::Array(subs);
    }
    v
}

/// The create-only resources of a group version (the legacy `bindings`).
fn create_only<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static crate::kinds::CreateOnly> + 'a {
    crate::kinds::CREATE_ONLY
        .iter()
        .filter(move |c| c.group == group && c.version == version)
}

/// The aggregated list for `/api` (core only) or `/apis` (every other group).
pub fn aggregated(table: &Table, core: bool, version: &str) -> Value {
    let items: Vec<Value> = table
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let mut resources: Vec<Value> = table
                        .all()
                        .filter(|r| r.group == g && r.serves(v))
                        .map(|r| aggregated_resource(r, v))
                        .collect();
                    resources.extend(
                        create_only(&g, v).map(|c| json!({
                            "resource": c.plural,
                            "responseKind": {"group": c.group, "version": c.version, "kind": c.kind},
                            "scope": if c.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": c.plural.trim_end_matches('s'),
                            "verbs": ["create"],
                        })),
                    );
                    resources.sort_by(|a, b| a["resource"].as_str().cmp(&b["resource"].as_str()));
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// `/api` in legacy form.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_entry(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({
        "name": g,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis` in legacy form.
pub fn group_list(table: &Table) -> Value {
    let groups: Vec<Value> = table
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(&g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if served.
pub fn group(table: &Table, name: &str) -> Option<Value> {
    table
        .groups()
        .into_iter()
        .find(|(g, _)| g == name && !g.is_empty())
        .map(|(g, vs)| {
            let mut e = group_entry(&g, &vs);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            e
        })
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn resource_list(table: &Table, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in table
        .all()
        .filter(|r| r.group == group && r.serves(version))
    {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if r.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        for extra in r.strategy().subresources() {
            resources.push(json!({
                "name": format!("{}/{}", r.plural, extra.name), "singularName": "", "namespaced": r.namespaced,
                "kind": extra.kind, "verbs": extra.verbs,
            }));
            if !extra.group_version.0.is_empty() {
                if let Some(last) = resources.last_mut() {
                    last["group"] = json!(extra.group_version.0);
                    last["version"] = json!(extra.group_version.1);
                }
            }
        }
    }
    for c in create_only(group, version) {
        resources.push(json!({
            "name": c.plural, "singularName": c.plural.trim_end_matches('s'), "namespaced": c.namespaced,
            "kind": c.kind, "verbs": ["create"],
        }));
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

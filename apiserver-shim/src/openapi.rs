//! OpenAPI v3 documents, one per group-version, as kube-apiserver publishes them: the
//! index at `/openapi/v3`, and per group-version a document with, for every resource,
//! its collection paths (list — with `watch=true` the watch —, create, deletecollection;
//! for a namespaced kind also the list across namespaces), its object path (read,
//! replace, patch, delete) and its `status` subresource, every path parameter
//! (`{namespace}`, `{name}`) declared, the query parameters each verb takes, request
//! bodies, and `components.schemas` for `kubectl explain`. Custom resources use their
//! CRD's `openAPIV3Schema`; built-in kinds use the schemas `k8s-openapi` carries (with
//! their field documentation), generated once per kind and cached.
//!
//! PATCH operations list the patch content types the server takes: for built-in kinds
//! strategic merge patch among them, and their schemas carry the list properties'
//! `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key` ([`patch_meta`]), so
//! kubectl computes strategic merge patches from the document as against kube-apiserver;
//! custom resources take JSON patch, merge patch and apply, as upstream. Each operation
//! carries `x-kubernetes-group-version-kind` and `x-kubernetes-action`, and writes the
//! `fieldValidation` parameter (so kubectl validates on the server).
//!
//! Owns the documents' shape; it reads the registry and never the store. The legacy
//! `/watch/` path prefix is not served, so it is not published.

mod patch_meta;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Map, Value};

use crate::registry::{Resource, Table};
/// A built-in kind's schema: its component name and every definition it references.
type KindSchemas = Arc<(String, Map<String, Value>)>;

struct SchemaOf;

impl crate::typed::Visitor for SchemaOf {
    type Out = KindSchemas;
    fn visit<T: serde::de::DeserializeOwned + serde::Serialize + schemars::JsonSchema>(
        self,
    ) -> KindSchemas {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let _ = generator.subschema_for::<T>();
        Arc::new((
            T::schema_name().into_owned(),
            generator.take_definitions(true),
        ))
    }
}

fn builtin_schemas(r: &Resource) -> Option<KindSchemas> {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), KindSchemas>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (r.kind.clone(), r.group.clone());
    if let Some(s) = cache.lock().ok()?.get(&key) {
        return Some(s.clone());
    }
    let s = crate::typed::with_type(&r.kind, &r.group, SchemaOf)?;
    cache.lock().ok()?.insert(key, s.clone());
    Some(s)
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The apimachinery schemas every document refers to: `ListMeta`, `DeleteOptions`,
/// `Status` (from k8s-openapi), `Patch` and `WatchEvent` (as upstream publishes them).
fn meta_schemas() -> Map<String, Value> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let _ = generator.subschema_for::<meta::ListMeta>();
    let _ = generator.subschema_for::<meta::DeleteOptions>();
    let _ = generator.subschema_for::<meta::Status>();
    let mut out = generator.take_definitions(true);
    out.insert(
        format!("{META}.Patch"),
        json!({"type": "object",
               "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    out.insert(
        format!("{META}.WatchEvent"),
        json!({"type": "object", "required": ["type", "object"],
               "description": "Event represents a single event to a watched resource.",
               "properties": {
                   "type": {"type": "string"},
                   "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                              "description": "Object is the new state of the object (for ADDED and MODIFIED), the state before deletion (DELETED), a Status (ERROR), or an object carrying only the resourceVersion (BOOKMARK)."},
               }}),
    );
    out
}

/// A query parameter.
fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
           "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: String) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`: the stream then starts with synthetic events of the current state.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.",
        ),
    ];
    if patch {
        p.push(query(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests.",
        ));
    }
    p
}

fn delete_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed.",
        ),
    ]
}

/// The content types a PATCH takes.
fn patch_content(r: &Resource) -> Map<String, Value> {
    let mut types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if !r.custom {
        types.push("application/strategic-merge-patch+json");
    }
    types.push("application/apply-patch+yaml");
    types
        .into_iter()
        .map(|t| {
            (
                t.to_string(),
                json!({"schema": schema_ref(&format!("{META}.Patch"))}),
            )
        })
        .collect()
}

/// `CoreV1`, `AppsV1`, `NetworkingV1`, `ComSpinkubeCoreV1alpha1`: the group-version part of
/// operation ids.
fn id_part(group: &str, version: &str) -> String {
    let group = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut parts: Vec<&str> = group.split(['.', '-']).filter(|p| !p.is_empty()).collect();
    if group.is_empty() {
        parts.push("core");
    } else if group.contains('.') {
        parts.reverse();
    }
    parts.push(version);
    parts
        .iter()
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// The paths of one resource at one version.
fn resource_paths(r: &Resource, version: &str, schema_name: &str, paths: &mut Map<String, Value>) {
    let gvk = json!({"group": r.group, "version": version, "kind": r.kind});
    let base = format!("/{}", gv_path(&r.group, version));
    let gv = id_part(&r.group, version);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let list_name = format!("{schema_name}List");
    let object = schema_ref(schema_name);
    let json_of = |schema: Value| json!({"application/json": {"schema": schema}});
    let op = |id: String, action: &str, params: Vec<Value>, responses: Value| {
        json!({
            "operationId": id,
            "tags": [gv_path(&r.group, version).replace('/', "_")],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": responses,
        })
    };
    let ok = |schema: Value| json!({"200": {"description": "OK", "content": json_of(schema)}});
    let with_created = |schema: Value| {
        json!({"200": {"description": "OK", "content": json_of(schema.clone())},
               "201": {"description": "Created", "content": json_of(schema)}})
    };
    let status = schema_ref(&format!("{META}.Status"));
    let ns_param = || {
        path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects".into(),
        )
    };
    let name_param = || path_param("name", format!("name of the {}", r.kind));
    let kind = &r.kind;

    // The collection.
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let mut list = op(
        format!("list{gv}{scope}{kind}"),
        "list",
        list_params(),
        ok(schema_ref(&list_name)),
    );
    list["responses"]["200"]["content"]["application/json;stream=watch"] =
        json!({"schema": schema_ref(&format!("{META}.WatchEvent"))});
    let mut create = op(
        format!("create{gv}{scope}{kind}"),
        "post",
        write_params(false),
        json!({"200": {"description": "OK", "content": json_of(object.clone())},
               "201": {"description": "Created", "content": json_of(object.clone())},
               "202": {"description": "Accepted", "content": json_of(object.clone())}}),
    );
    create["requestBody"] =
        json!({"required": true, "content": {"*/*": {"schema": object.clone()}}});
    let mut delete_many = op(
        format!("deletecollection{gv}{scope}{kind}"),
        "deletecollection",
        [delete_params(), list_params()].concat(),
        ok(status.clone()),
    );
    delete_many["requestBody"] =
        json!({"content": {"*/*": {"schema": schema_ref(&format!("{META}.DeleteOptions"))}}});
    let mut item = json!({"get": list, "post": create, "delete": delete_many});
    if r.namespaced {
        item["parameters"] = json!([ns_param()]);
    }
    paths.insert(collection.clone(), item);

    // Every namespace at once.
    if r.namespaced {
        let mut all = op(
            format!("list{gv}{kind}ForAllNamespaces"),
            "list",
            list_params(),
            ok(schema_ref(&list_name)),
        );
        all["responses"]["200"]["content"]["application/json;stream=watch"] =
            json!({"schema": schema_ref(&format!("{META}.WatchEvent"))});
        paths.insert(format!("{base}/{}", r.plural), json!({"get": all}));
    }

    // The object, and its status.
    let mut subresources = vec![("", "")];
    if r.status {
        subresources.push(("/status", "Status"));
    }
    for (suffix, id_suffix) in subresources {
        let mut get = op(
            format!("read{gv}{scope}{kind}{id_suffix}"),
            "get",
            vec![],
            ok(object.clone()),
        );
        if suffix.is_empty() {
            get["parameters"] = json!([query(
                "resourceVersion",
                "string",
                "resourceVersion sets a constraint on what resource versions a request may be served from."
            )]);
        }
        let mut put = op(
            format!("replace{gv}{scope}{kind}{id_suffix}"),
            "put",
            write_params(false),
            with_created(object.clone()),
        );
        put["requestBody"] =
            json!({"required": true, "content": {"*/*": {"schema": object.clone()}}});
        let mut patch = op(
            format!("patch{gv}{scope}{kind}{id_suffix}"),
            "patch",
            write_params(true),
            with_created(object.clone()),
        );
        patch["requestBody"] = json!({"required": true, "content": patch_content(r)});
        let mut ops = json!({"get": get, "put": put, "patch": patch});
        if suffix.is_empty() {
            let mut delete = op(
                format!("delete{gv}{scope}{kind}"),
                "delete",
                delete_params(),
                json!({"200": {"description": "OK", "content": json_of(status.clone())},
                       "202": {"description": "Accepted", "content": json_of(status.clone())}}),
            );
            delete["requestBody"] = json!({"content": {"*/*": {"schema": schema_ref(&format!("{META}.DeleteOptions"))}}});
            ops["delete"] = delete;
        }
        let mut params = vec![name_param()];
        if r.namespaced {
            params.push(ns_param());
        }
        ops["parameters"] = Value::Array(params);
        paths.insert(format!("{collection}/{{name}}{suffix}"), ops);
    }
}

/// The list schema of a kind (`…DeploymentList`).
fn list_schema(r: &Resource, version: &str, schema_name: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}.", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
            "metadata": {"allOf": [schema_ref(&format!("{META}.ListMeta"))], "description": "Standard list metadata."},
            "items": {"type": "array", "items": schema_ref(schema_name), "description": format!("List of {}.", r.plural)},
        },
        "x-kubernetes-group-version-kind": [{"group": r.group, "version": version, "kind": format!("{}List", r.kind)}],
    })
}

/// The document for one group-version, if served.
pub fn document(table: &Table, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&std::sync::Arc<Resource>> = table
        .all()
        .filter(|r| r.group == group && r.serves(version))
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = meta_schemas();
    for r in resources {
        let gvk = json!({"group": r.group, "version": version, "kind": r.kind});
        let builtin = if r.custom { None } else { builtin_schemas(r) };
        let schema_name = match &builtin {
            Some(b) => b.0.clone(),
            None => format!("{}.{}.{}", r.group, version, r.kind),
        };
        if let Some(b) = &builtin {
            for (k, v) in &b.1 {
                schemas.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        resource_paths(r, version, &schema_name, &mut paths);
        let mut schema = match schemas.remove(&schema_name) {
            Some(s) => s,
            None => r
                .schemas
                .get(version)
                .cloned()
                .unwrap_or_else(|| builtin_schema(r)),
        };
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name.clone(), schema);
        schemas.insert(
            format!("{schema_name}List"),
            list_schema(r, version, &schema_name),
        );
        if builtin.is_some() {
            patch_meta::annotate(
                &mut schemas,
                &schema_name,
                &r.kind,
                r.strategy().merge_schema(),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn builtin_schema(r: &Resource) -> Value {
    json!({
        "description": format!("{} is a {} object served by spinlet.", r.kind, r.api_version(&r.versions[0])),
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
            "metadata": {"type": "object", "description": "Standard object's metadata."},
        },
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The index of documents, each URL carrying a hash of its content.
pub fn index(table: &Table) -> Value {
    let mut paths = Map::new();
    for (g, versions) in table.groups() {
        for v in versions {
            let p = gv_path(&g, &v);
            let hash = document(table, &g, &v)
                .map(|d| {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    d.to_string().hash(&mut h);
                    format!("{:016X}", h.finish())
                })
                .unwrap_or_default();
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

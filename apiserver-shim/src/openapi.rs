//! OpenAPI v3 documents, one per group-version, as kubectl reads them: the index at
//! `/openapi/v3`, and per group-version a document whose PATCH operations carry the
//! object's `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter
//! (so kubectl validates on the server with `fieldValidation=Strict`), plus
//! `components.schemas` for `kubectl explain`. Custom resources use their CRD's
//! `openAPIV3Schema`; built-in kinds use the schemas `k8s-openapi` carries (with their
//! field documentation), generated once per kind and cached.
//!
//! PATCH operations carry no `requestBody`, so kubectl falls back to its compiled-in patch
//! types: strategic merge for built-ins, JSON merge for custom resources.

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
    let mut schemas = Map::new();
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
        let base = format!("/{}", gv_path(group, version));
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true},
                     "description": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                ],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}}},
            })
        };
        paths.insert(
            item,
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        let mut schema = match schemas.remove(&schema_name) {
            Some(s) => s,
            None => r
                .schemas
                .get(version)
                .cloned()
                .unwrap_or_else(|| builtin_schema(r)),
        };
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name, schema);
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

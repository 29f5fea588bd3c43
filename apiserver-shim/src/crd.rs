//! CustomResourceDefinitions: turning a CRD into a served [`Resource`] (one storage for
//! CRDs of two groups when one names the other in [`STORAGE_GROUP_ANNOTATION`]) and
//! marking it Established. Which CRDs exist from the first start is the embedder's choice
//! (`ApiOptions::crds`; `spinlet server` passes SpinApp and SpinAppExecutor from
//! `spinlet-types`).
//!
//! Only the translation lives here, and the defaulting of custom resources by their
//! schema ([`defaults`]); storing CRDs and their custom resources is the handlers' job,
//! through the store like any other object.

pub mod defaults;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::{Resource, ScalePaths};

/// Annotation on a CRD naming another group whose objects it serves (same kind, same
/// plural): objects are stored once and presented under either group.
pub const STORAGE_GROUP_ANNOTATION: &str = "spinlet.dev/storage-group";

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A CRD object's `spec.group` and `spec.names.plural` ("" when absent).
pub fn group_and_plural(crd: &Value) -> (&str, &str) {
    (s(crd, "/spec/group"), s(crd, "/spec/names/plural"))
}

/// Validates a CRD and builds the resource it serves.
pub fn resource_from_crd(crd: &Value) -> ApiResult<Resource> {
    let name = s(crd, "/metadata/name");
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    let scope = s(crd, "/spec/scope");
    let mut causes = Vec::new();
    let mut req = |field: &str, value: &str| {
        if value.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired",
                message: "Required value".into(),
                field: field.into(),
            });
        }
    };
    req("spec.group", group);
    req("spec.names.plural", plural);
    req("spec.names.kind", kind);
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            field: "metadata.name".into(),
        });
    }
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""
            ),
            field: "spec.scope".into(),
        });
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: must have exactly one version marked as storage version"
                .into(),
            field: "spec.versions".into(),
        });
    }
    if versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count()
        != 1
        && !versions.is_empty()
    {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: "Invalid value: must have exactly one version marked as storage version"
                .into(),
            field: "spec.versions".into(),
        });
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            causes,
        ));
    }
    let mut served = Vec::new();
    let mut schemas = BTreeMap::new();
    let mut printer_columns = BTreeMap::new();
    let mut status = false;
    let mut scale = None;
    // Storage version first: it is the preferred one.
    let mut ordered = versions.clone();
    ordered.sort_by_key(|v| v.get("storage").and_then(Value::as_bool) != Some(true));
    for v in &ordered {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let vname = s(v, "/name").to_string();
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            schemas.insert(vname.clone(), schema.clone());
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            printer_columns.insert(vname.clone(), cols.clone());
        }
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        if let Some(sc) = v.pointer("/subresources/scale") {
            scale = Some(ScalePaths {
                spec_replicas: s(sc, "/specReplicasPath").to_string(),
                status_replicas: s(sc, "/statusReplicasPath").to_string(),
                label_selector: sc
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        served.push(vname);
    }
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_ascii_lowercase(),
        x => x.to_string(),
    };
    let storage_group = crd
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(STORAGE_GROUP_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or(group)
        .to_string();
    Ok(Resource {
        group: group.into(),
        storage_group,
        versions: served,
        kind: kind.into(),
        plural: plural.into(),
        singular,
        namespaced: scope == "Namespaced",
        short_names: strings(crd, "/spec/names/shortNames"),
        categories: strings(crd, "/spec/names/categories"),
        status,
        scale,
        schemas,
        printer_columns,
        custom: true,
    })
}

/// Sets the CRD's status as an accepted, established definition.
pub fn establish(crd: &mut Value) {
    let now = crate::object::now();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    if let Some(o) = crd.as_object_mut() {
        o.insert(
            "status".into(),
            json!({
                "acceptedNames": names,
                "storedVersions": stored,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_crds_translate() {
        let crds = spinlet_types::crds();
        assert_eq!(crds.len(), 4);
        for c in &crds {
            let r = resource_from_crd(c).expect("valid");
            assert!(r.namespaced && r.status);
            assert_eq!(r.versions, vec!["v1alpha1".to_string()]);
            assert_eq!(r.storage_group, "core.spinkube.dev");
        }
        let app = resource_from_crd(&crds[0]).expect("valid");
        assert_eq!(app.kind, "SpinApp");
        assert_eq!(app.group, "core.spinoperator.dev");
        assert!(app.scale.is_some());
        assert_eq!(
            spinlet_types::crds::STORAGE_GROUP_ANNOTATION,
            STORAGE_GROUP_ANNOTATION
        );
    }
}

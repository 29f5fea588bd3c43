//! The CustomResourceDefinitions of SpinApp and SpinAppExecutor, under both API groups,
//! as `spinlet server` installs them (`crds/*.yaml`, `GROUP` substituted).
//!
//! The `core.spinoperator.dev` definitions carry [`STORAGE_GROUP_ANNOTATION`] naming
//! `core.spinkube.dev`: the API server then stores their objects once, under the current
//! group, and presents them under either. The tests below check that the YAML describes
//! the Rust types field for field.

use serde_json::{json, Value};

use crate::keys::{GROUP, GROUPS};

/// Annotation on a CRD naming the group whose storage it shares (read by the API server,
/// `apiserver_shim::crd::STORAGE_GROUP_ANNOTATION`).
pub const STORAGE_GROUP_ANNOTATION: &str = "spinlet.dev/storage-group";

const SPINAPP: &str = include_str!("../crds/spinapp.yaml");
const SPINAPPEXECUTOR: &str = include_str!("../crds/spinappexecutor.yaml");

/// The CRDs, SpinApp then SpinAppExecutor for `core.spinoperator.dev`, then the same for
/// `core.spinkube.dev`.
pub fn crds() -> Vec<Value> {
    let mut out = Vec::new();
    for group in GROUPS {
        for text in [SPINAPP, SPINAPPEXECUTOR] {
            match serde_yaml_ng::from_str::<Value>(&text.replace("GROUP", group)) {
                Ok(mut crd) => {
                    if group != GROUP {
                        crd["metadata"]["annotations"] = json!({ STORAGE_GROUP_ANNOTATION: GROUP });
                    }
                    out.push(crd)
                }
                // The YAML is embedded and parsed by the tests; this cannot happen in a
                // build that passed them.
                Err(e) => tracing::error!(error = %e, "an embedded CRD does not parse"),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use kube::CustomResourceExt;

    use super::*;

    /// Field paths of a structural schema (`spec.checks.liveness.httpGet.path`; list items
    /// as `[]`, map values as `{}`); descent stops at nodes that preserve unknown fields.
    fn paths(schema: &Value, at: &str, out: &mut BTreeSet<String>) {
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(p.clone());
                paths(v, &p, out);
            }
        }
        if let Some(items) = schema.get("items") {
            paths(items, &format!("{at}[]"), out);
        }
        if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            paths(values, &format!("{at}{{}}"), out);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for s in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                paths(s, at, out);
            }
        }
    }

    fn schema_of(crd: &Value) -> &Value {
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    }

    /// Paths of `from` (under `prefix`) whose parent is a described, non-opaque object in
    /// `to` but which `to` lacks.
    fn missing(from: &BTreeSet<String>, to: &BTreeSet<String>, prefix: &str) -> Vec<String> {
        from.iter()
            .filter(|p| p.starts_with(prefix))
            .filter(|p| !to.contains(*p))
            // A field below an opaque node of `to` (preserved unknown fields) is fine.
            .filter(|p| {
                let mut parent = p.as_str();
                loop {
                    match parent.rfind(['.', '[', '{']) {
                        Some(i) => parent = &parent[..i],
                        None => return true,
                    }
                    if to.contains(parent) {
                        // The parent is described; is it opaque in `to`? Then it has no
                        // described children at all.
                        let has_children = to
                            .iter()
                            .any(|q| q.len() > parent.len() && q.starts_with(parent));
                        return has_children;
                    }
                }
            })
            .cloned()
            .collect()
    }

    fn installed(kind: &str, group: &str) -> Value {
        crds()
            .into_iter()
            .find(|c| c["spec"]["names"]["kind"] == kind && c["spec"]["group"] == group)
            .unwrap_or_else(|| panic!("no {kind} CRD for {group}"))
    }

    fn check_describes(kind: &str, derived: &[Value], deep: &[&str]) {
        for group in GROUPS {
            let yaml = installed(kind, group);
            let derived = derived
                .iter()
                .find(|c| c["spec"]["group"] == group)
                .unwrap_or_else(|| panic!("no derived {kind} CRD for {group}"));
            let mut from_yaml = BTreeSet::new();
            paths(schema_of(&yaml), "", &mut from_yaml);
            let mut from_rust = BTreeSet::new();
            paths(schema_of(derived), "", &mut from_rust);
            // The walk reaches deep fields on both sides (it is not vacuous).
            for path in deep {
                assert!(from_yaml.contains(*path), "{kind}: {path} not in the CRD");
                assert!(from_rust.contains(*path), "{kind}: {path} not derived");
            }
            // Every field of the Rust types is in the installed schema...
            let lacking = missing(&from_rust, &from_yaml, "");
            assert!(
                lacking.is_empty(),
                "{kind} ({group}): fields of the Rust types missing from the CRD: {lacking:?}"
            );
            // ...and every spec and status field of the CRD is in the Rust types.
            for prefix in ["spec", "status"] {
                let lacking = missing(&from_yaml, &from_rust, prefix);
                assert!(
                    lacking.is_empty(),
                    "{kind} ({group}): CRD fields missing from the Rust types: {lacking:?}"
                );
            }
            // Same names, scope, subresources and printer columns.
            assert_eq!(
                yaml["spec"]["names"]["plural"],
                derived["spec"]["names"]["plural"]
            );
            assert_eq!(yaml["spec"]["scope"], derived["spec"]["scope"]);
            let v = |c: &Value, k: &str| c["spec"]["versions"][0][k].clone();
            assert_eq!(
                v(&yaml, "subresources"),
                v(derived, "subresources"),
                "{kind}"
            );
            let columns = |c: &Value| {
                v(c, "additionalPrinterColumns")
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|col| {
                        (
                            col["name"].clone(),
                            col["jsonPath"].clone(),
                            col["type"].clone(),
                            col.get("priority").cloned().unwrap_or(json!(0)),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(columns(&yaml), columns(derived), "{kind} printer columns");
        }
    }

    #[test]
    fn four_crds_two_groups_one_storage() {
        let all = crds();
        assert_eq!(all.len(), 4);
        for c in &all {
            let group = c["spec"]["group"].as_str().unwrap_or_default();
            let plural = c["spec"]["names"]["plural"].as_str().unwrap_or_default();
            assert_eq!(c["metadata"]["name"], format!("{plural}.{group}"));
            let annotation = &c["metadata"]["annotations"][STORAGE_GROUP_ANNOTATION];
            if group == GROUP {
                assert!(annotation.is_null());
            } else {
                assert_eq!(annotation, GROUP);
            }
        }
    }

    #[test]
    fn spinapp_crd_describes_the_rust_types() {
        check_describes(
            "SpinApp",
            &[
                serde_json::to_value(crate::SpinApp::crd()).expect("crd"),
                serde_json::to_value(crate::spinoperator::SpinApp::crd()).expect("crd"),
            ],
            &[
                "spec.checks.liveness.httpGet.httpHeaders[].value",
                "spec.runtimeConfig.keyValueStores[].options[].valueFrom.secretKeyRef.key",
                "spec.variables[].valueFrom",
                "status.conditions[].reason",
                "status.readyReplicas",
            ],
        );
    }

    #[test]
    fn executor_crd_describes_the_rust_types() {
        check_describes(
            "SpinAppExecutor",
            &[
                serde_json::to_value(crate::SpinAppExecutor::crd()).expect("crd"),
                serde_json::to_value(crate::spinoperator::SpinAppExecutor::crd()).expect("crd"),
            ],
            &[
                "spec.deploymentConfig.otel.exporter_otlp_logs_endpoint",
                "spec.deploymentConfig.installDefaultCACerts",
                "status.conditions[].type",
            ],
        );
    }

    #[test]
    fn docs_manifests_decode() {
        let simple: crate::spinoperator::SpinApp = serde_yaml_ng::from_str(
            "apiVersion: core.spinoperator.dev/v1alpha1\nkind: SpinApp\nmetadata: {name: simple-spinapp}\nspec: {image: x, replicas: 1, executor: containerd-shim-spin}",
        )
        .expect("simple.yaml");
        assert_eq!(simple.spec.replicas, Some(1));
        assert_eq!(simple.spec.executor, "containerd-shim-spin");
        let back = serde_json::to_value(&simple).expect("encode");
        assert_eq!(back["spec"]["image"], "x");
        assert_eq!(back["apiVersion"], "core.spinoperator.dev/v1alpha1");
    }
}

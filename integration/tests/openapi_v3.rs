//! End-to-end: the OpenAPI v3 documents are complete enough for kubectl and for OpenAPI
//! tools. `kubectl apply -v=5` of a Deployment computes its strategic merge patch from
//! the server's document (no "does not support strategic merge patch" fallback) and the
//! patch merges containers and env by name; every group-version document the index lists
//! (built-in kinds and the SpinApp CRDs) passes `openapi-spec-validator` (the PyPI
//! package, run as `python3 -m openapi_spec_validator` with the first of `python3` and
//! `/usr/bin/python3` that has it; `.ci/run` installs it; it reads only the file);
//! `kubectl explain` still reads them.
//!
//! Run `cargo build -p spinlet` first: the harness starts `target/<profile>/spinlet`.

mod common;

use std::process::Command;

use common::Server;
use serde_json::Value;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: registry.local/app:1
        env:
        - {name: A, value: "VALUE"}
        - {name: B, value: "b"}
"#;

fn apply_v5(server: &Server, manifest: &str) -> String {
    let out = server.kubectl_output(&["apply", "-f", "-", "-v=5"], Some(manifest));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kubectl apply failed: {stderr}");
    for fallback in [
        "does not support strategic merge patch",
        "OpenAPI V3 path does not exist",
        "error calculating patch from openapi v3",
    ] {
        assert!(!stderr.contains(fallback), "kubectl fell back: {stderr}");
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kubectl_apply_takes_the_patch_strategy_from_the_server() {
    let server = Server::start();
    let out = apply_v5(&server, &DEPLOYMENT.replace("VALUE", "1"));
    assert!(out.contains("created"), "{out}");
    // A change, and a switch to Recreate: kubectl's strategic merge patch (merge keys and
    // retainKeys from the document) must drop rollingUpdate and merge env by name.
    let changed = DEPLOYMENT.replace("VALUE", "2").replace(
        "type: RollingUpdate\n    rollingUpdate: {maxSurge: 1}",
        "type: Recreate",
    );
    let out = apply_v5(&server, &changed);
    assert!(out.contains("configured"), "{out}");
    let got: Value = serde_json::from_str(&server.kubectl(&["get", "deploy", "web", "-o", "json"]))
        .expect("deployment JSON");
    assert_eq!(
        got["spec"]["strategy"],
        serde_json::json!({"type": "Recreate"})
    );
    let containers = got["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0]["env"],
        serde_json::json!([{"name": "A", "value": "2"}, {"name": "B", "value": "b"}])
    );
    assert_eq!(got["metadata"]["generation"], 2);
    let out = apply_v5(&server, &changed);
    assert!(out.contains("unchanged"), "{out}");

    let explained = server.kubectl(&["explain", "deployment.spec.strategy"]);
    assert!(explained.contains("rollingUpdate"), "{explained}");
}

/// The first Python that has `openapi_spec_validator`.
fn python_with_validator() -> &'static str {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(python)
            .args(["-c", "import openapi_spec_validator"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!("no python3 with openapi-spec-validator: pip install openapi-spec-validator");
}

#[test]
fn every_document_passes_an_openapi_validator() {
    let python = python_with_validator();
    let server = Server::start();
    let index: Value = serde_json::from_str(&server.kubectl(&["get", "--raw", "/openapi/v3"]))
        .expect("index JSON");
    let paths = index["paths"].as_object().expect("index paths");
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
    assert!(paths.contains_key("apis/core.spinkube.dev/v1alpha1"));
    for (gv, entry) in paths {
        let url = entry["serverRelativeURL"].as_str().expect("URL");
        let doc = server.kubectl(&["get", "--raw", url]);
        let parsed: Value = serde_json::from_str(&doc).expect("document JSON");
        let file = server
            .dir
            .path()
            .join(format!("{}.json", gv.replace('/', "_")));
        std::fs::write(&file, &doc).expect("write document");
        let out = Command::new(python)
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .expect("run python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.contains("OK"), "{gv}: {text}");

        // Every resource has its collection and its object path, with the path
        // parameters declared.
        let doc_paths = parsed["paths"].as_object().expect("paths");
        for (path, item) in doc_paths {
            for param in ["{namespace}", "{name}"] {
                if !path.contains(param) {
                    continue;
                }
                let name = param.trim_matches(['{', '}']);
                let declared = item["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true);
                assert!(declared, "{gv}: {path} does not declare {param}");
            }
        }
        let patches = doc_paths
            .values()
            .filter_map(|i| i.get("patch"))
            .collect::<Vec<_>>();
        assert!(!patches.is_empty(), "{gv}: no PATCH operation");
        for p in patches {
            let content = p["requestBody"]["content"].as_object().expect("patch body");
            for ct in [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ] {
                assert!(content.contains_key(ct), "{gv}: PATCH without {ct}");
            }
        }
    }
    let core: Value =
        serde_json::from_str(&server.kubectl(&["get", "--raw", "/openapi/v3/api/v1"]))
            .expect("core document");
    let pods = &core["paths"]["/api/v1/namespaces/{namespace}/pods"];
    for verb in ["get", "post", "delete"] {
        assert!(pods.get(verb).is_some(), "pods collection without {verb}");
    }
    assert!(core["paths"]["/api/v1/pods"]["get"].is_object());
    let watch = pods["get"]["parameters"]
        .as_array()
        .expect("list parameters")
        .iter()
        .any(|p| p["name"] == "watch");
    assert!(watch, "list without the watch parameter");
}

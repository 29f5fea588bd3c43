//! Version 1 manifests (`spin_manifest_version = "1"`), converted to version 2 as Spin's
//! `compat.rs` does.
//!
//! This module owns the v1 schema (parsed with `deny_unknown_fields`) and the
//! conversion rules:
//!
//! - each `[[component]]` with `trigger = { route, executor }` becomes a
//!   `[component.<id>]` plus a `[[trigger.http]]` with id `trigger-<id>`;
//! - `config` becomes `variables`;
//! - with no `allowed_outbound_hosts`, the component may reach `redis://*:*`,
//!   `mysql://*:*` and `postgres://*:*` (v1 apps had no checks for those);
//! - `allowed_http_hosts`: `insecure:allow-all` → `http://*:*`, `https://*:*` and
//!   `http://self`; a host `h` → `http://h` and `https://h`.
//!
//! An application `base` other than `/` is rejected (Spin 3 removed it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::manifest::{Error, Manifest, Result, Variable};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestV1 {
    #[serde(default)]
    spin_manifest_version: Option<String>,
    #[serde(default)]
    spin_version: Option<String>,
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    trigger: AppTriggerV1,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default)]
    component: Vec<ComponentV1>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppTriggerV1 {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    base: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentV1 {
    id: String,
    source: toml::Value,
    #[serde(default)]
    description: Option<String>,
    trigger: ComponentTriggerV1,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Option<Vec<String>>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    build: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentTriggerV1 {
    route: String,
    #[serde(default)]
    executor: Option<toml::Table>,
}

/// Parses a v1 manifest and converts it to v2.
pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
    let v1: ManifestV1 = toml::from_str(text).map_err(|source| Error::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    let invalid = |message: String| Error::Invalid {
        path: path.to_owned(),
        message,
    };
    let version = v1.spin_manifest_version.or(v1.spin_version);
    if version.as_deref() != Some("1") {
        return Err(invalid(format!(
            "spin_manifest_version: expected \"1\", found {version:?}"
        )));
    }
    if v1.trigger.kind != "http" {
        return Err(Error::Unsupported {
            path: path.to_owned(),
            message: format!("trigger.type `{}`: only http is supported", v1.trigger.kind),
        });
    }
    if let Some(base) = v1.trigger.base.as_deref().filter(|b| *b != "/") {
        return Err(Error::Unsupported {
            path: path.to_owned(),
            message: format!(
                "trigger.base `{base}`: only \"/\" is supported (Spin 3 removed base)"
            ),
        });
    }
    let mut components = serde_json::Map::new();
    let mut triggers = Vec::new();
    for c in v1.component {
        let mut hosts = c.allowed_outbound_hosts.unwrap_or_else(|| {
            vec![
                "redis://*:*".to_string(),
                "mysql://*:*".to_string(),
                "postgres://*:*".to_string(),
            ]
        });
        for h in &c.allowed_http_hosts {
            if h == "insecure:allow-all" {
                hosts.extend([
                    "http://*:*".into(),
                    "https://*:*".into(),
                    "http://self".into(),
                ]);
            } else {
                hosts.extend([format!("http://{h}"), format!("https://{h}")]);
            }
        }
        let mut comp = serde_json::Map::new();
        comp.insert("source".into(), to_json(&c.source));
        if let Some(d) = c.description {
            comp.insert("description".into(), json!(d));
        }
        comp.insert("variables".into(), json!(c.config));
        comp.insert("environment".into(), json!(c.environment));
        comp.insert(
            "files".into(),
            Value::Array(c.files.iter().map(to_json).collect()),
        );
        comp.insert("exclude_files".into(), json!(c.exclude_files));
        comp.insert("allowed_outbound_hosts".into(), json!(hosts));
        comp.insert("key_value_stores".into(), json!(c.key_value_stores));
        comp.insert("sqlite_databases".into(), json!(c.sqlite_databases));
        comp.insert("ai_models".into(), json!(c.ai_models));
        if let Some(b) = c.build {
            comp.insert("build".into(), to_json(&toml::Value::Table(b)));
        }
        let mut trigger = serde_json::Map::new();
        trigger.insert("id".into(), json!(format!("trigger-{}", c.id)));
        trigger.insert("component".into(), json!(c.id));
        trigger.insert("route".into(), json!(c.trigger.route));
        if let Some(e) = c.trigger.executor {
            trigger.insert("executor".into(), to_json(&toml::Value::Table(e)));
        }
        triggers.push(Value::Object(trigger));
        components.insert(c.id, Value::Object(comp));
    }
    let mut application = serde_json::Map::new();
    application.insert("name".into(), json!(v1.name));
    if let Some(v) = v1.version {
        application.insert("version".into(), json!(v));
    }
    if let Some(d) = v1.description {
        application.insert("description".into(), json!(d));
    }
    application.insert("authors".into(), json!(v1.authors));
    let variables: serde_json::Map<String, Value> = v1
        .variables
        .iter()
        .map(|(k, v)| {
            let mut var = serde_json::Map::new();
            var.insert("required".into(), json!(v.required));
            var.insert("secret".into(), json!(v.secret));
            if let Some(d) = &v.default {
                var.insert("default".into(), json!(d));
            }
            if let Some(d) = &v.description {
                var.insert("description".into(), json!(d));
            }
            (k.clone(), Value::Object(var))
        })
        .collect();
    let doc = json!({
        "spin_manifest_version": 2,
        "application": application,
        "variables": variables,
        "trigger": { "http": triggers },
        "component": components,
    });
    let manifest: Manifest = serde_json::from_value(doc)
        .map_err(|e| invalid(format!("cannot convert version 1 manifest: {e}")))?;
    manifest.validate(path)?;
    Ok(manifest)
}

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_like_spin() {
        let m = crate::manifest::Manifest::parse(
            r#"
spin_manifest_version = "1"
name = "old"
version = "1.0.0"
trigger = { type = "http", base = "/" }
[variables]
greeting = { default = "hi" }
[[component]]
id = "hello"
source = "hello.wasm"
allowed_http_hosts = ["example.com"]
[component.trigger]
route = "/hello/..."
[component.config]
message = "{{ greeting }}"
"#,
            Path::new("spin.toml"),
        )
        .unwrap();
        let routes = m.http_routes();
        assert_eq!(routes[0].0, "trigger-hello");
        let c = &m.component["hello"];
        assert_eq!(c.variables["message"], "{{ greeting }}");
        assert!(c
            .allowed_outbound_hosts
            .contains(&"redis://*:*".to_string()));
        assert!(c
            .allowed_outbound_hosts
            .contains(&"https://example.com".to_string()));
    }

    #[test]
    fn rejects_unknown_fields_and_base() {
        let err = crate::manifest::Manifest::parse(
            "spin_manifest_version = \"1\"\nname = \"x\"\ntrigger = { type = \"http\" }\nbogus = 1\n",
            Path::new("spin.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = crate::manifest::Manifest::parse(
            "spin_manifest_version = \"1\"\nname = \"x\"\ntrigger = { type = \"http\", base = \"/api\" }\n",
            Path::new("spin.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("base"), "{err}");
    }
}

//! The locked-app JSON (Spin's `LockedApp`): written by `spinlet push`, read back when
//! running an app from a registry.
//!
//! This module owns the locked-app schema subset spinlet reads and writes
//! (`spin_lock_version` 0/1, `metadata`, `variables`, `triggers`, `components` with
//! `source`, `env`, `files`, `config` and the `metadata` grants) and the two
//! conversions: [`LockedApp::from_manifest`] (sources become digests, files the entries
//! [`crate::files`] made) and [`LockedApp::into_manifest`] (sources become local files
//! from the pull cache, files one directory mounted at `/`).
//!
//! Host requirements as Spin writes and checks them: an app whose components may call
//! `*.spin.internal` gets `host_requirements.local_service_chaining = "required"` (and
//! `must_understand = ["host_requirements"]`, lock version 1); reading, every
//! requirement must be one spinlet supports ([`SUPPORTED_HOST_REQUIREMENTS`]).
//!
//! Not handled yet: `dependencies`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::files::LockedFile;
use crate::manifest::{Manifest, RouteConfig, Source, TriggerTarget};

/// The host requirement of apps that use service chaining.
pub const SERVICE_CHAINING: &str = "local_service_chaining";

/// Host requirements spinlet meets.
pub const SUPPORTED_HOST_REQUIREMENTS: &[&str] = &[SERVICE_CHAINING];

/// Whether an `allowed_outbound_hosts` entry names `*.spin.internal` hosts (Spin's
/// `is_chaining_host`: a `<id>.spin.internal` host or the `*.spin.internal` wildcard).
fn is_chaining_entry(entry: &str) -> bool {
    let rest = entry.split_once("://").map_or(entry, |(_, r)| r);
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    host.trim_end_matches('/').ends_with(".spin.internal")
}

/// Errors converting locked apps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The JSON does not match the locked-app schema.
    #[error("invalid locked app: {0}")]
    Parse(#[from] serde_json::Error),
    /// Something the converter does not support yet.
    #[error("{0}")]
    Unsupported(String),
    /// The resulting manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::Error),
}

/// A locked app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedApp {
    /// 0, or 1 when requirement fields are used.
    pub spin_lock_version: u32,
    /// Features a reader must understand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_understand: Vec<String>,
    /// App metadata (`name`, `version`, `origin`, `trigger`, ...).
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// Host requirements.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub host_requirements: serde_json::Map<String, Value>,
    /// Application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, LockedVariable>,
    /// Triggers.
    #[serde(default)]
    pub triggers: Vec<LockedTrigger>,
    /// Components.
    #[serde(default)]
    pub components: Vec<LockedComponent>,
}

/// A locked variable: no default means required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockedVariable {
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Secret.
    #[serde(default)]
    pub secret: bool,
}

/// A locked trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedTrigger {
    /// Trigger id.
    pub id: String,
    /// `http`, `redis`, ...
    pub trigger_type: String,
    /// Trigger-specific config (`component`, `route`, `executor`, `static_response`).
    #[serde(default)]
    pub trigger_config: Value,
}

/// A locked component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedComponent {
    /// Component id.
    pub id: String,
    /// `description`, `allowed_outbound_hosts`, `key_value_stores`, `databases`, ...
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// The Wasm source.
    pub source: LockedSource,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files.
    #[serde(default)]
    pub files: Vec<LockedFile>,
    /// Component variables (templates).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Dependencies.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub dependencies: serde_json::Map<String, Value>,
    /// Host requirements.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub host_requirements: serde_json::Map<String, Value>,
}

/// A locked source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedSource {
    /// `application/wasm`.
    pub content_type: String,
    /// A URI (`file://...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl LockedApp {
    /// Parses locked-app JSON.
    pub fn from_json(bytes: &[u8]) -> Result<LockedApp, Error> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Builds the locked app for a manifest; `digest_of(component id)` gives each used
    /// component's Wasm digest and `files_of(component id)` its file entries. Only
    /// components reachable from a trigger are included.
    pub fn from_manifest(
        manifest: &Manifest,
        digest_of: &dyn Fn(&str) -> Option<String>,
        files_of: &dyn Fn(&str) -> Vec<LockedFile>,
    ) -> Result<LockedApp, Error> {
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), json!(manifest.application.name));
        if let Some(v) = &manifest.application.version {
            metadata.insert("version".into(), json!(v));
        }
        if let Some(d) = &manifest.application.description {
            metadata.insert("description".into(), json!(d));
        }
        metadata.insert("authors".into(), json!(manifest.application.authors));
        metadata.insert("trigger".into(), json!({ "type": "http" }));
        let mut global = serde_json::Map::new();
        for (kind, table) in &manifest.application.trigger {
            global.insert(kind.clone(), serde_json::to_value(table)?);
        }
        metadata.insert("triggers".into(), Value::Object(global));

        let variables = manifest
            .variables
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    LockedVariable {
                        description: v.description.clone(),
                        default: v.default.clone(),
                        secret: v.secret,
                    },
                )
            })
            .collect();

        let all = manifest.all_components();
        let mut triggers = Vec::new();
        let mut components = Vec::new();
        for ((id, target, route), trigger) in manifest
            .http_routes()
            .into_iter()
            .zip(&manifest.trigger.http)
        {
            let route = match route {
                RouteConfig::Route(r) => json!(r),
                RouteConfig::Private(_) => json!({ "private": true }),
            };
            let mut config = serde_json::Map::new();
            config.insert("route".into(), route);
            match target {
                TriggerTarget::Component(cid) => {
                    config.insert("component".into(), json!(cid));
                    if !components.iter().any(|c: &LockedComponent| c.id == cid) {
                        let Some(c) = all.get(&cid) else { continue };
                        let digest = digest_of(&cid).ok_or_else(|| {
                            Error::Unsupported(format!("component `{cid}` has no Wasm digest"))
                        })?;
                        let mut cm = serde_json::Map::new();
                        if let Some(d) = &c.description {
                            cm.insert("description".into(), json!(d));
                        }
                        cm.insert(
                            "allowed_outbound_hosts".into(),
                            json!(c.allowed_outbound_hosts),
                        );
                        cm.insert("key_value_stores".into(), json!(c.key_value_stores));
                        cm.insert("databases".into(), json!(c.sqlite_databases));
                        cm.insert("ai_models".into(), json!(c.ai_models));
                        components.push(LockedComponent {
                            id: cid.clone(),
                            metadata: cm,
                            source: LockedSource {
                                content_type: "application/wasm".into(),
                                source: None,
                                digest: Some(digest),
                            },
                            env: c.environment.clone(),
                            files: files_of(&cid),
                            config: c.variables.clone(),
                            dependencies: Default::default(),
                            host_requirements: Default::default(),
                        });
                    }
                }
                TriggerTarget::Static(r) => {
                    config.insert(
                        "static_response".into(),
                        serde_json::to_value(StaticJson::from(&r))?,
                    );
                }
            }
            if let Some(e) = &trigger.executor {
                config.insert("executor".into(), json!({ "type": e.kind }));
            }
            triggers.push(LockedTrigger {
                id,
                trigger_type: "http".into(),
                trigger_config: Value::Object(config),
            });
        }
        let chaining = components.iter().any(|c| {
            c.metadata
                .get("allowed_outbound_hosts")
                .and_then(Value::as_array)
                .is_some_and(|hosts| {
                    hosts
                        .iter()
                        .filter_map(Value::as_str)
                        .any(is_chaining_entry)
                })
        });
        let mut host_requirements = serde_json::Map::new();
        if chaining {
            host_requirements.insert(SERVICE_CHAINING.into(), json!("required"));
        }
        let must_understand: Vec<String> = if host_requirements.is_empty() {
            Vec::new()
        } else {
            vec!["host_requirements".into()]
        };
        Ok(LockedApp {
            spin_lock_version: u32::from(!must_understand.is_empty()),
            must_understand,
            metadata,
            host_requirements,
            variables,
            triggers,
            components,
        })
    }

    /// Fails unless spinlet understands every `must_understand` feature and meets every
    /// host requirement they make binding (as Spin's `ensure_needs_only`).
    fn ensure_supported(&self, origin: &str) -> Result<(), Error> {
        let unsupported = |what: String| {
            Error::Unsupported(format!(
                "{origin}: the app requires {what}, which spinlet does not support"
            ))
        };
        for feature in &self.must_understand {
            let requirements: Vec<&String> = match feature.as_str() {
                "host_requirements" => self.host_requirements.keys().collect(),
                "component_host_requirements" => self
                    .components
                    .iter()
                    .flat_map(|c| c.host_requirements.keys())
                    .collect(),
                other => return Err(unsupported(format!("the locked-app feature `{other}`"))),
            };
            if let Some(r) = requirements
                .into_iter()
                .find(|r| !SUPPORTED_HOST_REQUIREMENTS.contains(&r.as_str()))
            {
                return Err(unsupported(format!("the host feature `{r}`")));
            }
        }
        Ok(())
    }

    /// Converts to a manifest whose component sources are local files:
    /// `wasm_path(digest)` gives the cached file for each source digest, and
    /// `files_dir(component id)` the directory holding a component's files (mounted at
    /// `/`; see [`crate::files::materialise`]).
    pub fn into_manifest(
        self,
        origin: &str,
        wasm_path: &dyn Fn(&str) -> PathBuf,
        files_dir: &dyn Fn(&str) -> PathBuf,
    ) -> Result<Manifest, Error> {
        self.ensure_supported(origin)?;
        let meta_str = |k: &str| {
            self.metadata
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut application = json!({
            "name": meta_str("name").unwrap_or_else(|| "app".into()),
        });
        if let Some(v) = meta_str("version") {
            application["version"] = json!(v);
        }
        if let Some(d) = meta_str("description") {
            application["description"] = json!(d);
        }
        let mut variables = serde_json::Map::new();
        for (k, v) in &self.variables {
            let mut var = serde_json::Map::new();
            match &v.default {
                Some(d) => var.insert("default".into(), json!(d)),
                None => var.insert("required".into(), json!(true)),
            };
            if let Some(d) = &v.description {
                var.insert("description".into(), json!(d));
            }
            var.insert("secret".into(), json!(v.secret));
            variables.insert(k.clone(), Value::Object(var));
        }
        let mut http = Vec::new();
        for t in &self.triggers {
            if t.trigger_type != "http" {
                return Err(Error::Unsupported(format!(
                    "{origin}: trigger `{}` has type `{}`; only http triggers are supported",
                    t.id, t.trigger_type
                )));
            }
            let mut trigger = serde_json::Map::new();
            trigger.insert("id".into(), json!(t.id));
            for key in ["component", "route", "static_response"] {
                if let Some(v) = t.trigger_config.get(key) {
                    trigger.insert(key.into(), v.clone());
                }
            }
            if let Some(e) = t.trigger_config.get("executor").and_then(|e| e.get("type")) {
                trigger.insert("executor".into(), json!({ "type": e }));
            }
            http.push(Value::Object(trigger));
        }
        let mut components = serde_json::Map::new();
        for c in self.components {
            if !c.dependencies.is_empty() {
                return Err(Error::Unsupported(format!(
                    "{origin}: component `{}` has dependencies; not supported yet",
                    c.id
                )));
            }
            let digest = c.source.digest.clone().ok_or_else(|| {
                Error::Unsupported(format!(
                    "{origin}: component `{}` source has no digest",
                    c.id
                ))
            })?;
            let mut comp = serde_json::Map::new();
            comp.insert("source".into(), json!(wasm_path(&digest).to_string_lossy()));
            comp.insert("environment".into(), json!(c.env));
            comp.insert("variables".into(), json!(c.config));
            if !c.files.is_empty() {
                let dir = files_dir(&c.id);
                comp.insert(
                    "files".into(),
                    json!([{ "source": dir.to_string_lossy(), "destination": "/" }]),
                );
            }
            for (from, to) in [
                ("allowed_outbound_hosts", "allowed_outbound_hosts"),
                ("key_value_stores", "key_value_stores"),
                ("databases", "sqlite_databases"),
                ("ai_models", "ai_models"),
                ("description", "description"),
            ] {
                if let Some(v) = c.metadata.get(from) {
                    if !v.is_null() {
                        comp.insert(to.into(), v.clone());
                    }
                }
            }
            components.insert(c.id.clone(), Value::Object(comp));
        }
        let doc = json!({
            "spin_manifest_version": 2,
            "application": application,
            "variables": variables,
            "trigger": { "http": http },
            "component": components,
        });
        // Round-trip through TOML so the manifest module's schema and validation apply.
        let text = toml::to_string(&doc)
            .map_err(|e| Error::Unsupported(format!("{origin}: cannot convert locked app: {e}")))?;
        Ok(Manifest::parse(&text, Path::new(origin))?)
    }
}

#[derive(Serialize)]
struct StaticJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

impl From<&crate::manifest::StaticResponse> for StaticJson {
    fn from(r: &crate::manifest::StaticResponse) -> Self {
        Self {
            status_code: r.status_code,
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }
}

/// The components reachable from a manifest's triggers, with their sources.
pub fn used_sources(manifest: &Manifest) -> BTreeMap<String, Source> {
    let all = manifest.all_components();
    manifest
        .http_routes()
        .into_iter()
        .filter_map(|(_, target, _)| match target {
            TriggerTarget::Component(id) => all.get(&id).map(|c| (id, c.source.clone())),
            TriggerTarget::Static(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "rt"
version = "1.0.0"
[variables]
greeting = { default = "hi" }
token = { required = true }
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.http]]
route = { private = true }
component = "web"
[[trigger.http]]
route = "/static"
static_response = { status_code = 201, body = "x" }
[component.web]
source = "web.wasm"
key_value_stores = ["default"]
allowed_outbound_hosts = ["https://example.com"]
environment = { A = "b" }
variables = { message = "{{ greeting }}" }
"#;
        let m = Manifest::parse(text, Path::new("spin.toml")).unwrap();
        let file = crate::files::locked_entry("static/a.txt", b"a", "sha256:f");
        let locked =
            LockedApp::from_manifest(&m, &|_| Some("sha256:abc".into()), &|_| vec![file.clone()])
                .unwrap();
        let json = serde_json::to_vec(&locked).unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value["components"][0]["files"],
            json!([{ "inline": "YQ==", "path": "static/a.txt" }])
        );
        let back = LockedApp::from_json(&json)
            .unwrap()
            .into_manifest("oci", &|d| PathBuf::from(format!("/cache/{d}")), &|id| {
                PathBuf::from(format!("/assets/{id}"))
            })
            .unwrap();
        assert_eq!(back.application.name, "rt");
        assert_eq!(locked.spin_lock_version, 0, "no host requirements");
        assert!(locked.must_understand.is_empty());
        assert!(back.variables["token"].required);
        assert_eq!(back.variables["greeting"].default.as_deref(), Some("hi"));
        let web = &back.component["web"];
        assert!(matches!(&web.source, Source::Local(p) if p == "/cache/sha256:abc"));
        assert_eq!(web.key_value_stores, vec!["default"]);
        assert_eq!(web.environment["A"], "b");
        assert_eq!(web.variables["message"], "{{ greeting }}");
        assert_eq!(back.trigger.http.len(), 3);
        assert!(matches!(
            &web.files[..],
            [crate::manifest::FileMount::Placement { source, destination }]
                if source == "/assets/web" && destination == "/"
        ));
    }

    #[test]
    fn service_chaining_is_a_host_requirement() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "chain"
[[trigger.http]]
route = "/..."
component = "front"
[component.front]
source = "front.wasm"
allowed_outbound_hosts = ["http://self", "http://*.spin.internal:80"]
"#;
        let m = Manifest::parse(text, Path::new("spin.toml")).unwrap();
        let locked =
            LockedApp::from_manifest(&m, &|_| Some("sha256:abc".into()), &|_| vec![]).unwrap();
        assert_eq!(locked.spin_lock_version, 1);
        assert_eq!(locked.must_understand, ["host_requirements"]);
        assert_eq!(locked.host_requirements[SERVICE_CHAINING], "required");
        let paths = |_: &str| PathBuf::from("/x");
        assert!(locked.clone().into_manifest("oci", &paths, &paths).is_ok());

        let mut unknown = locked;
        unknown
            .host_requirements
            .insert("teleportation".into(), json!("required"));
        let err = unknown.into_manifest("oci", &paths, &paths).unwrap_err();
        assert!(err.to_string().contains("teleportation"), "{err}");
        assert!(is_chaining_entry("http://backend.spin.internal"));
        assert!(!is_chaining_entry("http://self"));
        assert!(!is_chaining_entry("https://example.com:443"));
    }
}

//! The Spin application manifest (`spin.toml`, version 2): parsing and validation.
//!
//! This module owns the manifest's schema. Every table is deserialized with
//! `deny_unknown_fields`, so a misspelt or unknown key fails with the file, line and
//! field named (the `toml` crate's error carries the position). After parsing,
//! [`Manifest::validate`] checks what serde cannot: variable names, component ids,
//! trigger references, template references and route syntax.
//!
//! Version 1 manifests are parsed by [`crate::manifest_v1`] and converted to this model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors from loading a manifest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or does not match the schema (unknown field,
    /// wrong type, missing required field). The message names line, column and field.
    #[error("invalid manifest {path}: {source}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The TOML error, with position.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The manifest parsed but a value is invalid.
    #[error("invalid manifest {path}: {message}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The manifest uses a version or feature this runtime does not support yet.
    #[error("unsupported manifest {path}: {message}")]
    Unsupported {
        /// The manifest path.
        path: PathBuf,
        /// What is not supported.
        message: String,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed and validated `spin.toml` (version 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always 2.
    pub spin_manifest_version: ManifestVersion,
    /// The `[application]` table.
    pub application: Application,
    /// Application variables, `[variables.<name>]`.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// Triggers, `[[trigger.<type>]]`.
    #[serde(default)]
    pub trigger: Triggers,
    /// Components, `[component.<id>]`.
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

/// The `spin_manifest_version` value; only `2` deserializes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestVersion;

impl<'de> Deserialize<'de> for ManifestVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v == 2 {
            Ok(ManifestVersion)
        } else {
            Err(serde::de::Error::custom(format!(
                "spin_manifest_version must be 2, found {v}"
            )))
        }
    }
}

/// The `[application]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Application name (required).
    pub name: String,
    /// Application version.
    #[serde(default)]
    pub version: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Deployment targets (informational).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Global trigger settings, `[application.trigger.<type>]`.
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
    /// Tool-specific settings; ignored by the runtime.
    #[serde(default)]
    pub tool: Option<toml::Table>,
}

/// An application variable, `[variables.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a provider must supply the value.
    #[serde(default)]
    pub required: bool,
    /// Default value.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether the value is secret (not logged).
    #[serde(default)]
    pub secret: bool,
}

/// The `[[trigger.*]]` arrays.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// HTTP triggers.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    /// Redis triggers (parsed so the error can say they are unsupported).
    #[serde(default)]
    pub redis: Vec<toml::Table>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// Trigger id (defaults to `<component>-http-trigger`).
    #[serde(default)]
    pub id: Option<String>,
    /// The component: an id or an inline table.
    #[serde(default)]
    pub component: Option<ComponentRef>,
    /// The route.
    pub route: RouteConfig,
    /// The executor.
    #[serde(default)]
    pub executor: Option<Executor>,
    /// A static response (Spin 3.5+), exclusive with `component`.
    #[serde(default)]
    pub static_response: Option<StaticResponse>,
}

/// A trigger's component: an id or an inline component.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComponentRef {
    /// Reference to `[component.<id>]`.
    Id(String),
    /// An inline component table.
    Inline(Box<Component>),
}

/// A trigger route: a pattern or `{ private = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteConfig {
    /// A routable pattern such as `/foo/...`.
    Route(String),
    /// A private endpoint, reachable only by service chaining.
    Private(PrivateRoute),
}

/// `{ private = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateRoute {
    /// Must be true.
    pub private: bool,
}

/// An HTTP executor, `{ type = "http" }` or `{ type = "wagi", ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Executor {
    /// `http` (alias `spin`) or `wagi`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Wagi argv.
    #[serde(default)]
    pub argv: Option<String>,
    /// Wagi entrypoint.
    #[serde(default)]
    pub entrypoint: Option<String>,
}

/// `static_response = { status_code, headers, body }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    /// Status code (default 200).
    #[serde(default)]
    pub status_code: Option<u16>,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body.
    #[serde(default)]
    pub body: Option<String>,
}

/// A `[component.<id>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// The Wasm source.
    pub source: Source,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Component variables: name → template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables passed to WASI.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Files to mount.
    #[serde(default)]
    pub files: Vec<FileMount>,
    /// Globs excluded from `files`.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// Allowed outbound hosts.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Deprecated outbound HTTP allow list.
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    /// Granted key-value store labels.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Granted SQLite database labels.
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// Granted AI models.
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Deployment targets (informational).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Build settings (used by `spin build`; ignored by the runtime).
    #[serde(default)]
    pub build: Option<Build>,
    /// Component dependencies (not supported yet).
    #[serde(default)]
    pub dependencies: Option<toml::Table>,
    /// Whether dependencies inherit configuration.
    #[serde(default)]
    pub dependencies_inherit_configuration: bool,
    /// Build profiles (ignored by the runtime).
    #[serde(default)]
    pub profile: Option<toml::Table>,
}

/// A component source.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Source {
    /// A local path relative to the manifest.
    Local(String),
    /// A URL with a digest.
    Remote {
        /// URL of the Wasm file.
        url: String,
        /// `sha256:<hex>`.
        digest: String,
    },
    /// A registry package.
    Registry {
        /// Registry (optional).
        #[serde(default)]
        registry: Option<String>,
        /// Package name.
        package: String,
        /// Version.
        version: String,
    },
}

/// A `files` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    /// A glob or directory relative to the manifest, mounted at the same path.
    Pattern(String),
    /// A directory or file mounted at a destination.
    Placement {
        /// Source path relative to the manifest.
        source: String,
        /// Absolute guest path.
        destination: String,
    },
}

/// `build = { command, workdir, watch }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// One command or several.
    pub command: toml::Value,
    /// Working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Watched globs.
    #[serde(default)]
    pub watch: Vec<String>,
}

impl Manifest {
    /// Reads, parses and validates the manifest at `path`.
    pub fn from_file(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates manifest text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        // Version 1 has its own schema and is converted to version 2.
        if let Ok(table) = text.parse::<toml::Table>() {
            let v1 = matches!(table.get("spin_manifest_version"), Some(toml::Value::String(s)) if s == "1")
                || table.contains_key("spin_version");
            if v1 {
                return crate::manifest_v1::parse(text, path);
            }
        }
        let manifest: Manifest = toml::from_str(text).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    /// Checks the rules serde does not express.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |message: String| Error::Invalid {
            path: path.to_owned(),
            message,
        };
        let unsupported = |message: String| Error::Unsupported {
            path: path.to_owned(),
            message,
        };
        if !self.trigger.redis.is_empty() {
            return Err(unsupported("[[trigger.redis]] is not supported yet".into()));
        }
        for (name, var) in &self.variables {
            if !is_valid_variable_name(name) {
                return Err(invalid(format!(
                    "variables.{name}: invalid variable name (lowercase letters, digits and single underscores; must start with a letter and end with a letter or digit)"
                )));
            }
            if var.required && var.default.is_some() {
                return Err(invalid(format!(
                    "variables.{name}: a required variable cannot have a default"
                )));
            }
            if !var.required && var.default.is_none() {
                return Err(invalid(format!(
                    "variables.{name}: must have a default or be required = true"
                )));
            }
        }
        for (id, component) in &self.component {
            if !is_valid_component_id(id) {
                return Err(invalid(format!(
                    "component.{id}: invalid component id (lowercase kebab-case: letters, digits and single dashes)"
                )));
            }
            self.validate_component(&format!("component.{id}"), component, &invalid)?;
        }
        let mut trigger_ids = std::collections::HashSet::new();
        for (index, trigger) in self.trigger.http.iter().enumerate() {
            let at = format!("trigger.http[{index}]");
            match (&trigger.component, &trigger.static_response) {
                (Some(_), Some(_)) => {
                    return Err(invalid(format!(
                        "{at}: `component` and `static_response` are mutually exclusive"
                    )))
                }
                (None, None) => {
                    return Err(invalid(format!(
                        "{at}: needs `component` (or `static_response`)"
                    )))
                }
                (Some(ComponentRef::Id(id)), None) => {
                    if !self.component.contains_key(id) {
                        return Err(invalid(format!(
                            "{at}.component: no component `{id}` in the manifest"
                        )));
                    }
                }
                (Some(ComponentRef::Inline(component)), None) => {
                    self.validate_component(&format!("{at}.component"), component, &invalid)?;
                }
                (None, Some(_)) => {}
            }
            match &trigger.route {
                RouteConfig::Route(route) => {
                    crate::routing::RoutePattern::parse(route)
                        .map_err(|e| invalid(format!("{at}.route: {e}")))?;
                }
                RouteConfig::Private(p) if !p.private => {
                    return Err(invalid(format!(
                        "{at}.route: must be a string pattern or {{ private = true }}"
                    )))
                }
                RouteConfig::Private(_) => {}
            }
            if let Some(executor) = &trigger.executor {
                match executor.kind.as_str() {
                    "http" | "spin" => {}
                    "wagi" => {
                        return Err(unsupported(format!(
                            "{at}.executor: the wagi executor is not supported yet"
                        )))
                    }
                    other => {
                        return Err(invalid(format!(
                            "{at}.executor.type: unknown executor `{other}` (expected `http` or `wagi`)"
                        )))
                    }
                }
            }
            if let Some(id) = &trigger.id {
                if !trigger_ids.insert(id.clone()) {
                    return Err(invalid(format!("{at}.id: duplicate trigger id `{id}`")));
                }
            }
        }
        Ok(())
    }

    fn validate_component(
        &self,
        at: &str,
        component: &Component,
        invalid: &dyn Fn(String) -> Error,
    ) -> Result<()> {
        for (name, template) in &component.variables {
            if !is_valid_variable_name(name) {
                return Err(invalid(format!(
                    "{at}.variables.{name}: invalid variable name"
                )));
            }
            let refs = crate::variables::template_references(template)
                .map_err(|e| invalid(format!("{at}.variables.{name}: {e}")))?;
            for r in refs {
                if !self.variables.contains_key(&r) {
                    return Err(invalid(format!(
                        "{at}.variables.{name}: references undefined application variable `{r}`"
                    )));
                }
            }
        }
        if let Some(deps) = &component.dependencies {
            if !deps.is_empty() {
                return Err(invalid(format!(
                    "{at}.dependencies: component dependencies are not supported yet"
                )));
            }
        }
        Ok(())
    }

    /// The HTTP triggers with their component resolved, as `(trigger id, component id, route)`.
    /// Inline components get the id `<trigger id>-component` when the trigger has an id,
    /// else `inline-component<N>`.
    pub fn http_routes(&self) -> Vec<(String, TriggerTarget, RouteConfig)> {
        let mut inline_count = 0;
        let mut used_ids: std::collections::HashSet<String> = self
            .trigger
            .http
            .iter()
            .filter_map(|t| t.id.clone())
            .collect();
        self.trigger
            .http
            .iter()
            .map(|t| {
                let target = match (&t.component, &t.static_response) {
                    (Some(ComponentRef::Id(id)), _) => TriggerTarget::Component(id.clone()),
                    (Some(ComponentRef::Inline(_)), _) => {
                        inline_count += 1;
                        TriggerTarget::Component(match &t.id {
                            Some(id) => format!("{id}-component"),
                            None => format!("inline-component{inline_count}"),
                        })
                    }
                    (None, Some(r)) => TriggerTarget::Static(r.clone()),
                    (None, None) => TriggerTarget::Component(String::new()),
                };
                let id = t.id.clone().unwrap_or_else(|| {
                    let base = match &target {
                        TriggerTarget::Component(c) => format!("{c}-http-trigger"),
                        TriggerTarget::Static(_) => "static-http-trigger".into(),
                    };
                    let mut candidate = base.clone();
                    let mut n = 1;
                    while used_ids.contains(&candidate) {
                        n += 1;
                        candidate = format!("{base}{n}");
                    }
                    candidate
                });
                used_ids.insert(id.clone());
                (id, target, t.route.clone())
            })
            .collect()
    }

    /// All components, including inline ones (under the ids [`Manifest::http_routes`] gives).
    pub fn all_components(&self) -> BTreeMap<String, Component> {
        let mut all = self.component.clone();
        let routes = self.http_routes();
        for (trigger, (_, target, _)) in self.trigger.http.iter().zip(routes) {
            if let (Some(ComponentRef::Inline(c)), TriggerTarget::Component(id)) =
                (&trigger.component, target)
            {
                all.insert(id, (**c).clone());
            }
        }
        all
    }
}

/// What an HTTP trigger serves.
#[derive(Debug, Clone)]
pub enum TriggerTarget {
    /// A component, by id.
    Component(String),
    /// A static response.
    Static(StaticResponse),
}

/// Spin's variable-name rule: lowercase ASCII letters, digits and single underscores,
/// starting with a letter and ending with a letter or digit.
pub fn is_valid_variable_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !name.contains("__")
}

/// Spin's component-id rule: kebab-case words of lowercase letters and digits, each word
/// starting with a letter (Spin allows digits after the first word).
pub fn is_valid_component_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').enumerate().all(|(i, word)| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && (i > 0 || word.as_bytes()[0].is_ascii_lowercase())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, Path::new("spin.toml"))
    }

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "hello"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "hello.wasm"
"#;

    #[test]
    fn parses_minimal() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.application.name, "hello");
        let routes = m.http_routes();
        assert_eq!(routes[0].0, "hello-http-trigger");
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"hello.wasm\"\nsorce = 1",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("spin.toml"), "{err}");
        assert!(err.contains("sorce"), "{err}");
        assert!(err.contains("line 10"), "{err}");
    }

    #[test]
    fn version_1_goes_through_the_v1_schema() {
        let err = parse("spin_manifest_version = \"1\"\nname = \"x\"").unwrap_err();
        assert!(err.to_string().contains("trigger"), "{err}");
    }

    #[test]
    fn variable_rules() {
        assert!(is_valid_variable_name("api_key2"));
        assert!(!is_valid_variable_name("Api"));
        assert!(!is_valid_variable_name("a__b"));
        assert!(!is_valid_variable_name("a_"));
        assert!(!is_valid_variable_name("1a"));
        let text = format!("{MINIMAL}\n[variables]\nfoo = {{ description = \"x\" }}\n");
        assert!(parse(&text)
            .unwrap_err()
            .to_string()
            .contains("variables.foo"));
    }

    #[test]
    fn component_template_must_reference_app_variable() {
        let text = MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"hello.wasm\"\nvariables = { greeting = \"{{ missing }}\" }",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn trigger_must_reference_component() {
        let text = MINIMAL.replace("component = \"hello\"", "component = \"nope\"");
        assert!(parse(&text).unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn component_ids() {
        assert!(is_valid_component_id("hello-world2"));
        assert!(!is_valid_component_id("Hello"));
        assert!(!is_valid_component_id("a--b"));
        assert!(!is_valid_component_id("a_b"));
    }
}

//! The runtime-config Secret of a SpinApp: `spec.runtimeConfig` (key-value stores, SQLite
//! databases, LLM compute) rendered into `runtime-config.toml` byte for byte as
//! spin-operator renders it (go-toml v2: sections and keys sorted, literal strings when
//! they need no escaping), after reading the ConfigMap and Secret keys its options
//! name. The Secret is named `<app>-<adler32 of the TOML, hex>`, so a changed config is a
//! new Secret and a new rollout.
//!
//! Reads ConfigMaps and Secrets in the app's namespace ([`fetch`]); builds, never writes,
//! the Secret (the reconciler creates it).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::Api;
use spinlet_types::keys::{app_name_label, RUNTIME_CONFIG_KEY};
use spinlet_types::{RuntimeConfig, RuntimeConfigOption};

/// Why the runtime config cannot be rendered (spin-operator's messages).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option names a ConfigMap or Secret that does not exist.
    #[error("unmet dependency while building config: {kind} ({namespace}/{name}) not found")]
    Missing {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Two stores or databases with one name.
    #[error("duplicate definition for {what} with name: {name}")]
    Duplicate {
        /// `key value store` or `sqlite database`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Reading a ConfigMap or Secret failed.
    #[error("reading {kind} {namespace}/{name}: {source}")]
    Read {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
}

/// The ConfigMap and Secret data the options refer to, by name.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// ConfigMap name → its `data`.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secret name → its `data`, decoded.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

fn options(rc: &RuntimeConfig) -> impl Iterator<Item = &RuntimeConfigOption> {
    let llm = rc
        .llm_compute
        .iter()
        .flat_map(|l| l.options.iter().flatten());
    let kv = rc
        .key_value_stores
        .iter()
        .flatten()
        .flat_map(|s| s.options.iter().flatten());
    let sql = rc
        .sqlite_databases
        .iter()
        .flatten()
        .flat_map(|s| s.options.iter().flatten());
    llm.chain(kv).chain(sql)
}

/// Reads every ConfigMap and Secret the options of `rc` name, in `namespace`; none when
/// `loadFromSecret` is set. A missing one is an error (`optional` is not supported, as
/// in spin-operator).
pub async fn fetch(
    client: &kube::Client,
    namespace: &str,
    rc: &RuntimeConfig,
) -> Result<Sources, Error> {
    let mut sources = Sources::default();
    if rc
        .load_from_secret
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Ok(sources);
    }
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for o in options(rc) {
        if let Some(from) = &o.value_from {
            if let Some(r) = &from.config_map_key_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    let missing = |kind, name: &str| Error::Missing {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    let read = |kind, name: &str| {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        move |source| Error::Read {
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    };
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in cms {
        let cm = cm_api
            .get_opt(&name)
            .await
            .map_err(read("configmap", &name))?
            .ok_or_else(|| missing("configmap", &name))?;
        sources
            .config_maps
            .insert(name, cm.data.unwrap_or_default());
    }
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in secrets {
        let s = secret_api
            .get_opt(&name)
            .await
            .map_err(read("secret", &name))?
            .ok_or_else(|| missing("secret", &name))?;
        let data = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        sources.secrets.insert(name, data);
    }
    Ok(sources)
}

/// One section's keys: `type` plus the options, values resolved.
fn section(
    type_: &str,
    opts: Option<&Vec<RuntimeConfigOption>>,
    namespace: &str,
    sources: &Sources,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::from([("type".to_string(), type_.to_string())]);
    for o in opts.into_iter().flatten() {
        let mut value = String::new();
        if let Some(v) = o.value.as_deref().filter(|v| !v.is_empty()) {
            value = v.to_string();
        } else if let Some(from) = &o.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let cm = sources
                    .config_maps
                    .get(&r.name)
                    .ok_or_else(|| Error::Missing {
                        kind: "configmap",
                        namespace: namespace.to_string(),
                        name: r.name.clone(),
                    })?;
                value = cm.get(&r.key).cloned().unwrap_or_default();
            } else if let Some(r) = &from.secret_key_ref {
                let s = sources.secrets.get(&r.name).ok_or_else(|| Error::Missing {
                    kind: "secret",
                    namespace: namespace.to_string(),
                    name: r.name.clone(),
                })?;
                value = s
                    .get(&r.key)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
            }
        }
        out.insert(o.name.clone(), value);
    }
    Ok(out)
}

/// `runtime-config.toml` for `rc` (an absent `runtimeConfig` renders the env provider
/// alone); `None` when `loadFromSecret` is set.
pub fn render(
    rc: Option<&RuntimeConfig>,
    namespace: &str,
    sources: &Sources,
) -> Result<Option<String>, Error> {
    let empty = RuntimeConfig::default();
    let rc = rc.unwrap_or(&empty);
    if rc
        .load_from_secret
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Ok(None);
    }
    let named = |what: &'static str,
                 list: Vec<(&String, &String, Option<&Vec<RuntimeConfigOption>>)>| {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (name, type_, opts) in list {
            if out.contains_key(name) {
                return Err(Error::Duplicate {
                    what,
                    name: name.clone(),
                });
            }
            out.insert(name.clone(), section(type_, opts, namespace, sources)?);
        }
        Ok(out)
    };
    let kv = named(
        "key value store",
        rc.key_value_stores
            .iter()
            .flatten()
            .map(|s| (&s.name, &s.type_, s.options.as_ref()))
            .collect(),
    )?;
    let sql = named(
        "sqlite database",
        rc.sqlite_databases
            .iter()
            .flatten()
            .map(|s| (&s.name, &s.type_, s.options.as_ref()))
            .collect(),
    )?;
    let llm = match &rc.llm_compute {
        Some(l) => Some(section(&l.type_, l.options.as_ref(), namespace, sources)?),
        None => None,
    };
    let mut toml = String::from("[[config_provider]]\ntype = 'env'\nprefix = 'SPIN_VARIABLE_'\n");
    for (table, entries) in [("key_value_store", &kv), ("sqlite_database", &sql)] {
        if entries.is_empty() {
            continue;
        }
        toml.push_str(&format!("\n[{}]\n", key(table)));
        for (n, (name, keys)) in entries.iter().enumerate() {
            if n > 0 {
                toml.push('\n');
            }
            toml.push_str(&format!("[{}.{}]\n", key(table), key(name)));
            push_keys(&mut toml, keys);
        }
    }
    if let Some(keys) = llm {
        toml.push_str("\n[llm_compute]\n");
        push_keys(&mut toml, &keys);
    }
    Ok(Some(toml))
}

fn push_keys(toml: &mut String, keys: &BTreeMap<String, String>) {
    for (k, v) in keys {
        toml.push_str(&format!("{} = {}\n", key(k), string(v)));
    }
}

/// go-toml v2's `needsQuoting`: a quote, CR, LF or an ASCII control other than tab.
fn needs_quoting(s: &str) -> bool {
    s.bytes()
        .any(|b| b == b'\'' || b == b'\r' || b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// A key as go-toml v2 writes it: bare, 'literal' or "quoted".
fn key(k: &str) -> String {
    if k.is_empty() {
        return "''".to_string();
    }
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return k.to_string();
    }
    if k.contains('\'') || needs_quoting(k) {
        quoted(k)
    } else {
        format!("'{k}'")
    }
}

/// A string value as go-toml v2 writes it.
fn string(v: &str) -> String {
    if needs_quoting(v) {
        quoted(v)
    } else {
        format!("'{v}'")
    }
}

fn quoted(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Adler-32 (RFC 1950), as Go's `hash/adler32`.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// The Secret's name: `<app>-<adler32(toml) in lower-case hex>`.
pub fn secret_name(app: &str, toml: &str) -> String {
    format!("{app}-{:x}", adler32(toml.as_bytes()))
}

/// The runtime-config Secret of app `app` (labels under `group`), owned by `owner`.
pub fn secret(
    app: &str,
    namespace: &str,
    group: &str,
    toml: &str,
    owner: OwnerReference,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(app, toml)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(app_name_label(group), app.to_string())])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            RUNTIME_CONFIG_KEY.to_string(),
            ByteString(toml.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rc(v: serde_json::Value) -> RuntimeConfig {
        serde_json::from_value(v).expect("runtime config")
    }

    #[test]
    fn redis_store_renders_as_spin_operator_test_expects() {
        // spin-operator internal/controller/spinapp_controller_test.go
        let rc = rc(
            json!({"keyValueStores": [{"name": "default", "type": "redis",
            "options": [{"name": "url", "value": "redis://localhost:9000"}]}]}),
        );
        let toml = render(Some(&rc), "default", &Sources::default()).expect("render");
        assert_eq!(
            toml.as_deref(),
            Some(
                "[[config_provider]]\ntype = 'env'\nprefix = 'SPIN_VARIABLE_'\n\n[key_value_store]\n[key_value_store.default]\ntype = 'redis'\nurl = 'redis://localhost:9000'\n"
            )
        );
    }

    #[test]
    fn empty_config_is_the_env_provider_and_load_from_secret_is_none() {
        let toml = render(None, "ns", &Sources::default()).expect("render");
        assert_eq!(
            toml.as_deref(),
            Some("[[config_provider]]\ntype = 'env'\nprefix = 'SPIN_VARIABLE_'\n")
        );
        let user = rc(
            json!({"loadFromSecret": "mine", "keyValueStores": [{"name": "a", "type": "spin"}]}),
        );
        assert_eq!(
            render(Some(&user), "ns", &Sources::default()).expect("render"),
            None
        );
    }

    #[test]
    fn sections_sorted_values_from_sources_and_quoting() {
        let rc = rc(json!({
            "keyValueStores": [
                {"name": "zeta", "type": "spin", "options": [{"name": "path", "value": "/tmp/z.db"}]},
                {"name": "alpha", "type": "redis", "options": [
                    {"name": "url", "valueFrom": {"secretKeyRef": {"name": "s", "key": "url"}}}]},
            ],
            "sqliteDatabases": [{"name": "default", "type": "libsql", "options": [
                {"name": "url", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "url"}}},
                {"name": "token", "value": "it's"}]}],
            "llmCompute": {"type": "remote_http", "options": [{"name": "auth_token", "value": "a\nb"}]},
        }));
        let sources = Sources {
            config_maps: BTreeMap::from([(
                "c".to_string(),
                BTreeMap::from([("url".to_string(), "https://db".to_string())]),
            )]),
            secrets: BTreeMap::from([(
                "s".to_string(),
                BTreeMap::from([("url".to_string(), b"redis://r:6379".to_vec())]),
            )]),
        };
        let toml = render(Some(&rc), "ns", &sources)
            .expect("render")
            .expect("toml");
        assert_eq!(
            toml,
            "[[config_provider]]\ntype = 'env'\nprefix = 'SPIN_VARIABLE_'\n\
             \n[key_value_store]\n[key_value_store.alpha]\ntype = 'redis'\nurl = 'redis://r:6379'\n\
             \n[key_value_store.zeta]\npath = '/tmp/z.db'\ntype = 'spin'\n\
             \n[sqlite_database]\n[sqlite_database.default]\ntoken = \"it's\"\ntype = 'libsql'\nurl = 'https://db'\n\
             \n[llm_compute]\nauth_token = \"a\\nb\"\ntype = 'remote_http'\n"
        );
    }

    #[test]
    fn missing_source_and_duplicates_are_errors() {
        let rc1 = rc(json!({"keyValueStores": [{"name": "a", "type": "redis",
            "options": [{"name": "url", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]}]}));
        let e = render(Some(&rc1), "ns", &Sources::default()).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "unmet dependency while building config: secret (ns/gone) not found"
        );
        let rc2 = rc(
            json!({"sqliteDatabases": [{"name": "d", "type": "spin"}, {"name": "d", "type": "spin"}]}),
        );
        let e = render(Some(&rc2), "ns", &Sources::default()).expect_err("duplicate");
        assert_eq!(
            e.to_string(),
            "duplicate definition for sqlite database with name: d"
        );
    }

    #[test]
    fn secret_name_is_adler32_hex_as_go_prints_it() {
        // hash/adler32 of "Wikipedia" is 0x11E60398.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(secret_name("app", "Wikipedia"), "app-11e60398");
        let s = secret(
            "app",
            "ns",
            "core.spinkube.dev",
            "x",
            OwnerReference::default(),
        );
        assert_eq!(
            s.metadata.labels.expect("labels")["core.spinkube.dev/app-name"],
            "app"
        );
    }
}

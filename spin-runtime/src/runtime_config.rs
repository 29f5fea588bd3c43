//! The runtime config file (`--runtime-config-file`, Spin's `runtime-config.toml`).
//!
//! This module owns the file's schema and what each key means for spinlet. Every table
//! is parsed with `deny_unknown_fields`, so a misspelt key fails startup with the file,
//! line and key named. Supported:
//!
//! - `state_dir` (relative paths are relative to the file), `max_instance_memory`;
//! - `[[variables_provider]]` (alias `[[config_provider]]`) of type `env` (`prefix`,
//!   default `SPIN_VARIABLE`; `dotenv_path`) and `static` (`values`), consulted in file
//!   order after `--variable` and before the default `SPIN_VARIABLE_*` provider;
//! - `[key_value_store.<label>]` of type `spin` (`path`: a sled database; without a
//!   path the store lives in the state directory's database) and `redis` (`url`: the
//!   store's keys are the keys of that Redis database, see [`crate::key_value::redis`]);
//! - `[sqlite_database.<label>]` of type `spin` (`path`: a database file; without a path
//!   the database is in memory).
//!
//! Recognised but not supported yet, so they stop the app with a clear error rather than
//! being ignored: `vault` and `azure_key_vault` providers, key-value stores of type
//! `azure_cosmos` and `aws_dynamo`, sqlite databases of type `libsql`, `[llm_compute]`,
//! `[outbound_*]`, `[outbound_networking]` and `[[client_tls]]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors from reading the runtime config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read runtime config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not match the schema.
    #[error("invalid runtime config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with position.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A setting has a value that cannot work.
    #[error("runtime config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The setting and what is wrong with it.
        message: String,
    },
    /// A setting spinlet does not support yet.
    #[error("runtime config {path}: {message}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    state_dir: Option<String>,
    #[serde(default)]
    log_dir: Option<String>,
    #[serde(default)]
    max_instance_memory: Option<u64>,
    #[serde(default)]
    variables_provider: Vec<ProviderFile>,
    #[serde(default)]
    config_provider: Vec<ProviderFile>,
    #[serde(default)]
    key_value_store: BTreeMap<String, KeyValueFile>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, SqliteFile>,
    #[serde(default)]
    llm_compute: Option<toml::Table>,
    #[serde(default)]
    outbound_networking: Option<toml::Table>,
    #[serde(default)]
    client_tls: Vec<toml::Table>,
    #[serde(default)]
    outbound_http: Option<toml::Table>,
    #[serde(default)]
    outbound_redis: Option<toml::Table>,
    #[serde(default)]
    outbound_pg: Option<toml::Table>,
    #[serde(default)]
    outbound_mysql: Option<toml::Table>,
    #[serde(default)]
    outbound_mqtt: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    dead_code,
    reason = "settings of unsupported types are parsed only to name the type in the error"
)]
enum ProviderFile {
    Env(EnvProviderFile),
    Static(StaticProviderFile),
    Vault(toml::Table),
    AzureKeyVault(toml::Table),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvProviderFile {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    dotenv_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticProviderFile {
    #[serde(default)]
    values: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    dead_code,
    reason = "settings of unsupported types are parsed only to name the type in the error"
)]
enum KeyValueFile {
    Spin(SpinPathFile),
    Redis(RedisFile),
    AzureCosmos(toml::Table),
    AwsDynamo(toml::Table),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisFile {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinPathFile {
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    dead_code,
    reason = "settings of unsupported types are parsed only to name the type in the error"
)]
enum SqliteFile {
    Spin(SpinPathFile),
    Libsql(toml::Table),
}

/// A variables provider from the runtime config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariablesProvider {
    /// Environment variables `<prefix>_<NAME>`, then the dotenv file if given.
    Env {
        /// The prefix (default `SPIN_VARIABLE`).
        prefix: String,
        /// Values read from the dotenv file.
        dotenv: BTreeMap<String, String>,
    },
    /// Fixed values.
    Static(BTreeMap<String, String>),
}

/// Where a key-value store from `[key_value_store.<label>]` keeps its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValueStoreConfig {
    /// Type `spin`: a sled database at this path, or (`None`) the state directory's.
    Spin(Option<PathBuf>),
    /// Type `redis`: the Redis database at `url`.
    Redis {
        /// `redis://` or `rediss://` URL.
        url: String,
    },
}

/// The runtime config, resolved.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// Per-instance memory cap.
    pub max_instance_memory: Option<u64>,
    /// Variables providers in file order.
    pub variables_providers: Vec<VariablesProvider>,
    /// Key-value stores by label.
    pub key_value_stores: BTreeMap<String, KeyValueStoreConfig>,
    /// SQLite databases: label → database file (`None`: in memory).
    pub sqlite_databases: BTreeMap<String, Option<PathBuf>>,
}

impl RuntimeConfig {
    /// Reads and validates the file at `path`.
    pub fn from_file(path: &Path) -> Result<RuntimeConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses file text; relative paths are resolved against `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<RuntimeConfig, Error> {
        let file: File = toml::from_str(text).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let unsupported = |message: String| Error::Unsupported {
            path: path.to_owned(),
            message,
        };
        let unsupported_tables = [
            ("[llm_compute]", file.llm_compute.is_some()),
            ("[outbound_networking]", file.outbound_networking.is_some()),
            ("[[client_tls]]", !file.client_tls.is_empty()),
            ("[outbound_http]", file.outbound_http.is_some()),
            ("[outbound_redis]", file.outbound_redis.is_some()),
            ("[outbound_pg]", file.outbound_pg.is_some()),
            ("[outbound_mysql]", file.outbound_mysql.is_some()),
            ("[outbound_mqtt]", file.outbound_mqtt.is_some()),
        ];
        if let Some((name, _)) = unsupported_tables.iter().find(|(_, present)| *present) {
            return Err(unsupported(format!("{name} is not supported yet")));
        }
        let _ = file.log_dir;
        let mut variables_providers = Vec::new();
        // `config_provider` is the older name; its entries come first.
        let providers = file
            .config_provider
            .into_iter()
            .chain(file.variables_provider);
        for provider in providers {
            variables_providers.push(match provider {
                ProviderFile::Env(EnvProviderFile {
                    prefix,
                    dotenv_path,
                }) => {
                    let dotenv = match dotenv_path {
                        Some(p) => {
                            let p = base.join(p);
                            let text =
                                std::fs::read_to_string(&p).map_err(|source| Error::Read {
                                    path: p.clone(),
                                    source,
                                })?;
                            parse_dotenv(&text)
                        }
                        None => BTreeMap::new(),
                    };
                    VariablesProvider::Env {
                        prefix: prefix.unwrap_or_else(|| "SPIN_VARIABLE".into()),
                        dotenv,
                    }
                }
                ProviderFile::Static(StaticProviderFile { values }) => {
                    VariablesProvider::Static(values)
                }
                ProviderFile::Vault(_) => {
                    return Err(unsupported(
                        "variables provider `vault` is not supported yet".into(),
                    ))
                }
                ProviderFile::AzureKeyVault(_) => {
                    return Err(unsupported(
                        "variables provider `azure_key_vault` is not supported yet".into(),
                    ))
                }
            });
        }
        let mut key_value_stores = BTreeMap::new();
        for (label, store) in file.key_value_store {
            match store {
                KeyValueFile::Spin(SpinPathFile { path }) => {
                    let path = path.map(|p| base.join(p));
                    key_value_stores.insert(label, KeyValueStoreConfig::Spin(path));
                }
                KeyValueFile::Redis(RedisFile { url }) => {
                    // Checked here so a bad URL stops the app at start, naming the store.
                    crate::key_value::redis::RedisStore::new(&url).map_err(|e| Error::Invalid {
                        path: path.to_owned(),
                        message: format!("key_value_store.{label}: {e}"),
                    })?;
                    key_value_stores.insert(label, KeyValueStoreConfig::Redis { url });
                }
                other => {
                    let kind = match other {
                        KeyValueFile::AzureCosmos(_) => "azure_cosmos",
                        _ => "aws_dynamo",
                    };
                    return Err(unsupported(format!(
                        "key_value_store.{label}: type `{kind}` is not supported yet (use type = \"spin\")"
                    )));
                }
            }
        }
        let mut sqlite_databases = BTreeMap::new();
        for (label, db) in file.sqlite_database {
            match db {
                SqliteFile::Spin(SpinPathFile { path }) => {
                    sqlite_databases.insert(label, path.map(|p| base.join(p)));
                }
                SqliteFile::Libsql(_) => {
                    return Err(unsupported(format!(
                        "sqlite_database.{label}: type `libsql` is not supported yet (use type = \"spin\")"
                    )));
                }
            }
        }
        Ok(RuntimeConfig {
            state_dir: file.state_dir.map(|d| base.join(d)),
            max_instance_memory: file.max_instance_memory,
            variables_providers,
            key_value_stores,
            sqlite_databases,
        })
    }
}

/// Parses `KEY=value` lines (`#` comments, optional quotes).
fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

impl VariablesProvider {
    /// The value this provider has for application variable `name`, if any.
    pub fn get(
        &self,
        name: &str,
        env: &std::collections::HashMap<String, String>,
    ) -> Option<String> {
        match self {
            VariablesProvider::Static(values) => values.get(name).cloned(),
            VariablesProvider::Env { prefix, dotenv } => {
                let upper = name.to_ascii_uppercase();
                let key = if prefix.ends_with('_') {
                    format!("{prefix}{upper}")
                } else {
                    format!("{prefix}_{upper}")
                };
                env.get(&key).or_else(|| dotenv.get(&key)).cloned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_keys() {
        let c = RuntimeConfig::parse(
            r#"
state_dir = "state"
max_instance_memory = 1000
[[config_provider]]
type = "env"
prefix = "SPIN_VARIABLE_"
[[variables_provider]]
type = "static"
values = { a = "b" }
[key_value_store.default]
type = "spin"
[key_value_store.cache]
type = "spin"
path = "cache.db"
[key_value_store.remote]
type = "redis"
url = "redis://127.0.0.1:6379/1"
[sqlite_database.reports]
type = "spin"
path = "reports.db"
[sqlite_database.scratch]
type = "spin"
"#,
            Path::new("/etc/app/rc.toml"),
        )
        .unwrap();
        assert_eq!(c.state_dir, Some(PathBuf::from("/etc/app/state")));
        assert_eq!(c.max_instance_memory, Some(1000));
        assert_eq!(c.variables_providers.len(), 2);
        assert_eq!(
            c.key_value_stores["cache"],
            KeyValueStoreConfig::Spin(Some(PathBuf::from("/etc/app/cache.db")))
        );
        assert_eq!(
            c.key_value_stores["remote"],
            KeyValueStoreConfig::Redis {
                url: "redis://127.0.0.1:6379/1".into()
            }
        );
        assert_eq!(
            c.sqlite_databases["reports"],
            Some(PathBuf::from("/etc/app/reports.db"))
        );
        assert_eq!(c.sqlite_databases["scratch"], None);
        let mut env = std::collections::HashMap::new();
        env.insert("SPIN_VARIABLE_X".to_string(), "1".to_string());
        assert_eq!(c.variables_providers[0].get("x", &env), Some("1".into()));
        assert_eq!(c.variables_providers[1].get("a", &env), Some("b".into()));
    }

    #[test]
    fn rejects_unknown_and_unsupported() {
        let err = RuntimeConfig::parse("stat_dir = 1", Path::new("rc.toml")).unwrap_err();
        assert!(err.to_string().contains("stat_dir"), "{err}");
        let err = RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"http://u:secret@h\"",
            Path::new("rc.toml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("key_value_store.x") && text.contains("Redis URL"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
        let err = RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"redis\"\nurll = \"redis://h\"",
            Path::new("rc.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
        let err = RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"azure_cosmos\"",
            Path::new("rc.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("azure_cosmos"), "{err}");
        let err =
            RuntimeConfig::parse("[llm_compute]\ntype = \"x\"", Path::new("rc.toml")).unwrap_err();
        assert!(err.to_string().contains("llm_compute"), "{err}");
    }

    #[test]
    fn dotenv() {
        let d = parse_dotenv("# c\nA=1\nexport B=\"two\"\n\nC='3'");
        assert_eq!(d["A"], "1");
        assert_eq!(d["B"], "two");
        assert_eq!(d["C"], "3");
    }
}

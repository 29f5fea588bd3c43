//! Configuration kinds of the core group: ConfigMaps (config keys of `data` and
//! `binaryData`), Secrets (type `Opaque` by default, `stringData` folded into `data`,
//! config keys, field label `type`) and ServiceAccounts (merge keys of `secrets`), with
//! their printer columns.

use serde_json::{json, Value};

use super::{Kind, KindStrategy};
use crate::defaults::set_default;
use crate::error::Cause;
use crate::strategic::merge_keys::{ListStrategy::ByKey, MergeSchema};
use crate::table::cells::{arr, col, s};
use crate::table::{age_column, name_column, Column};
use crate::validation::config_keys;

/// `/api/v1/configmaps`.
pub const CONFIG_MAP: Kind = Kind {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    namespaced: true,
    short_names: &["cm"],
    categories: &[],
    status: false,
    scale: false,
    strategy: &ConfigMap,
};

/// `/api/v1/secrets`.
pub const SECRET: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    namespaced: true,
    short_names: &[],
    categories: &[],
    status: false,
    scale: false,
    strategy: &Secret,
};

/// `/api/v1/serviceaccounts`.
pub const SERVICE_ACCOUNT: Kind = Kind {
    group: "",
    version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    namespaced: true,
    short_names: &["sa"],
    categories: &[],
    status: false,
    scale: false,
    strategy: &ServiceAccount,
};

/// The ConfigMap strategy.
pub struct ConfigMap;

impl KindStrategy for ConfigMap {
    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        config_keys(obj, "data", out);
        config_keys(obj, "binaryData", out);
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Data", 0, |o| {
            let n = |k: &str| o.get(k).and_then(Value::as_object).map_or(0, |d| d.len());
            json!(n("data") + n("binaryData"))
        }));
        c.push(age_column());
        c
    }
}

/// The Secret strategy.
pub struct Secret;

impl KindStrategy for Secret {
    fn default(&self, obj: &mut Value) {
        set_default(obj, "/type", json!("Opaque"));
    }

    /// `stringData` is folded into `data`, base64-encoded, as kube-apiserver does.
    fn canonicalize(&self, obj: &mut Value) {
        use base64::Engine;
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        let Some(Value::Object(string_data)) = map.remove("stringData") else {
            return;
        };
        let data = map.entry("data").or_insert_with(|| json!({}));
        if let Some(d) = data.as_object_mut() {
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or_default();
                d.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text.as_bytes())),
                );
            }
        }
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        config_keys(obj, "data", out);
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Type", 0, |o| json!(s(o, "/type"))));
        c.push(col("Data", 0, |o| {
            json!(o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len()))
        }));
        c.push(age_column());
        c
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &["type"]
    }
}

const SERVICE_ACCOUNT_MERGE: MergeSchema = MergeSchema {
    pod_spec: None,
    rules: &[("secrets", ByKey("name"))],
};

/// The ServiceAccount strategy.
pub struct ServiceAccount;

impl KindStrategy for ServiceAccount {
    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Secrets", 0, |o| json!(arr(o, "/secrets").len())));
        c.push(age_column());
        c
    }

    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        Some(&SERVICE_ACCOUNT_MERGE)
    }
}

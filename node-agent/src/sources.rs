//! The data of the ConfigMaps and Secrets a pod refers to (from `env`, `envFrom` and
//! volumes), read through the `kube` client as key → bytes: a ConfigMap's `data` and
//! `binaryData`, a Secret's `data` (and `stringData`, which a real API server folds into
//! `data` on write).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

/// Which kind of object holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl Kind {
    /// As the kubelet's messages name it (`configmap "x" not found`).
    pub fn lower(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }

    /// As the kind is written (`couldn't find key k in ConfigMap ns/x`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
}

/// The data of `kind` `name` in `ns`; `None` when it does not exist.
pub async fn data(
    client: &kube::Client,
    ns: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, kube::Error> {
    Ok(match kind {
        Kind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            api.get_opt(name).await?.map(|cm| {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                data.extend(
                    cm.binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                data
            })
        }
        Kind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            api.get_opt(name).await?.map(|secret| {
                let mut data: BTreeMap<String, Vec<u8>> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                data.extend(
                    secret
                        .string_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes())),
                );
                data
            })
        }
    })
}

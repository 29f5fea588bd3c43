//! SpinApp: spec and status as spin-operator v1alpha1 defines them
//! (`api/v1alpha1/spinapp_types.go`), field for field, plus `spec.env`.
//!
//! Owns the Rust shape of the kind only; what a field does is the SpinApp controller's
//! business, what is valid the admission rules'.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, EnvVar, EnvVarSource, LocalObjectReference, SecretKeySelector, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a SpinApp (`core.spinkube.dev/v1alpha1`).
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[allow(
    clippy::duplicated_attributes,
    reason = "one printcolumn(...) per column repeats the same keys"
)]
#[kube(
    group = "core.spinkube.dev",
    version = "v1alpha1",
    kind = "SpinApp",
    namespaced,
    status = "SpinAppStatus",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.readyReplicas"
    ),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Executor", type_ = "string", json_path = ".spec.executor"),
    printcolumn(
        name = "Deployment",
        type_ = "string",
        json_path = ".status.deploymentName",
        priority = 1
    ),
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".status.serviceName",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SpinAppSpec {
    /// How the app is executed: the name of a SpinAppExecutor in the app's namespace.
    /// Defaulted at admission to the alphabetically first executor.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub executor: String,
    /// The OCI reference of the Spin app.
    pub image: String,
    /// Secrets in the app's namespace used to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Health checks, as readiness and liveness probes of the app's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<HealthChecks>,
    /// Number of replicas; unset (nil) in the Deployment when autoscaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Whether something else (an HPA, KEDA) sets the Deployment's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_autoscaling: Option<bool>,
    /// The runtime config (stores, databases, LLM) rendered into the app's
    /// `runtime-config.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    /// Volumes of the app's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    /// Where the volumes are mounted in the app's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// Spin variables, passed as `SPIN_VARIABLE_<NAME>` environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<SpinVar>>,
    /// Environment variables of the app's container (the docs' glossary field; not in
    /// spin-operator's CRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Annotations of the app's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_annotations: Option<BTreeMap<String, String>>,
    /// Annotations of the app's Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_annotations: Option<BTreeMap<String, String>>,
    /// Annotations of the app's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// Labels of the app's pods (besides the selector labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Resource limits and requests of the app's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The components to run (selective deployment); all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub components: Option<Vec<String>>,
    /// The pods' service account (`default` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Limits per invocation; `memory` (a quantity) becomes `SPIN_MAX_INSTANCE_MEMORY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_limits: Option<BTreeMap<String, String>>,
}

/// The observed state of a SpinApp.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpinAppStatus {
    /// `Available` and `Progressing`, copied from the app's Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The executor running the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_scheduler: Option<String>,
    /// Ready replicas of the app's Deployment (always written, so 0 prints).
    #[serde(default)]
    pub ready_replicas: i32,
    /// The app's Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// The app's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// Health checks of an app.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct HealthChecks {
    /// The liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<HealthProbe>,
    /// The readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<HealthProbe>,
}

/// One health check. Unset numbers take the CRD's defaults (10, 1, 10, 1, 3).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthProbe {
    /// An HTTP GET on the app's port; the only kind of check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpHealthProbe>,
    /// Seconds after start before the first check (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds before a check times out (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// Seconds between checks (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    /// Successes in a row that count as success (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    /// Failures in a row that count as failure (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
}

/// An HTTP GET check.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHealthProbe {
    /// The path requested.
    pub path: String,
    /// Headers sent with the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHealthProbeHeader>,
}

/// A header of an HTTP check.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct HttpHealthProbeHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Resource limits and requests of the app's container.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct Resources {
    /// Limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Quantity>>,
    /// Requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// A Spin variable bound to a value or a Kubernetes source.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpinVar {
    /// The variable's name (lower case, as Spin names them).
    pub name: String,
    /// A static value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from (any `EnvVarSource`, resolved by the kubelet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// The runtime config of an app.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// A Secret (key `runtime-config.toml`) used as is; every other field is then ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_from_secret: Option<String>,
    /// Key-value stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_value_stores: Option<Vec<KeyValueStoreConfig>>,
    /// SQLite databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite_databases: Option<Vec<SqliteDatabaseConfig>>,
    /// LLM compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_compute: Option<LlmComputeConfig>,
}

/// A key-value store: `[key_value_store.<name>]`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct KeyValueStoreConfig {
    /// The store's label.
    pub name: String,
    /// Its `type` (`redis`, `spin`, …).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its other keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<RuntimeConfigOption>>,
}

/// A SQLite database: `[sqlite_database.<name>]`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct SqliteDatabaseConfig {
    /// The database's label.
    pub name: String,
    /// Its `type` (`libsql`, `spin`, …).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its other keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<RuntimeConfigOption>>,
}

/// LLM compute: `[llm_compute]`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct LlmComputeConfig {
    /// Its `type` (`remote_http`, …).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its other keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<RuntimeConfigOption>>,
}

/// One key of a runtime config section.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfigOption {
    /// The key.
    pub name: String,
    /// A static value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A ConfigMap or Secret key, read by the controller when it renders the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<RuntimeConfigVarSource>,
}

/// Where a runtime config value comes from.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfigVarSource {
    /// A key of a ConfigMap in the app's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
    /// A key of a Secret in the app's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
}

/// The same kind under `core.spinoperator.dev`.
pub mod legacy {
    use super::SpinAppStatus;
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// The spec of a `core.spinoperator.dev` SpinApp: the same fields as
    /// [`super::SpinAppSpec`].
    #[derive(
        CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema,
    )]
    #[allow(
        clippy::duplicated_attributes,
        reason = "one printcolumn(...) per column repeats the same keys"
    )]
    #[kube(
        group = "core.spinoperator.dev",
        version = "v1alpha1",
        kind = "SpinApp",
        namespaced,
        status = "SpinAppStatus",
        derive = "PartialEq",
        scale(
            spec_replicas_path = ".spec.replicas",
            status_replicas_path = ".status.readyReplicas"
        ),
        printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
        printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
        printcolumn(name = "Executor", type_ = "string", json_path = ".spec.executor"),
        printcolumn(
            name = "Deployment",
            type_ = "string",
            json_path = ".status.deploymentName",
            priority = 1
        ),
        printcolumn(
            name = "Service",
            type_ = "string",
            json_path = ".status.serviceName",
            priority = 1
        )
    )]
    #[serde(transparent)]
    pub struct SpinAppSpec(pub super::SpinAppSpec);

    impl std::ops::Deref for SpinAppSpec {
        type Target = super::SpinAppSpec;
        fn deref(&self) -> &super::SpinAppSpec {
            &self.0
        }
    }
}

//! SpinAppExecutor: how SpinApps naming it are run (spin-operator's
//! `api/v1alpha1/spinappexecutor_types.go`), plus status conditions in which spinlet says
//! how it runs the executor's apps.
//!
//! Owns the Rust shape of the kind only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a SpinAppExecutor (`core.spinkube.dev/v1alpha1`).
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.spinkube.dev",
    version = "v1alpha1",
    kind = "SpinAppExecutor",
    namespaced,
    status = "SpinAppExecutorStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct SpinAppExecutorSpec {
    /// Whether the operator builds a Deployment for the executor's apps (false: something
    /// else runs them; the operator still creates their Services).
    pub create_deployment: bool,
    /// How the Deployment is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_config: Option<ExecutorDeploymentConfig>,
}

/// How the Deployments of an executor's apps are built.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorDeploymentConfig {
    /// The pods' RuntimeClass (shim mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// A Spin CLI image to run the app in ("spintainer" mode; spinlet runs apps natively
    /// and does not use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spin_image: Option<String>,
    /// A Secret with the CA bundle to mount at `/etc/ssl/certs/ca-certificates.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_secret: Option<String>,
    /// Whether to create the default CA bundle Secret.
    #[serde(rename = "installDefaultCACerts")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_default_ca_certs: Option<bool>,
    /// OpenTelemetry exporter endpoints, as `OTEL_EXPORTER_OTLP_*` environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelConfig>,
}

/// OpenTelemetry exporter endpoints.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct OtelConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_otlp_traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_otlp_metrics_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_otlp_logs_endpoint: Option<String>,
}

/// The observed state of an executor (empty in spin-operator).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
pub struct SpinAppExecutorStatus {
    /// `RunsNatively`: how spinlet runs the executor's apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The same kind under `core.spinoperator.dev`.
pub mod legacy {
    use super::SpinAppExecutorStatus;
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// The spec of a `core.spinoperator.dev` SpinAppExecutor: the same fields as
    /// [`super::SpinAppExecutorSpec`].
    #[derive(
        CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "core.spinoperator.dev",
        version = "v1alpha1",
        kind = "SpinAppExecutor",
        namespaced,
        status = "SpinAppExecutorStatus",
        derive = "PartialEq"
    )]
    #[serde(transparent)]
    pub struct SpinAppExecutorSpec(pub super::SpinAppExecutorSpec);

    impl std::ops::Deref for SpinAppExecutorSpec {
        type Target = super::SpinAppExecutorSpec;
        fn deref(&self) -> &super::SpinAppExecutorSpec {
            &self.0
        }
    }
}

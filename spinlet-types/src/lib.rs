//! spinlet-types: the wire types of SpinKube's API, shared by the API server's bootstrap,
//! the controllers and the admission rules.
//!
//! - [`spinapp`]: `SpinApp` (spec, status and their parts) as spin-operator v1alpha1
//!   defines it, plus `spec.env` (the docs' glossary field).
//! - [`executor`]: the `SpinAppExecutor` kind.
//! - [`keys`]: API groups, label and annotation keys, finalizer and condition types.
//! - [`crds`]: the CustomResourceDefinitions `spinlet server` installs, one per kind and
//!   group.
//!
//! Both kinds exist under two API groups: `core.spinkube.dev` (current spin-operator; the
//! types at the crate root, e.g. [`SpinApp`]) and `core.spinoperator.dev` (the docs'
//! manifests; [`spinoperator::SpinApp`]). The spec and status types are shared: the
//! legacy group's spec is a transparent newtype around the same struct. The API server
//! stores both groups' objects once, so a client may use either.
//!
//! IO-free: types, constants and embedded YAML only.

pub mod crds;
pub mod executor;
pub mod keys;
pub mod spinapp;

pub use crds::crds;
pub use executor::{
    ExecutorDeploymentConfig, OtelConfig, SpinAppExecutor, SpinAppExecutorSpec,
    SpinAppExecutorStatus,
};
pub use spinapp::{
    HealthChecks, HealthProbe, HttpHealthProbe, HttpHealthProbeHeader, KeyValueStoreConfig,
    LlmComputeConfig, Resources, RuntimeConfig, RuntimeConfigOption, RuntimeConfigVarSource,
    SpinApp, SpinAppSpec, SpinAppStatus, SpinVar, SqliteDatabaseConfig,
};

/// The same kinds under the docs' group, `core.spinoperator.dev` (spin-operator up to
/// v0.3.0). Objects share storage with the crate-root types.
pub mod spinoperator {
    pub use crate::executor::legacy::{SpinAppExecutor, SpinAppExecutorSpec};
    pub use crate::spinapp::legacy::{SpinApp, SpinAppSpec};
}

/// A rule an object breaks, as admission answers it (one `Invalid` cause: the field path,
/// the value it has, and why it is wrong).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldViolation {
    /// The field's path, e.g. `spec.replicas`.
    pub field: String,
    /// The value the field has.
    pub value: serde_json::Value,
    /// Why it is invalid (spin-operator's words where it has a rule).
    pub message: String,
}

//! Names shared by the controllers, the admission rules and the tests: API groups, label
//! and annotation keys, the finalizer, field manager and condition types.
//!
//! spin-operator builds its label keys under its API group (`core.spinkube.dev/app-name`;
//! `core.spinoperator.dev/app-name` before v0.4.0), so the key functions take the group.

/// The current API group (spin-operator v0.4.0+).
pub const GROUP: &str = "core.spinkube.dev";
/// The docs' API group (spin-operator v0.1.0–v0.3.0).
pub const LEGACY_GROUP: &str = "core.spinoperator.dev";
/// Both groups, the docs' first.
pub const GROUPS: [&str; 2] = [LEGACY_GROUP, GROUP];
/// The only version of both kinds.
pub const VERSION: &str = "v1alpha1";

/// `core.spinkube.dev/app-name`.
pub const APP_NAME_LABEL: &str = "core.spinkube.dev/app-name";
/// `core.spinoperator.dev/app-name` (the docs' label: `kubectl get pods -l`).
pub const LEGACY_APP_NAME_LABEL: &str = "core.spinoperator.dev/app-name";

/// The app-name label key under `group`: `<group>/app-name`.
pub fn app_name_label(group: &str) -> String {
    format!("{group}/app-name")
}

/// The ready-status label key of app `app` under `group`: `<group>/app.<app>.status`.
/// Its value is [`STATUS_READY`]; the Service selects on it alone.
pub fn status_label(group: &str, app: &str) -> String {
    format!("{group}/app.{app}.status")
}

/// The value of the status label.
pub const STATUS_READY: &str = "ready";

/// The finalizer on SpinAppExecutors that blocks deleting one still in use.
pub const FINALIZER: &str = "core.spinkube.dev/finalizer";

/// The field manager of everything the SpinApp controller applies (spin-operator's).
pub const FIELD_MANAGER: &str = "spin-operator";

/// The named container port of a Spin app.
pub const HTTP_PORT_NAME: &str = "http-app";
/// The port a Spin app listens on and its Service exposes.
pub const HTTP_PORT: i32 = 80;

/// Key of the runtime config in its Secret, and the file the app reads.
pub const RUNTIME_CONFIG_KEY: &str = "runtime-config.toml";
/// Where the runtime config is mounted.
pub const RUNTIME_CONFIG_PATH: &str = "/runtime-config.toml";

/// SpinApp condition copied from its Deployment's `Available` (also `False` with reason
/// [`REASON_MISSING_EXECUTOR`] while the executor is missing).
pub const CONDITION_AVAILABLE: &str = "Available";
/// SpinApp condition copied from its Deployment's `Progressing`.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Event and condition reason: the app's executor does not exist in its namespace.
pub const REASON_MISSING_EXECUTOR: &str = "MissingExecutor";
/// Condition reason while the app's Deployment does not exist.
pub const REASON_DEPLOYMENT_NOT_FOUND: &str = "DeploymentNotFound";

/// SpinAppExecutor condition: how spinlet runs the executor's apps (`True`, reason
/// [`REASON_NATIVE`]; `False`, reason [`REASON_SPIN_IMAGE_IGNORED`] for a `spinImage`
/// executor, whose image spinlet does not run).
pub const CONDITION_NATIVE: &str = "RunsNatively";
/// Reason: the executor's apps run in spinlet's own Spin runtime.
pub const REASON_NATIVE: &str = "NativeSpinRuntime";
/// Event and condition reason: `spinImage` is set and not used.
pub const REASON_SPIN_IMAGE_IGNORED: &str = "SpinImageIgnored";
/// Event reason: an executor's deletion waits for the apps using it.
pub const REASON_DELETION_BLOCKED: &str = "DeletionBlocked";

/// The executor the docs install (`shim-executor.yaml`), created on first start.
pub const SHIM_EXECUTOR: &str = "containerd-shim-spin";
/// The RuntimeClass the docs install (`runtime-class.yaml`), created on first start.
pub const RUNTIME_CLASS: &str = "wasmtime-spin-v2";
/// The RuntimeClass's handler.
pub const RUNTIME_HANDLER: &str = "spin";

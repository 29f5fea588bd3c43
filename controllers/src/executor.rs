//! The SpinAppExecutor controller, and the two objects the docs install by hand.
//!
//! It owns, per executor, the finalizer `core.spinkube.dev/finalizer` (through
//! kube-runtime's `finalizer` helper: deleting an executor still named by a SpinApp in
//! its namespace waits, with a `DeletionBlocked` Event, as spin-operator's does) and the
//! executor's `status.conditions`: `RunsNatively` says how spinlet runs its apps. spinlet
//! has no containers, so a `spinImage` ("spintainer") executor's image is not run: its
//! apps run natively like any other, and the condition and a `SpinImageIgnored` Warning
//! Event say so and how to change the executor.
//!
//! On start it creates, when missing, RuntimeClass `wasmtime-spin-v2` (handler `spin`)
//! and SpinAppExecutor `containerd-shim-spin` in `default`, exactly as the docs'
//! `runtime-class.yaml` and `shim-executor.yaml` define them, with kubectl's
//! `last-applied-configuration`, so `kubectl apply` of those files finds nothing to do.
//! It writes nothing else: apps and their objects are the SpinApp controller's.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;
use spinlet_types::keys::{
    CONDITION_NATIVE, FINALIZER, LEGACY_GROUP, REASON_DELETION_BLOCKED, REASON_NATIVE,
    REASON_SPIN_IMAGE_IGNORED, RUNTIME_CLASS, RUNTIME_HANDLER, SHIM_EXECUTOR, VERSION,
};
use spinlet_types::{SpinApp, SpinAppExecutor, SpinAppExecutorStatus};
use tokio_util::sync::CancellationToken;

/// How the executor controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `reportingInstance` of its Events.
    pub instance: String,
    /// Retry delay while a deletion is blocked or a reconcile failed.
    pub retry: Duration,
    /// Whether to create the docs' RuntimeClass and executor when missing.
    pub builtins: bool,
}

impl Config {
    /// Retry after 5 seconds; create the built-ins.
    pub fn new(host: &str) -> Config {
        Config {
            instance: format!("spin-operator-{host}"),
            retry: Duration::from_secs(5),
            builtins: true,
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SpinApps still name the executor being deleted.
    #[error("SpinAppExecutor {0} is still used by SpinApps: {1}")]
    InUse(String, String),
    /// An API call failed.
    #[error("{step}: {source}")]
    Api {
        /// What was being done.
        step: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// Result type of the executor controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;

struct Context {
    client: kube::Client,
    recorder: Recorder,
    config: Config,
}

/// The docs' `runtime-class.yaml`, with the annotation `kubectl apply` would write.
pub fn runtime_class() -> RuntimeClass {
    // Keys sorted, compact: Go's json.Marshal of the manifest, as kubectl writes it.
    let applied = format!(
        r#"{{"apiVersion":"node.k8s.io/v1","handler":"{RUNTIME_HANDLER}","kind":"RuntimeClass","metadata":{{"annotations":{{}},"name":"{RUNTIME_CLASS}"}}}}"#
    );
    RuntimeClass {
        metadata: kube::api::ObjectMeta {
            name: Some(RUNTIME_CLASS.into()),
            annotations: Some(
                [(
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    format!("{applied}\n"),
                )]
                .into(),
            ),
            ..Default::default()
        },
        handler: RUNTIME_HANDLER.into(),
        overhead: None,
        scheduling: None,
    }
}

/// The docs' `shim-executor.yaml` (`core.spinoperator.dev`), in `default`, with the
/// annotation `kubectl apply` would write.
pub fn shim_executor() -> serde_json::Value {
    let applied = format!(
        r#"{{"apiVersion":"{LEGACY_GROUP}/{VERSION}","kind":"SpinAppExecutor","metadata":{{"annotations":{{}},"name":"{SHIM_EXECUTOR}","namespace":"default"}},"spec":{{"createDeployment":true,"deploymentConfig":{{"runtimeClassName":"{RUNTIME_CLASS}"}}}}}}"#
    );
    json!({
        "apiVersion": format!("{LEGACY_GROUP}/{VERSION}"),
        "kind": "SpinAppExecutor",
        "metadata": {
            "name": SHIM_EXECUTOR,
            "namespace": "default",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{applied}\n")},
        },
        "spec": {"createDeployment": true, "deploymentConfig": {"runtimeClassName": RUNTIME_CLASS}},
    })
}

/// Creates the docs' RuntimeClass and executor when missing.
pub async fn ensure_builtins(client: &kube::Client) -> Result<()> {
    let created = |step| move |source| Error::Api { step, source };
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    if classes
        .get_opt(RUNTIME_CLASS)
        .await
        .map_err(created("reading RuntimeClass wasmtime-spin-v2"))?
        .is_none()
    {
        match classes
            .create(&PostParams::default(), &runtime_class())
            .await
        {
            Ok(_) => tracing::info!("created RuntimeClass {RUNTIME_CLASS}"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(created("creating RuntimeClass wasmtime-spin-v2")(e)),
        }
    }
    let executors: Api<spinlet_types::spinoperator::SpinAppExecutor> =
        Api::namespaced(client.clone(), "default");
    if executors
        .get_opt(SHIM_EXECUTOR)
        .await
        .map_err(created("reading SpinAppExecutor containerd-shim-spin"))?
        .is_none()
    {
        let executor: spinlet_types::spinoperator::SpinAppExecutor =
            match serde_json::from_value(shim_executor()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "the built-in executor does not decode");
                    return Ok(());
                }
            };
        match executors.create(&PostParams::default(), &executor).await {
            Ok(_) => tracing::info!("created SpinAppExecutor default/{SHIM_EXECUTOR}"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(created("creating SpinAppExecutor containerd-shim-spin")(e)),
        }
    }
    Ok(())
}

/// The `RunsNatively` condition for `executor`: (status, reason, message).
pub fn native_condition(executor: &SpinAppExecutor) -> (&'static str, &'static str, String) {
    let name = executor.name_any();
    let config = executor.spec.deployment_config.clone().unwrap_or_default();
    if !executor.spec.create_deployment {
        return (
            "True",
            REASON_NATIVE,
            "createDeployment is false: spinlet creates only the Services of this executor's SpinApps; something else must run them".into(),
        );
    }
    match (&config.spin_image, &config.runtime_class_name) {
        (Some(image), _) => (
            "False",
            REASON_SPIN_IMAGE_IGNORED,
            format!(
                "spinlet runs Spin apps natively, in its own Spin runtime, not in a container: spinImage {image} is not used and this executor's SpinApps run natively. \
                 To make that explicit, set spec.deploymentConfig.runtimeClassName: {RUNTIME_CLASS} and remove spinImage \
                 (kubectl edit spinappexecutor {name}), or use the built-in executor {SHIM_EXECUTOR}"
            ),
        ),
        (None, Some(rc)) => (
            "True",
            REASON_NATIVE,
            format!("spinlet runs this executor's SpinApps natively in its Spin runtime (RuntimeClass {rc})"),
        ),
        (None, None) => (
            "False",
            "NoRuntime",
            "must specify either runtimeClassName or spinImage".into(),
        ),
    }
}

fn reference(executor: &SpinAppExecutor) -> ObjectReference {
    ObjectReference {
        api_version: Some(format!("{}/{VERSION}", spinlet_types::keys::GROUP)),
        kind: Some("SpinAppExecutor".into()),
        name: executor.metadata.name.clone(),
        namespace: executor.metadata.namespace.clone(),
        uid: executor.metadata.uid.clone(),
        resource_version: executor.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

async fn publish(
    ctx: &Context,
    executor: &SpinAppExecutor,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &reference(executor)).await {
        tracing::debug!(error = %e, reason, "cannot record an event");
    }
}

async fn apply(
    ctx: &Context,
    api: &Api<SpinAppExecutor>,
    executor: &SpinAppExecutor,
) -> Result<Action> {
    let (status, reason, message) = native_condition(executor);
    let mut conditions = executor
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let before = conditions.clone();
    crate::spinapp::status::set_condition(
        &mut conditions,
        CONDITION_NATIVE,
        status,
        reason,
        &message,
        &Time(jiff::Timestamp::now()),
    );
    if conditions != before {
        let was_ignored = before
            .iter()
            .any(|c| c.type_ == CONDITION_NATIVE && c.reason == REASON_SPIN_IMAGE_IGNORED);
        if reason == REASON_SPIN_IMAGE_IGNORED && !was_ignored {
            publish(
                ctx,
                executor,
                EventType::Warning,
                REASON_SPIN_IMAGE_IGNORED,
                message.clone(),
            )
            .await;
        }
        let status = SpinAppExecutorStatus {
            conditions: Some(conditions),
        };
        api.patch_status(
            &executor.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map_err(|source| Error::Api {
            step: "writing the executor's status",
            source,
        })?;
    }
    Ok(Action::await_change())
}

async fn cleanup(ctx: &Context, executor: &SpinAppExecutor) -> Result<Action> {
    let ns = executor.namespace().unwrap_or_default();
    let name = executor.name_any();
    let apps: Api<SpinApp> = Api::namespaced(ctx.client.clone(), &ns);
    let list = apps
        .list(&Default::default())
        .await
        .map_err(|source| Error::Api {
            step: "listing SpinApps",
            source,
        })?;
    let users: Vec<String> = list
        .items
        .iter()
        .filter(|a| a.spec.executor == name)
        .map(|a| a.name_any())
        .collect();
    if users.is_empty() {
        return Ok(Action::await_change());
    }
    let message = format!(
        "SpinAppExecutor cannot be deleted while SpinApps use it: {}",
        users.join(", ")
    );
    publish(
        ctx,
        executor,
        EventType::Warning,
        REASON_DELETION_BLOCKED,
        message,
    )
    .await;
    Err(Error::InUse(format!("{ns}/{name}"), users.join(", ")))
}

async fn reconcile(executor: Arc<SpinAppExecutor>, ctx: Arc<Context>) -> Result<Action> {
    let Some(ns) = executor.namespace() else {
        return Ok(Action::await_change());
    };
    let api: Api<SpinAppExecutor> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, executor, |event| async {
        match event {
            Finalizer::Apply(e) => apply(&ctx, &api, &e).await,
            Finalizer::Cleanup(e) => cleanup(&ctx, &e).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    })
}

fn error_policy(executor: Arc<SpinAppExecutor>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::info!(executor = %executor.name_any(), %error, "reconciling SpinAppExecutor; retrying");
    Action::requeue(ctx.config.retry)
}

/// Runs the executor controller until `shutdown` is cancelled, creating the built-ins
/// first (retrying until the API answers).
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) {
    if config.builtins {
        loop {
            match ensure_builtins(&client).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "creating the built-in RuntimeClass and executor; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(config.retry) => {}
            }
        }
    }
    let reporter = Reporter {
        controller: "spin-operator".into(),
        instance: Some(config.instance.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        config,
    });
    let wc = watcher::Config::default;
    Controller::new(Api::<SpinAppExecutor>::all(client.clone()), wc())
        // An app's executor changing or the app going may unblock a deletion.
        .watches(Api::<SpinApp>::all(client.clone()), wc(), |app: SpinApp| {
            let r = ObjectRef::new(&app.spec.executor);
            match app.namespace() {
                Some(ns) => vec![r.within(&ns)],
                None => vec![r],
            }
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "spinappexecutor reconcile");
            }
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_the_docs_manifests() {
        let rc = serde_json::to_value(runtime_class()).expect("json");
        assert_eq!(rc["handler"], "spin");
        assert_eq!(rc["metadata"]["name"], "wasmtime-spin-v2");
        let ex = shim_executor();
        assert_eq!(
            ex["spec"],
            json!({"createDeployment": true, "deploymentConfig": {"runtimeClassName": "wasmtime-spin-v2"}})
        );
        let applied: serde_json::Value = serde_json::from_str(
            ex["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .expect("annotation"),
        )
        .expect("json");
        assert_eq!(applied["spec"], ex["spec"]);
        assert!(serde_json::from_value::<spinlet_types::spinoperator::SpinAppExecutor>(ex).is_ok());
    }

    #[test]
    fn spin_image_executors_are_told_they_run_natively() {
        let e: SpinAppExecutor = serde_json::from_value(json!({
            "apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinAppExecutor",
            "metadata": {"name": "spintainer", "namespace": "default"},
            "spec": {"createDeployment": true, "deploymentConfig": {"spinImage": "ghcr.io/fermyon/spin:v2.7.0"}},
        }))
        .expect("executor");
        let (status, reason, message) = native_condition(&e);
        assert_eq!((status, reason), ("False", "SpinImageIgnored"));
        assert!(
            message.contains("runtimeClassName: wasmtime-spin-v2"),
            "{message}"
        );
        assert!(
            message.contains("kubectl edit spinappexecutor spintainer"),
            "{message}"
        );
    }
}

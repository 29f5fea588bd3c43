//! The SpinApp controller: what spin-operator's `SpinAppReconciler` does, for apps of
//! both API groups.
//!
//! It owns, per SpinApp, the Deployment, the Service and the runtime-config Secret named
//! after it (applied server-side as field manager `spin-operator`, force, each with the
//! app as controlling owner so the API server's garbage collector deletes them with it)
//! and the app's `status`, and creates the namespace's CA bundle Secret when the executor
//! asks for it and it is missing ([`crate::ca_bundle`]). It reads the app's
//! SpinAppExecutor and the ConfigMaps and Secrets its runtime config names, and never
//! writes anything else: pods are the Deployment controller's, endpoints the Endpoints
//! controller's.
//!
//! One reconcile, as spin-operator's:
//! 1. The executor named by `spec.executor` in the app's namespace; missing → Warning
//!    Event `MissingExecutor` (`Could not find SpinAppExecutor ns/name`),
//!    `Available=False` with that reason, and a retry.
//! 2. Executor `createDeployment: true`: the runtime-config Secret (unless
//!    `loadFromSecret`; created once, its name changes with its content), the CA bundle
//!    Secret (`installDefaultCACerts`), then the Deployment ([`deployment`]). `false`: a
//!    Deployment this app controls is deleted.
//! 3. The Service ([`service`]), always.
//! 4. The status ([`status`]), only with `createDeployment: true`, written when changed.
//!
//! It reads its children and the executors from watch-fed caches (kube-runtime reflectors
//! fed through `watches_stream`, the same watches that wake it), and applies a child only
//! when its cached copy lacks a field of what would be applied ([`applied`]): during a
//! burst every Deployment status change wakes the app, and a reconcile that finds
//! everything in place costs no request. A cache miss on the executor is checked with a
//! GET before the app is called executor-less (the executor may be newer than the cache).
//!
//! Both groups share storage, so the controller watches `core.spinkube.dev` only and sees
//! every app once; [`group`] decides per app which group's label keys and owner
//! references it gets (the group it was written under). Owned objects map back to their
//! app through owner references of either group; executors to the apps naming them.

pub mod admission;
pub mod applied;
pub mod deployment;
pub mod group;
pub mod runtime_config;
pub mod service;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use spinlet_types::keys::{FIELD_MANAGER, GROUPS, REASON_MISSING_EXECUTOR, VERSION};
use spinlet_types::{SpinApp, SpinAppExecutor};
use tokio_util::sync::CancellationToken;

use crate::caches::{self, reflected};

/// How the SpinApp controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `reportingInstance` of its Events.
    pub instance: String,
    /// How often every app is reconciled again when nothing changes.
    pub resync: Duration,
    /// Retry delay after a failed reconcile.
    pub retry: Duration,
}

impl Config {
    /// Resync every 5 minutes, retry after 5 seconds.
    pub fn new(host: &str) -> Config {
        Config {
            instance: format!("{FIELD_MANAGER}-{host}"),
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(5),
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The app's executor does not exist in its namespace.
    #[error("Could not find SpinAppExecutor {0}")]
    MissingExecutor(String),
    /// The Deployment cannot be built from the app and its executor.
    #[error(transparent)]
    Build(#[from] deployment::BuildError),
    /// The runtime config cannot be rendered.
    #[error(transparent)]
    RuntimeConfig(#[from] runtime_config::Error),
    /// An API call failed.
    #[error("{step}: {source}")]
    Api {
        /// What was being done.
        step: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

fn api_err(step: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Api { step, source }
}

/// Result type of the SpinApp controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;

struct Context {
    client: kube::Client,
    recorder: Recorder,
    config: Config,
    deployments: Store<Deployment>,
    services: Store<Service>,
    secrets: Store<Secret>,
    executors: Store<SpinAppExecutor>,
    shutdown: CancellationToken,
}

/// The cached `K` named `name` in `ns`.
fn cached<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    store.get(&ObjectRef::new(name).within(ns))
}

/// The app's reference for Events, under `group`.
fn reference(app: &SpinApp, group: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(format!("{group}/{VERSION}")),
        kind: Some("SpinApp".into()),
        name: app.metadata.name.clone(),
        namespace: app.metadata.namespace.clone(),
        uid: app.metadata.uid.clone(),
        resource_version: app.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// The app as controlling owner, under `group`.
fn owner(app: &SpinApp, group: &str) -> OwnerReference {
    OwnerReference {
        api_version: format!("{group}/{VERSION}"),
        kind: "SpinApp".into(),
        name: app.name_any(),
        uid: app.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The SpinApps owning `obj`, whichever group the owner reference names.
fn owners<K: Resource>(obj: K) -> Vec<ObjectRef<SpinApp>> {
    let ns = obj.meta().namespace.clone();
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .filter(|o| {
            o.kind == "SpinApp"
                && GROUPS
                    .iter()
                    .any(|g| o.api_version == format!("{g}/{VERSION}"))
        })
        .map(|o| {
            let r = ObjectRef::new(&o.name);
            match &ns {
                Some(ns) => r.within(ns),
                None => r,
            }
        })
        .collect()
}

/// The apps in `executor`'s namespace that name it.
fn apps_using(store: &Store<SpinApp>, executor: &SpinAppExecutor) -> Vec<ObjectRef<SpinApp>> {
    let ns = executor.namespace();
    let name = executor.name_any();
    store
        .state()
        .iter()
        .filter(|a| a.namespace() == ns && a.spec.executor == name)
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// Runs the SpinApp controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) {
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some(config.instance.clone()),
    };
    let (deployments, deployment_events) = reflected::<Deployment>(&client);
    let (services, service_events) = reflected::<Service>(&client);
    let (secrets, secret_events) = reflected::<Secret>(&client);
    let (executors, executor_events) = reflected::<SpinAppExecutor>(&client);
    let stop = shutdown.clone();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        config,
        deployments,
        services,
        secrets,
        executors,
        shutdown: stop,
    });
    let controller = Controller::new(
        Api::<SpinApp>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .watches_stream(deployment_events, owners)
        .watches_stream(service_events, owners)
        .watches_stream(secret_events, owners)
        .watches_stream(executor_events, move |e| apps_using(&store, &e))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "spinapp reconcile");
            }
            futures::future::ready(())
        })
        .await;
}

fn error_policy(app: Arc<SpinApp>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(app = %app.name_any(), namespace = ?app.namespace(), %error, "reconciling SpinApp failed; retrying");
    Action::requeue(ctx.config.retry)
}

async fn publish(
    ctx: &Context,
    reference: &ObjectReference,
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
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        tracing::debug!(error = %e, reason, "cannot record an event");
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

async fn write_status(
    api: &Api<SpinApp>,
    app: &SpinApp,
    status: spinlet_types::SpinAppStatus,
) -> Result<()> {
    if app.status.as_ref() == Some(&status) {
        return Ok(());
    }
    api.patch_status(
        &app.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(api_err("writing the SpinApp's status"))?;
    Ok(())
}

async fn reconcile(app: Arc<SpinApp>, ctx: Arc<Context>) -> Result<Action> {
    let Some(ns) = app.namespace() else {
        return Ok(Action::await_change());
    };
    let name = app.name_any();
    let client = &ctx.client;
    let apps: Api<SpinApp> = Api::namespaced(client.clone(), &ns);
    // A pass on caches that have not had their first list would see no children.
    let first_lists = async {
        ctx.deployments.wait_until_ready().await.is_ok()
            && ctx.services.wait_until_ready().await.is_ok()
            && ctx.secrets.wait_until_ready().await.is_ok()
            && ctx.executors.wait_until_ready().await.is_ok()
    };
    if !caches::ready(&ctx.shutdown, first_lists).await {
        return Ok(Action::await_change());
    }
    let existing = cached(&ctx.deployments, &ns, &name).map(|d| (*d).clone());
    let controlled = |d: &Deployment| {
        d.owner_references()
            .iter()
            .any(|o| Some(&o.uid) == app.metadata.uid.as_ref() && o.controller == Some(true))
    };
    let group = group::of(&app.metadata, existing.as_ref().filter(|d| controlled(d)));
    let reference = reference(&app, group);

    let executors: Api<SpinAppExecutor> = Api::namespaced(client.clone(), &ns);
    // No name (no executor defaulted at admission) is a missing executor, not a list.
    let executor = match app.spec.executor.as_str() {
        "" => None,
        name => match cached(&ctx.executors, &ns, name) {
            Some(e) => Some((*e).clone()),
            None => executors
                .get_opt(name)
                .await
                .map_err(api_err("reading the app's executor"))?,
        },
    };
    let Some(executor) = executor else {
        let message = format!("Could not find SpinAppExecutor {ns}/{}", app.spec.executor);
        publish(
            &ctx,
            &reference,
            EventType::Warning,
            REASON_MISSING_EXECUTOR,
            message.clone(),
        )
        .await;
        write_status(
            &apps,
            &app,
            status::missing_executor(&app, &message, &now()),
        )
        .await?;
        return Err(Error::MissingExecutor(format!(
            "{ns}/{}",
            app.spec.executor
        )));
    };
    if app.metadata.deletion_timestamp.is_some() {
        // The garbage collector deletes what the app owns.
        return Ok(Action::await_change());
    }
    let result = apply_children(
        &ctx,
        &app,
        &ns,
        group,
        &executor,
        existing.as_ref().filter(|d| controlled(d)),
    )
    .await;
    if let Err(e) = &result {
        if !matches!(e, Error::Api { .. }) {
            publish(
                &ctx,
                &reference,
                EventType::Warning,
                "ReconcileError",
                e.to_string(),
            )
            .await;
        }
    }
    let children = result?;
    if executor.spec.create_deployment {
        let observed = status::observed(
            &app,
            children.deployment.as_ref(),
            children.service.as_ref(),
            &now(),
        );
        write_status(&apps, &app, observed).await?;
    }
    Ok(Action::requeue(ctx.config.resync))
}

/// The app's Deployment and Service as last applied or cached.
struct Children {
    deployment: Option<Deployment>,
    service: Option<Service>,
}

/// Runtime-config Secret and Deployment (or its removal), then the Service; each written
/// only when its cached copy differs from what would be written.
async fn apply_children(
    ctx: &Context,
    app: &SpinApp,
    ns: &str,
    group: &str,
    executor: &SpinAppExecutor,
    controlled: Option<&Deployment>,
) -> Result<Children> {
    let client = &ctx.client;
    let name = app.name_any();
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut deployment = controlled.cloned();
    if executor.spec.create_deployment {
        let rc = app.spec.runtime_config.clone().unwrap_or_default();
        let sources = runtime_config::fetch(client, ns, &rc).await?;
        let secret_name = match runtime_config::render(Some(&rc), ns, &sources)? {
            None => None,
            Some(toml) => {
                let secret = runtime_config::secret(&name, ns, group, &toml, owner(app, group));
                let secret_name = secret.metadata.name.clone().unwrap_or_default();
                // The name carries the content's hash: a Secret of that name is this one.
                if cached(&ctx.secrets, ns, &secret_name).is_none() {
                    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
                    match secrets.create(&PostParams::default(), &secret).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => return Err(api_err("creating the runtime-config Secret")(e)),
                    }
                }
                Some(secret_name)
            }
        };
        // spin-operator's ensureCASecret: the executor's CA bundle Secret, when missing,
        // before the Deployment that mounts it.
        let ca = executor
            .spec
            .deployment_config
            .as_ref()
            .and_then(crate::ca_bundle::secret_to_install);
        if let Some(ca) = ca.filter(|ca| cached(&ctx.secrets, ns, ca).is_none()) {
            crate::ca_bundle::ensure(client, ns, ca)
                .await
                .map_err(api_err("creating the CA bundle Secret"))?;
        }
        let desired = deployment::build(&deployment::Inputs {
            app,
            group,
            executor: &executor.spec,
            runtime_config_secret: secret_name.as_deref(),
            owner: owner(app, group),
        })?;
        if !applied::already_applied(controlled, &desired) {
            let applied = deployments
                .patch(&name, &ssa, &Patch::Apply(&desired))
                .await
                .map_err(api_err("applying the app's Deployment"))?;
            deployment = Some(applied);
        }
    } else if controlled.is_some() {
        match deployments.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(api_err("deleting the app's Deployment")(e)),
        }
    }
    let svc = service::build(app, group, owner(app, group));
    let mut service = cached(&ctx.services, ns, &name).map(|s| (*s).clone());
    if !applied::already_applied(service.as_ref(), &svc) {
        let applied = Api::<Service>::namespaced(client.clone(), ns)
            .patch(&name, &ssa, &Patch::Apply(&svc))
            .await
            .map_err(api_err("applying the app's Service"))?;
        service = Some(applied);
    }
    Ok(Children {
        deployment,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owned_objects_map_to_their_app_under_either_group() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "ns", "ownerReferences": [
                {"apiVersion": "core.spinoperator.dev/v1alpha1", "kind": "SpinApp", "name": "a", "uid": "1"},
                {"apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinApp", "name": "b", "uid": "2"},
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "c", "uid": "3"},
                {"apiVersion": "example.com/v1alpha1", "kind": "SpinApp", "name": "d", "uid": "4"}]},
        }))
        .expect("service");
        let refs = owners(svc);
        assert_eq!(
            refs,
            vec![
                ObjectRef::new("a").within("ns"),
                ObjectRef::new("b").within("ns")
            ]
        );
    }

    #[test]
    fn owner_and_reference_name_the_apps_group() {
        let app: SpinApp = serde_json::from_value(json!({
            "apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinApp",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u"},
            "spec": {"image": "x"},
        }))
        .expect("app");
        let o = owner(&app, "core.spinoperator.dev");
        assert_eq!(o.api_version, "core.spinoperator.dev/v1alpha1");
        assert_eq!(
            (o.controller, o.block_owner_deletion),
            (Some(true), Some(true))
        );
        let r = reference(&app, "core.spinoperator.dev");
        assert_eq!(
            r.api_version.as_deref(),
            Some("core.spinoperator.dev/v1alpha1")
        );
        assert_eq!(r.uid.as_deref(), Some("u"));
    }
}

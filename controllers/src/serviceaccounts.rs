//! The serviceaccounts controller: every active namespace has a ServiceAccount named
//! `default`, created when a namespace appears and again if someone deletes it, as
//! kube-controller-manager's serviceaccount controller does.
//!
//! It owns only the creation of `default` ServiceAccounts; it never updates or deletes
//! one, and leaves namespaces that are being deleted alone (creating in them fails and
//! would block their finalization). Through the `kube` client only.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

/// The ServiceAccount every namespace gets.
pub const DEFAULT: &str = "default";

/// A failed creation (retried).
#[derive(Debug, thiserror::Error)]
#[error("creating serviceaccount {namespace}/{DEFAULT}: {source}")]
pub struct Error {
    namespace: String,
    source: kube::Error,
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let active = ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating");
    if !active {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ServiceAccount> = Api::namespaced((*client).clone(), &name);
    let error = |source| Error {
        namespace: name.clone(),
        source,
    };
    if api.get_opt(DEFAULT).await.map_err(error)?.is_some() {
        return Ok(Action::await_change());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(Action::await_change()),
        // 409: created meanwhile. 403/404: the namespace started terminating meanwhile.
        Err(kube::Error::Api(s)) if matches!(s.code, 403 | 404 | 409) => Ok(Action::await_change()),
        Err(e) => Err(error(e)),
    }
}

fn error_policy(ns: Arc<Namespace>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), %error, "retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let defaults_only = watcher::Config::default().fields(&format!("metadata.name={DEFAULT}"));
    let sa_to_namespace = |sa: ServiceAccount| sa.namespace().map(|ns| ObjectRef::new(&ns));
    Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ServiceAccount>::all(client.clone()),
        defaults_only,
        sa_to_namespace,
    )
    .graceful_shutdown_on(async move { shutdown.cancelled().await })
    .run(reconcile, error_policy, Arc::new(client))
    .for_each(|_| async {})
    .await;
}

//! The embedded SpinApp controller and the core controllers it needs
//! (what spin-operator, kube-controller-manager and the scheduler do for Spin apps).
//!
//! Every controller talks to the API only through the `kube` client, never through the
//! store, so each runs unchanged against a real kube-apiserver. One module per controller:
//! - [`scheduler`]: binds pending pods to nodes as kube-scheduler does.
//! - [`endpoints`]: Endpoints and EndpointSlices of selector Services.
//! - [`serviceaccounts`]: the `default` ServiceAccount of every namespace.
//! - [`spinapp`]: spin-operator's SpinApp controller (Deployment, Service, runtime-config
//!   Secret, status) and its admission rules; [`executor`]: SpinAppExecutors (finalizer,
//!   how spinlet runs them) and the docs' RuntimeClass and executor, created on start;
//!   [`ca_bundle`]: the CA bundle Secret of executors with `installDefaultCACerts`.
//! - [`replicaset`]: pods of ReplicaSets; [`deployment`]: rollouts through ReplicaSets
//!   (sharing [`ownership`], the controller-reference claim rules, and the Events
//!   recorder `recorder`).

pub mod ca_bundle;
pub mod deployment;
pub mod endpoints;
pub mod executor;
pub mod expectations;
pub mod ownership;
mod recorder;
pub mod replicaset;
pub mod scheduler;
pub mod serviceaccounts;
pub mod spinapp;

use tokio_util::sync::CancellationToken;

/// Which controllers run, and how.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The scheduler's configuration; `None` leaves it out (`--disable-scheduler`).
    pub scheduler: Option<scheduler::Config>,
    /// The ReplicaSet controller's configuration; `None` leaves it out.
    pub replica_sets: Option<replicaset::Config>,
    /// The Deployment controller's configuration; `None` leaves it out.
    pub deployments: Option<deployment::Config>,
    /// The SpinApp controller's configuration; `None` leaves it out.
    pub spinapps: Option<spinapp::Config>,
    /// The SpinAppExecutor controller's configuration; `None` leaves it out.
    pub executors: Option<executor::Config>,
}

/// Errors that stop a controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scheduler stopped.
    #[error("the scheduler stopped: {0}")]
    Scheduler(#[from] scheduler::Error),
    /// A controller's task panicked or was cancelled.
    #[error("a controller task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the configured controllers until `shutdown` is cancelled.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    // kube-controller-manager's core loops that need no configuration always run.
    let core = [
        tokio::spawn(endpoints::run(client.clone(), shutdown.clone())),
        tokio::spawn(serviceaccounts::run(client.clone(), shutdown.clone())),
    ];
    let workloads = [
        config
            .replica_sets
            .map(|c| tokio::spawn(replicaset::run(client.clone(), c, shutdown.clone()))),
        config
            .deployments
            .map(|c| tokio::spawn(deployment::run(client.clone(), c, shutdown.clone()))),
    ];
    let spin = [
        config
            .spinapps
            .map(|c| tokio::spawn(spinapp::run(client.clone(), c, shutdown.clone()))),
        config
            .executors
            .map(|c| tokio::spawn(executor::run(client.clone(), c, shutdown.clone()))),
    ];
    let scheduler = config
        .scheduler
        .map(|c| tokio::spawn(scheduler::run(client.clone(), c, shutdown.clone())));
    if let Some(task) = scheduler {
        task.await??;
    }
    for task in core {
        task.await?;
    }
    for task in workloads.into_iter().flatten() {
        task.await?;
    }
    for task in spin.into_iter().flatten() {
        task.await?;
    }
    Ok(())
}

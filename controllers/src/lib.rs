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
pub mod caches;
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

/// How long the controllers get to finish their running passes once shutdown begins
/// (controller-runtime's `GracefulShutdownTimeout` is 30 s; a single node's controllers
/// hold nothing that needs that long); what has not stopped then is aborted, with a
/// warning. A kube-runtime `Controller` told to stop before its first list can wait for
/// that list for good (seen as a server that never exited after a SIGTERM right after its
/// start).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

type Task = tokio::task::JoinHandle<Result<()>>;

/// A controller that ends without an error of its own, as a task.
fn spawn(run: impl std::future::Future<Output = ()> + Send + 'static) -> Task {
    tokio::spawn(async move {
        run.await;
        Ok(())
    })
}

/// Runs the configured controllers until `shutdown` is cancelled, then waits for them
/// at most [`SHUTDOWN_GRACE`]. A scheduler that stops with an error ends this at once.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    let mut tasks: Vec<(&'static str, Task)> = Vec::new();
    if let Some(c) = config.scheduler {
        let (client, stop) = (client.clone(), shutdown.clone());
        let run = async move { Ok(scheduler::run(client, c, stop).await?) };
        tasks.push(("scheduler", tokio::spawn(run)));
    }
    // kube-controller-manager's core loops that need no configuration always run.
    let (c, stop) = (client.clone(), shutdown.clone());
    tasks.push(("endpoints", spawn(endpoints::run(c, stop))));
    let (c, stop) = (client.clone(), shutdown.clone());
    tasks.push(("serviceaccounts", spawn(serviceaccounts::run(c, stop))));
    if let Some(cfg) = config.replica_sets {
        let (c, stop) = (client.clone(), shutdown.clone());
        tasks.push(("replicaset", spawn(replicaset::run(c, cfg, stop))));
    }
    if let Some(cfg) = config.deployments {
        let (c, stop) = (client.clone(), shutdown.clone());
        tasks.push(("deployment", spawn(deployment::run(c, cfg, stop))));
    }
    if let Some(cfg) = config.spinapps {
        let (c, stop) = (client.clone(), shutdown.clone());
        tasks.push(("spinapp", spawn(spinapp::run(c, cfg, stop))));
    }
    if let Some(cfg) = config.executors {
        let (c, stop) = (client.clone(), shutdown.clone());
        tasks.push(("executor", spawn(executor::run(c, cfg, stop))));
    }
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(deadline);
    let mut expired = false;
    for (name, mut task) in tasks {
        if expired && task.is_finished() {
            (&mut task).await??;
            continue;
        }
        if !expired {
            tokio::select! {
                joined = &mut task => {
                    joined??;
                    continue;
                }
                () = &mut deadline => expired = true,
            }
        }
        tracing::warn!(
            controller = name,
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "a controller did not stop within the grace period after shutdown; aborted"
        );
        task.abort();
    }
    Ok(())
}

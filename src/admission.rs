//! spin-operator's webhooks, in process: the SpinApp defaulter and validator and the
//! SpinAppExecutor validator (rules in `controllers::spinapp::admission`), handed to the
//! API server as an admission hook for both Spin API groups.
//!
//! The binary is the one place that knows both sides: the API server knows nothing of
//! Spin, the controllers nothing of the API server. The rules read SpinAppExecutors
//! through a kube client to this same server, set once it listens ([`SpinAdmission::connect`]);
//! before that (bootstrap) there are no Spin objects to admit.

use std::sync::{Arc, OnceLock};

use apiserver_shim::admission::{FieldError, Hook, HookFuture, Rejection, Request};
use controllers::spinapp::admission::{self as rules, FieldViolation};
use serde_json::Value;

/// The Spin kinds' admission hook.
#[derive(Default)]
pub struct SpinAdmission {
    client: OnceLock<kube::Client>,
}

impl SpinAdmission {
    /// A hook waiting for its client.
    pub fn new() -> Arc<SpinAdmission> {
        Arc::new(SpinAdmission::default())
    }

    /// Gives the hook its client (once; later calls are ignored).
    pub fn connect(&self, client: kube::Client) {
        let _ = self.client.set(client);
    }

    fn client(&self) -> Result<&kube::Client, Rejection> {
        self.client
            .get()
            .ok_or_else(|| Rejection::Internal("the API server is still starting".into()))
    }
}

fn rejection(violations: Vec<FieldViolation>) -> Result<(), Rejection> {
    if violations.is_empty() {
        return Ok(());
    }
    Err(Rejection::Invalid(
        violations
            .into_iter()
            .map(|v| FieldError {
                field: v.field,
                value: v.value,
                message: v.message,
            })
            .collect(),
    ))
}

fn lookup_failed(e: kube::Error) -> Rejection {
    Rejection::Internal(format!("reading SpinAppExecutors: {e}"))
}

impl Hook for SpinAdmission {
    fn handles(&self, group: &str, kind: &str) -> bool {
        spinlet_types::keys::GROUPS.contains(&group)
            && matches!(kind, "SpinApp" | "SpinAppExecutor")
    }

    fn mutate<'a>(&'a self, request: Request<'a>, object: &'a mut Value) -> HookFuture<'a> {
        Box::pin(async move {
            if request.kind != "SpinApp" {
                return Ok(());
            }
            let client = self.client()?;
            rules::default_spinapp(client, object)
                .await
                .map_err(lookup_failed)
        })
    }

    fn validate<'a>(&'a self, request: Request<'a>, object: &'a Value) -> HookFuture<'a> {
        Box::pin(async move {
            if request.kind == "SpinAppExecutor" {
                return rejection(rules::validate_executor(object));
            }
            let client = self.client()?;
            let violations = rules::validate_spinapp(client, object)
                .await
                .map_err(lookup_failed)?;
            rejection(violations)
        })
    }
}

//! systemd's readiness protocol for the installer's `Type=notify` units: `READY=1` is sent
//! on `$NOTIFY_SOCKET` once the API answers and, when a node agent runs in this process
//! (or is the process), once its Node is registered and Ready; `STOPPING=1` on shutdown.
//! So `systemctl start spinlet` returns when `spinlet kubectl get nodes` shows Ready.
//!
//! Readiness is read through the API (the Node's Ready condition), the way any client
//! sees it, not from inside the agent. Without `NOTIFY_SOCKET` nothing runs. The datagram
//! is sent by the `sd-notify` crate (abstract and path sockets). Owns nothing else.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use tokio_util::sync::CancellationToken;

/// How often the Node is looked at while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Whether a service manager asked to be told.
pub fn wanted() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

/// Sends `READY=1` once `node` (when given) is Ready through `client`; gives up when
/// `stop` fires. Does nothing without `NOTIFY_SOCKET`.
pub fn spawn_ready(client: kube::Client, node: Option<String>, stop: CancellationToken) {
    if !wanted() {
        return;
    }
    tokio::spawn(async move {
        if let Some(node) = node {
            tokio::select! {
                () = node_ready(client, &node) => {}
                () = stop.cancelled() => return,
            }
        }
        ready();
    });
}

/// Sends `READY=1` when a service manager is listening (the caller has seen what
/// readiness means for it: the API answering, the Node Ready).
pub fn ready() {
    if !wanted() {
        return;
    }
    match sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        Ok(()) => tracing::info!("told the service manager spinlet is ready"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)")
        }
    }
}

/// Sends `STOPPING=1` when a service manager is listening.
pub fn stopping() {
    if wanted() {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
}

/// Completes once Node `name` exists with its Ready condition True.
pub(crate) async fn node_ready(client: kube::Client, name: &str) {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Node"));
    let nodes: Api<DynamicObject> = Api::all_with(client, &resource);
    loop {
        if let Ok(Some(node)) = nodes.get_opt(name).await {
            let ready = node.data["status"]["conditions"]
                .as_array()
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            if ready {
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

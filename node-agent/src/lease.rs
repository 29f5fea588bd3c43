//! The node's heartbeat: a Lease named after the node in `kube-node-lease`, owned by the
//! Node, held by the node, lasting 40 s and renewed every 10 s, as the kubelet does.
//!
//! Owns only that Lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The Lease's namespace.
pub const NAMESPACE: &str = "kube-node-lease";
/// `leaseDurationSeconds`, as the kubelet's default.
pub const DURATION_SECONDS: i32 = 40;
/// How often the Lease is renewed (a quarter of its duration).
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// The current time as a MicroTime (`2006-01-02T15:04:05.000000Z`).
pub fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

async fn renew(api: &Api<Lease>, node: &str, node_uid: &str) -> Result<(), kube::Error> {
    let spec = json!({
        "holderIdentity": node,
        "leaseDurationSeconds": DURATION_SECONDS,
        "renewTime": micro_now(),
    });
    match api
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {
                    "name": node, "namespace": NAMESPACE,
                    "ownerReferences": [{
                        "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid,
                    }],
                },
                "spec": spec,
            }))
            .map_err(kube::Error::SerdeError)?;
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Renews the Lease now and every [`RENEW_INTERVAL`] until cancelled.
pub async fn keep(
    client: kube::Client,
    node: String,
    node_uid: String,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    loop {
        if let Err(e) = renew(&api, &node, &node_uid).await {
            tracing::warn!(error = %e, "cannot renew the node lease");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RENEW_INTERVAL) => {}
        }
    }
}

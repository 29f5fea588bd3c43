//! Events as the kubelet records them: core/v1 Events about a pod (or one of its
//! containers, by `fieldPath`), from component `kubelet` on this host, with the kubelet's
//! reasons (Pulling, Pulled, Failed, BackOff, Created, Started, Killing).
//!
//! Owns nothing but the Events it writes; they are written in the background (a pod's
//! progress never waits for one), and a failure to record is logged, never fatal.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

/// Records Events for one node.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
}

impl Recorder {
    /// A recorder reporting as the kubelet of `node`.
    pub fn new(client: kube::Client, node: &str) -> Recorder {
        Recorder {
            client,
            node: node.to_string(),
        }
    }

    /// Records `reason`/`message` about `pod`, or about its container `container`.
    pub async fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: Kind,
        reason: &str,
        message: &str,
    ) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
            "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version,
        });
        if let Some(c) = container {
            involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
        }
        self.emit(ns, name, involved, kind, reason, message);
    }

    /// Records `reason`/`message` about this node (in `default`, as the kubelet does,
    /// with the node's name as its uid).
    pub fn record_node(&self, kind: Kind, reason: &str, message: &str) {
        let involved = json!({
            "apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self.node,
        });
        self.emit("default", &self.node, involved, kind, reason, message);
    }

    /// Writes an Event about `involved` (named `name`) in `ns`, in the background.
    fn emit(
        &self,
        ns: &str,
        name: &str,
        involved: serde_json::Value,
        kind: Kind,
        reason: &str,
        message: &str,
    ) {
        let now = crate::node::now();
        let stamp = jiff::Timestamp::now().as_nanosecond();
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{stamp:x}"), "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message,
            "type": match kind { Kind::Normal => "Normal", Kind::Warning => "Warning" },
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet", "reportingInstance": self.node,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let event: Event = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build an event");
                return;
            }
        };
        // Written off the pod's path, as the kubelet's broadcaster does: a pod start does
        // not wait for its events to be durable.
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let (reason, name) = (reason.to_string(), name.to_string());
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::warn!(error = %e, reason, object = name, "cannot record an event");
            }
        });
    }
}

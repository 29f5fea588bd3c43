//! Events as kube-scheduler records them: core/v1 Events about a pod from component
//! `default-scheduler` (`Scheduled`, `FailedScheduling`). A repeat of the last event about
//! a pod with the same reason and message bumps its `count` and `lastTimestamp`, as
//! client-go's event correlator does, instead of adding another Event.
//!
//! Owns nothing but the Events it writes; a failure to record is logged, never fatal.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::SCHEDULER_NAME;

/// The last Event recorded about a pod.
#[derive(Debug, Clone)]
pub struct Recorded {
    name: String,
    reason: String,
    message: String,
    count: i64,
}

/// Records the scheduler's Events.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    instance: String,
}

/// The current time as the API writes it (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

impl Recorder {
    /// A recorder reporting as `default-scheduler`, instance `instance`.
    pub fn new(client: kube::Client, instance: &str) -> Recorder {
        Recorder {
            client,
            instance: instance.to_string(),
        }
    }

    /// Records `reason`/`message` (type `kind`, action `action`) about `pod`; `last` is
    /// what was last recorded about it. Returns what is recorded now.
    pub async fn record(
        &self,
        pod: &Pod,
        kind: &str,
        reason: &str,
        action: &str,
        message: &str,
        last: Option<&Recorded>,
    ) -> Option<Recorded> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        if let Some(last) = last.filter(|l| l.reason == reason && l.message == message) {
            let count = last.count + 1;
            let patch = json!({"count": count, "lastTimestamp": now()});
            match api
                .patch(&last.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    return Some(Recorded {
                        count,
                        ..last.clone()
                    })
                }
                Err(e) => {
                    tracing::debug!(error = %e, event = last.name, "cannot update an event; recording a new one")
                }
            }
        }
        let now = now();
        let stamp = jiff::Timestamp::now().as_nanosecond();
        let event_name = format!("{name}.{stamp:x}");
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
                "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version,
            },
            "reason": reason, "message": message, "type": kind, "action": action,
            "source": {"component": SCHEDULER_NAME},
            "reportingComponent": SCHEDULER_NAME, "reportingInstance": self.instance,
            "firstTimestamp": now, "lastTimestamp": now, "eventTime": now_micro(), "count": 1,
        });
        let event: Event = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build an event");
                return None;
            }
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => Some(Recorded {
                name: event_name,
                reason: reason.to_string(),
                message: message.to_string(),
                count: 1,
            }),
            Err(e) => {
                tracing::warn!(error = %e, reason, pod = name, "cannot record an event");
                None
            }
        }
    }
}

//! Events of the workload controllers, written through `kube::runtime::events::Recorder`
//! (`events.k8s.io/v1`), as kube-controller-manager's components record them: reason and
//! message text as upstream words them, about the object acted on.
//!
//! kube's `Recorder` folds every event with the same reason about the same object into
//! one series, whatever its message; client-go only folds identical messages. So one
//! `Recorder` is kept per (object, reason, message) while it is recent (kube's own six
//! minutes): a repeat becomes a series, a different message a new Event. Owns nothing but
//! the Events it writes; they are written in the background, off the caller's path (as
//! client-go's recorder does), and a failure to record is logged, never an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Resource;

/// How long a message's recorder is kept (kube's event cache lifetime).
const KEEP: Duration = Duration::from_secs(6 * 60);

type Key = (String, String, String);

/// Records Events as one controller (`reportingController`).
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    recent: Mutex<HashMap<Key, (Recorder, Instant)>>,
}

impl Events {
    /// Events reported by `controller` (e.g. `deployment-controller`) from `instance`.
    pub fn new(client: kube::Client, controller: &str, instance: &str) -> Events {
        Events {
            client,
            reporter: Reporter {
                controller: controller.to_string(),
                instance: Some(instance.to_string()),
            },
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Records a Normal event about `obj` (in the background, as client-go's recorder).
    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj, EventType::Normal, reason, note)
    }

    /// Records a Warning event about `obj` (in the background).
    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj, EventType::Warning, reason, note)
    }

    fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let reference = obj.object_ref(&());
        let key = (
            reference.uid.clone().unwrap_or_default(),
            reason.to_string(),
            note.clone(),
        );
        let recorder = match self.recent.lock() {
            Ok(mut recent) => {
                let now = Instant::now();
                recent.retain(|_, (_, at)| now.duration_since(*at) < KEEP);
                let entry = recent.entry(key).or_insert_with(|| {
                    (
                        Recorder::new(self.client.clone(), self.reporter.clone()),
                        now,
                    )
                });
                entry.1 = now;
                entry.0.clone()
            }
            Err(_) => Recorder::new(self.client.clone(), self.reporter.clone()),
        };
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        let reason = reason.to_string();
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::warn!(
                    object = ?reference.name,
                    reason,
                    error = %e,
                    "cannot record an event"
                );
            }
        });
    }
}

//! Namespaces as a lifecycle: writes into a missing or terminating namespace are refused,
//! and a deleted namespace's contents are removed before the namespace itself goes
//! (what kube-controller-manager's namespace controller does).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::Api;
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::store::{Mutation, ObjectKey};

fn ns_key(name: &str) -> ObjectKey {
    ObjectKey {
        group: String::new(),
        resource: "namespaces".into(),
        namespace: String::new(),
        name: name.into(),
    }
}

/// Refuses writes into a namespace that does not exist or is being deleted.
pub(super) fn check_accepting(api: &Arc<Api>, ns: &str) -> ApiResult<()> {
    match api.store.get(&ns_key(ns))? {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if object::is_deleting(&n) => {
            let mut e = ApiError::forbidden(
                "namespaces",
                ns,
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            if let Some(d) = e.details.as_mut() {
                d["causes"] = json!([{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }]);
            }
            Err(e)
        }
        Some(_) => Ok(()),
    }
}

/// Starts removing a terminating namespace's contents in the background.
pub(super) fn spawn_finalizer(api: Arc<Api>, ns: String) {
    tokio::spawn(async move {
        for attempt in 0u32.. {
            match finalize(&api, &ns).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(namespace = %ns, error = %e.message, "namespace cleanup"),
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(10) + 1))).await;
        }
    });
}

/// Resumes cleanup of namespaces left Terminating by a previous run.
pub fn resume_terminating(api: &Arc<Api>) {
    let Ok((items, _)) = api.store.list("", "namespaces", None) else {
        return;
    };
    for n in items.iter().filter(|n| object::is_deleting(n)) {
        spawn_finalizer(api.clone(), object::name_of(n).to_string());
    }
}

/// One pass: delete what is left; when nothing is, delete the namespace. Returns whether
/// the namespace is gone.
async fn finalize(api: &Arc<Api>, ns: &str) -> ApiResult<bool> {
    let table = api.registry.snapshot();
    let mut remaining = 0usize;
    for r in table.all().filter(|r| r.namespaced) {
        let (items, _) = api.store.list(&r.storage_group, &r.plural, Some(ns))?;
        for item in items {
            remaining += 1;
            let key = ObjectKey {
                group: r.storage_group.clone(),
                resource: r.plural.clone(),
                namespace: ns.into(),
                name: object::name_of(&item).into(),
            };
            let strategy = r.strategy();
            api.store
                .mutate::<ApiError>(&key, |cur| match cur {
                    Some(cur) => object::deletion(cur, strategy),
                    None => Ok(Mutation::Keep),
                })
                .await??;
        }
    }
    if remaining > 0 {
        // Deleted objects vanish at once; those with finalizers need another pass.
        let still = table
            .all()
            .filter(|r| r.namespaced)
            .map(|r| {
                api.store
                    .count(&r.storage_group, &r.plural, Some(ns))
                    .unwrap_or(0)
            })
            .sum::<usize>();
        if still > 0 {
            return Ok(false);
        }
    }
    api.store
        .mutate::<ApiError>(&ns_key(ns), |cur| {
            Ok(match cur {
                Some(n) if object::is_deleting(&n) => {
                    let fin = n.pointer("/metadata/finalizers").and_then(Value::as_array);
                    if fin.is_some_and(|f| !f.is_empty()) {
                        // Another party still holds a finalizer on the namespace itself.
                        Mutation::Keep
                    } else {
                        Mutation::Delete
                    }
                }
                _ => Mutation::Keep,
            })
        })
        .await??;
    Ok(api.store.get(&ns_key(ns))?.is_none())
}

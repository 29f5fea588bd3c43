//! Creating and deleting a ReplicaSet's pods, as kube-controller-manager's `PodControl`
//! does: a pod is the template's labels, annotations, finalizers and spec, named by
//! `generateName: <rs>-` and controlled by the ReplicaSet; creations go in "slow start"
//! batches (1, 2, 4, … until one fails); every outcome is an Event about the ReplicaSet
//! (`SuccessfulCreate` "Created pod: X", `FailedCreate` "Error creating: …",
//! `SuccessfulDelete` "Deleted pod: X", `FailedDelete` "Error deleting: …").
//!
//! Writes pods only (create, delete) and Events; decides nothing about how many.

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};
use kube::ResourceExt;

use crate::recorder::Events;

/// The pod `rs` creates from its template.
pub fn from_template(rs: &ReplicaSet, owner: &OwnerReference) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone());
    let meta = template
        .as_ref()
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(template.and_then(|t| t.spec).unwrap_or_default()),
        status: None,
    }
}

/// Whether an API error says the namespace is being deleted (creations then stop quietly).
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.message.contains("because it is being terminated"))
}

/// Creates `count` pods for `rs` in slow-start batches; returns the uids of those
/// created and the first error.
pub async fn create(
    api: &Api<Pod>,
    events: &Events,
    rs: &ReplicaSet,
    owner: &OwnerReference,
    count: usize,
) -> (Vec<String>, Option<kube::Error>) {
    let pod = from_template(rs, owner);
    let params = PostParams::default();
    let mut created = Vec::new();
    let mut batch = 1;
    while created.len() < count {
        let size = batch.min(count - created.len());
        let results = join_all((0..size).map(|_| api.create(&params, &pod))).await;
        let mut failure = None;
        for result in results {
            match result {
                Ok(p) => {
                    created.extend(p.uid());
                    tracing::debug!(rs = %rs.name_any(), pod = %p.name_any(), "created pod");
                    events.normal(
                        rs,
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.name_any()),
                    );
                }
                Err(e) if namespace_terminating(&e) => return (created, None),
                Err(e) => {
                    events.warning(rs, "FailedCreate", format!("Error creating: {e}"));
                    failure.get_or_insert(e);
                }
            }
        }
        if failure.is_some() {
            return (created, failure);
        }
        batch *= 2;
    }
    (created, None)
}

/// Deletes `pods` of `rs` concurrently; returns the uids of those deleted (or gone
/// already) and the first error (a pod already gone is no error).
pub async fn delete(
    api: &Api<Pod>,
    events: &Events,
    rs: &ReplicaSet,
    pods: &[&Pod],
) -> (Vec<String>, Option<kube::Error>) {
    let results = join_all(pods.iter().map(|p| {
        let name = p.name_any();
        let uid = p.uid().unwrap_or_default();
        async move {
            let result = api.delete(&name, &DeleteParams::default()).await;
            (name, uid, result)
        }
    }))
    .await;
    let mut failure = None;
    let mut deleted = Vec::new();
    for (name, uid, result) in results {
        match result {
            Ok(_) => {
                deleted.push(uid);
                tracing::debug!(rs = %rs.name_any(), pod = %name, "deleted pod");
                events.normal(rs, "SuccessfulDelete", format!("Deleted pod: {name}"));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => deleted.push(uid),
            Err(e) => {
                events.warning(rs, "FailedDelete", format!("Error deleting: {e}"));
                failure.get_or_insert(e);
            }
        }
    }
    (deleted, failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_is_its_template_owned_by_the_replica_set() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-abc12", "namespace": "ns", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }))
        .expect("rs");
        let owner = crate::ownership::controller_ref(&rs).expect("owner");
        let pod = from_template(&rs, &owner);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc12-"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(pod.annotations().get("a").map(String::as_str), Some("b"));
        let refs = pod.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].kind, "ReplicaSet");
        assert_eq!(refs[0].controller, Some(true));
        assert_eq!(refs[0].block_owner_deletion, Some(true));
        assert_eq!(pod.spec.map(|s| s.containers.len()), Some(1));
    }
}

//! Controller references and the claim rules of kube-controller-manager's
//! `ControllerRefManager`, shared by the ReplicaSet controller (claiming pods) and the
//! Deployment controller (claiming ReplicaSets).
//!
//! An object belongs to the owner named by its one `ownerReferences` entry with
//! `controller: true`. An owner keeps what it controls while its selector matches,
//! releases (orphans) what it controls but no longer selects, and adopts orphans it
//! selects — never while it is itself being deleted, and never an object being deleted.
//! This module decides ([`decide`]) and writes the owner reference change (strategic
//! merge patches, as upstream sends them); it reads and writes nothing else.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::json;

/// `owner`'s controller reference (`controller` and `blockOwnerDeletion` true), as
/// upstream's `NewControllerRef`; `None` when the owner has no name or uid yet.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone()?,
        uid: owner.meta().uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The controller reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether an API error is a 404 (the object is gone, which ends what was to be done).
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// What an owner does about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by the owner and selected: it counts.
    Keep,
    /// An orphan the owner selects: adopt it, then it counts.
    Adopt,
    /// Controlled by the owner but no longer selected: release it.
    Release,
    /// Someone else's, or not to be touched now.
    Ignore,
}

/// The claim rule for an object (`meta`) and an owner (`owner_uid`, whether it is being
/// deleted), given whether the owner's selector matches the object.
pub fn decide(owner_uid: &str, owner_deleting: bool, meta: &ObjectMeta, selected: bool) -> Claim {
    match controller_of(meta) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if selected => Claim::Keep,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !selected || meta.deletion_timestamp.is_some() => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// Adds `owner` as the controller of the object `name` (uid `uid`, as a precondition).
pub async fn adopt<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    owner: &OwnerReference,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"ownerReferences": [owner], "uid": uid}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
}

/// Removes the reference to `owner_uid` from the object `name` (uid `uid`).
pub async fn release<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    owner_uid: &str,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
        "uid": uid,
    }});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(controller: Option<&str>, deleting: bool) -> ObjectMeta {
        ObjectMeta {
            owner_references: controller.map(|uid| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            deletion_timestamp: deleting.then_some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn claims_as_the_controller_ref_manager_does() {
        assert_eq!(
            decide("me", false, &meta(Some("me"), false), true),
            Claim::Keep
        );
        assert_eq!(
            decide("me", true, &meta(Some("me"), false), true),
            Claim::Keep
        );
        assert_eq!(
            decide("me", false, &meta(Some("me"), false), false),
            Claim::Release
        );
        assert_eq!(
            decide("me", true, &meta(Some("me"), false), false),
            Claim::Ignore
        );
        assert_eq!(
            decide("me", false, &meta(Some("other"), false), true),
            Claim::Ignore
        );
        assert_eq!(decide("me", false, &meta(None, false), true), Claim::Adopt);
        assert_eq!(
            decide("me", false, &meta(None, false), false),
            Claim::Ignore
        );
        assert_eq!(decide("me", true, &meta(None, false), true), Claim::Ignore);
        assert_eq!(decide("me", false, &meta(None, true), true), Claim::Ignore);
    }
}

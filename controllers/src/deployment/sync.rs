//! One pass over a Deployment: the writes of upstream's `syncDeployment` steps, each
//! deciding through the pure modules ([`rollout`], [`scaling`], [`history`], [`status`],
//! [`hash`]) and writing through the `kube` client — the new ReplicaSet's creation and
//! annotations, ReplicaSet sizes (with `ScalingReplicaSet` Events in upstream's words),
//! old ReplicaSets past `revisionHistoryLimit`, the Deployment's revision annotation and
//! its status. Writes nothing else: pods are the ReplicaSet controller's.
//!
//! A pass works on the ReplicaSets it listed, replacing each with the API's answer after
//! a write, so later steps see what earlier ones did (as upstream keeps the updated
//! objects).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use serde_json::json;

use super::rollout::{
    self, is_recreate, max_surge, replicas, rs_counted_available, rs_replicas, OldSet,
};
use super::{hash, history, scaling, status, Context, Error};
use crate::ownership;

/// How often a settled Deployment is looked at anyway.
const RESYNC: Duration = Duration::from_secs(300);

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// A Deployment, its claimed ReplicaSets (oldest first) and the pods they control.
pub struct Pass<'a> {
    pub(super) ctx: &'a Context,
    pub(super) d: Deployment,
    pub(super) sets: Vec<ReplicaSet>,
    pub(super) pods: Vec<Pod>,
    pub(super) rs_api: Api<ReplicaSet>,
    pub(super) d_api: Api<Deployment>,
}

fn same_status(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    n(a.replicas) == n(b.replicas)
        && n(a.updated_replicas) == n(b.updated_replicas)
        && n(a.ready_replicas) == n(b.ready_replicas)
        && n(a.available_replicas) == n(b.available_replicas)
        && n(a.unavailable_replicas) == n(b.unavailable_replicas)
        && a.observed_generation == b.observed_generation
        && a.collision_count == b.collision_count
        && a.conditions.clone().unwrap_or_default() == b.conditions.clone().unwrap_or_default()
}

impl Pass<'_> {
    fn name(&self) -> String {
        self.d.name_any()
    }

    fn template(&self) -> Result<k8s_openapi::api::core::v1::PodTemplateSpec, Error> {
        self.d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .ok_or_else(|| Error::Invalid(format!("deployment {} has no spec", self.name())))
    }

    /// The new set: the oldest whose template is the Deployment's (ignoring the hash).
    pub fn new_index(&self) -> Option<usize> {
        let template = self.d.spec.as_ref().map(|s| &s.template)?;
        self.sets.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| hash::equal_ignoring_hash(t, template))
        })
    }

    fn others(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.sets.len()).filter(|i| Some(*i) != new).collect()
    }

    fn refs(&self, indices: &[usize]) -> Vec<&ReplicaSet> {
        indices.iter().map(|i| &self.sets[*i]).collect()
    }

    fn all_refs(&self) -> Vec<&ReplicaSet> {
        self.sets.iter().collect()
    }

    /// Writes the Deployment's status if it changed.
    async fn write_status(&mut self, new: DeploymentStatus) -> Result<bool, Error> {
        if same_status(&self.d.status.clone().unwrap_or_default(), &new) {
            return Ok(false);
        }
        // The resourceVersion makes the write conditional on the Deployment this status
        // was computed from, as upstream's UpdateStatus: from a cache that lags (a pass
        // woken by a ReplicaSet before its Deployment's last change arrived) it would
        // see "progress" over an old status and stamp a new lastUpdateTime, whose event
        // wakes another lagging pass. A stale pass gets 409 and is retried.
        let patch = json!({
            "metadata": {"resourceVersion": self.d.resource_version()},
            "status": new,
        });
        let updated = self
            .d_api
            .patch_status(&self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!(
                "writing the status of deployment {}",
                self.name()
            )))?;
        self.d = updated;
        Ok(true)
    }

    /// Sets the Deployment's revision annotation.
    async fn set_revision(&mut self, revision: &str) -> Result<(), Error> {
        if self
            .d
            .annotations()
            .get(history::REVISION)
            .map(String::as_str)
            == Some(revision)
        {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {history::REVISION: revision}}});
        let updated = self
            .d_api
            .patch(&self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!("annotating deployment {}", self.name())))?;
        // Later writes of this pass are conditional on the version this one made.
        self.d.metadata = updated.metadata;
        Ok(())
    }

    /// Sets a Progressing condition and writes the status.
    async fn progressing(
        &mut self,
        c: k8s_openapi::api::apps::v1::DeploymentCondition,
    ) -> Result<(), Error> {
        let mut s = self.d.status.clone().unwrap_or_default();
        status::set(&mut s, c);
        self.write_status(s).await.map(|_| ())
    }

    /// Finds the new set (syncing revisions as upstream's `getNewReplicaSet`), creating it
    /// when `create` and there is none.
    pub async fn new_set(&mut self, create: bool) -> Result<Option<usize>, Error> {
        let existing = self.new_index();
        let old = self.others(existing);
        let new_revision = history::max_revision(self.refs(&old)) + 1;
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(i) = existing {
            let rs = &self.sets[i];
            let mut annotations = rs.annotations().clone();
            let changed =
                history::set_new_annotations(&self.d, &mut annotations, new_revision, true, (0, 0));
            let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if changed || rs_min_ready.unwrap_or(0) != min_ready.unwrap_or(0) {
                let patch = json!({"metadata": {"annotations": annotations},
                    "spec": {"minReadySeconds": min_ready.unwrap_or(0)}});
                let name = rs.name_any();
                let updated = self
                    .rs_api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_error(format!("annotating replica set {name}")))?;
                self.sets[i] = updated;
                return Ok(Some(i));
            }
            let revision = rs
                .annotations()
                .get(history::REVISION)
                .cloned()
                .unwrap_or_default();
            let rs_name = rs.name_any();
            self.set_revision(&revision).await?;
            let has_condition = self
                .d
                .status
                .as_ref()
                .is_some_and(|s| status::get(s, "Progressing").is_some());
            if status::has_progress_deadline(&self.d) && !has_condition {
                let c = status::condition(
                    "Progressing",
                    "True",
                    status::reason::FOUND_NEW_RS,
                    format!("Found new replica set {rs_name:?}"),
                    Timestamp::now(),
                );
                self.progressing(c).await?;
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        self.create_new_set(new_revision).await.map(Some)
    }

    /// Creates the new ReplicaSet `<deploy>-<hash>` (upstream's creation branch of
    /// `getNewReplicaSet`, with its collision handling).
    async fn create_new_set(&mut self, new_revision: i64) -> Result<usize, Error> {
        let mut template = self.template()?;
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let pod_hash = hash::compute(&template, collision_count);
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(hash::LABEL.into(), pod_hash.clone());
        let mut selector = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(hash::LABEL.into(), pod_hash.clone());
        let name = format!("{}-{}", self.name(), pod_hash);
        let old = self.others(None);
        let total: i32 = self.refs(&old).iter().map(|rs| rs_replicas(rs)).sum();
        let size = rollout::new_rs_replicas(&self.d, total, 0);
        let mut annotations = BTreeMap::new();
        let want = replicas(&self.d);
        history::set_new_annotations(
            &self.d,
            &mut annotations,
            new_revision,
            false,
            (want, want + max_surge(&self.d)),
        );
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                owner_references: ownership::controller_ref(&self.d).map(|r| vec![r]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(size),
                min_ready_seconds: self.d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let (created, already) = match self.rs_api.create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let found = self
                    .rs_api
                    .get(&name)
                    .await
                    .map_err(api_error(format!("reading replica set {name}")))?;
                let ours = ownership::controller_of(&found.metadata)
                    .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                let same = found
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| {
                        hash::equal_ignoring_hash(t, &self.template().unwrap_or_default())
                    });
                if !(ours && same) {
                    // A hash collision: count it and try another name next pass.
                    let mut st = self.d.status.clone().unwrap_or_default();
                    st.collision_count = Some(collision_count.unwrap_or(0) + 1);
                    self.write_status(st).await?;
                    tracing::info!(deployment = %self.name(), replicaset = %name,
                        "pod-template-hash collision; bumping collisionCount");
                    return Err(Error::Collision(name));
                }
                (found, true)
            }
            Err(e) => {
                let message = format!("Failed to create new replica set {name:?}: {e}");
                if status::has_progress_deadline(&self.d) {
                    let c = status::condition(
                        "Progressing",
                        "False",
                        status::reason::RS_CREATE_ERROR,
                        message.clone(),
                        Timestamp::now(),
                    );
                    let _ = self.progressing(c).await;
                }
                self.ctx
                    .events
                    .warning(&self.d, status::reason::RS_CREATE_ERROR, message);
                return Err(api_error(format!("creating replica set {name}"))(e));
            }
        };
        let size = rs_replicas(&created);
        if !already && size > 0 {
            self.ctx.events.normal(
                &self.d,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} from 0 to {size}",
                    created.name_any()
                ),
            );
        }
        let created_name = created.name_any();
        let index = match self.sets.iter().position(|r| r.uid() == created.uid()) {
            Some(i) => {
                self.sets[i] = created;
                i
            }
            None => {
                self.sets.push(created);
                self.sets.len() - 1
            }
        };
        self.set_revision(&new_revision.to_string()).await?;
        if !already && status::has_progress_deadline(&self.d) {
            let c = status::condition(
                "Progressing",
                "True",
                status::reason::NEW_RS_CREATED,
                format!("Created new replica set {created_name:?}"),
                Timestamp::now(),
            );
            self.progressing(c).await?;
        }
        Ok(index)
    }

    /// Scales set `i` to `size` with an event (upstream's `scaleReplicaSetAndRecordEvent`);
    /// whether its size changed.
    async fn scale_set(&mut self, i: usize, size: i32) -> Result<bool, Error> {
        let current = rs_replicas(&self.sets[i]);
        if current == size {
            return Ok(false);
        }
        let op = if current < size { "up" } else { "down" };
        self.write_set(i, size, op).await
    }

    /// Writes set `i`'s size and replica annotations when either changes (upstream's
    /// `scaleReplicaSet`); whether its size changed.
    async fn write_set(&mut self, i: usize, size: i32, op: &str) -> Result<bool, Error> {
        let rs = &self.sets[i];
        let current = rs_replicas(rs);
        let want = replicas(&self.d);
        let mut annotations = rs.annotations().clone();
        let annotated =
            history::set_replica_annotations(&mut annotations, want, want + max_surge(&self.d));
        if current == size && !annotated {
            return Ok(false);
        }
        let name = rs.name_any();
        // The resourceVersion makes the size a precondition on what it was computed from
        // (the cache may lag): a set changed since answers 409 and the pass is retried.
        let patch = json!({
            "metadata": {"resourceVersion": rs.resource_version(), "annotations": {
                history::DESIRED_REPLICAS: want.to_string(),
                history::MAX_REPLICAS: (want + max_surge(&self.d)).to_string(),
            }},
            "spec": {"replicas": size},
        });
        let updated = self
            .rs_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!("scaling replica set {name}")))?;
        self.sets[i] = updated;
        if current != size {
            tracing::info!(deployment = %self.name(), replicaset = %name, from = current, to = size, "scaled");
            self.ctx.events.normal(
                &self.d,
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {name} from {current} to {size}"),
            );
        }
        Ok(current != size)
    }

    /// Sizes the sets for `spec.replicas` outside a rollout (upstream's `scale`).
    async fn scale(&mut self, new: Option<usize>) -> Result<(), Error> {
        let want = replicas(&self.d);
        if let Some(i) = scaling::active_or_latest(&self.all_refs(), new) {
            self.scale_set(i, want).await?;
            return Ok(());
        }
        if let Some(n) = new.filter(|n| rollout::is_saturated(&self.d, &self.sets[*n])) {
            for i in self.others(Some(n)) {
                if rs_replicas(&self.sets[i]) > 0 {
                    self.scale_set(i, 0).await?;
                }
            }
            return Ok(());
        }
        if is_recreate(&self.d) {
            return Ok(());
        }
        let active: Vec<usize> = (0..self.sets.len())
            .filter(|i| rs_replicas(&self.sets[*i]) > 0)
            .collect();
        let status_replicas = self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let sizes = scaling::proportional(&self.d, &self.refs(&active), status_replicas);
        let total: i32 = active.iter().map(|i| rs_replicas(&self.sets[*i])).sum();
        let target: i32 = sizes.iter().sum();
        let op = if target > total { "up" } else { "down" };
        for (k, i) in active.into_iter().enumerate() {
            self.write_set(i, sizes[k], op).await?;
        }
        Ok(())
    }

    /// Deletes old sets past `revisionHistoryLimit`.
    async fn clean_up(&mut self, new: Option<usize>) -> Result<(), Error> {
        let old = self.others(new);
        let limit = self.d.spec.as_ref().and_then(|s| s.revision_history_limit);
        let doomed: Vec<String> = history::to_clean_up(&self.refs(&old), limit)
            .iter()
            .map(|rs| rs.name_any())
            .collect();
        for name in doomed {
            tracing::info!(deployment = %self.name(), replicaset = %name, "removing an old revision");
            match self.rs_api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if ownership::is_not_found(&e) => {}
                Err(e) => return Err(api_error(format!("deleting replica set {name}"))(e)),
            }
        }
        Ok(())
    }

    /// Scales without rolling out (paused, or a scaling event), then writes the status.
    pub async fn sync(&mut self) -> Result<Action, Error> {
        let new = self.new_set(false).await?;
        self.scale(new).await?;
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.clean_up(new).await?;
        }
        let new_rs = new.map(|i| &self.sets[i]);
        let s = status::calculate(&self.d, &self.all_refs(), new_rs, Timestamp::now());
        self.write_status(s).await?;
        Ok(Action::requeue(RESYNC))
    }

    /// Only the status (a Deployment being deleted).
    pub async fn status_only(&mut self) -> Result<Action, Error> {
        let new = self.new_index().map(|i| &self.sets[i]);
        let s = status::calculate(&self.d, &self.all_refs(), new, Timestamp::now());
        self.write_status(s).await?;
        Ok(Action::await_change())
    }

    /// Writes the rollout's status; when nothing changed, when to look again.
    async fn rollout_status(&mut self, new: Option<usize>) -> Result<Action, Error> {
        let now = Timestamp::now();
        let new_rs = new.map(|i| &self.sets[i]);
        let s = status::rollout(&self.d, &self.all_refs(), new_rs, now);
        let recheck = status::recheck_after(&self.d, &s, now);
        if self.write_status(s).await? {
            return Ok(Action::requeue(RESYNC));
        }
        Ok(Action::requeue(recheck.unwrap_or(RESYNC).min(RESYNC)))
    }

    fn old_views(&self, indices: &[usize]) -> Vec<OldSet> {
        indices
            .iter()
            .map(|i| OldSet {
                replicas: rs_replicas(&self.sets[*i]),
                available: rs_counted_available(&self.sets[*i]),
            })
            .collect()
    }

    async fn apply_sizes(&mut self, indices: &[usize], sizes: &[i32]) -> Result<(), Error> {
        for (i, size) in indices.iter().zip(sizes) {
            self.scale_set(*i, *size).await?;
        }
        Ok(())
    }

    /// A RollingUpdate step (upstream's `rolloutRolling`).
    pub async fn rolling(&mut self) -> Result<Action, Error> {
        let Some(new) = self.new_set(true).await? else {
            return Err(Error::Invalid("no new replica set".into()));
        };
        let want = replicas(&self.d);
        let current = rs_replicas(&self.sets[new]);
        let scaled_up = if current == want {
            false
        } else if current > want {
            self.scale_set(new, want).await?
        } else {
            let total: i32 = self.sets.iter().map(rs_replicas).sum();
            let size = rollout::new_rs_replicas(&self.d, total, current);
            self.scale_set(new, size).await?
        };
        if scaled_up {
            return self.rollout_status(Some(new)).await;
        }
        if self.scale_down_old(new).await? {
            return self.rollout_status(Some(new)).await;
        }
        let s = self.d.status.clone().unwrap_or_default();
        if status::is_complete(&self.d, &s) {
            self.clean_up(Some(new)).await?;
        }
        self.rollout_status(Some(new)).await
    }

    /// Shrinks the old sets as far as availability allows (upstream's
    /// `reconcileOldReplicaSets`); whether any shrank.
    async fn scale_down_old(&mut self, new: usize) -> Result<bool, Error> {
        let mut old: Vec<usize> = self
            .others(Some(new))
            .into_iter()
            .filter(|i| rs_replicas(&self.sets[*i]) > 0)
            .collect();
        if old.is_empty() {
            return Ok(false);
        }
        old.sort_by(|a, b| scaling::by_creation(&self.sets[*a], &self.sets[*b]));
        let all_total: i32 = self.sets.iter().map(rs_replicas).sum();
        let new_rs = &self.sets[new];
        let budget = rollout::old_scale_down_budget(
            &self.d,
            all_total,
            rs_replicas(new_rs),
            rs_counted_available(new_rs),
        );
        if budget <= 0 {
            return Ok(false);
        }
        let (sizes, removed) = rollout::without_unhealthy(&self.old_views(&old), budget);
        self.apply_sizes(&old, &sizes).await?;
        let available: i32 = self.sets.iter().map(rs_counted_available).sum();
        let views = self.old_views(&old);
        let sizes = rollout::scaled_down_for_rolling(&self.d, &views, available);
        let cut: i32 = views.iter().zip(&sizes).map(|(v, s)| v.replicas - s).sum();
        self.apply_sizes(&old, &sizes).await?;
        Ok(removed + cut > 0)
    }

    /// A Recreate step (upstream's `rolloutRecreate`): old sets to zero, wait for their
    /// pods to be gone, then the new set at full size.
    pub async fn recreate(&mut self) -> Result<Action, Error> {
        let mut new = self.new_set(false).await?;
        let old = self.others(new);
        let mut scaled = false;
        for i in &old {
            if rs_replicas(&self.sets[*i]) > 0 && self.scale_set(*i, 0).await? {
                scaled = true;
            }
        }
        if scaled {
            return self.rollout_status(new).await;
        }
        let old_uids: Vec<String> = old.iter().filter_map(|i| self.sets[*i].uid()).collect();
        let old_pods: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|p| {
                ownership::controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid))
            })
            .collect();
        if rollout::old_pods_running(&self.refs(&old), &old_pods) {
            return self.rollout_status(new).await;
        }
        if new.is_none() {
            new = self.new_set(true).await?;
        }
        if let Some(n) = new {
            self.scale_set(n, replicas(&self.d)).await?;
        }
        let s = self.d.status.clone().unwrap_or_default();
        if status::is_complete(&self.d, &s) {
            self.clean_up(new).await?;
        }
        self.rollout_status(new).await
    }
}

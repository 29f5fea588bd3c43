//! Each pod's cgroup, in a kubepods-like hierarchy as the kubelet's cgroupfs driver lays it
//! out: `kubepods/pod<uid>` for Guaranteed pods, `kubepods/burstable/pod<uid>` and
//! `kubepods/besteffort/pod<uid>` for the others; with cpu shares (v2: weight) from
//! `requests.cpu`, a CFS quota from `limits.cpu`, a memory limit from `limits.memory` and a
//! pids limit. Through cgroups-rs, v2 where the unified hierarchy is mounted, v1 otherwise.
//!
//! The agent creates the cgroup before it starts the sandbox; the sandbox moves itself in
//! first thing ([`join`]), so everything it loads is charged there. The agent reads the
//! OOM-kill count after an exit (the container's `OOMKilled` reason) and removes the
//! cgroup when the pod's sandbox is gone. Owns nothing else.

use cgroups_rs::fs::cgroup_builder::CgroupBuilder;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::{hierarchies, Cgroup, Controller, MaxValue};
use cgroups_rs::CgroupPid;

use crate::resources::{weight, Limits, CFS_PERIOD_US};

/// The controllers a pod cgroup uses (cpuset is left alone: a new v1 cpuset group has no
/// cpus until written, and pods are not pinned).
const CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

/// Processes (threads included) one sandbox may have.
pub const PIDS_MAX: i64 = 4096;

/// Errors managing a pod's cgroup.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {message}")]
pub struct Error {
    /// The cgroup's path in the hierarchy.
    pub path: String,
    /// What failed.
    pub message: String,
}

fn err(path: &str, e: impl std::fmt::Display) -> Error {
    Error {
        path: path.to_string(),
        message: e.to_string(),
    }
}

fn controllers() -> Vec<String> {
    CONTROLLERS.iter().map(|c| c.to_string()).collect()
}

/// The cgroup path of pod `uid` of QoS class `qos`.
pub fn path_for(qos: &str, uid: &str) -> String {
    match qos {
        "Guaranteed" => format!("kubepods/pod{uid}"),
        other => format!("kubepods/{}/pod{uid}", other.to_ascii_lowercase()),
    }
}

/// A pod's cgroup.
pub struct PodCgroup {
    path: String,
    cgroup: Cgroup,
}

impl PodCgroup {
    /// Creates (or takes over) the cgroup at `path` with `limits`.
    pub fn create(path: &str, limits: &Limits) -> Result<PodCgroup, Error> {
        let v2 = hierarchies::is_cgroup2_unified_mode();
        let shares = if v2 {
            weight(limits.cpu_shares)
        } else {
            limits.cpu_shares
        };
        let mut builder = CgroupBuilder::new(path)
            .set_specified_controllers(controllers())
            .cpu()
            .shares(shares)
            .period(CFS_PERIOD_US)
            .quota(limits.cpu_quota_us.map_or(-1, |q| q as i64))
            .done()
            .pid()
            .maximum_number_of_processes(MaxValue::Value(PIDS_MAX))
            .done();
        if let Some(m) = limits.memory_bytes {
            builder = builder
                .memory()
                .memory_hard_limit(m.min(i64::MAX as u64) as i64)
                .done();
        }
        let cgroup = builder
            .build(hierarchies::auto())
            .map_err(|e| err(path, e))?;
        Ok(PodCgroup {
            path: path.to_string(),
            cgroup,
        })
    }

    /// The existing cgroup at `path` (an earlier agent's), if it is there.
    pub fn open(path: &str) -> Option<PodCgroup> {
        let cgroup =
            Cgroup::load_with_specified_controllers(hierarchies::auto(), path, controllers());
        (!cgroup.subsystems().is_empty() && cgroup.exists()).then(|| PodCgroup {
            path: path.to_string(),
            cgroup,
        })
    }

    /// The cgroup's path in the hierarchy.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many processes of this cgroup the kernel's OOM killer has killed so far.
    pub fn oom_kills(&self) -> u64 {
        let Some(memory) = self.cgroup.controller_of::<MemController>() else {
            return 0;
        };
        if self.cgroup.v2() {
            let events =
                std::fs::read_to_string(memory.path().join("memory.events")).unwrap_or_default();
            return events
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
        }
        memory.memory_stat().oom_control.oom_kill
    }

    /// Removes the cgroup (its processes must have ended).
    pub fn delete(&self) {
        if let Err(e) = self.cgroup.delete() {
            tracing::debug!(path = %self.path, error = %e, "cannot remove the pod cgroup");
        }
    }
}

/// Moves the calling process into the cgroup at `path` (called by the sandbox itself).
pub fn join(path: &str) -> Result<(), Error> {
    let cgroup = Cgroup::load_with_specified_controllers(hierarchies::auto(), path, controllers());
    cgroup
        .add_task_by_tgid(CgroupPid::from(u64::from(std::process::id())))
        .map_err(|e| err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_qos_class() {
        assert_eq!(path_for("Guaranteed", "u1"), "kubepods/podu1");
        assert_eq!(path_for("Burstable", "u1"), "kubepods/burstable/podu1");
        assert_eq!(path_for("BestEffort", "u1"), "kubepods/besteffort/podu1");
    }
}

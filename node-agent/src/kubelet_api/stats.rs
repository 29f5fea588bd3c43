//! `/stats/summary`: the node's and each running pod's cpu and memory, as the kubelet's
//! Summary API shapes them (`stats/v1alpha1`), read from /proc: the node from
//! `/proc/stat` and `/proc/meminfo`, a pod from its sandbox process
//! (`<agent dir>/sandboxes/<uid>/pid` → `/proc/<pid>/stat` and `status`). Only figures
//! read from one sample are given: cumulative cpu time, not a rate (`usageNanoCores`
//! needs two samples and is left out).
//!
//! Owns the summary's shape; reads only.

use serde_json::{json, Value};

use crate::AgentConfig;

/// Nanoseconds per /proc clock tick: /proc reports in USER_HZ, 100 on every Linux ABI.
fn nanos_per_tick() -> u64 {
    10_000_000
}

/// Busy cpu time of the whole node, in nanoseconds (`/proc/stat`'s `cpu` line minus
/// idle and iowait).
pub fn node_cpu_nanos(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| *v)
        .sum();
    Some(busy * nanos_per_tick())
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A process's cpu time (user + system) in nanoseconds, from `/proc/<pid>/stat`.
pub fn process_cpu_nanos(stat: &str) -> Option<u64> {
    // The command (field 2) may hold spaces; fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * nanos_per_tick())
}

/// A process's resident set in bytes, from `/proc/<pid>/status`.
pub fn process_rss(status: &str) -> Option<u64> {
    meminfo(status, "VmRSS")
}

fn read(path: impl AsRef<std::path::Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The summary for this node and the pods bound to it that have a sandbox running.
pub async fn summary(client: &kube::Client, config: &AgentConfig) -> Result<Value, kube::Error> {
    let pods = super::bound_pods(client, &config.node_name).await?;
    let now = jiff::Timestamp::now().to_string();
    let cpu = read("/proc/stat").and_then(|s| node_cpu_nanos(&s));
    let mem = read("/proc/meminfo");
    let total = mem.as_deref().and_then(|m| meminfo(m, "MemTotal"));
    let available = mem.as_deref().and_then(|m| meminfo(m, "MemAvailable"));
    let working = total.zip(available).map(|(t, a)| t.saturating_sub(a));
    let boot = read("/proc/uptime")
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .and_then(|up| {
            jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs_f64(up))
                .ok()
        })
        .map(|t| t.to_string());
    let mut pod_stats = Vec::new();
    for p in &pods {
        let Some(uid) = p.metadata.uid.as_deref() else {
            continue;
        };
        let pid_file = config.data_dir.join("sandboxes").join(uid).join("pid");
        let Some(pid) = read(&pid_file).and_then(|s| s.trim().parse::<u32>().ok()) else {
            continue;
        };
        let (Some(stat), Some(status)) = (
            read(format!("/proc/{pid}/stat")),
            read(format!("/proc/{pid}/status")),
        ) else {
            continue;
        };
        let cpu = process_cpu_nanos(&stat);
        let rss = process_rss(&status);
        let cpu_v = json!({"time": now, "usageCoreNanoSeconds": cpu});
        let mem_v =
            json!({"time": now, "usageBytes": rss, "workingSetBytes": rss, "rssBytes": rss});
        let start = p
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string());
        let containers: Vec<Value> = p
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .take(1)
            .map(|c| json!({"name": c.name, "startTime": start, "cpu": cpu_v, "memory": mem_v}))
            .collect();
        pod_stats.push(json!({
            "podRef": {
                "name": p.metadata.name,
                "namespace": p.metadata.namespace,
                "uid": uid,
            },
            "startTime": start,
            "containers": containers,
            "cpu": cpu_v,
            "memory": mem_v,
        }));
    }
    Ok(json!({
        "node": {
            "nodeName": config.node_name,
            "startTime": boot,
            "cpu": {"time": now, "usageCoreNanoSeconds": cpu},
            "memory": {
                "time": now,
                "availableBytes": available,
                "usageBytes": working,
                "workingSetBytes": working,
            },
        },
        "pods": pod_stats,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_figures_parse() {
        let t = nanos_per_tick();
        assert_eq!(
            node_cpu_nanos("cpu  10 1 4 100 7 1 1 0 0 0\ncpu0 1 1 1 1 1 1 1 1\n"),
            Some(17 * t)
        );
        assert_eq!(
            meminfo(
                "MemTotal:       16 kB\nMemAvailable:    8 kB\n",
                "MemAvailable"
            ),
            Some(8192)
        );
        let stat = "42 (spin let) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        assert_eq!(process_cpu_nanos(stat), Some(10 * t));
        assert_eq!(
            process_rss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
    }
}

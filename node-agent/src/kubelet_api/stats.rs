//! `/stats/summary`: the node's and each running pod's cpu and memory, as the kubelet's
//! Summary API shapes them (`stats/v1alpha1`), and `/metrics/resource`, the same figures
//! in the Prometheus text format metrics-server scrapes. Read from /proc: the node from
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

/// `/metrics/resource` from a summary: the kubelet's stable resource metrics
/// (`node_*`, `pod_*`, `container_*` cpu seconds and working set), stamped `now_ms`.
pub fn render_metrics(summary: &Value, now_ms: i64) -> String {
    let mut out = String::new();
    let secs = |v: &Value| v.as_u64().map(|n| n as f64 / 1e9);
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!(
            "# HELP {name} [STABLE] {help}\n# TYPE {name} {kind}\n"
        ));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value} {now_ms}\n"));
        }
    };
    let node = &summary["node"];
    let pods: Vec<&Value> = summary["pods"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let pod_labels = |p: &Value| {
        format!(
            "{{namespace={:?},pod={:?}}}",
            p["podRef"]["namespace"].as_str().unwrap_or(""),
            p["podRef"]["name"].as_str().unwrap_or("")
        )
    };
    let container_samples = |field: &str, key: &str, scale: bool| -> Vec<(String, f64)> {
        pods.iter()
            .flat_map(|p| {
                p["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(move |c| {
                        let v = &c[field][key];
                        let value = if scale { secs(v)? } else { v.as_u64()? as f64 };
                        Some((
                            format!(
                                "{{container={:?},namespace={:?},pod={:?}}}",
                                c["name"].as_str().unwrap_or(""),
                                p["podRef"]["namespace"].as_str().unwrap_or(""),
                                p["podRef"]["name"].as_str().unwrap_or("")
                            ),
                            value,
                        ))
                    })
            })
            .collect()
    };
    let pod_samples = |field: &str, key: &str, scale: bool| -> Vec<(String, f64)> {
        pods.iter()
            .filter_map(|p| {
                let v = &p[field][key];
                let value = if scale { secs(v)? } else { v.as_u64()? as f64 };
                Some((pod_labels(p), value))
            })
            .collect()
    };
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        container_samples("cpu", "usageCoreNanoSeconds", true),
    );
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        container_samples("memory", "workingSetBytes", false),
    );
    family(
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
        secs(&node["cpu"]["usageCoreNanoSeconds"])
            .map(|v| (String::new(), v))
            .into_iter()
            .collect(),
    );
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
        node["memory"]["workingSetBytes"]
            .as_u64()
            .map(|v| (String::new(), v as f64))
            .into_iter()
            .collect(),
    );
    family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        pod_samples("cpu", "usageCoreNanoSeconds", true),
    );
    family(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        pod_samples("memory", "workingSetBytes", false),
    );
    out.push_str(
        "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE resource_scrape_error gauge\nresource_scrape_error 0\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_the_summary() {
        let summary = json!({
            "node": {"cpu": {"usageCoreNanoSeconds": 2_500_000_000u64}, "memory": {"workingSetBytes": 1024}},
            "pods": [{
                "podRef": {"name": "p", "namespace": "ns"},
                "cpu": {"usageCoreNanoSeconds": 10_000_000u64},
                "memory": {"workingSetBytes": 2048},
                "containers": [{"name": "app", "cpu": {"usageCoreNanoSeconds": 10_000_000u64}, "memory": {"workingSetBytes": 2048}}],
            }],
        });
        let text = render_metrics(&summary, 7);
        for line in [
            "node_cpu_usage_seconds_total 2.5 7",
            "node_memory_working_set_bytes 1024 7",
            "pod_cpu_usage_seconds_total{namespace=\"ns\",pod=\"p\"} 0.01 7",
            "pod_memory_working_set_bytes{namespace=\"ns\",pod=\"p\"} 2048 7",
            "container_memory_working_set_bytes{container=\"app\",namespace=\"ns\",pod=\"p\"} 2048 7",
            "# TYPE container_cpu_usage_seconds_total counter",
            "resource_scrape_error 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

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

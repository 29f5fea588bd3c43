//! Resource arithmetic as kube-scheduler does it: quantities in milli-units, a pod's
//! effective requests (containers, init containers, sidecars, overhead) and what a node
//! has left (`status.allocatable` minus the requests of the pods bound to it).
//!
//! Pure functions over API objects; owns no state and talks to nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The cpu resource name.
pub const CPU: &str = "cpu";
/// The memory resource name.
pub const MEMORY: &str = "memory";
/// The pod-count resource name (allocatable only).
pub const PODS: &str = "pods";

/// What a pod requests of cpu when it declares nothing, for scoring only
/// (`schedutil.DefaultMilliCPURequest`, 100m), in milli-units.
pub const DEFAULT_MILLI_CPU: i128 = 100;
/// What a pod requests of memory when it declares nothing, for scoring only
/// (`schedutil.DefaultMemoryRequest`, 200 MiB), in milli-units.
pub const DEFAULT_MILLI_MEMORY: i128 = 200 * 1024 * 1024 * 1000;

/// Amounts per resource name, in milli-units (1 cpu = 1000, 1 byte = 1000).
pub type Resources = BTreeMap<String, i128>;

/// Parses a quantity (`100m`, `1.5`, `128Mi`, `1e3`, `2G`) into milli-units, rounding up
/// as `Quantity.MilliValue` does. `None` when it is not a quantity or does not fit.
pub fn milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (negative, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 30
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    // value = mantissa * 10^exp10 * 2^exp2, in units; milli-units add 10^3.
    let mut exp10: i32 = 3 - i32::try_from(fraction.len()).ok()?;
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        s if s.starts_with(['e', 'E']) => exp10 += s[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    let mut value = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if exp10 >= 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(exp10).ok()?)?)?;
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-exp10).ok()?)?;
        value = value / divisor + i128::from(value % divisor != 0);
    }
    Some(if negative { -value } else { value })
}

fn add_all(into: &mut Resources, from: &Resources) {
    for (name, v) in from {
        *into.entry(name.clone()).or_default() += v;
    }
}

fn max_all(into: &mut Resources, from: &Resources) {
    for (name, v) in from {
        let e = into.entry(name.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn parse_map(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    map.into_iter()
        .flatten()
        .filter_map(|(k, q)| milli(&q.0).map(|v| (k.clone(), v)))
        .collect()
}

/// A container's requests; a resource with a limit and no request requests its limit (the
/// API server's defaulting does the same).
pub fn container_requests(c: &Container) -> Resources {
    let Some(r) = &c.resources else {
        return Resources::new();
    };
    let mut out = parse_map(r.limits.as_ref());
    out.extend(parse_map(r.requests.as_ref()));
    out
}

/// A pod's effective requests (`resource.PodRequests`): the sum over its containers and
/// restartable (sidecar) init containers, at least what any init container needs while it
/// runs beside the sidecars started before it, plus the pod's overhead.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = &pod.spec else {
        return Resources::new();
    };
    let mut total = Resources::new();
    for c in &spec.containers {
        add_all(&mut total, &container_requests(c));
    }
    let mut sidecars = Resources::new();
    let mut init_peak = Resources::new();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            add_all(&mut sidecars, &r);
            max_all(&mut init_peak, &sidecars);
        } else {
            let mut during = sidecars.clone();
            add_all(&mut during, &r);
            max_all(&mut init_peak, &during);
        }
    }
    add_all(&mut total, &sidecars);
    max_all(&mut total, &init_peak);
    add_all(&mut total, &parse_map(spec.overhead.as_ref()));
    total.retain(|_, v| *v != 0);
    total
}

/// The requests used for scoring (`NonZeroRequested`): a container that declares no cpu or
/// memory counts kube-scheduler's defaults for it.
pub fn pod_requests_non_zero(pod: &Pod) -> (i128, i128) {
    let Some(spec) = &pod.spec else {
        return (DEFAULT_MILLI_CPU, DEFAULT_MILLI_MEMORY);
    };
    let mut cpu = 0;
    let mut memory = 0;
    for c in &spec.containers {
        let r = container_requests(c);
        cpu += r.get(CPU).copied().unwrap_or(DEFAULT_MILLI_CPU);
        memory += r.get(MEMORY).copied().unwrap_or(DEFAULT_MILLI_MEMORY);
    }
    let overhead = parse_map(spec.overhead.as_ref());
    (
        cpu + overhead.get(CPU).copied().unwrap_or(0),
        memory + overhead.get(MEMORY).copied().unwrap_or(0),
    )
}

/// A node's `status.allocatable` (its capacity when allocatable is not reported).
pub fn allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let map = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    parse_map(map)
}

/// Whether a pod has finished (`Succeeded` or `Failed`) and holds no resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// What the pods on a node use: the sum of their requests and of their scoring requests,
/// and how many there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' scoring cpu requests (defaults for undeclared), milli-units.
    pub non_zero_cpu: i128,
    /// Sum of the pods' scoring memory requests (defaults for undeclared), milli-units.
    pub non_zero_memory: i128,
    /// Number of pods.
    pub pods: usize,
}

impl Usage {
    /// Counts one more pod.
    pub fn add(&mut self, pod: &Pod) {
        add_all(&mut self.requested, &pod_requests(pod));
        let (cpu, memory) = pod_requests_non_zero(pod);
        self.non_zero_cpu += cpu;
        self.non_zero_memory += memory;
        self.pods += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(milli("1"), Some(1000));
        assert_eq!(milli("100m"), Some(100));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("0.0001"), Some(1)); // rounded up
        assert_eq!(milli("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(milli("2G"), Some(2_000_000_000_000));
        assert_eq!(milli("1e3"), Some(1_000_000));
        assert_eq!(milli("500n"), Some(1));
        assert_eq!(milli("-1"), Some(-1000));
        assert_eq!(milli("abc"), None);
        assert_eq!(milli("1.2.3"), None);
        assert_eq!(milli("12Xi"), None);
        assert_eq!(milli(""), None);
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn pod_requests_follow_kube_scheduler() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "200m"}}},
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "1"}}},
            ],
            "overhead": {"cpu": "10m"},
        }));
        let r = pod_requests(&p);
        assert_eq!(r[CPU], 1010); // max(300m, 1) + 10m overhead
        assert_eq!(r[MEMORY], 64 * 1024 * 1024 * 1000);
        let (cpu, memory) = pod_requests_non_zero(&p);
        assert_eq!(cpu, 310);
        assert_eq!(memory, 64 * 1024 * 1024 * 1000 + DEFAULT_MILLI_MEMORY);
    }

    #[test]
    fn sidecars_add_to_the_pod() {
        let p = pod(json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
            ],
        }));
        assert_eq!(pod_requests(&p)[CPU], 150);
    }
}

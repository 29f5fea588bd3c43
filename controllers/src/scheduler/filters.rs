//! The filters of kube-scheduler's default profile that matter on spinlet's nodes, in
//! its order — NodeUnschedulable, TaintToleration, NodeAffinity, NodeResourcesFit — with
//! its reasons, the `FailedScheduling` message built from them (`FitError.Error()`), and
//! the LeastAllocated score used to pick among the nodes that fit.
//!
//! A node whose `Ready` condition is not `True` counts as tainted
//! `node.kubernetes.io/not-ready:NoSchedule` (`…/unreachable` when `Unknown`), as the
//! node lifecycle controller would taint it, so a pod tolerating that taint may go there.
//!
//! Pure functions: they read a pod and a node and decide; nothing here writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use k8s_openapi::api::node::v1::RuntimeClass;

use super::resources::{self, Resources, Usage, CPU, MEMORY, PODS};

/// The taint a cordoned node is treated as having.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint of a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// What the scheduler needs of a pod, with its RuntimeClass's `scheduling` merged in (as
/// the RuntimeClass admission plugin merges it on a real cluster).
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// `spec.nodeSelector` plus the RuntimeClass's `scheduling.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution` terms;
    /// `None` when the pod has no required node affinity.
    pub required_terms: Option<Vec<NodeSelectorTerm>>,
    /// `spec.tolerations` plus the RuntimeClass's `scheduling.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// The pod's effective requests.
    pub requests: Resources,
    /// The pod's scoring requests (cpu, memory) in milli-units.
    pub non_zero: (i128, i128),
    /// `spec.preemptionPolicy` is `Never`.
    pub never_preempts: bool,
}

impl PodFacts {
    /// Reads a pod, merging in `runtime_class` (the RuntimeClass its
    /// `runtimeClassName` names, if that exists).
    pub fn new(pod: &Pod, runtime_class: Option<&RuntimeClass>) -> PodFacts {
        let spec = pod.spec.as_ref();
        let mut node_selector = spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default();
        let mut tolerations = spec.and_then(|s| s.tolerations.clone()).unwrap_or_default();
        if let Some(scheduling) = runtime_class.and_then(|rc| rc.scheduling.as_ref()) {
            for (k, v) in scheduling.node_selector.iter().flatten() {
                node_selector.entry(k.clone()).or_insert_with(|| v.clone());
            }
            tolerations.extend(scheduling.tolerations.iter().flatten().cloned());
        }
        let required_terms = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| r.node_selector_terms.clone());
        PodFacts {
            node_selector,
            required_terms,
            tolerations,
            requests: resources::pod_requests(pod),
            non_zero: resources::pod_requests_non_zero(pod),
            never_preempts: spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never"),
        }
    }
}

/// Why a node does not fit a pod: the first filter that rejected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// The node is cordoned and the pod does not tolerate it (NodeUnschedulable).
    Unschedulable,
    /// The node has a NoSchedule/NoExecute taint the pod does not tolerate.
    UntoleratedTaint {
        /// The taint's key.
        key: String,
        /// The taint's value.
        value: String,
    },
    /// nodeSelector or required node affinity does not match (NodeAffinity).
    NodeAffinity,
    /// Not enough room: "Too many pods" and "Insufficient <resource>" (NodeResourcesFit).
    Resources(Vec<String>),
}

impl Unfit {
    /// The reasons kube-scheduler counts for this node, as it words them.
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Unfit::Unschedulable => vec!["node(s) were unschedulable".into()],
            Unfit::UntoleratedTaint { key, value } => {
                vec![format!("node(s) had untolerated taint {{{key}: {value}}}")]
            }
            Unfit::NodeAffinity => vec!["node(s) didn't match Pod's node affinity/selector".into()],
            Unfit::Resources(r) => r.clone(),
        }
    }

    /// Whether evicting pods could make room (kube-scheduler's `Unschedulable`, as opposed
    /// to `UnschedulableAndUnresolvable`): only a lack of resources.
    pub fn preemption_could_help(&self) -> bool {
        matches!(self, Unfit::Resources(_))
    }
}

/// Whether `toleration` tolerates `taint` (`Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match toleration.operator.as_deref() {
        Some("Exists") => true,
        None | Some("") | Some("Equal") => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        Some(_) => false,
    }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The node's Ready condition status (`None` when it reports none).
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str())
}

/// The node's taints that matter for scheduling, with the one its Ready condition implies.
fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let implied = match ready_status(node) {
        Some("True") => None,
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => Some(TAINT_NOT_READY),
    };
    if let Some(key) = implied {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        }
    }
    taints
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &PodFacts, node: &Node) -> Result<(), Unfit> {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    if cordoned && !tolerated(&pod.tolerations, &taint) {
        return Err(Unfit::Unschedulable);
    }
    Ok(())
}

/// TaintToleration: every NoSchedule/NoExecute taint must be tolerated.
pub fn taint_toleration(pod: &PodFacts, node: &Node) -> Result<(), Unfit> {
    for taint in effective_taints(node) {
        if !matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute") {
            continue;
        }
        if !tolerated(&pod.tolerations, &taint) {
            return Err(Unfit::UntoleratedTaint {
                key: taint.key,
                value: taint.value.unwrap_or_default(),
            });
        }
    }
    Ok(())
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches the node: its expressions on labels and its
/// fields (`metadata.name`) all hold; a term with neither matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// NodeAffinity: the node has every `nodeSelector` label, and one of the required node
/// affinity terms matches it.
pub fn node_affinity(pod: &PodFacts, node: &Node) -> Result<(), Unfit> {
    let labels = node.metadata.labels.as_ref();
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let affinity_ok = match &pod.required_terms {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(t, node)),
    };
    if selector_ok && affinity_ok {
        Ok(())
    } else {
        Err(Unfit::NodeAffinity)
    }
}

/// NodeResourcesFit: one more pod fits under `pods`, and every resource the pod requests
/// fits in allocatable minus what the node's pods request.
pub fn resources_fit(pod: &PodFacts, node: &Node, usage: &Usage) -> Result<(), Unfit> {
    let allocatable = resources::allocatable(node);
    let mut reasons = Vec::new();
    let max_pods = allocatable.get(PODS).copied().unwrap_or(0) / 1000;
    if i128::try_from(usage.pods).unwrap_or(i128::MAX) + 1 > max_pods {
        reasons.push("Too many pods".to_string());
    }
    // cpu and memory first, then the others by name, as kube-scheduler lists them.
    let mut names: Vec<&String> = pod.requests.keys().collect();
    names.sort_by_key(|n| (n.as_str() != CPU, n.as_str() != MEMORY, n.as_str()));
    for name in names {
        if name == PODS {
            continue;
        }
        let want = pod.requests[name];
        if want <= 0 {
            continue;
        }
        let free = allocatable.get(name).copied().unwrap_or(0)
            - usage.requested.get(name).copied().unwrap_or(0);
        if want > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Unfit::Resources(reasons))
    }
}

/// Runs the filters in kube-scheduler's order; the first that rejects the node decides.
pub fn filter(pod: &PodFacts, node: &Node, usage: &Usage) -> Result<(), Unfit> {
    node_unschedulable(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    resources_fit(pod, node, usage)
}

/// LeastAllocated (NodeResourcesFit's default scoring, cpu and memory weighted equally):
/// 0–100, higher when more of the node stays free once the pod is on it.
pub fn score(pod: &PodFacts, node: &Node, usage: &Usage) -> i64 {
    let allocatable = resources::allocatable(node);
    let part = |name: &str, requested: i128| -> i128 {
        let capacity = allocatable.get(name).copied().unwrap_or(0);
        if capacity <= 0 || requested > capacity {
            return 0;
        }
        (capacity - requested) * 100 / capacity
    };
    let cpu = part(CPU, usage.non_zero_cpu + pod.non_zero.0);
    let memory = part(MEMORY, usage.non_zero_memory + pod.non_zero.1);
    i64::try_from((cpu + memory) / 2).unwrap_or(0)
}

/// The `FailedScheduling` message for a pod no node fits (`FitError.Error()`): the
/// reasons counted over the nodes and sorted, then what preemption found.
pub fn fit_error_message(nodes: usize, unfit: &[Unfit], never_preempts: bool) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut message = format!("0/{nodes} nodes are available:");
    let histogram = |reasons: Vec<String>| -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in reasons {
            *counts.entry(r).or_default() += 1;
        }
        let mut lines: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        lines.sort();
        lines.join(", ")
    };
    message.push_str(&format!(
        " {}.",
        histogram(unfit.iter().flat_map(Unfit::reasons).collect())
    ));
    let preemption = if never_preempts {
        "not eligible due to preemptionPolicy=Never.".to_string()
    } else {
        // Nothing runs at a lower priority that could be evicted on spinlet's nodes
        // (no priority classes are acted on), so a node short of room has no victims.
        let per_node = unfit.iter().map(|u| {
            if u.preemption_could_help() {
                "No preemption victims found for incoming pod.".to_string()
            } else {
                "Preemption is not helpful for scheduling".to_string()
            }
        });
        format!(
            "0/{nodes} nodes are available: {}.",
            histogram(per_node.collect())
        )
    };
    message.push_str(&format!(" preemption: {preemption}"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(v: Value) -> Node {
        let mut base = json!({
            "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        });
        merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    fn pod(spec: Value) -> Pod {
        let mut base = json!({"containers": [{"name": "c", "image": "x"}]});
        merge(&mut base, spec);
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": base})).unwrap()
    }

    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    fn facts(spec: Value) -> PodFacts {
        PodFacts::new(&pod(spec), None)
    }

    fn run(spec: Value, n: Value) -> Result<(), Unfit> {
        filter(&facts(spec), &node(n), &Usage::default())
    }

    #[test]
    fn a_bare_pod_fits_a_ready_node() {
        assert_eq!(run(json!({}), json!({})), Ok(()));
    }

    #[test]
    fn a_node_not_ready_is_tainted_not_ready() {
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(
            run(json!({}), not_ready.clone()),
            Err(Unfit::UntoleratedTaint {
                key: TAINT_NOT_READY.into(),
                value: String::new()
            })
        );
        let unknown = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert!(matches!(
            run(json!({}), unknown),
            Err(Unfit::UntoleratedTaint { key, .. }) if key == TAINT_UNREACHABLE
        ));
        let no_conditions = json!({"status": {"conditions": []}});
        assert!(run(json!({}), no_conditions).is_err());
        let tolerant = json!({"tolerations": [{"key": TAINT_NOT_READY, "operator": "Exists"}]});
        assert_eq!(run(tolerant, not_ready), Ok(()));
    }

    #[test]
    fn a_cordoned_node_takes_only_pods_tolerating_it() {
        let cordoned = json!({"spec": {"unschedulable": true}});
        assert_eq!(run(json!({}), cordoned.clone()), Err(Unfit::Unschedulable));
        let tolerant = json!({"tolerations": [
            {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]});
        assert_eq!(run(tolerant, cordoned.clone()), Ok(()));
        let wrong_effect = json!({"tolerations": [
            {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoExecute"}]});
        assert_eq!(run(wrong_effect, cordoned), Err(Unfit::Unschedulable));
    }

    #[test]
    fn taints_need_tolerations() {
        let tainted = json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}});
        assert_eq!(
            run(json!({}), tainted.clone()),
            Err(Unfit::UntoleratedTaint {
                key: "dedicated".into(),
                value: "gpu".into()
            })
        );
        for ok in [
            json!([{"key": "dedicated", "operator": "Equal", "value": "gpu"}]),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            json!([{"key": "dedicated", "operator": "Exists"}]),
            json!([{"operator": "Exists"}]),
        ] {
            assert_eq!(
                run(json!({"tolerations": ok}), tainted.clone()),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            json!([{"key": "dedicated", "operator": "Equal", "value": "cpu"}]),
            json!([{"key": "other", "operator": "Exists"}]),
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
        ] {
            assert!(
                run(json!({"tolerations": bad}), tainted.clone()).is_err(),
                "{bad}"
            );
        }
        let no_execute = json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}});
        assert!(run(json!({}), no_execute).is_err());
        let prefer = json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}});
        assert_eq!(run(json!({}), prefer), Ok(()));
    }

    #[test]
    fn node_selector_needs_every_label() {
        let labelled = json!({"metadata": {"labels": {"disk": "ssd", "zone": "a"}}});
        assert_eq!(
            run(json!({"nodeSelector": {"disk": "ssd"}}), labelled.clone()),
            Ok(())
        );
        assert_eq!(
            run(
                json!({"nodeSelector": {"disk": "ssd", "zone": "b"}}),
                labelled.clone()
            ),
            Err(Unfit::NodeAffinity)
        );
        assert_eq!(
            run(json!({"nodeSelector": {"gpu": "yes"}}), labelled),
            Err(Unfit::NodeAffinity)
        );
    }

    fn affinity(terms: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}}})
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]})
    }

    #[test]
    fn required_node_affinity_operators() {
        let n = json!({"metadata": {"labels": {"zone": "a", "cores": "8"}}});
        let cases = [
            (expr("zone", "In", &["a", "b"]), true),
            (expr("zone", "In", &["b"]), false),
            (expr("zone", "NotIn", &["b"]), true),
            (expr("zone", "NotIn", &["a"]), false),
            (expr("missing", "NotIn", &["a"]), true),
            (expr("zone", "Exists", &[]), true),
            (expr("missing", "Exists", &[]), false),
            (expr("missing", "DoesNotExist", &[]), true),
            (expr("zone", "DoesNotExist", &[]), false),
            (expr("cores", "Gt", &["4"]), true),
            (expr("cores", "Gt", &["8"]), false),
            (expr("cores", "Lt", &["16"]), true),
            (expr("zone", "Lt", &["16"]), false), // not an integer
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}),
                true,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}),
                false,
            ),
            (json!({}), false), // an empty term matches nothing
        ];
        for (term, fits) in cases {
            let got = run(affinity(json!([term.clone()])), n.clone());
            assert_eq!(got.is_ok(), fits, "{term}");
            if !fits {
                assert_eq!(got, Err(Unfit::NodeAffinity));
            }
        }
        // Terms are ORed; expressions within a term are ANDed.
        let terms = json!([expr("zone", "In", &["b"]), expr("zone", "In", &["a"])]);
        assert_eq!(run(affinity(terms), n.clone()), Ok(()));
        let anded = json!([{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "cores", "operator": "Gt", "values": ["8"]}]}]);
        assert_eq!(run(affinity(anded), n), Err(Unfit::NodeAffinity));
    }

    #[test]
    fn runtime_class_scheduling_is_merged() {
        let rc: RuntimeClass = serde_json::from_value(json!({
            "metadata": {"name": "wasmtime-spin-v2"}, "handler": "spin",
            "scheduling": {
                "nodeSelector": {"spin": "yes"},
                "tolerations": [{"key": "wasm", "operator": "Exists"}],
            },
        }))
        .unwrap();
        let p = pod(json!({"runtimeClassName": "wasmtime-spin-v2"}));
        let facts = PodFacts::new(&p, Some(&rc));
        let plain = node(json!({}));
        assert_eq!(
            filter(&facts, &plain, &Usage::default()),
            Err(Unfit::NodeAffinity)
        );
        let spin = node(json!({
            "metadata": {"labels": {"spin": "yes"}},
            "spec": {"taints": [{"key": "wasm", "effect": "NoSchedule"}]},
        }));
        assert_eq!(filter(&facts, &spin, &Usage::default()), Ok(()));
        // Without the class's tolerations the taint keeps the pod off.
        assert!(filter(&PodFacts::new(&p, None), &spin, &Usage::default()).is_err());
    }

    #[test]
    fn resources_must_fit_what_is_left() {
        let big = json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}]});
        assert_eq!(
            run(big, json!({})),
            Err(Unfit::Resources(vec!["Insufficient cpu".into()]))
        );
        let p = facts(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "1", "memory": "3Gi"}}}]}));
        let n = node(json!({}));
        assert_eq!(filter(&p, &n, &Usage::default()), Ok(()));
        // A pod already on the node takes 1.5 cpu and 2 Gi: neither fits any more.
        let mut usage = Usage::default();
        usage.add(&pod(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "1500m", "memory": "2Gi"}}}]})));
        assert_eq!(
            filter(&p, &n, &usage),
            Err(Unfit::Resources(vec![
                "Insufficient cpu".into(),
                "Insufficient memory".into()
            ]))
        );
        // Pod count.
        let full = node(json!({"status": {"allocatable": {"pods": "1"}}}));
        assert_eq!(
            filter(&facts(json!({})), &full, &usage),
            Err(Unfit::Resources(vec!["Too many pods".into()]))
        );
        // Extended resources the node does not have.
        let gpu = facts(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"example.com/gpu": "1"}}}]}));
        assert_eq!(
            filter(&gpu, &n, &Usage::default()),
            Err(Unfit::Resources(
                vec!["Insufficient example.com/gpu".into()]
            ))
        );
    }

    #[test]
    fn filters_run_in_kube_schedulers_order() {
        let everything_wrong = json!({
            "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]},
        });
        assert_eq!(
            run(json!({"nodeSelector": {"x": "y"}}), everything_wrong),
            Err(Unfit::Unschedulable)
        );
    }

    #[test]
    fn least_allocated_prefers_the_emptier_node() {
        let p = facts(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}));
        let n = node(json!({}));
        let mut busy = Usage::default();
        busy.add(&pod(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]})));
        assert!(score(&p, &n, &Usage::default()) > score(&p, &n, &busy));
    }

    #[test]
    fn messages_read_as_kube_schedulers() {
        assert_eq!(
            fit_error_message(1, &[Unfit::NodeAffinity], false),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            fit_error_message(
                1,
                &[Unfit::Resources(vec!["Insufficient cpu".into()])],
                false
            ),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are \
             available: 1 No preemption victims found for incoming pod.."
        );
        let three = [
            Unfit::Unschedulable,
            Unfit::UntoleratedTaint {
                key: "dedicated".into(),
                value: "gpu".into(),
            },
            Unfit::Resources(vec!["Insufficient memory".into()]),
        ];
        assert_eq!(
            fit_error_message(3, &three, false),
            "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint \
             {dedicated: gpu}, 1 node(s) were unschedulable. preemption: 0/3 nodes are \
             available: 1 No preemption victims found for incoming pod., 2 Preemption is not \
             helpful for scheduling."
        );
        assert_eq!(
            fit_error_message(1, &[Unfit::Unschedulable], true),
            "0/1 nodes are available: 1 node(s) were unschedulable. preemption: not eligible \
             due to preemptionPolicy=Never."
        );
        assert_eq!(
            fit_error_message(0, &[], false),
            "no nodes available to schedule pods"
        );
    }
}

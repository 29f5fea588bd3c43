//! The table of served kinds: the built-in ones, and the custom resources their
//! CustomResourceDefinitions declare.
//!
//! Adding a built-in kind is one row in [`BUILTIN`]. Custom resources are added and removed
//! as CRDs are written (see `crd.rs`). Discovery, routing and storage all read from here;
//! this module does no I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// One served resource (a kind in one group, in every version it is served).
#[derive(Clone, Debug)]
pub struct Resource {
    /// API group, "" for core.
    pub group: String,
    /// The group whose storage holds the objects: the same as `group`, except for a
    /// kind served under a second group that shares the first one's objects (SpinApp
    /// under the docs-era `core.spinoperator.dev` and the current `core.spinkube.dev`).
    pub storage_group: String,
    /// Served versions, the preferred (storage) one first.
    pub versions: Vec<String>,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Plural resource name, e.g. `pods`.
    pub plural: String,
    /// Singular name, e.g. `pod`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names, e.g. `po`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Whether the `status` subresource is served.
    pub status: bool,
    /// Whether the `scale` subresource is served, with the JSON paths of spec/status replicas
    /// and the label selector (from the CRD, or the apps/v1 defaults).
    pub scale: Option<ScalePaths>,
    /// For custom resources: the per-version OpenAPI v3 schema (`openAPIV3Schema`).
    pub schemas: BTreeMap<String, Value>,
    /// For custom resources: the per-version `additionalPrinterColumns`.
    pub printer_columns: BTreeMap<String, Vec<Value>>,
    /// Whether this comes from a CRD.
    pub custom: bool,
}

/// Where a scalable kind keeps its replica counts.
#[derive(Clone, Debug)]
pub struct ScalePaths {
    /// e.g. `.spec.replicas`
    pub spec_replicas: String,
    /// e.g. `.status.replicas`
    pub status_replicas: String,
    /// e.g. `.status.selector`, if any.
    pub label_selector: Option<String>,
}

impl Resource {
    /// `apiVersion` for a version: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The name kube-apiserver uses in messages: `pods`, `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether this version is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The verbs discovery advertises.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// A built-in kind: group, version, kind, plural, singular, namespaced, short names,
/// categories, has status, is scalable.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
    bool,
);

/// Every built-in kind. One row per kind.
#[rustfmt::skip]
const BUILTIN: &[Row] = &[
    ("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], &[], true, false),
    ("", "v1", "Node", "nodes", "node", false, &["no"], &[], true, false),
    ("", "v1", "Pod", "pods", "pod", true, &["po"], &["all"], true, false),
    ("", "v1", "Service", "services", "service", true, &["svc"], &["all"], true, false),
    ("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"], &[], false, false),
    ("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], &[], false, false),
    ("", "v1", "Secret", "secrets", "secret", true, &[], &[], false, false),
    ("", "v1", "Event", "events", "event", true, &["ev"], &[], false, false),
    ("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"], &[], false, false),
    ("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], &["all"], true, true),
    ("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], &["all"], true, true),
    ("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, &[], &[], false, false),
    ("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", false, &[], &[], false, false),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, &[], &[], false, false),
    ("events.k8s.io", "v1", "Event", "events", "event", true, &["ev"], &[], false, false),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, &["hpa"], &["all"], true, false),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, &["ing"], &[], true, false),
    ("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, &[], &[], false, false),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", false, &["crd", "crds"], &["api-extensions"], true, false),
];

/// The served kinds. Reads are lock-free in practice (an `RwLock` around an `Arc`'d map).
pub struct Registry {
    inner: RwLock<Arc<Table>>,
}

/// A snapshot of the registry.
#[derive(Default)]
pub struct Table {
    /// Keyed by (group, plural).
    by_resource: BTreeMap<(String, String), Arc<Resource>>,
}

impl Table {
    /// Looks up a resource served at group/version.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<Resource>> {
        self.by_resource
            .get(&(group.to_string(), plural.to_string()))
            .filter(|r| r.serves(version))
    }

    /// Looks up a resource by group and plural, in any version.
    pub fn get_any(&self, group: &str, plural: &str) -> Option<&Arc<Resource>> {
        self.by_resource
            .get(&(group.to_string(), plural.to_string()))
    }

    /// All resources.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.by_resource.values()
    }

    /// The groups served, each with its versions (preferred first), core ("") first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.by_resource.values() {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, vs)) => {
                    for v in &r.versions {
                        if !vs.contains(v) {
                            vs.push(v.clone());
                        }
                    }
                }
                None => groups.push((r.group.clone(), r.versions.clone())),
            }
        }
        groups.sort_by_key(|(g, _)| (!g.is_empty(), builtin_rank(g), g.clone()));
        groups
    }
}

fn builtin_rank(group: &str) -> usize {
    BUILTIN
        .iter()
        .position(|row| row.0 == group)
        .unwrap_or(BUILTIN.len())
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The registry with every built-in kind.
    pub fn new() -> Registry {
        let mut table = Table::default();
        for &(group, version, kind, plural, singular, namespaced, short, cats, status, scale) in
            BUILTIN
        {
            let r = Resource {
                group: group.into(),
                storage_group: crate::conversion::storage_group(group, kind)
                    .unwrap_or(group)
                    .into(),
                versions: vec![version.into()],
                kind: kind.into(),
                plural: plural.into(),
                singular: singular.into(),
                namespaced,
                short_names: short.iter().map(|s| s.to_string()).collect(),
                categories: cats.iter().map(|s| s.to_string()).collect(),
                status,
                scale: scale.then(|| ScalePaths {
                    spec_replicas: ".spec.replicas".into(),
                    status_replicas: ".status.replicas".into(),
                    label_selector: Some(".status.selector".into()),
                }),
                schemas: BTreeMap::new(),
                printer_columns: BTreeMap::new(),
                custom: false,
            };
            table
                .by_resource
                .insert((r.group.clone(), r.plural.clone()), Arc::new(r));
        }
        Registry {
            inner: RwLock::new(Arc::new(table)),
        }
    }

    /// The current table.
    pub fn snapshot(&self) -> Arc<Table> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the entry of a custom resource (`None` removes it) by copy-on-write, so
    /// readers keep their snapshot. Built-in kinds are never touched.
    fn set_custom(&self, group: &str, plural: &str, entry: Option<Resource>) {
        let mut guard = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (group.to_string(), plural.to_string());
        if guard.by_resource.get(&key).is_some_and(|old| !old.custom) {
            return;
        }
        let mut next = Table {
            by_resource: guard.by_resource.clone(),
        };
        match entry {
            Some(r) => next.by_resource.insert(key, Arc::new(r)),
            None => next.by_resource.remove(&key),
        };
        *guard = Arc::new(next);
    }

    /// Adds or replaces a custom resource. Built-in kinds cannot be replaced.
    pub fn put_custom(&self, r: Resource) {
        let (group, plural) = (r.group.clone(), r.plural.clone());
        self.set_custom(&group, &plural, Some(r));
    }

    /// Removes a custom resource.
    pub fn remove_custom(&self, group: &str, plural: &str) {
        self.set_custom(group, plural, None);
    }
}

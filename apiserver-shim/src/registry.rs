//! The table of served kinds: the built-in ones, and the custom resources their
//! CustomResourceDefinitions declare.
//!
//! The built-in kinds are the entries of `kinds::BUILTIN`, each with its strategy
//! ([`Resource::strategy`]). Custom resources are added and removed as CRDs are written
//! (see `crd.rs`). Discovery, routing and storage all read from here; this module does no
//! I/O.

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

    /// The kind's rules: its built-in strategy, or the custom resources' one.
    pub fn strategy(&self) -> &'static dyn crate::kinds::KindStrategy {
        crate::kinds::strategy_of(self)
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
    let kinds = crate::kinds::BUILTIN;
    kinds
        .iter()
        .position(|k| k.group == group)
        .unwrap_or(kinds.len())
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
        for k in crate::kinds::BUILTIN {
            let r = Resource {
                group: k.group.into(),
                storage_group: k
                    .strategy
                    .shared_storage()
                    .map_or(k.group, |s| s.group)
                    .into(),
                versions: vec![k.version.into()],
                kind: k.kind.into(),
                plural: k.plural.into(),
                singular: k.singular.into(),
                namespaced: k.namespaced,
                short_names: k.short_names.iter().map(|s| s.to_string()).collect(),
                categories: k.categories.iter().map(|s| s.to_string()).collect(),
                status: k.status,
                scale: k.scale.then(|| ScalePaths {
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

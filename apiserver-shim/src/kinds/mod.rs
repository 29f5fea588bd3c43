//! Every built-in kind's behaviour, one place per kind, as kube-apiserver keeps it in a
//! strategy per kind (`pkg/registry/<group>/<kind>/strategy.go`): each kind is a [`Kind`]
//! (its registry entry: names, scope, subresources) carrying a [`KindStrategy`] (its
//! rules: defaulting, validation, update rules, generation tracking, status reset, graceful
//! deletion, printer columns, field labels, strategic merge keys, the custom REST storage
//! it needs).
//!
//! One file per kind or per API group (`pod.rs`, `apps.rs`, `service.rs`, …); the pod
//! spec, shared by pods and workload templates, has its own (`pod_spec.rs`). Adding a
//! built-in kind is a file here plus one line in [`BUILTIN`] (and its `k8s-openapi` type
//! in `typed.rs`); adding a rule to a kind touches that kind's file only. The generic code
//! (`object`, `validation`, `handlers`, `table`, `field_labels`, `strategic`, `ssa`)
//! asks [`strategy_of`] and never matches on kind names.
//!
//! Pure functions over JSON values: this module does no I/O. What needs the store (a
//! Service's cluster IP, a Namespace's deletion, a CRD changing what is served) is named
//! here by [`Rest`] and done by the handlers.

mod apiextensions;
mod apps;
mod autoscaling;
mod config;
mod coordination;
mod custom;
mod discovery;
mod events;
mod namespace;
mod networking;
mod node;
mod pod;
pub mod pod_spec;
mod service;
pub mod subresources;

use serde_json::Value;

use crate::error::Cause;
use crate::registry::Resource;
use crate::strategic::merge_keys::MergeSchema;
use crate::table::{age_column, name_column, Column};

pub use subresources::{create_only, CreateOnly, Extra, Subresource, CREATE_ONLY};

/// A built-in kind's registry entry: where and how it is served, and its strategy.
pub struct Kind {
    /// API group, "" for core.
    pub group: &'static str,
    /// The served (and storage) version.
    pub version: &'static str,
    /// Kind, e.g. `Pod`.
    pub kind: &'static str,
    /// Plural resource name, e.g. `pods`.
    pub plural: &'static str,
    /// Singular name, e.g. `pod`.
    pub singular: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names, e.g. `po`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Whether the `status` subresource is served.
    pub status: bool,
    /// Whether the `scale` subresource is served (at the apps/v1 paths).
    pub scale: bool,
    /// The kind's rules.
    pub strategy: &'static dyn KindStrategy,
}

/// The custom REST storage a kind needs beyond the generic one (kube-apiserver's
/// per-kind `storage.go`); the handlers do what each asks, with the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rest {
    /// Plain create, update, delete.
    Generic,
    /// Namespaces: deleting marks `Terminating` and runs the namespace finalizer; the
    /// `finalize` subresource; the system namespaces may not be deleted.
    Namespace,
    /// Services: cluster IPs and node ports allocated at create, kept across updates.
    Service,
    /// CustomResourceDefinitions: checked and established on write; the registry serves
    /// what they define; deleting one deletes its objects.
    CustomResourceDefinition,
}

/// A kind stored as another group's kind (`conversion.rs` renames the fields both ways).
#[derive(Debug)]
pub struct SharedStorage {
    /// The group whose storage holds the objects.
    pub group: &'static str,
    /// Field of this kind → field as stored.
    pub fields: &'static [(&'static str, &'static str)],
    /// Stored-only fields dropped when empty on the way out (bookkeeping with no field
    /// in this kind).
    pub dropped_when_empty: &'static [&'static str],
}

/// How `metadata.name` is validated (kube-apiserver's `ValidateObjectMeta` name func).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (Namespace, Service).
    Label,
}

/// A kind's rules, as kube-apiserver's `RESTCreateStrategy`, `RESTUpdateStrategy`,
/// `RESTDeleteStrategy` and `ResetFieldsStrategy` name them, plus what printing, field
/// selection and patching need. Every method has the generic behaviour as its default, so
/// a kind implements only what it changes.
pub trait KindStrategy: Sync {
    /// Defaults every write gets, create and update (`SetDefaults_*` run on every decoded
    /// body), so an update that leaves out a defaulted field does not change it.
    fn default(&self, _obj: &mut Value) {}

    /// `PrepareForCreate`: the defaults plus what only a new object gets (a pod's
    /// status, a namespace's phase).
    fn prepare_for_create(&self, obj: &mut Value) {
        self.default(obj);
    }

    /// `Canonicalize`: normalisations applied on every write after defaulting (a
    /// Secret's `stringData` folded into `data`).
    fn canonicalize(&self, _obj: &mut Value) {}

    /// `Validate`: the kind's own causes for an object about to be stored (metadata
    /// labels are checked for every kind by `validation`).
    fn validate(&self, _obj: &Value, _out: &mut Vec<Cause>) {}

    /// `ValidateUpdate`: what an update from `old` to `new` (both defaulted) may not
    /// change, beyond [`validate`](Self::validate) of `new`.
    fn validate_update(&self, _old: &Value, _new: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// The status strategy's `PrepareForUpdate`: what a status write keeps from the
    /// stored object beyond its spec.
    fn prepare_status_update(&self, _old: &Value, _new: &mut Value) {}

    /// Whether `metadata.generation` follows changes outside metadata and status.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether a create drops the status the client sent (`GetResetFields` lists
    /// `status`), for kinds with a status subresource. Nodes and Namespaces keep it.
    fn resets_status_on_create(&self) -> bool {
        true
    }

    /// How the kind's names are validated.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// `RESTGracefulDeleteStrategy`: whether a DELETE first records `deletionTimestamp`
    /// and a grace period, the object going once the period is shortened to 0.
    fn deletes_gracefully(&self) -> bool {
        false
    }

    /// `CheckGracefulDelete`: the grace period a first DELETE gives `obj` (`requested`
    /// is the request's `gracePeriodSeconds`, negative values already raised to 1).
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Whether the garbage collector follows the kind: its objects' `ownerReferences`,
    /// their deletion policies, and their dependents when they go. kube-controller-manager's
    /// collector leaves core Events out (`DefaultIgnoredResources`), as a busy cluster
    /// writes and expires thousands a second.
    fn garbage_collected(&self) -> bool {
        true
    }

    /// The subresources served beyond `status` and `scale`.
    fn subresources(&self) -> &'static [Subresource] {
        &[]
    }

    /// Server-side printing: kube-apiserver's columns (pkg/printers/internalversion).
    fn columns(&self) -> Vec<Column> {
        vec![name_column(), age_column()]
    }

    /// The field selectors the kind supports beyond `metadata.name` and
    /// `metadata.namespace`.
    fn field_labels(&self) -> &'static [&'static str] {
        &[]
    }

    /// Field selector prefixes spelled differently in storage (`from`, `to`), for a kind
    /// stored in another group's shape.
    fn field_label_aliases(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Strategic merge patch: where the kind's pod spec sits and its own list merge
    /// keys. `None`: every list is replaced whole (JSON merge patch).
    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        Some(&MergeSchema::PLAIN)
    }

    /// For a kind served in one group and stored in another's shape (kube-apiserver's
    /// conversion through the internal version): that group and the field renames.
    fn shared_storage(&self) -> Option<&'static SharedStorage> {
        None
    }

    /// The custom REST storage the kind needs.
    fn rest(&self) -> Rest {
        Rest::Generic
    }
}

/// Every built-in kind, in discovery order (a group is listed where its first kind is).
pub const BUILTIN: &[&Kind] = &[
    &namespace::NAMESPACE,
    &node::NODE,
    &pod::POD,
    &service::SERVICE,
    &discovery::ENDPOINTS,
    &config::CONFIG_MAP,
    &config::SECRET,
    &events::CORE_EVENT,
    &config::SERVICE_ACCOUNT,
    &apps::DEPLOYMENT,
    &apps::REPLICA_SET,
    &coordination::LEASE,
    &node::RUNTIME_CLASS,
    &discovery::ENDPOINT_SLICE,
    &events::EVENT,
    &autoscaling::HORIZONTAL_POD_AUTOSCALER,
    &networking::INGRESS,
    &networking::INGRESS_CLASS,
    &apiextensions::CUSTOM_RESOURCE_DEFINITION,
];

/// The built-in kind `kind` of `group`, if any.
pub fn builtin(group: &str, kind: &str) -> Option<&'static Kind> {
    BUILTIN
        .iter()
        .copied()
        .find(|k| k.group == group && k.kind == kind)
}

/// The generic rules, for a resource whose kind is not known.
pub const GENERIC: &dyn KindStrategy = &custom::Unlisted;

/// The strategy of a served resource: its built-in kind's, or the custom resources' one.
pub fn strategy_of(r: &Resource) -> &'static dyn KindStrategy {
    if r.custom {
        return &custom::CustomResource;
    }
    builtin(&r.group, &r.kind).map_or(GENERIC, |k| k.strategy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_listed_once() {
        for (i, k) in BUILTIN.iter().enumerate() {
            let dup = BUILTIN[..i]
                .iter()
                .any(|o| o.group == k.group && (o.kind == k.kind || o.plural == k.plural));
            assert!(!dup, "{}/{} listed twice", k.group, k.kind);
        }
    }

    /// Adding a kind also needs its k8s-openapi type (`typed.rs`), or its bodies cannot
    /// be decoded.
    #[test]
    fn each_kind_has_its_type() {
        struct Found;
        impl crate::typed::Visitor for Found {
            type Out = ();
            fn visit<T>(self) {}
        }
        for k in BUILTIN {
            assert!(
                crate::typed::with_type(k.kind, k.group, Found).is_some(),
                "{}/{} has no type in typed.rs",
                k.group,
                k.kind
            );
        }
    }

    #[test]
    fn pods_serve_binding_exec_and_attach() {
        let subresource = |group: &str, kind: &str, name: &str| {
            builtin(group, kind)?
                .strategy
                .subresources()
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.extra)
        };
        assert_eq!(subresource("", "Pod", "binding"), Some(Extra::Binding));
        assert_eq!(subresource("", "Pod", "exec"), Some(Extra::Exec));
        assert_eq!(subresource("", "Node", "proxy"), Some(Extra::NodeProxy));
        assert_eq!(subresource("", "Service", "binding"), None);
        assert!(create_only("", "v1", "bindings").is_some());
        assert!(create_only("apps", "v1", "bindings").is_none());
    }

    #[test]
    fn events_of_both_groups_are_left_out_of_the_garbage_collector() {
        let collected =
            |group: &str, kind: &str| builtin(group, kind).map(|k| k.strategy.garbage_collected());
        assert_eq!(collected("", "Event"), Some(false));
        assert_eq!(collected("events.k8s.io", "Event"), Some(false));
        assert_eq!(collected("", "ConfigMap"), Some(true));
        assert_eq!(collected("apps", "ReplicaSet"), Some(true));
    }
}

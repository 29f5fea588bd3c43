//! The merge-key table of strategic merge patch: which list fields merge by which key
//! (`patchStrategy`/`patchMergeKey` in the Go types), keyed by the field's path inside
//! the object (`[]` stands for "each element"). Lists not found are replaced whole.
//!
//! Owns what every built-in kind shares: paths that hold at any depth (`ObjectMeta`,
//! `conditions`), and the `PodSpec` and container lists, wherever a kind's pod spec sits.
//! A kind's own lists and the place of its pod spec are its [`MergeSchema`], declared in
//! its file under `kinds/`. Server-side apply's field ownership reads the same table
//! ([`list_kind`]). Knows nothing of patch directives or how lists are merged.

/// How a list field is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the stored one (no `patchStrategy`; JSON merge patch).
    Replace,
    /// Elements are matched by this key and merged (`patchStrategy:"merge"`, `patchMergeKey`).
    ByKey(&'static str),
    /// A list of scalars merged as a set (`patchStrategy:"merge"` without a key).
    Set,
}

use ListStrategy::{ByKey, Replace, Set};

/// A field path inside the object (`[]` = each element of a list) and its list strategy.
pub type Rule = (&'static str, ListStrategy);

/// A built-in kind's part of the table: where its pod spec sits and its own list rules.
/// Deployment's `spec.strategy` is `retainKeys` upstream: kubectl sends `$retainKeys`
/// there, which the patch honours on any map.
#[derive(Debug)]
pub struct MergeSchema {
    /// The path of the kind's `PodSpec` (`spec`, `spec.template.spec`), if it has one.
    pub pod_spec: Option<&'static str>,
    /// The kind's own list fields, by full path.
    pub rules: &'static [Rule],
}

impl MergeSchema {
    /// A built-in kind with no lists of its own (only the shared paths apply).
    pub const PLAIN: MergeSchema = MergeSchema {
        pod_spec: None,
        rules: &[],
    };
}

/// Path suffixes that hold at any depth of every built-in kind (`ObjectMeta` also sits in pod
/// templates; every `conditions` list of core and apps merges by `type`).
const ANY_DEPTH: &[Rule] = &[
    ("metadata.ownerReferences", ByKey("uid")),
    ("metadata.finalizers", Set),
    ("conditions", ByKey("type")),
];

/// Paths relative to a `PodSpec`. Lists absent here (`tolerations`, `readinessGates`, ...) are
/// replaced whole. `volumes` is `merge,retainKeys` upstream: its items carry `$retainKeys`,
/// which the patch honours on any map, as kube-apiserver does.
const POD_SPEC: &[Rule] = &[
    ("containers", ByKey("name")),
    ("initContainers", ByKey("name")),
    ("ephemeralContainers", ByKey("name")),
    ("volumes", ByKey("name")),
    ("imagePullSecrets", ByKey("name")),
    ("hostAliases", ByKey("ip")),
    ("topologySpreadConstraints", ByKey("topologyKey")),
    ("schedulingGates", ByKey("name")),
    ("resourceClaims", ByKey("name")),
];

/// The three container lists of a `PodSpec`; [`CONTAINER`] applies to the items of each.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Paths relative to a container. `args`, `command`, `envFrom`, `resizePolicy` are replaced.
const CONTAINER: &[Rule] = &[
    ("ports", ByKey("containerPort")),
    ("env", ByKey("name")),
    ("volumeMounts", ByKey("mountPath")),
    ("volumeDevices", ByKey("devicePath")),
];

/// The strategy of the list at `path` (e.g. `spec.template.spec.containers[].ports`).
pub fn lookup(schema: Option<&MergeSchema>, path: &str) -> ListStrategy {
    let Some(schema) = schema else {
        return Replace;
    };
    let by_suffix = |(rule, _): &&Rule| {
        path.strip_suffix(rule)
            .is_some_and(|head| head.is_empty() || head.ends_with('.'))
    };
    if let Some((_, s)) = ANY_DEPTH.iter().find(by_suffix) {
        return *s;
    }
    let exact = |rules: &[Rule], p: &str| rules.iter().find(|(r, _)| *r == p).map(|(_, s)| *s);
    if let Some(s) = exact(schema.rules, path) {
        return s;
    }
    let in_pod_spec = schema
        .pod_spec
        .and_then(|root| path.strip_prefix(root)?.strip_prefix('.'));
    if let Some(rest) = in_pod_spec {
        if let Some(s) = exact(POD_SPEC, rest) {
            return s;
        }
        for list in CONTAINER_LISTS {
            if let Some(field) = rest.strip_prefix(list).and_then(|r| r.strip_prefix("[].")) {
                if let Some(s) = exact(CONTAINER, field) {
                    return s;
                }
            }
        }
    }
    Replace
}

/// How a list is merged, for other mechanisms that share the merge-key table
/// (server-side apply's field ownership).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// The list is one value, replaced whole.
    Atomic,
    /// Items are identified by this key.
    Map(&'static str),
    /// Items are scalars forming a set.
    Set,
}

/// The list kind at `path` (fields joined by `.`, `[]` after a list) under `schema`.
pub fn list_kind(schema: Option<&MergeSchema>, path: &str) -> ListKind {
    match lookup(schema, path) {
        Replace => ListKind::Atomic,
        ByKey(k) => ListKind::Map(k),
        Set => ListKind::Set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind the server does not serve, whose pod spec sits deepest.
    const CRON_JOB: MergeSchema = MergeSchema {
        pod_spec: Some("spec.jobTemplate.spec.template.spec"),
        rules: &[],
    };

    /// The merge schema of a built-in kind by name (`CronJob` too); `None` otherwise.
    fn schema(kind: &str) -> Option<&'static MergeSchema> {
        if kind == "CronJob" {
            return Some(&CRON_JOB);
        }
        crate::kinds::BUILTIN
            .iter()
            .find(|k| k.kind == kind)
            .and_then(|k| k.strategy.merge_schema())
    }

    #[test]
    fn table_lookup() {
        let cases = [
            ("Deployment", "spec.template.spec.containers", ByKey("name")),
            (
                "Deployment",
                "spec.template.spec.initContainers[].ports",
                ByKey("containerPort"),
            ),
            (
                "Deployment",
                "spec.template.spec.containers[].env",
                ByKey("name"),
            ),
            (
                "Deployment",
                "spec.template.spec.containers[].args",
                Replace,
            ),
            ("Deployment", "spec.template.spec.tolerations", Replace),
            ("Deployment", "spec.template.metadata.finalizers", Set),
            ("Deployment", "status.conditions", ByKey("type")),
            ("Pod", "spec.containers[].volumeMounts", ByKey("mountPath")),
            (
                "Pod",
                "spec.ephemeralContainers[].volumeDevices",
                ByKey("devicePath"),
            ),
            ("Pod", "spec.volumes", ByKey("name")),
            ("Pod", "spec.hostAliases", ByKey("ip")),
            (
                "Pod",
                "spec.topologySpreadConstraints",
                ByKey("topologyKey"),
            ),
            ("Pod", "spec.template.spec.containers", Replace),
            (
                "CronJob",
                "spec.jobTemplate.spec.template.spec.imagePullSecrets",
                ByKey("name"),
            ),
            ("Service", "spec.ports", ByKey("port")),
            ("Pod", "spec.ports", Replace),
            ("ServiceAccount", "secrets", ByKey("name")),
            ("Node", "status.conditions", ByKey("type")),
            ("Secret", "metadata.ownerReferences", ByKey("uid")),
            ("Namespace", "spec.finalizers", Replace),
            ("SpinApp", "metadata.finalizers", Replace),
        ];
        for (kind, path, want) in cases {
            assert_eq!(lookup(schema(kind), path), want, "{kind} {path}");
        }
    }
}

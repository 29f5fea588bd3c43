//! The extra subresources a kind may serve beyond `status` and `scale` (a pod's
//! `binding`, `exec`, `log`, …; a node's `proxy`), and the create-only resources that
//! store nothing of their own (the legacy `bindings`). Kinds list theirs in their
//! strategy; discovery and the handlers read them from there.

/// An extra subresource a kind serves, beyond `status` and `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// `pods/binding`: assign the pod to a node (POST a `Binding`).
    Binding,
    /// `pods/exec`: run a command in a container.
    Exec,
    /// `pods/attach`: attach to a container's process.
    Attach,
    /// `pods/log`: the container's log, from its node's kubelet.
    Log,
    /// `nodes/proxy`: a request relayed to the node's kubelet.
    NodeProxy,
    /// `pods/portforward`: an upgraded connection relayed to the pod's kubelet.
    PortForward,
    /// `pods/eviction`: delete the pod as `kubectl drain` asks (POST an `Eviction`).
    Eviction,
}

/// A subresource as discovery lists it.
pub struct Subresource {
    /// What it does.
    pub extra: Extra,
    /// Its name in paths, e.g. `binding`.
    pub name: &'static str,
    /// The group and version of the kind a request to it carries ("" and "v1" for core).
    pub group_version: (&'static str, &'static str),
    /// The kind a request to it carries (discovery's `responseKind`).
    pub kind: &'static str,
    /// Its verbs.
    pub verbs: &'static [&'static str],
}

/// A resource that only accepts POST and stores nothing of its own.
pub struct CreateOnly {
    /// What it does.
    pub extra: Extra,
    /// Group ("" for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural name in paths.
    pub plural: &'static str,
    /// The kind of its request bodies.
    pub kind: &'static str,
    /// Whether it is namespaced.
    pub namespaced: bool,
}

/// Every create-only resource: the legacy `bindings`, which binds the pod its
/// `metadata.name` names.
pub const CREATE_ONLY: &[CreateOnly] = &[CreateOnly {
    extra: Extra::Binding,
    group: "",
    version: "v1",
    plural: "bindings",
    kind: "Binding",
    namespaced: true,
}];

/// The create-only resource at group/version/plural, if any.
pub fn create_only(group: &str, version: &str, plural: &str) -> Option<&'static CreateOnly> {
    CREATE_ONLY
        .iter()
        .find(|c| c.group == group && c.version == version && c.plural == plural)
}

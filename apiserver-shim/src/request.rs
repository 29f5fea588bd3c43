//! Parsing a request's path and query into what it addresses: discovery, OpenAPI, health,
//! or a resource (group, version, namespace, resource, name, subresource).
//!
//! Pure parsing: looking the resource up in the registry is the router's job.

use std::collections::HashMap;

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their `/…/ping`-style subpaths).
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    GroupVersion(String, String),
    /// `/openapi/v3`
    OpenApiIndex,
    /// `/openapi/v3/{api/v1 | apis/g/v}`
    OpenApiDoc(String, String),
    /// `/openapi/v2`
    OpenApiV2,
    /// A resource path.
    Resource(ResourcePath),
    /// `/api/v1/nodes/{node}/proxy/{path}`: a request relayed to the node's kubelet.
    NodeProxy {
        /// The node.
        node: String,
        /// The path on the kubelet, with its leading `/`.
        path: String,
    },
    /// Anything else.
    Unknown,
}

/// A resource path's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// Group, "" for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, …), if any.
    pub subresource: Option<String>,
}

/// Parses a path (already stripped of its query).
pub fn parse_path(path: &str) -> Target {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Target::Version,
        ["healthz" | "livez" | "readyz", ..] => Target::Health,
        ["api"] => Target::CoreVersions,
        ["apis"] => Target::Groups,
        ["apis", g] => Target::Group(g.to_string()),
        ["api", v] => Target::GroupVersion(String::new(), v.to_string()),
        ["apis", g, v] => Target::GroupVersion(g.to_string(), v.to_string()),
        ["openapi", "v3"] => Target::OpenApiIndex,
        ["openapi", "v3", "api", v] => Target::OpenApiDoc(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Target::OpenApiDoc(g.to_string(), v.to_string()),
        ["openapi", "v2"] => Target::OpenApiV2,
        ["api", "v1", "nodes", node, "proxy", rest @ ..] if !node.is_empty() => Target::NodeProxy {
            node: percent_encoding::percent_decode_str(node)
                .decode_utf8_lossy()
                .into_owned(),
            path: format!("/{}", rest.join("/")),
        },
        ["api", v, rest @ ..] => resource(String::new(), v, rest),
        ["apis", g, v, rest @ ..] => resource(g.to_string(), v, rest),
        _ => Target::Unknown,
    }
}

fn resource(group: String, version: &str, rest: &[&str]) -> Target {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mk = |ns: Option<&str>, res: &str, name: Option<&str>, sub: Option<&str>| {
        if res.is_empty() || name.is_some_and(str::is_empty) {
            return Target::Unknown;
        }
        Target::Resource(ResourcePath {
            group: group.clone(),
            version: version.to_string(),
            namespace: ns.map(decode),
            resource: res.to_string(),
            name: name.map(decode),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        // The namespace object itself and its subresources.
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            mk(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, res] => mk(Some(ns), res, None, None),
        ["namespaces", ns, res, name] => mk(Some(ns), res, Some(name), None),
        ["namespaces", ns, res, name, sub] => mk(Some(ns), res, Some(name), Some(sub)),
        [res] => mk(None, res, None, None),
        [res, name] => mk(None, res, Some(name), None),
        [res, name, sub] => mk(None, res, Some(name), Some(sub)),
        _ => Target::Unknown,
    }
}

/// Query parameters, last value wins.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// The parameters encoded again as a query string (sorted, so stable).
    pub fn encode(&self) -> String {
        let mut pairs: Vec<(&String, &String)> = self.0.iter().collect();
        pairs.sort();
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    }

    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let Target::Resource(r) = parse_path("/api/v1/namespaces/default/pods/p1/status") else {
            panic!()
        };
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("p1"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let Target::Resource(r) = parse_path("/api/v1/namespaces/kube-system") else {
            panic!()
        };
        assert_eq!(r.resource, "namespaces");
        assert_eq!(r.name.as_deref(), Some("kube-system"));
        let Target::Resource(r) = parse_path("/api/v1/namespaces/x/status") else {
            panic!()
        };
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert_eq!(
            parse_path("/apis/apps/v1"),
            Target::GroupVersion("apps".into(), "v1".into())
        );
        let Target::Resource(r) = parse_path("/apis/core.spinkube.dev/v1alpha1/spinapps") else {
            panic!()
        };
        assert_eq!(r.namespace, None);
    }
}

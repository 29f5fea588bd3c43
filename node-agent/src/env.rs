//! A container's environment as the kubelet builds it: `envFrom` (ConfigMaps and Secrets,
//! with `prefix` and `optional`) first, then `env` in order — plain values with `$(VAR)`
//! expanded from the variables before them (`$$` escapes), and `valueFrom`:
//! `configMapKeyRef`, `secretKeyRef`, `fieldRef` (the downward API's pod fields) and
//! `resourceFieldRef` (limits and requests with a divisor; an unset limit is the node's
//! allocatable). Variables named `SPIN_VARIABLE_<NAME>` also set the Spin variable
//! `<name>`, as containerd-shim-spin does.
//!
//! Reads ConfigMaps and Secrets through the `kube` client; a missing one (not optional)
//! is an error with the kubelet's message, which the pod shows as
//! `CreateContainerConfigError`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::resources::{bytes, millicores};
use crate::sources::Kind;

/// Why the environment cannot be built (the container's waiting message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// What the downward API reads besides the pod object.
pub struct Context<'a> {
    /// The pod's address.
    pub pod_ip: &'a str,
    /// The node's address.
    pub host_ip: &'a str,
    /// The node's allocatable cpu (millicores) and memory (bytes), for unset limits.
    pub allocatable: (u64, u64),
}

/// Fetches each ConfigMap and Secret once per environment build.
struct Sources<'a> {
    client: &'a kube::Client,
    ns: &'a str,
    cache: BTreeMap<(Kind, String), Option<BTreeMap<String, String>>>,
}

impl Sources<'_> {
    async fn get(
        &mut self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, Error> {
        let key = (kind, name.to_string());
        if !self.cache.contains_key(&key) {
            let data = crate::sources::data(self.client, self.ns, kind, name)
                .await
                .map_err(|e| {
                    Error(format!(
                        "cannot read {} {}/{name}: {e}",
                        kind.name(),
                        self.ns
                    ))
                })?;
            let text = data.map(|d| {
                d.into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect()
            });
            self.cache.insert(key.clone(), text);
        }
        Ok(self.cache.get(&key).and_then(Option::as_ref))
    }

    /// The value of `key` in the ConfigMap or Secret `name`; `None` when optional and
    /// missing.
    async fn key(
        &mut self,
        kind: Kind,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<String>, Error> {
        let ns = self.ns.to_string();
        match self.get(kind, name).await? {
            None if optional => Ok(None),
            None => Err(Error(format!("{} {name:?} not found", kind.lower()))),
            Some(data) => match data.get(key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(Error(format!(
                    "couldn't find key {key} in {} {ns}/{name}",
                    kind.name()
                ))),
            },
        }
    }
}

/// Expands `$(NAME)` from `defined`; `$$` is a literal `$`; unknown references stay.
pub fn expand(value: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match defined.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A downward-API pod field, as `fieldRef.fieldPath` names it.
pub fn field(pod: &Pod, path: &str, ctx: &Context<'_>) -> Result<String, Error> {
    let meta = &pod.metadata;
    let subscript = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(|k| {
                map.as_ref()
                    .and_then(|m| m.get(k))
                    .cloned()
                    .unwrap_or_default()
            })
    };
    if let Some(v) = subscript("metadata.labels['", &meta.labels) {
        return Ok(v);
    }
    if let Some(v) = subscript("metadata.annotations['", &meta.annotations) {
        return Ok(v);
    }
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
        other => return Err(Error(format!("unsupported fieldRef.fieldPath {other:?}"))),
    })
}

/// A `resourceFieldRef` value: the container's limit or request in units of `divisor`.
pub fn resource_field(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    ctx: &Context<'_>,
) -> Result<String, Error> {
    let bad = || {
        Error(format!(
            "unsupported resourceFieldRef.resource {resource:?}"
        ))
    };
    let (which, name) = resource.split_once('.').ok_or_else(bad)?;
    let quantities = container.resources.as_ref().and_then(|r| match which {
        "limits" => r.limits.as_ref(),
        "requests" => r.requests.as_ref(),
        _ => None,
    });
    let text = quantities.and_then(|q| q.get(name)).map(|q| q.0.clone());
    let bad_divisor = |d: &str| Error(format!("resourceFieldRef.divisor {d:?} is not a quantity"));
    let value = match name {
        "cpu" => {
            let have = match &text {
                Some(t) => millicores(t).ok_or_else(bad)?,
                None if which == "limits" => ctx.allocatable.0,
                None => 0,
            };
            let div = divisor.map_or(Ok(1000), |d| millicores(d).ok_or_else(|| bad_divisor(d)))?;
            have.div_ceil(div.max(1))
        }
        "memory" | "ephemeral-storage" => {
            let have = match &text {
                Some(t) => bytes(t).ok_or_else(bad)?,
                None if which == "limits" => ctx.allocatable.1,
                None => 0,
            };
            let div = divisor.map_or(Ok(1), |d| bytes(d).ok_or_else(|| bad_divisor(d)))?;
            have.div_ceil(div.max(1))
        }
        _ => return Err(bad()),
    };
    Ok(value.to_string())
}

/// Sets `name`, keeping the order in which names were first set.
fn put(
    order: &mut Vec<String>,
    values: &mut BTreeMap<String, String>,
    name: String,
    value: String,
) {
    if !values.contains_key(&name) {
        order.push(name.clone());
    }
    values.insert(name, value);
}

/// The environment of `container` in `pod`, and the Spin variables it sets.
pub async fn build(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    ctx: &Context<'_>,
) -> Result<(Vec<(String, String)>, Vec<String>), Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut sources = Sources {
        client,
        ns,
        cache: BTreeMap::new(),
    };
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(c), _) => (Kind::ConfigMap, c.name.clone(), c.optional.unwrap_or(false)),
            (None, Some(s)) => (Kind::Secret, s.name.clone(), s.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        match sources.get(kind, &name).await? {
            Some(data) => {
                for (k, v) in data.clone() {
                    put(&mut order, &mut values, format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => return Err(Error(format!("{} {name:?} not found", kind.lower()))),
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or(""), &values)),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    sources
                        .key(Kind::ConfigMap, &r.name, &r.key, optional)
                        .await?
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    sources.key(Kind::Secret, &r.name, &r.key, optional).await?
                } else if let Some(r) = &from.field_ref {
                    Some(field(pod, &r.field_path, ctx)?)
                } else if let Some(r) = &from.resource_field_ref {
                    let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
                    Some(resource_field(container, &r.resource, divisor, ctx)?)
                } else {
                    None
                }
            }
        };
        if let Some(v) = value {
            put(&mut order, &mut values, e.name.clone(), v);
        }
    }
    let env: Vec<(String, String)> = order
        .into_iter()
        .filter_map(|n| values.get(&n).map(|v| (n, v.clone())))
        .collect();
    let variables = spin_variables(&env);
    Ok((env, variables))
}

/// The Spin variables `SPIN_VARIABLE_<NAME>` variables set (`name=value`).
pub fn spin_variables(env: &[(String, String)]) -> Vec<String> {
    env.iter()
        .filter_map(|(n, v)| {
            n.strip_prefix("SPIN_VARIABLE_")
                .map(|var| format!("{}={v}", var.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            pod_ip: "10.42.0.7",
            host_ip: "192.0.2.1",
            allocatable: (2000, 4 << 30),
        }
    }

    #[test]
    fn spin_variables_come_from_the_environment() {
        let env = vec![
            ("SPIN_VARIABLE_GREETING".to_string(), "hi".to_string()),
            ("PLAIN".to_string(), "x".to_string()),
        ];
        assert_eq!(spin_variables(&env), vec!["greeting=hi".to_string()]);
    }

    #[test]
    fn references_expand_from_earlier_variables_only() {
        let mut defined = BTreeMap::new();
        defined.insert("A".to_string(), "one".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &defined), "one-$(B)-$(A)-$");
        assert_eq!(expand("plain", &defined), "plain");
        assert_eq!(expand("$(A", &defined), "$(A");
    }

    #[test]
    fn downward_api_fields_and_resources() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}]},
        }))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(field(&pod, "metadata.name", &ctx()).unwrap(), "p");
        assert_eq!(
            field(&pod, "metadata.labels['app']", &ctx()).unwrap(),
            "web"
        );
        assert_eq!(field(&pod, "metadata.labels['none']", &ctx()).unwrap(), "");
        assert_eq!(field(&pod, "status.podIP", &ctx()).unwrap(), "10.42.0.7");
        assert_eq!(field(&pod, "spec.nodeName", &ctx()).unwrap(), "n1");
        assert!(field(&pod, "spec.bogus", &ctx())
            .unwrap_err()
            .0
            .contains("spec.bogus"));
        assert_eq!(
            resource_field(c, "limits.memory", Some("1Mi"), &ctx()).unwrap(),
            "64"
        );
        assert_eq!(
            resource_field(c, "requests.cpu", Some("1m"), &ctx()).unwrap(),
            "250"
        );
        assert_eq!(
            resource_field(c, "requests.cpu", None, &ctx()).unwrap(),
            "1"
        );
        assert_eq!(resource_field(c, "limits.cpu", None, &ctx()).unwrap(), "2");
        assert!(resource_field(c, "limits.gpu", None, &ctx()).is_err());
    }
}

//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl 1.32's
//! `create configmap|secret|namespace|serviceaccount|service|deployment` generators send:
//! the `k8s\0` magic, a `runtime.Unknown` envelope and the proto2-encoded object, decoded
//! here into the same JSON the rest of the server handles.
//!
//! Hand-written because what exists does not fit: `k8s-pb` has prost structs for every
//! type but no serde, so mapping them to JSON would mean a conversion per type anyway. The
//! wire format is small; the field tables below (numbers from kubernetes' generated.proto,
//! as in k8s-pb 0.9) cover every message those generators write. A field number not in a
//! table is an error naming the message and number, never silently dropped.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};

/// The four-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// The content type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Clone, Copy)]
enum K {
    Str,
    Int,
    Bool,
    Msg(&'static Msg),
    MapStr,
    MapBytes,
    MapQuantity,
    Time,
    IntOrStr,
    /// Decoded and discarded (status sent on create, which the server ignores).
    Skip,
}

struct Msg {
    name: &'static str,
    fields: &'static [(u32, &'static str, K, bool)],
}

macro_rules! msg {
    ($id:ident, $name:literal, [$(($n:literal, $f:literal, $k:expr, $rep:literal)),* $(,)?]) => {
        static $id: Msg = Msg { name: $name, fields: &[$(($n, $f, $k, $rep)),*] };
    };
}

msg!(
    OWNER_REF,
    "OwnerReference",
    [
        (5, "apiVersion", K::Str, false),
        (1, "kind", K::Str, false),
        (3, "name", K::Str, false),
        (4, "uid", K::Str, false),
        (6, "controller", K::Bool, false),
        (7, "blockOwnerDeletion", K::Bool, false)
    ]
);
msg!(
    OBJECT_META,
    "ObjectMeta",
    [
        (1, "name", K::Str, false),
        (2, "generateName", K::Str, false),
        (3, "namespace", K::Str, false),
        (4, "selfLink", K::Str, false),
        (5, "uid", K::Str, false),
        (6, "resourceVersion", K::Str, false),
        (7, "generation", K::Int, false),
        (8, "creationTimestamp", K::Time, false),
        (9, "deletionTimestamp", K::Time, false),
        (10, "deletionGracePeriodSeconds", K::Int, false),
        (11, "labels", K::MapStr, false),
        (12, "annotations", K::MapStr, false),
        (13, "ownerReferences", K::Msg(&OWNER_REF), true),
        (14, "finalizers", K::Str, true),
        (17, "managedFields", K::Skip, true),
    ]
);
msg!(
    LABEL_REQ,
    "LabelSelectorRequirement",
    [
        (1, "key", K::Str, false),
        (2, "operator", K::Str, false),
        (3, "values", K::Str, true)
    ]
);
msg!(
    LABEL_SELECTOR,
    "LabelSelector",
    [
        (1, "matchLabels", K::MapStr, false),
        (2, "matchExpressions", K::Msg(&LABEL_REQ), true)
    ]
);
msg!(
    CONFIG_MAP,
    "ConfigMap",
    [
        (1, "metadata", K::Msg(&OBJECT_META), false),
        (2, "data", K::MapStr, false),
        (3, "binaryData", K::MapBytes, false),
        (4, "immutable", K::Bool, false)
    ]
);
msg!(
    SECRET,
    "Secret",
    [
        (1, "metadata", K::Msg(&OBJECT_META), false),
        (2, "data", K::MapBytes, false),
        (3, "type", K::Str, false),
        (4, "stringData", K::MapStr, false),
        (5, "immutable", K::Bool, false)
    ]
);
msg!(
    NAMESPACE_SPEC,
    "NamespaceSpec",
    [(1, "finalizers", K::Str, true)]
);
msg!(
    NAMESPACE,
    "Namespace",
    [
        (1, "metadata", K::Msg(&OBJECT_META), false),
        (2, "spec", K::Msg(&NAMESPACE_SPEC), false),
        (3, "status", K::Skip, false)
    ]
);
msg!(
    OBJECT_REF,
    "ObjectReference",
    [
        (1, "kind", K::Str, false),
        (2, "namespace", K::Str, false),
        (3, "name", K::Str, false),
        (4, "uid", K::Str, false),
        (5, "apiVersion", K::Str, false),
        (6, "resourceVersion", K::Str, false),
        (7, "fieldPath", K::Str, false)
    ]
);
msg!(
    LOCAL_REF,
    "LocalObjectReference",
    [(1, "name", K::Str, false)]
);
msg!(
    SERVICE_ACCOUNT,
    "ServiceAccount",
    [
        (1, "metadata", K::Msg(&OBJECT_META), false),
        (2, "secrets", K::Msg(&OBJECT_REF), true),
        (3, "imagePullSecrets", K::Msg(&LOCAL_REF), true),
        (4, "automountServiceAccountToken", K::Bool, false)
    ]
);
msg!(
    SERVICE_PORT,
    "ServicePort",
    [
        (1, "name", K::Str, false),
        (2, "protocol", K::Str, false),
        (6, "appProtocol", K::Str, false),
        (3, "port", K::Int, false),
        (4, "targetPort", K::IntOrStr, false),
        (5, "nodePort", K::Int, false)
    ]
);
msg!(
    SERVICE_SPEC,
    "ServiceSpec",
    [
        (1, "ports", K::Msg(&SERVICE_PORT), true),
        (2, "selector", K::MapStr, false),
        (3, "clusterIP", K::Str, false),
        (18, "clusterIPs", K::Str, true),
        (4, "type", K::Str, false),
        (5, "externalIPs", K::Str, true),
        (7, "sessionAffinity", K::Str, false),
        (8, "loadBalancerIP", K::Str, false),
        (9, "loadBalancerSourceRanges", K::Str, true),
        (10, "externalName", K::Str, false),
        (11, "externalTrafficPolicy", K::Str, false),
        (12, "healthCheckNodePort", K::Int, false),
        (13, "publishNotReadyAddresses", K::Bool, false),
        (19, "ipFamilies", K::Str, true),
        (17, "ipFamilyPolicy", K::Str, false),
        (20, "allocateLoadBalancerNodePorts", K::Bool, false),
        (21, "loadBalancerClass", K::Str, false),
        (22, "internalTrafficPolicy", K::Str, false),
        (23, "trafficDistribution", K::Str, false),
    ]
);
msg!(
    SERVICE,
    "Service",
    [
        (1, "metadata", K::Msg(&OBJECT_META), false),
        (2, "spec", K::Msg(&SERVICE_SPEC), false),
        (3, "status", K::Skip, false)
    ]
);
msg!(
    CONTAINER_PORT,
    "ContainerPort",
    [
        (1, "name", K::Str, false),
        (2, "hostPort", K::Int, false),
        (3, "containerPort", K::Int, false),
        (4, "protocol", K::Str, false),
        (5, "hostIP", K::Str, false)
    ]
);
msg!(
    RESOURCES,
    "ResourceRequirements",
    [
        (1, "limits", K::MapQuantity, false),
        (2, "requests", K::MapQuantity, false)
    ]
);
msg!(
    ENV_VAR,
    "EnvVar",
    [(1, "name", K::Str, false), (2, "value", K::Str, false)]
);
msg!(
    CONTAINER,
    "Container",
    [
        (1, "name", K::Str, false),
        (2, "image", K::Str, false),
        (3, "command", K::Str, true),
        (4, "args", K::Str, true),
        (5, "workingDir", K::Str, false),
        (6, "ports", K::Msg(&CONTAINER_PORT), true),
        (7, "env", K::Msg(&ENV_VAR), true),
        (8, "resources", K::Msg(&RESOURCES), false),
        (13, "terminationMessagePath", K::Str, false),
        (20, "terminationMessagePolicy", K::Str, false),
        (14, "imagePullPolicy", K::Str, false),
        (16, "stdin", K::Bool, false),
        (17, "stdinOnce", K::Bool, false),
        (18, "tty", K::Bool, false),
    ]
);
msg!(
    POD_SPEC,
    "PodSpec",
    [
        (2, "containers", K::Msg(&CONTAINER), true),
        (20, "initContainers", K::Msg(&CONTAINER), true),
        (3, "restartPolicy", K::Str, false),
        (4, "terminationGracePeriodSeconds", K::Int, false),
        (6, "dnsPolicy", K::Str, false),
        (7, "nodeSelector", K::MapStr, false),
        (8, "serviceAccountName", K::Str, false),
        (10, "nodeName", K::Str, false),
        (15, "imagePullSecrets", K::Msg(&LOCAL_REF), true),
        (19, "schedulerName", K::Str, false),
        (29, "runtimeClassName", K::Str, false),
        (5, "activeDeadlineSeconds", K::Int, false),
        (9, "serviceAccount", K::Str, false),
        (11, "hostNetwork", K::Bool, false),
        (12, "hostPID", K::Bool, false),
        (13, "hostIPC", K::Bool, false),
        (16, "hostname", K::Str, false),
        (17, "subdomain", K::Str, false),
        (21, "automountServiceAccountToken", K::Bool, false),
        (24, "priorityClassName", K::Str, false),
        (25, "priority", K::Int, false),
        (27, "shareProcessNamespace", K::Bool, false),
        (30, "enableServiceLinks", K::Bool, false),
        (31, "preemptionPolicy", K::Str, false),
        (35, "setHostnameAsFQDN", K::Bool, false),
        (37, "hostUsers", K::Bool, false),
        (41, "hostnameOverride", K::Str, false),
    ]
);
msg!(
    POD_TEMPLATE,
    "PodTemplateSpec",
    [
        (1, "metadata", K::Msg(&OBJECT_META), false),
        (2, "spec", K::Msg(&POD_SPEC), false)
    ]
);
msg!(
    ROLLING_UPDATE,
    "RollingUpdateDeployment",
    [
        (1, "maxUnavailable", K::IntOrStr, false),
        (2, "maxSurge", K::IntOrStr, false)
    ]
);
msg!(
    STRATEGY,
    "DeploymentStrategy",
    [
        (1, "type", K::Str, false),
        (2, "rollingUpdate", K::Msg(&ROLLING_UPDATE), false)
    ]
);
msg!(
    DEPLOYMENT_SPEC,
    "DeploymentSpec",
    [
        (1, "replicas", K::Int, false),
        (2, "selector", K::Msg(&LABEL_SELECTOR), false),
        (3, "template", K::Msg(&POD_TEMPLATE), false),
        (4, "strategy", K::Msg(&STRATEGY), false),
        (5, "minReadySeconds", K::Int, false),
        (6, "revisionHistoryLimit", K::Int, false),
        (7, "paused", K::Bool, false),
        (9, "progressDeadlineSeconds", K::Int, false),
    ]
);
msg!(
    DEPLOYMENT,
    "Deployment",
    [
        (1, "metadata", K::Msg(&OBJECT_META), false),
        (2, "spec", K::Msg(&DEPLOYMENT_SPEC), false),
        (3, "status", K::Skip, false)
    ]
);

/// Fields whose zero value is meaningful (Go pointers), kept when zero. Every other scalar
/// at its zero value is dropped, as Go's `omitempty` JSON would (proto2 from Go encodes
/// non-pointer scalars even when zero).
const KEEP_ZERO: &[&str] = &["replicas"];

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Null => true,
        _ => false,
    }
}

/// The top-level messages decodable, by (apiVersion, kind).
fn top(api_version: &str, kind: &str) -> Option<&'static Msg> {
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => &CONFIG_MAP,
        ("v1", "Secret") => &SECRET,
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("v1", "Service") => &SERVICE,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        _ => return None,
    })
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg.into())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> ApiResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("protobuf: truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("protobuf: varint too long"))
    }

    fn bytes(&mut self) -> ApiResult<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| bad("protobuf: length overflow"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("protobuf: truncated field"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn skip(&mut self, wire: u64) -> ApiResult<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(bad(format!("protobuf: unsupported wire type {w}"))),
        }
    }

    fn advance(&mut self, n: usize) -> ApiResult<()> {
        if self.pos + n > self.buf.len() {
            return Err(bad("protobuf: truncated field"));
        }
        self.pos += n;
        Ok(())
    }
}

fn utf8(b: &[u8], what: &str) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad(format!("protobuf: {what} is not UTF-8")))
}

/// Reads a map entry message {1: key, 2: value}.
fn map_entry(b: &[u8]) -> ApiResult<(String, &[u8], u64)> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut key, mut val, mut vwire) = (String::new(), &b[0..0], 2);
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => key = utf8(r.bytes()?, "map key")?,
            (2, 2) => {
                val = r.bytes()?;
                vwire = 2;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((key, val, vwire))
}

fn decode_scalar(k: K, wire: u64, r: &mut Reader, msg: &Msg, field: &str) -> ApiResult<Value> {
    let want2 = |w: u64| {
        if w == 2 {
            Ok(())
        } else {
            Err(bad(format!(
                "protobuf: {}.{field}: wrong wire type {w}",
                msg.name
            )))
        }
    };
    Ok(match k {
        K::Str => {
            want2(wire)?;
            json!(utf8(r.bytes()?, field)?)
        }
        K::Int => json!(r.varint()? as i64),
        K::Bool => json!(r.varint()? != 0),
        K::Msg(m) => {
            want2(wire)?;
            decode_msg(m, r.bytes()?)?
        }
        K::Time => {
            want2(wire)?;
            let mut t = Reader {
                buf: r.bytes()?,
                pos: 0,
            };
            let mut secs = 0i64;
            while !t.done() {
                let tag = t.varint()?;
                match (tag >> 3, tag & 7) {
                    (1, 0) => secs = t.varint()? as i64,
                    (_, w) => t.skip(w)?,
                }
            }
            match jiff::Timestamp::from_second(secs) {
                Ok(ts) if secs != 0 => json!(ts.to_string()),
                _ => Value::Null,
            }
        }
        K::IntOrStr => {
            want2(wire)?;
            let mut t = Reader {
                buf: r.bytes()?,
                pos: 0,
            };
            let (mut ty, mut int, mut s) = (0u64, 0i64, String::new());
            while !t.done() {
                let tag = t.varint()?;
                match (tag >> 3, tag & 7) {
                    (1, 0) => ty = t.varint()?,
                    (2, 0) => int = t.varint()? as i64,
                    (3, 2) => s = utf8(t.bytes()?, field)?,
                    (_, w) => t.skip(w)?,
                }
            }
            if ty == 1 {
                json!(s)
            } else {
                json!(int)
            }
        }
        K::Skip => {
            r.skip(wire)?;
            Value::Null
        }
        K::MapStr | K::MapBytes | K::MapQuantity => Value::Null,
    })
}

fn quantity(b: &[u8]) -> ApiResult<Value> {
    let mut t = Reader { buf: b, pos: 0 };
    let mut s = String::new();
    while !t.done() {
        let tag = t.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => s = utf8(t.bytes()?, "quantity")?,
            (_, w) => t.skip(w)?,
        }
    }
    Ok(json!(s))
}

fn decode_msg(msg: &Msg, buf: &[u8]) -> ApiResult<Value> {
    let mut out = Map::new();
    let mut r = Reader { buf, pos: 0 };
    while !r.done() {
        let tag = r.varint()?;
        let (num, wire) = ((tag >> 3) as u32, tag & 7);
        let Some(&(_, name, kind, repeated)) = msg.fields.iter().find(|f| f.0 == num) else {
            return Err(bad(format!(
                "protobuf: field {num} of {} is not supported by this server; send JSON instead",
                msg.name
            )));
        };
        match kind {
            K::MapStr | K::MapBytes | K::MapQuantity => {
                let (k, v, _) = map_entry(r.bytes()?)?;
                let value = match kind {
                    K::MapStr => json!(utf8(v, name)?),
                    K::MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    _ => quantity(v)?,
                };
                if let Some(m) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, value);
                }
            }
            K::Skip => r.skip(wire)?,
            _ if repeated => {
                let list = out.entry(name).or_insert_with(|| json!([]));
                if wire == 2 && matches!(kind, K::Int | K::Bool) {
                    // Packed scalars.
                    let mut p = Reader {
                        buf: r.bytes()?,
                        pos: 0,
                    };
                    while !p.done() {
                        let v = decode_scalar(kind, 0, &mut p, msg, name)?;
                        if let Some(a) = list.as_array_mut() {
                            a.push(v);
                        }
                    }
                } else {
                    let v = decode_scalar(kind, wire, &mut r, msg, name)?;
                    if let Some(a) = list.as_array_mut() {
                        a.push(v);
                    }
                }
            }
            _ => {
                let v = decode_scalar(kind, wire, &mut r, msg, name)?;
                if !is_zero(&v) || (KEEP_ZERO.contains(&name) && !v.is_null()) {
                    out.insert(name.to_string(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf body into a JSON object with `apiVersion` and `kind`.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("protobuf body does not start with the k8s\\0 magic"))?;
    let mut r = Reader { buf: rest, pos: 0 };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &rest[0..0]);
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                let mut t = Reader {
                    buf: r.bytes()?,
                    pos: 0,
                };
                while !t.done() {
                    let tag = t.varint()?;
                    match (tag >> 3, tag & 7) {
                        (1, 2) => api_version = utf8(t.bytes()?, "apiVersion")?,
                        (2, 2) => kind = utf8(t.bytes()?, "kind")?,
                        (_, w) => t.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let msg = top(&api_version, &kind).ok_or_else(|| {
        ApiError::unsupported_media_type(
            CONTENT_TYPE,
            &["application/json", "application/yaml"],
        )
        .with_message(format!(
            "protobuf bodies are decoded for ConfigMap, Secret, Namespace, ServiceAccount, Service and Deployment; got {kind} ({api_version}): send JSON"
        ))
    })?;
    let mut obj = decode_msg(msg, raw)?;
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), json!(api_version));
        o.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u32, wire: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) as u8) | wire];
        if wire == 2 {
            v.push(payload.len() as u8);
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = field(1, 2, b"cm1");
        let entry = [field(1, 2, b"k"), field(2, 2, b"v")].concat();
        let cm = [field(1, 2, &meta), field(2, 2, &entry)].concat();
        let type_meta = [field(1, 2, b"v1"), field(2, 2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, 2, &type_meta), field(2, 2, &cm)].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["name"], "cm1");
        assert_eq!(v["data"]["k"], "v");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            &b"k8s\0\xff\xff\xff"[..],
            b"nope",
            b"k8s\0\x0a\x7f",
            b"k8s\0",
        ] {
            assert!(decode(body).is_err());
        }
    }
}

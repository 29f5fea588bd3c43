//! Decoding a request body into an object the way kube-apiserver does: JSON or YAML,
//! `apiVersion`/`kind` checked against the URL, then the body decoded against the kind's
//! schema: built-in kinds by a round trip through their `k8s-openapi` types, custom
//! resources by their CRD's `openAPIV3Schema` (after its `default:` values are applied,
//! `crd::defaults`). Fields the schema does not know are
//! *unknown fields*: an error under `fieldValidation=Strict`, a warning under `Warn`
//! (the default) and silently dropped in every mode, as the apiserver prunes them.
//!
//! It does not touch metadata semantics (names, uids, timestamps): that is `object.rs`.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::Resource;

/// Largest body accepted, as kube-apiserver (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request.
    Strict,
    /// Accept, drop the fields, and warn.
    Warn,
    /// Accept and drop silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter.
    pub fn parse(v: Option<&str>) -> ApiResult<FieldValidation> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// Parses a JSON or YAML body into a JSON value.
pub fn parse_body(content_type: &str, body: &[u8]) -> ApiResult<Value> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/yaml" | "application/apply-patch+yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
    }
}

/// Takes a create or update body as kube-apiserver's decoder does: for a built-in kind,
/// a missing `kind` is the endpoint's kind and a missing `apiVersion` (or a version
/// missing under the endpoint's group) the endpoint's (generated SDK clients send such
/// bodies); the body then carries them. Custom resources are decoded as unstructured
/// objects upstream, which fills nothing in: both stay required. Then [`check_type`].
pub fn typed_body(mut object: Value, r: &Resource, version: &str) -> ApiResult<Value> {
    if !r.custom {
        fill_type(&mut object, r, version);
    }
    check_type(&object, r, version)?;
    Ok(object)
}

/// Fills the parts of the body's group, version and kind it leaves out from the
/// endpoint's, as apimachinery's `gvkWithDefaults`.
fn fill_type(object: &mut Value, r: &Resource, version: &str) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (kind, api_version) = (text("kind"), text("apiVersion"));
    let (mut group, mut ver) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.clone()),
    };
    if ver.is_empty() && (group.is_empty() || group == r.group) {
        group = r.group.clone();
        ver = version.to_string();
    }
    if kind.is_empty() {
        obj.insert("kind".into(), Value::String(r.kind.clone()));
    }
    let filled = if group.is_empty() {
        ver
    } else {
        format!("{group}/{ver}")
    };
    if filled != api_version {
        obj.insert("apiVersion".into(), Value::String(filled));
    }
}

/// Checks `apiVersion` and `kind` of a body against the URL's resource.
pub fn check_type(object: &Value, r: &Resource, version: &str) -> ApiResult<()> {
    let Some(obj) = object.as_object() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        // apimachinery's missingKindErr quotes the whole body.
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{object}'"
        )));
    }
    let want = r.api_version(version);
    if kind != r.kind || api_version != want {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({want})"
        ))
        .or_kind(kind, &r.kind, api_version, &want));
    }
    Ok(())
}

trait OrKind {
    fn or_kind(self, kind: &str, want_kind: &str, av: &str, want_av: &str) -> ApiError;
}

impl OrKind for ApiError {
    fn or_kind(self, kind: &str, want_kind: &str, av: &str, want_av: &str) -> ApiError {
        if av == want_av && kind != want_kind {
            ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({want_kind})"
            ))
        } else {
            self
        }
    }
}

/// Decodes `object` against its kind's schema. Returns the pruned object and the unknown
/// field paths (already an error under Strict).
pub fn decode(
    r: &Resource,
    version: &str,
    object: Value,
    mode: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let (decoded, unknown) = if r.custom {
        decode_custom(r, version, object)?
    } else {
        decode_builtin(r, version, object)?
    };
    if mode == FieldValidation::Strict && !unknown.is_empty() {
        return Err(ApiError::strict_decoding(&unknown));
    }
    Ok((decoded, unknown))
}

/// Round-trips through the typed struct; fields that do not survive are unknown.
fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    r: &Resource,
    version: &str,
    object: &Value,
) -> ApiResult<(Value, Vec<String>)> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{version}\" cannot be handled as a {}: {e}",
            r.kind, r.kind
        ))
    })?;
    let back = serde_json::to_value(&typed).map_err(ApiError::internal)?;
    let mut unknown = Vec::new();
    diff_unknown(object, &back, "", &mut unknown);
    Ok((back, unknown))
}

/// Paths present (non-null) in `input` but absent from `decoded`.
fn diff_unknown(input: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => diff_unknown(v, bv, &p, out),
                    None if !v.is_null() && !is_empty_container(v) => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b.iter()).enumerate() {
                diff_unknown(av, bv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

struct RoundTrip<'a> {
    r: &'a Resource,
    version: &'a str,
    object: &'a Value,
}

impl crate::typed::Visitor for RoundTrip<'_> {
    type Out = ApiResult<(Value, Vec<String>)>;
    fn visit<T: serde::de::DeserializeOwned + serde::Serialize + schemars::JsonSchema>(
        self,
    ) -> Self::Out {
        roundtrip::<T>(self.r, self.version, self.object)
    }
}

fn decode_builtin(r: &Resource, version: &str, object: Value) -> ApiResult<(Value, Vec<String>)> {
    let (mut decoded, unknown) = crate::typed::with_type(
        &r.kind,
        &r.group,
        RoundTrip {
            r,
            version,
            object: &object,
        },
    )
    .unwrap_or_else(|| Ok((object.clone(), Vec::new())))?;
    // Metadata fields the typed round trip normalises are taken verbatim from the input,
    // so annotations such as last-applied-configuration stay byte for byte.
    if let (Some(m_in), Some(out)) = (object.get("metadata"), decoded.as_object_mut()) {
        if let Some(m_out) = out.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["annotations", "labels"] {
                if let Some(v) = m_in.get(k) {
                    m_out.insert(k.into(), v.clone());
                }
            }
        }
    }
    Ok((decoded, unknown))
}

/// The metadata fields every object may carry.
const META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn decode_custom(
    r: &Resource,
    version: &str,
    mut object: Value,
) -> ApiResult<(Value, Vec<String>)> {
    let mut unknown = Vec::new();
    let mut causes = Vec::new();
    // Defaults first, so the checks below see the object as it will be stored (a required
    // field with a default is satisfied), as upstream validates after defaulting.
    crate::crd::defaults::apply(r, version, &mut object);
    let Value::Object(mut map) = object else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.retain(|k, _| {
            let known = META_FIELDS.contains(&k.as_str());
            if !known {
                unknown.push(format!("metadata.{k}"));
            }
            known
        });
    }
    if let Some(schema) = r.schemas.get(version) {
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = preserves_unknown(schema);
        let keys: Vec<String> = map.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(sub) => {
                    if let Some(v) = map.get_mut(&k) {
                        walk(sub, v, &k, &mut unknown, &mut causes);
                    }
                }
                None if !preserve => {
                    unknown.push(k.clone());
                    map.remove(&k);
                }
                None => {}
            }
        }
        check_required(schema, &Value::Object(map.clone()), "", &mut causes);
    }
    if !causes.is_empty() {
        let name = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ApiError::invalid(&r.group, &r.kind, name, causes));
    }
    Ok((Value::Object(map), unknown))
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Validates types and prunes unknown fields below one schema node.
fn walk(
    schema: &Value,
    v: &mut Value,
    path: &str,
    unknown: &mut Vec<String>,
    causes: &mut Vec<Cause>,
) {
    if v.is_null() {
        if !schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            // kube-apiserver drops nulls for non-nullable fields.
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if int_or_string {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            causes.push(type_cause(path, v, "integer or string"));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let ok = match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    };
    if !ok {
        causes.push(type_cause(path, v, ty));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let list = allowed
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {v}: supported values: {list}"),
                field: path.to_string(),
            });
        }
    }
    match v {
        Value::Object(map) => walk_object(schema, map, path, unknown, causes),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), unknown, causes);
                }
            }
        }
        _ => {}
    }
}

fn walk_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    unknown: &mut Vec<String>,
    causes: &mut Vec<Cause>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = preserves_unknown(schema);
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let p = format!("{path}.{k}");
        let sub = props.and_then(|pr| pr.get(&k)).or(match additional {
            Some(a) if a.is_object() => Some(a),
            _ => None,
        });
        match sub {
            Some(s) => {
                if let Some(v) = map.get_mut(&k) {
                    walk(s, v, &p, unknown, causes);
                }
            }
            None if preserve || matches!(additional, Some(Value::Bool(true))) => {}
            None if props.is_none() && additional.is_none() => {
                // A schema without properties describes an opaque object.
            }
            None => {
                unknown.push(p);
                map.remove(&k);
            }
        }
    }
    check_required(schema, &Value::Object(map.clone()), path, causes);
}

fn check_required(schema: &Value, v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if v.get(r).is_none() {
                let field = if path.is_empty() {
                    r.to_string()
                } else {
                    format!("{path}.{r}")
                };
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field,
                });
            }
        }
    }
}

fn type_cause(path: &str, v: &Value, want: &str) -> Cause {
    let got = match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    Cause {
        reason: "FieldValueTypeInvalid",
        message: format!(
            "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
        ),
        field: path.to_string(),
    }
}

//! Label and field selectors: parsing the `labelSelector` / `fieldSelector` query
//! parameters and matching objects against them, for list and watch alike.
//!
//! Label selectors follow the Kubernetes grammar (`k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`); field selectors are `path=value`, `path==value`,
//! `path!=value` joined by commas, where a path is a dotted path into the object
//! (`metadata.name`, `spec.nodeName`, `status.phase`, `involvedObject.uid`, `type`).

use serde_json::Value;

use crate::error::ApiError;

#[derive(Clone, Debug)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default)]
pub struct LabelSelector(Vec<LabelReq>);

/// A parsed field selector; the empty selector matches everything.
#[derive(Clone, Debug, Default)]
pub struct FieldSelector(Vec<(Vec<String>, bool, String)>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_err(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} (labelSelector={sel:?})"
    ))
}

impl LabelSelector {
    /// Parses `labelSelector`.
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(parse_err(s, "empty requirement"));
            }
            let req = if let Some(key) = p.strip_prefix('!') {
                LabelReq::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = p.split_once("!=") {
                LabelReq::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once("==") {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once('=') {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = split_set_op(p, " notin ") {
                LabelReq::NotIn(k, parse_set(s, rest)?)
            } else if let Some((k, rest)) = split_set_op(p, " in ") {
                LabelReq::In(k, parse_set(s, rest)?)
            } else {
                LabelReq::Exists(p.to_string())
            };
            let (key, values): (&str, Vec<&str>) = match &req {
                LabelReq::Eq(k, v) | LabelReq::NotEq(k, v) => (k, vec![v.as_str()]),
                LabelReq::In(k, vs) | LabelReq::NotIn(k, vs) => {
                    (k, vs.iter().map(String::as_str).collect())
                }
                LabelReq::Exists(k) | LabelReq::NotExists(k) => (k, vec![]),
            };
            if !valid_label_key(key) {
                return Err(parse_err(s, &format!("invalid label key {key:?}")));
            }
            if let Some(v) = values.iter().find(|v| !valid_label_value(v)) {
                return Err(parse_err(s, &format!("invalid label value {v:?}")));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `object`'s labels satisfy the selector.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

fn split_set_op(p: &str, op: &str) -> Option<(String, String)> {
    let i = p.find(op)?;
    Some((
        p[..i].trim().to_string(),
        p[i + op.len()..].trim().to_string(),
    ))
}

fn parse_set(sel: &str, rest: String) -> Result<Vec<String>, ApiError> {
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| parse_err(sel, "expected a set in parentheses"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl FieldSelector {
    /// Parses `fieldSelector`.
    pub fn parse(s: &str) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for part in s.split(',') {
            let p = part.trim();
            let (path, negate, value) = if let Some((k, v)) = p.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{p}'"
                )));
            };
            let path = path.trim();
            if path.is_empty()
                || !path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            reqs.push((
                path.split('.').map(str::to_string).collect(),
                negate,
                value.trim().to_string(),
            ));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields it selects on, dotted (`spec.nodeName`).
    pub fn fields(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|(path, _, _)| path.join("."))
    }

    /// Renames the first path segment `from` to `to` (a field spelled differently in
    /// another group of the same storage).
    pub fn rename_prefix(&mut self, from: &str, to: &str) {
        for (path, _, _) in &mut self.0 {
            if path.first().is_some_and(|p| p == from) {
                path[0] = to.to_string();
            }
        }
    }

    /// The value of `metadata.name=` if the selector pins a name.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, neg, _)| !neg && p.len() == 2 && p[0] == "metadata" && p[1] == "name")
            .map(|(_, _, v)| v.as_str())
    }

    /// Whether `object` satisfies the selector. A missing field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, negate, want)| {
            let mut cur = Some(object);
            for seg in path {
                cur = cur.and_then(|v| v.get(seg));
            }
            let got = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (got == *want) != *negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_forms() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        for (s, want) in [
            ("app=web", true),
            ("app==web,tier!=db", true),
            ("app in (web, api)", true),
            ("tier notin (fe)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=api", false),
        ] {
            assert_eq!(LabelSelector::parse(s).unwrap().matches(&o), want, "{s}");
        }
        assert!(LabelSelector::parse("app=we b").is_err());
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn field_selector_forms() {
        let o = json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}});
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&o));
        assert!(
            FieldSelector::parse("status.phase!=Succeeded,status.phase!=Failed")
                .unwrap()
                .matches(&o)
        );
        assert!(!FieldSelector::parse("spec.nodeName=n1")
            .unwrap()
            .matches(&o));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}

//! Lists in pages: `limit` and `continue`, as kube-apiserver serves them from etcd. A
//! page holds at most `limit` objects (after selectors) in key order (namespace, name);
//! when more remain its `metadata.continue` names where the next page starts and the
//! revision of the first page, and — without selectors — `remainingItemCount` says how
//! many are left. Every page of one list shows the collection as it was at that
//! revision, however it changed since.
//!
//! The store keeps only current objects and a history of changes, so an older snapshot
//! is rebuilt: objects untouched since the revision are read as they are; for the others
//! the history says what they were then (the last change at or before it, or absence
//! when their first change after it created them). When the history no longer reaches
//! back far enough the continue token is too old: 410 Expired, as kube-apiserver answers
//! after etcd's compaction, and the client relists.
//!
//! Owns the token format (kube-apiserver's: base64 of `{"v":"meta.k8s.io/v1","rv":N,
//! "start":"<namespace>/<name>\u0000"}`) and the rebuild; reads the store, never writes.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::{Api, Call};
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::store::EventType;

/// Which revision a list reads, from `resourceVersion` and `resourceVersionMatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// The newest (no resourceVersion, or "0": spinlet has no cache older than the store).
    Latest,
    /// At least this revision (a resourceVersion, or `NotOlderThan`).
    NotOlderThan(u64),
    /// Exactly this revision (`Exact`).
    Exact(u64),
}

fn list_options_error(field: &str, reason: &'static str, message: String) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        vec![crate::error::Cause {
            reason,
            message,
            field: field.into(),
        }],
    )
}

fn forbidden(field: &str, message: &str) -> ApiError {
    list_options_error(
        field,
        "FieldValueForbidden",
        format!("Forbidden: {message}"),
    )
}

impl Read {
    /// kube-apiserver's ListOptions validation, then the read it asks for.
    fn parse(call: &Call, continued: bool) -> ApiResult<Read> {
        let rv = call.query.get("resourceVersion").unwrap_or("");
        let rv_match = call.query.get("resourceVersionMatch").unwrap_or("");
        if continued && !rv.is_empty() && rv != "0" {
            return Err(forbidden(
                "resourceVersion",
                "specifying resource version is not allowed when using continue",
            ));
        }
        let rev = match rv {
            "" => None,
            r => Some(r.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid resourceVersion {r:?}: must be an unsigned integer"
                ))
            })?),
        };
        match (rv_match, rev) {
            ("", None) | ("", Some(0)) => Ok(Read::Latest),
            ("", Some(r)) => Ok(Read::NotOlderThan(r)),
            ("NotOlderThan" | "Exact", None) => Err(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
            ("NotOlderThan", Some(r)) => Ok(Read::NotOlderThan(r)),
            ("Exact", Some(0)) => Err(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            )),
            ("Exact", Some(r)) => Ok(Read::Exact(r)),
            (other, _) => Err(list_options_error(
                "resourceVersionMatch",
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                ),
            )),
        }
    }
}

/// One page of a list.
pub(crate) struct Page {
    /// The objects, as stored (not yet presented).
    pub items: Vec<Value>,
    /// The revision the whole list is at.
    pub rev: u64,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
    /// Objects left after this page, when known (no selectors).
    pub remaining: Option<u64>,
}

struct Token {
    rev: u64,
    start: (String, String),
}

fn invalid(why: &str) -> ApiError {
    ApiError::bad_request(format!("continue key is not valid: {why}"))
}

fn encode(rev: u64, (ns, name): (&str, &str)) -> String {
    let start = format!("{ns}/{name}\u{0}");
    let doc = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
}

fn decode(token: &str) -> ApiResult<Token> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| invalid("it is not base64"))?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| invalid("it is not JSON"))?;
    if doc["v"] != "meta.k8s.io/v1" {
        return Err(invalid("its version is not meta.k8s.io/v1"));
    }
    let rev = doc["rv"]
        .as_u64()
        .filter(|r| *r > 0)
        .ok_or_else(|| invalid("its resource version is missing"))?;
    let start = doc["start"]
        .as_str()
        .ok_or_else(|| invalid("its start key is missing"))?
        .trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').unwrap_or(("", start));
    Ok(Token {
        rev,
        start: (ns.to_string(), name.to_string()),
    })
}

fn key(o: &Value) -> (String, String) {
    (
        object::namespace_of(o).to_string(),
        object::name_of(o).to_string(),
    )
}

/// The collection as it was at `rev`, or `None` when the history no longer tells.
fn snapshot(api: &Arc<Api>, ctx: &Ctx, rev: u64) -> ApiResult<Option<Vec<Value>>> {
    let (current, now) = api.store.list(
        &ctx.r.storage_group,
        &ctx.r.plural,
        ctx.namespace.as_deref(),
    )?;
    if now == rev {
        return Ok(Some(current));
    }
    let oldest = api.store.compacted_revision();
    if rev < oldest {
        return Ok(None);
    }
    let Some(events) = api.store.history(oldest, now)? else {
        return Ok(None);
    };
    // Per object of this collection: its last change at or before `rev`, and whether
    // its first change after `rev` created it.
    let mut before: HashMap<(String, String), Arc<crate::store::Event>> = HashMap::new();
    let mut after: HashMap<(String, String), bool> = HashMap::new();
    for ev in events {
        let same_collection = ev.group == ctx.r.storage_group
            && ev.resource == ctx.r.plural
            && ctx.namespace.as_deref().is_none_or(|ns| ev.namespace == ns);
        if !same_collection {
            continue;
        }
        let k = key(&ev.object);
        if ev.rev <= rev {
            before.insert(k, ev);
        } else {
            after.entry(k).or_insert(ev.kind == EventType::Added);
        }
    }
    let mut out: Vec<Value> = current
        .into_iter()
        .filter(|o| !after.contains_key(&key(o)))
        .collect();
    for (k, created_after) in after {
        match before.get(&k) {
            Some(ev) if ev.kind == EventType::Deleted => {}
            Some(ev) => out.push(ev.object.clone()),
            None if created_after => {}
            // Changed after `rev`, last changed before the history begins.
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The page a list request asks for, from objects passing `keep`.
pub(crate) fn page(
    api: &Arc<Api>,
    call: &Call,
    ctx: &Ctx,
    keep: impl Fn(&Value) -> bool,
    filtered: bool,
) -> ApiResult<Page> {
    let limit = match call.query.get("limit") {
        None | Some("") => 0,
        Some(l) => l.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("invalid limit {l:?}: must be an integer"))
        })?,
    };
    let token = match call.query.get("continue") {
        None | Some("") => None,
        Some(t) => Some(decode(t)?),
    };
    let read = Read::parse(call, token.is_some())?;
    let (objects, rev) = match (&token, read) {
        (Some(t), _) => match snapshot(api, ctx, t.rev)? {
            Some(objects) => (objects, t.rev),
            None => return Err(ApiError::continue_expired()),
        },
        (None, Read::Exact(rev)) => match snapshot(api, ctx, rev)? {
            Some(objects) => (objects, rev),
            None => {
                let now = api.store.current_revision();
                return Err(if rev > now {
                    ApiError::too_large_resource_version(rev, now)
                } else {
                    ApiError::expired(rev, api.store.compacted_revision())
                });
            }
        },
        (None, Read::Latest | Read::NotOlderThan(_)) => {
            let (objects, now) = api.store.list(
                &ctx.r.storage_group,
                &ctx.r.plural,
                ctx.namespace.as_deref(),
            )?;
            if let Read::NotOlderThan(rev) = read {
                if rev > now {
                    return Err(ApiError::too_large_resource_version(rev, now));
                }
            }
            (objects, now)
        }
    };
    let mut items: Vec<Value> = objects.into_iter().filter(|o| keep(o)).collect();
    items.sort_by_cached_key(key);
    if let Some(t) = &token {
        items.retain(|o| key(o) > t.start);
    }
    if limit <= 0 || items.len() <= limit as usize {
        return Ok(Page {
            items,
            rev,
            next: None,
            remaining: None,
        });
    }
    let rest = items.split_off(limit as usize);
    let last = items.last().map(key).unwrap_or_default();
    Ok(Page {
        items,
        rev,
        next: Some(encode(rev, (&last.0, &last.1))),
        remaining: (!filtered).then_some(rest.len() as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let t = decode(&encode(42, ("default", "web-7"))).unwrap();
        assert_eq!(
            (t.rev, t.start.0.as_str(), t.start.1.as_str()),
            (42, "default", "web-7")
        );
        let cluster = decode(&encode(7, ("", "node-1"))).unwrap();
        assert_eq!(cluster.start, (String::new(), "node-1".to_string()));
        let e = decode("not a token").err().unwrap();
        assert_eq!(e.code, 400);
        assert!(
            e.message.starts_with("continue key is not valid"),
            "{}",
            e.message
        );
    }
}

//! Lists in pages: `limit` and `continue`, as kube-apiserver serves them from etcd. A
//! page holds at most `limit` objects (after selectors) in key order (namespace, name);
//! when more remain its `metadata.continue` names where the next page starts and the
//! revision of the first page, and — without selectors — `remainingItemCount` says how
//! many are left. Every page of one list shows the collection as it was at that
//! revision, however it changed since.
//!
//! A page costs what it holds, not what the collection holds: one walk in key order from
//! the continue key decodes the page's objects (with selectors, also those it tests) and
//! stops at the first object after the page (`Store::scan`). `remainingItemCount` is the
//! collection's size at the page's revision (the store keeps counts; an older snapshot's
//! is corrected by the changes since) less the objects before and on the page, which the
//! token carries as `off` (a token without it, from an older spinlet, is counted by
//! walking the rest, as before).
//!
//! The store keeps only current objects and a history of changes, so an older snapshot
//! is rebuilt: objects untouched since the revision are read as they are; for the others
//! the history since the revision says what they were then — what their first change
//! after it replaced (a modification's or deletion's object before it), or absence when
//! that change created them (`Store::collection_changes`). When the history no longer
//! reaches back far enough the continue token is too old: 410 Expired, as kube-apiserver
//! answers after etcd's compaction, and the client relists.
//!
//! Owns the token format (kube-apiserver's: base64 of `{"v":"meta.k8s.io/v1","rv":N,
//! "start":"<namespace>/<name>\u0000"}`, plus `"off":N`, the objects before the next page;
//! clients treat tokens as opaque) and the rebuild; reads the store, never writes.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::{Api, Call};
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::store::{Consistency, EventType, Result as StoreResult, Stored, Visit};

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

/// One object of a page.
pub(crate) enum Item {
    /// Decoded, as stored (not yet presented).
    Decoded(Value),
    /// The stored JSON, already what the list serves (stored at the served version).
    Raw(bytes::Bytes),
}

/// One page of a list.
pub(crate) struct Page {
    /// The objects.
    pub items: Vec<Item>,
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
    /// Objects up to and including `start` at `rev`, when the token says.
    offset: Option<u64>,
}

fn invalid(why: &str) -> ApiError {
    ApiError::bad_request(format!("continue key is not valid: {why}"))
}

fn encode(rev: u64, (ns, name): (&str, &str), offset: Option<u64>) -> String {
    let start = format!("{ns}/{name}\u{0}");
    let mut doc = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start});
    if let Some(off) = offset {
        doc["off"] = off.into();
    }
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
        offset: doc["off"].as_u64(),
    })
}

fn key(o: &Value) -> (String, String) {
    (
        object::namespace_of(o).to_string(),
        object::name_of(o).to_string(),
    )
}

/// An object's place in a collection: (namespace, name).
type Key = (String, String);

/// What the objects of one collection that changed after `rev` were at `rev` (`None`: the
/// object did not exist then), from the history of changes since.
struct Past {
    /// The history has been read up to here.
    read_upto: u64,
    then: BTreeMap<Key, Option<Value>>,
    /// Whether each of them exists at `read_upto`.
    now: BTreeMap<Key, bool>,
    /// The history no longer reaches back to `rev` (or does not say what an object was).
    expired: bool,
}

impl Past {
    fn new() -> Past {
        Past {
            read_upto: 0,
            then: BTreeMap::new(),
            now: BTreeMap::new(),
            expired: false,
        }
    }

    /// Folds in the changes in `(read_upto or rev, upto]`; an object's first change after
    /// `rev` says what it was at `rev`.
    fn read(
        &mut self,
        api: &Api,
        collection: (&str, &str, Option<&str>),
        rev: u64,
        upto: u64,
    ) -> StoreResult<()> {
        let after = self.read_upto.max(rev);
        if self.expired || upto <= after {
            return Ok(());
        }
        let Some(changes) = api.store.collection_changes(collection, after, upto)? else {
            self.expired = true;
            return Ok(());
        };
        for change in changes {
            let k = key(&change.event.object);
            self.now
                .insert(k.clone(), change.event.kind != EventType::Deleted);
            if self.then.contains_key(&k) {
                continue;
            }
            let was = match change.event.kind {
                EventType::Added => None,
                EventType::Modified | EventType::Deleted => match change.before {
                    Some(before) => Some(before),
                    None => {
                        self.expired = true;
                        return Ok(());
                    }
                },
            };
            self.then.insert(k, was);
        }
        self.read_upto = upto;
        Ok(())
    }

    /// The collection's size at `rev`, from its size at `read_upto`.
    fn count_then(&self, count_now: u64) -> u64 {
        let (mut gone, mut new) = (0u64, 0u64);
        for (k, was) in &self.then {
            let now = self.now.get(k).copied().unwrap_or(false);
            match (was.is_some(), now) {
                (true, false) => gone += 1,
                (false, true) => new += 1,
                _ => {}
            }
        }
        (count_now + gone).saturating_sub(new)
    }
}

/// Fills one page from the objects offered in key order.
struct Filler<'a, K> {
    keep: K,
    /// 0: no limit.
    limit: usize,
    filtered: bool,
    /// The apiVersion of objects whose stored JSON can be served as it is, if any.
    raw_version: Option<&'a str>,
    items: Vec<Item>,
    /// The key of the page's last object.
    last_key: Option<(String, String)>,
    /// Objects after the page (counted only without selectors, when the size is not known).
    remaining: u64,
    /// The collection's size at the scan's revision, once the scan's start learnt it: then
    /// the walk stops at the first object after the page.
    count: &'a Cell<Option<u64>>,
    more: bool,
}

/// The `apiVersion` of a stored object, read without building the whole document.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "apiVersion", borrow)]
    api_version: Option<std::borrow::Cow<'a, str>>,
}

impl<K: Fn(&Value) -> bool> Filler<'_, K> {
    fn full(&self) -> bool {
        self.limit > 0 && self.items.len() >= self.limit
    }

    /// Offers a stored object: without selectors, one stored at the served version goes
    /// into the page as its bytes, never decoded.
    fn offer_stored(&mut self, stored: &Stored<'_>) -> StoreResult<Visit> {
        if let (false, false, Some(served)) = (self.full(), self.filtered, self.raw_version) {
            let at_served = serde_json::from_slice::<Head>(stored.bytes())
                .ok()
                .and_then(|h| h.api_version)
                .is_some_and(|v| v == served);
            if at_served {
                self.items
                    .push(Item::Raw(bytes::Bytes::copy_from_slice(stored.bytes())));
                self.last_key = Some((stored.namespace.to_string(), stored.name.to_string()));
                return Ok(Visit::Next);
            }
        }
        self.offer(|| stored.decode())
    }

    /// Offers the next object; `get` decodes it, only when needed.
    fn offer(&mut self, get: impl FnOnce() -> StoreResult<Value>) -> StoreResult<Visit> {
        if !self.full() {
            let o = get()?;
            if (self.keep)(&o) {
                self.last_key = Some(key(&o));
                self.items.push(Item::Decoded(o));
            }
            return Ok(Visit::Next);
        }
        if self.count.get().is_some() && !self.filtered {
            self.more = true;
            return Ok(Visit::Stop);
        }
        if self.filtered {
            // With selectors there is no count: one more match is enough to go on.
            let o = get()?;
            if (self.keep)(&o) {
                self.more = true;
                return Ok(Visit::Stop);
            }
            return Ok(Visit::Next);
        }
        self.more = true;
        self.remaining += 1;
        Ok(Visit::Next)
    }
}

/// The page a list request asks for, from objects passing `keep`: one walk over the
/// collection from the continue key, decoding the page's objects (and, with selectors,
/// those it tests), counting the rest; a page of an older revision puts the objects
/// changed since back as they were. `raw_version`: the apiVersion at which stored JSON
/// is the answer as it is (`None`: every object is decoded).
pub(crate) fn page(
    api: &Arc<Api>,
    call: &Call,
    ctx: &Ctx,
    keep: impl Fn(&Value) -> bool,
    filtered: bool,
    raw_version: Option<&str>,
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
    let now = api.store.current_revision();
    // The revision of an older snapshot to rebuild; `None` reads the newest.
    let past_rev = match (&token, read) {
        (Some(t), _) if t.rev > now => return Err(ApiError::continue_expired()),
        (Some(t), _) => Some(t.rev),
        (None, Read::Exact(rev) | Read::NotOlderThan(rev)) if rev > now => {
            return Err(ApiError::too_large_resource_version(rev, now))
        }
        (None, Read::Exact(rev)) => Some(rev),
        (None, Read::Latest | Read::NotOlderThan(_)) => None,
    };
    let collection = (
        ctx.r.storage_group.as_str(),
        ctx.r.plural.as_str(),
        ctx.namespace.as_deref(),
    );
    let start = token.as_ref().map(|t| t.start.clone());
    // Most of the history is read before the scan, off the write lock; what lands before
    // the scan starts is read under it.
    let past = RefCell::new(Past::new());
    if let Some(rev) = past_rev {
        past.borrow_mut().read(api, collection, rev, now)?;
    }
    // The changed objects after the continue key, in key order, as they were.
    let then: RefCell<Vec<(Key, Option<Value>)>> = RefCell::default();
    let mut cursor = 0;
    let count_now: Cell<Option<u64>> = Cell::new(None);
    let mut filler = Filler {
        keep,
        limit: usize::try_from(limit.max(0)).unwrap_or(usize::MAX),
        filtered,
        raw_version,
        items: Vec::new(),
        last_key: None,
        remaining: 0,
        count: &count_now,
        more: false,
    };
    // The collection's size at the scan's revision (without selectors, when the token
    // says where the page starts).
    let offset = match &token {
        None => Some(0),
        Some(t) => t.offset,
    };
    let mut stopped = false;
    if !filtered && offset.is_some() {
        // Counted before the scan takes the write lock: a first count walks every key.
        api.store.learn_count(collection.0, collection.1)?;
    }
    let scanned_at = api.store.scan(
        collection,
        start
            .as_ref()
            .map(|(ns, name)| (ns.as_str(), name.as_str())),
        Consistency::Snapshot,
        |scan| {
            let scan_rev = scan.rev;
            if !filtered && offset.is_some() {
                count_now.set(scan.count()?);
            }
            if let Some(rev) = past_rev {
                let mut past = past.borrow_mut();
                past.read(api, collection, rev, scan_rev)?;
                let range = match &start {
                    Some(k) => past
                        .then
                        .range((Bound::Excluded(k.clone()), Bound::Unbounded)),
                    None => past.then.range::<Key, _>(..),
                };
                *then.borrow_mut() = range.map(|(k, v)| (k.clone(), v.clone())).collect();
            }
            Ok(())
        },
        |stored| {
            let then = then.borrow();
            let here = (stored.namespace, stored.name);
            // Objects changed since, sorting before this one (or this one itself).
            while let Some((k, was)) = then.get(cursor) {
                if (k.0.as_str(), k.1.as_str()) > here {
                    break;
                }
                cursor += 1;
                let is_here = (k.0.as_str(), k.1.as_str()) == here;
                if let Some(was) = was {
                    if filler.offer(|| Ok(was.clone()))? == Visit::Stop {
                        stopped = true;
                        return Ok(Visit::Stop);
                    }
                }
                if is_here {
                    return Ok(Visit::Next);
                }
            }
            let visit = filler.offer_stored(&stored)?;
            stopped = visit == Visit::Stop;
            Ok(visit)
        },
    )?;
    if past.borrow().expired {
        return Err(match (&token, past_rev) {
            (Some(_), _) | (None, None) => ApiError::continue_expired(),
            (None, Some(rev)) => ApiError::expired(rev, api.store.compacted_revision()),
        });
    }
    if !stopped {
        for (_, was) in then.borrow().iter().skip(cursor) {
            if let Some(was) = was {
                if filler.offer(|| Ok(was.clone()))? == Visit::Stop {
                    break;
                }
            }
        }
    }
    let rev = past_rev.unwrap_or(scanned_at);
    let served = filler.items.len() as u64;
    let next_offset = offset.map(|o| o + served);
    let next = match (filler.more, &filler.last_key) {
        (true, Some((ns, name))) => Some(encode(rev, (ns, name), next_offset)),
        _ => None,
    };
    let remaining = match (count_now.get(), next_offset) {
        (Some(now), Some(before_next)) => {
            let total = match past_rev {
                Some(_) => past.borrow().count_then(now),
                None => now,
            };
            total.saturating_sub(before_next)
        }
        _ => filler.remaining,
    };
    Ok(Page {
        remaining: (next.is_some() && !filtered).then_some(remaining),
        items: filler.items,
        rev,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let t = decode(&encode(42, ("default", "web-7"), Some(500))).unwrap();
        assert_eq!(
            (t.rev, t.start.0.as_str(), t.start.1.as_str(), t.offset),
            (42, "default", "web-7", Some(500))
        );
        let cluster = decode(&encode(7, ("", "node-1"), None)).unwrap();
        assert_eq!(cluster.start, (String::new(), "node-1".to_string()));
        assert_eq!(cluster.offset, None);
        let e = decode("not a token").err().unwrap();
        assert_eq!(e.code, 400);
        assert!(
            e.message.starts_with("continue key is not valid"),
            "{}",
            e.message
        );
    }
}

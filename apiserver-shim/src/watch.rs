//! Watch: a stream of newline-delimited `{"type","object"}` events for one resource,
//! filtered by namespace and selectors. It starts with synthetic ADDED events (no
//! resourceVersion, `0`, or `sendInitialEvents=true`, which ends the burst with the
//! `k8s.io/initial-events-end` bookmark), or resumes after a given revision from the
//! store's history (410 Expired as an ERROR event when that revision was compacted). Then
//! it follows the published changes of its resource (the store's per-resource channel:
//! other resources' writes do not wake it), catches up from history if it falls behind,
//! sends bookmarks when asked (at the newest durable revision), and ends at
//! `timeoutSeconds`.
//!
//! Selection is judged on both sides of a modification, as kube-apiserver's watch cache
//! does with each event's `PrevObject`: an object entering the selection is ADDED, one
//! leaving it DELETED (carrying the object as it was, at the modification's
//! resourceVersion). The store keeps the previous object with every modification in its
//! history, so this holds alike for events published live, a watch resumed from an old
//! resourceVersion and a watcher catching up after falling behind.
//!
//! Owns the watch stream only; it reads the store and never writes it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::api::{Api, Call, Reply};
use crate::error::{ApiError, ApiResult};
use crate::handlers::Ctx;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{set_resource_version, Event, EventType};

struct Filter {
    group: String,
    resource: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn selects(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }

    /// What this watcher sees of `ev`, if anything: the event type and the object to
    /// send. A modification that moves an object into the selection is ADDED; one that
    /// moves it out is DELETED with the object as it was before, at the modification's
    /// resourceVersion, as kube-apiserver's watch cache reports them.
    fn view(&self, ev: &Event) -> Option<(&'static str, Value)> {
        if ev.group != self.group
            || ev.resource != self.resource
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != ev.namespace)
        {
            return None;
        }
        let now = self.selects(&ev.object);
        let before = ev
            .previous
            .as_ref()
            .filter(|_| ev.kind == EventType::Modified);
        match (ev.kind, before.map(|p| (p, self.selects(p)))) {
            (EventType::Modified, Some((prior, true))) if !now => {
                let mut gone = prior.clone();
                set_resource_version(&mut gone, ev.rev);
                Some(("DELETED", gone))
            }
            (EventType::Modified, Some((_, false))) if now => {
                Some(("ADDED", ev.object.value().clone()))
            }
            (EventType::Modified, Some((_, false))) => None,
            (kind, _) if now => Some((kind.as_str(), ev.object.value().clone())),
            _ => None,
        }
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Starts a watch for the context's resource.
pub(crate) fn start(api: &Arc<Api>, call: &Call, ctx: &Ctx) -> ApiResult<Reply> {
    let (labels, fields) = crate::handlers::selectors(call, ctx)?;
    let rv = call.query.get("resourceVersion").unwrap_or("");
    let send_initial = call.query.get("sendInitialEvents") == Some("true");
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let max = api.options.max_watch;
    let timeout = match call.query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid timeoutSeconds {t:?}: must be an unsigned integer"
            ))
        })?)
        .min(max),
        None => max,
    };
    let filter = Filter {
        group: ctx.r.storage_group.clone(),
        resource: ctx.r.plural.clone(),
        namespace: ctx.namespace.clone(),
        labels,
        fields,
    };
    // Subscribe before reading the starting state, so nothing falls in between.
    let sub = api
        .store
        .subscribe_resource(&filter.group, &filter.resource);
    let (initial, start) = if rv.is_empty() || rv == "0" || send_initial {
        let (items, rev) = crate::handlers::matching(api, call, ctx)?;
        (items, rev)
    } else {
        let n = rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resourceVersion {rv:?}: must be an unsigned integer"
            ))
        })?;
        (Vec::new(), n)
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let as_table = crate::table::wants_table(call.header("accept"));
    let include = crate::table::Include::parse(call.query.get("includeObject"))?;
    let columns = as_table.then(|| crate::table::columns(&ctx.r, &ctx.version));
    let present = {
        let api_version = ctx.r.api_version(&ctx.version);
        let kind = ctx.r.kind.clone();
        let r = ctx.r.clone();
        let version = ctx.version.clone();
        move |o: Value| {
            let mut o = crate::conversion::from_storage(&r, o);
            crate::crd::defaults::apply(&r, &version, &mut o);
            if let Some(m) = o.as_object_mut() {
                m.insert("apiVersion".into(), json!(api_version));
                m.insert("kind".into(), json!(kind));
            }
            match &columns {
                Some(cols) => crate::table::build(cols, std::slice::from_ref(&o), None, include),
                None => o,
            }
        }
    };
    let bookmark = {
        let api_version = ctx.r.api_version(&ctx.version);
        let kind = ctx.r.kind.clone();
        move |rev: u64, end: bool| {
            let mut meta = json!({"resourceVersion": rev.to_string()});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                &json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
            )
        }
    };
    let api = api.clone();
    let interval = api.options.bookmark_interval;
    tokio::spawn(async move {
        for o in initial {
            if tx.send(line("ADDED", &present(o))).await.is_err() {
                return;
            }
        }
        if send_initial && tx.send(bookmark(start, true)).await.is_err() {
            return;
        }
        follow(
            api,
            sub,
            tx,
            filter,
            start,
            timeout,
            bookmarks.then_some(interval),
            present,
            bookmark,
        )
        .await;
    });
    Ok(Reply::Stream(rx))
}

/// Sends `ev` if it is newer than `last` (moving `last` on) and the watch's filter shows
/// it; `false` once the client is gone.
async fn forward(
    ev: &Event,
    last: &mut u64,
    filter: &Filter,
    present: &impl Fn(Value) -> Value,
    tx: &mpsc::Sender<Bytes>,
) -> bool {
    if ev.rev <= *last {
        return true;
    }
    *last = ev.rev;
    match filter.view(ev) {
        Some((kind, object)) => tx.send(line(kind, &present(object))).await.is_ok(),
        None => true,
    }
}

#[allow(clippy::too_many_arguments)] // the parts of one watch, built once in `start`
async fn follow(
    api: Arc<Api>,
    mut sub: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Bytes>,
    filter: Filter,
    mut last: u64,
    timeout: Duration,
    bookmarks: Option<Duration>,
    present: impl Fn(Value) -> Value,
    bookmark: impl Fn(u64, bool) -> Bytes,
) {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(bookmarks.unwrap_or(Duration::from_secs(3600)));
    tick.tick().await;
    let mut catch_up = true;
    loop {
        if catch_up {
            catch_up = false;
            match api
                .store
                .history_with_previous(last, api.store.durable_revision())
            {
                Ok(Some(events)) => {
                    for ev in events {
                        if !forward(&ev, &mut last, &filter, &present, &tx).await {
                            return;
                        }
                    }
                }
                Ok(None) => {
                    let e = ApiError::expired(last, api.store.compacted_revision());
                    let _ = tx.send(line("ERROR", &e.to_status())).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(line("ERROR", &ApiError::from(e).to_status())).await;
                    return;
                }
            }
        }
        tokio::select! {
            ev = sub.recv() => match ev {
                Ok(ev) => {
                    if !forward(&ev, &mut last, &filter, &present, &tx).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => catch_up = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick(), if bookmarks.is_some() => {
                // Only this resource's changes come here: the bookmark names the newest
                // durable revision once every change of the resource up to it is sent
                // (each is published before its revision is durable), so a client
                // resuming from it is not sent back into a history that other
                // resources' writes have moved past.
                let durable = api.store.durable_revision();
                loop {
                    match sub.try_recv() {
                        Ok(ev) => {
                            if !forward(&ev, &mut last, &filter, &present, &tx).await {
                                return;
                            }
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(broadcast::error::TryRecvError::Lagged(_)) => {
                            catch_up = true;
                            break;
                        }
                        Err(broadcast::error::TryRecvError::Closed) => return,
                    }
                }
                if catch_up {
                    continue;
                }
                last = last.max(durable);
                if tx.send(bookmark(last, false)).await.is_err() {
                    return;
                }
            }
            _ = &mut deadline => return,
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests;

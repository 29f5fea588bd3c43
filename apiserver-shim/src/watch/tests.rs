//! Selected watches see objects leave and enter their selection (DELETED with the object
//! as it was, ADDED) when the events come from the history: a watch resumed from an old
//! resourceVersion, and a watcher that fell behind the published events.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use std::sync::Arc;

use crate::api::{Api, ApiOptions, Call, Reply};
use crate::request::Query;
use crate::store::{Store, StoreConfig};

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";

/// A bootstrapped API on a fresh store, called as the HTTP server calls it.
struct Fixture {
    api: Arc<Api>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(config: StoreConfig) -> Fixture {
        Fixture::with_options(config, ApiOptions::default()).await
    }

    async fn with_options(config: StoreConfig, options: ApiOptions) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), config).expect("store");
        let api = Api::new(store, options);
        crate::bootstrap(&api).await.expect("bootstrap");
        Fixture { api, _dir: dir }
    }

    fn request(method: Method, uri: &str, body: Value, ct: &str) -> Call {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut headers = HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(ct) {
            headers.insert("content-type", v);
        }
        Call {
            method,
            path: path.to_string(),
            query: Query::parse(Some(query)),
            headers,
            body: if body.is_null() {
                Bytes::new()
            } else {
                Bytes::from(body.to_string())
            },
        }
    }

    /// One request: (status code, body).
    async fn call(&self, method: Method, uri: &str, body: Value, ct: &str) -> (u16, Value) {
        match self
            .api
            .handle(Fixture::request(method, uri, body, ct))
            .await
        {
            Reply::Json { code, body, .. } => (code, body),
            Reply::RawJson(b) => (200, serde_json::from_slice(&b).expect("json")),
            _ => panic!("{uri}: not a JSON answer"),
        }
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// Opens a watch and returns its stream of lines, unread.
async fn watch(f: &Fixture, path: &str, query: &str) -> mpsc::Receiver<Bytes> {
    let call = Fixture::request(Method::GET, &format!("{path}?{query}"), Value::Null, "");
    match f.api.handle(call).await {
        Reply::Stream(rx) => rx,
        _ => panic!("{path}?{query} is not a watch"),
    }
}

/// Reads events until `done` holds for the last one; (type, name, object) of each.
async fn read_until(
    rx: &mut mpsc::Receiver<Bytes>,
    done: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, String, Value)> {
    let mut seen = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => panic!("watch ended; saw {:?}", summary(&seen)),
            Err(_) => panic!("no event within 60 s; saw {:?}", summary(&seen)),
        };
        let ev: Value = serde_json::from_slice(&chunk).expect("event JSON");
        let kind = ev["type"].as_str().unwrap_or_default().to_string();
        let object = ev["object"].clone();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let stop = done(&kind, &object);
        seen.push((kind, name, object));
        if stop {
            return seen;
        }
    }
}

fn summary(seen: &[(String, String, Value)]) -> Vec<String> {
    seen.iter().map(|(k, n, _)| format!("{k} {n}")).collect()
}

fn rv(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("resourceVersion")
}

async fn create_pod(f: &Fixture, name: &str) -> Value {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                     "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}});
    let (code, body) = f.call(Method::POST, PODS, pod, JSON).await;
    assert_eq!(code, 201, "{body}");
    body
}

async fn bind(f: &Fixture, pod: &str, node: &str) {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let (code, body) = f
        .call(
            Method::POST,
            &format!("{PODS}/{pod}/binding"),
            binding,
            JSON,
        )
        .await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn a_lagging_unbound_pods_watch_sees_the_bind_as_deleted() {
    // A published-event buffer of 8: a watcher whose client stops reading falls behind
    // it and must catch up from the history.
    let config = StoreConfig {
        watch_buffer_events: 8,
        ..StoreConfig::default()
    };
    let f = Fixture::new(config).await;
    let first = create_pod(&f, "bound-later").await;
    let mut rx = watch(
        &f,
        PODS,
        &format!(
            "watch=true&fieldSelector=spec.nodeName%3D&resourceVersion={}",
            rv(&first)
        ),
    )
    .await;
    // Nobody reads: the watch's own queue fills, its task blocks, the buffer overflows.
    for i in 0..300 {
        create_pod(&f, &format!("waiting-{i}")).await;
    }
    bind(&f, "bound-later", "node-1").await;
    let bound = f
        .call(Method::GET, &format!("{PODS}/bound-later"), Value::Null, "")
        .await
        .1;
    for i in 0..20 {
        create_pod(&f, &format!("late-{i}")).await;
    }
    let seen = read_until(&mut rx, |_, o| o["metadata"]["name"] == "late-19").await;
    let added: Vec<&str> = seen
        .iter()
        .filter(|(k, _, _)| k == "ADDED")
        .map(|(_, n, _)| n.as_str())
        .collect();
    assert_eq!(added.len(), 320, "{:?}", summary(&seen));
    let deleted: Vec<&(String, String, Value)> =
        seen.iter().filter(|(k, _, _)| k == "DELETED").collect();
    assert_eq!(deleted.len(), 1, "{:?}", summary(&seen));
    let (_, name, object) = deleted[0];
    assert_eq!(name, "bound-later");
    // The object as it was (still unbound), at the bind's resourceVersion.
    assert!(object["spec"].get("nodeName").is_none(), "{object}");
    assert_eq!(rv(object), rv(&bound));
    // In revision order: after every pod created before the bind, before the later ones.
    let at = seen
        .iter()
        .position(|(k, _, _)| k == "DELETED")
        .unwrap_or(0);
    assert_eq!(at, 300, "{:?}", summary(&seen));
}

#[tokio::test]
async fn a_resumed_label_selected_watch_sees_objects_leave_and_enter() {
    let f = Fixture::new(StoreConfig::default()).await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "labels": {"tier": "web"}}, "data": {"v": "1"}});
    let (code, created) = f.call(Method::POST, CMS, cm, JSON).await;
    assert_eq!(code, 201, "{created}");
    let uri = format!("{CMS}/c");
    let relabel =
        |tier: &str, v: &str| json!({"metadata": {"labels": {"tier": tier}}, "data": {"v": v}});
    for (tier, v) in [("db", "2"), ("db", "3"), ("web", "4"), ("web", "5")] {
        let (code, body) = f.call(Method::PATCH, &uri, relabel(tier, v), MERGE).await;
        assert_eq!(code, 200, "{body}");
    }
    // Resumed from the creation: every change comes from the history.
    let mut rx = watch(
        &f,
        CMS,
        &format!(
            "watch=true&labelSelector=tier%3Dweb&resourceVersion={}",
            rv(&created)
        ),
    )
    .await;
    let seen = read_until(&mut rx, |_, o| o["data"]["v"] == "5").await;
    let got: Vec<(String, String, u64)> = seen
        .iter()
        .map(|(k, _, o)| {
            (
                k.clone(),
                o["data"]["v"].as_str().unwrap_or_default().to_string(),
                rv(o),
            )
        })
        .collect();
    let base = rv(&created);
    assert_eq!(
        got,
        [
            // Leaving: the object as it was (still tier=web, v=1), at the change's version.
            ("DELETED".to_string(), "1".to_string(), base + 1),
            ("ADDED".to_string(), "4".to_string(), base + 3),
            ("MODIFIED".to_string(), "5".to_string(), base + 4),
        ]
    );
    assert_eq!(seen[0].2["metadata"]["labels"]["tier"], "web");
}

/// A watch follows only its resource's changes; its bookmarks still move to the newest
/// revision while other resources are written, so a client resuming from a bookmark is
/// not sent back past the history window by writes it never saw.
#[tokio::test]
async fn bookmarks_follow_other_resources_writes_past_the_history_window() {
    let config = StoreConfig {
        history_events: 50,
        ..StoreConfig::default()
    };
    let options = ApiOptions {
        bookmark_interval: Duration::from_millis(200),
        ..ApiOptions::default()
    };
    let f = Fixture::with_options(config, options).await;
    let first = create_pod(&f, "first").await;
    let mut rx = watch(
        &f,
        PODS,
        &format!(
            "watch=true&allowWatchBookmarks=true&resourceVersion={}",
            rv(&first)
        ),
    )
    .await;
    // Far more writes of another resource than the history keeps.
    for i in 0..200 {
        let cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}});
        let (code, body) = f.call(Method::POST, CMS, cm, JSON).await;
        assert_eq!(code, 201, "{body}");
    }
    let written = f.api.store.durable_revision();
    let seen = read_until(&mut rx, |kind, o| kind == "BOOKMARK" && rv(o) >= written).await;
    assert!(
        seen.iter().all(|(k, _, _)| k == "BOOKMARK"),
        "a pods watch sees no ConfigMap: {:?}",
        summary(&seen)
    );
    // Resuming from that bookmark works; from the first pod's revision it has expired.
    let bookmark = rv(&seen.last().expect("a bookmark").2);
    let mut resumed = watch(&f, PODS, &format!("watch=true&resourceVersion={bookmark}")).await;
    create_pod(&f, "second").await;
    let after = read_until(&mut resumed, |_, o| o["metadata"]["name"] == "second").await;
    assert_eq!(summary(&after), ["ADDED second"]);
    let mut stale = watch(
        &f,
        PODS,
        &format!("watch=true&resourceVersion={}", rv(&first)),
    )
    .await;
    let expired = read_until(&mut stale, |kind, _| kind == "ERROR").await;
    assert_eq!(expired[0].2["code"], 410, "{:?}", expired[0].2);
}

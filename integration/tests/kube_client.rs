//! End-to-end tests with the real `kube` 5.x client against the real `spinlet` binary:
//! CRUD, label-selector lists, merge / JSON / server-side-apply patches, optimistic
//! concurrency (409 on a stale resourceVersion), aggregated discovery, the runtime
//! `watcher` (including its relist after a 410 Expired), custom resources under both
//! SpinApp groups, and `fieldValidation=Strict`.
//!
//! Run `cargo build` first: the harness starts `target/<profile>/spinlet`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, Request, WatchParams,
};
use kube::runtime::watcher;
use kube::{Client, Discovery, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const SPIN_GROUPS: [&str; 2] = ["core.spinoperator.dev", "core.spinkube.dev"];

/// How long any single awaited step may take before the test fails.
const STEP: Duration = Duration::from_secs(15);

fn cm(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    if !labels.is_empty() {
        c.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    c.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c
}

fn data_of(c: &ConfigMap) -> BTreeMap<String, String> {
    c.data.clone().unwrap_or_default()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rv_num(rv: Option<String>) -> u64 {
    let rv = rv.expect("resourceVersion set");
    rv.parse()
        .unwrap_or_else(|_| panic!("resourceVersion {rv:?} is not a number"))
}

/// The API status of a failed call; panics on success or on a non-API error.
fn api_status<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an Error::Api, got {other:?}"),
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

fn spinapp_resource(group: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, "v1alpha1", "SpinApp"),
        "spinapps",
    )
}

fn spinapp(group: &str, name: &str) -> DynamicObject {
    DynamicObject::new(name, &spinapp_resource(group)).data(json!({
        "spec": {
            "image": "ghcr.io/spinkube/containerd-shim-spin/examples/spin-rust-hello:v0.14.1",
            "replicas": 1,
            "executor": "containerd-shim-spin"
        }
    }))
}

#[tokio::test]
async fn crud_lists_patches_and_conflicts() {
    let server = Server::start();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // create
    let created = api
        .create(&pp, &cm("one", &[("app", "x")], &[("k1", "v1")]))
        .await
        .expect("create");
    assert_eq!(created.name_any(), "one");
    assert_eq!(created.namespace().as_deref(), Some("default"));
    assert!(created.uid().is_some_and(|u| !u.is_empty()), "uid set");
    assert!(
        created.metadata.creation_timestamp.is_some(),
        "creationTimestamp set"
    );
    let rv1 = rv_num(created.resource_version());
    assert_eq!(data_of(&created), map(&[("k1", "v1")]));

    // creating it again: 409 AlreadyExists
    let s = api_status(
        api.create(&pp, &cm("one", &[("app", "x")], &[("k1", "v1")]))
            .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str()),
        (409, "AlreadyExists"),
        "duplicate create: {s:?}"
    );

    // get
    let got = api.get("one").await.expect("get");
    assert_eq!(got.uid(), created.uid());
    assert_eq!(rv_num(got.resource_version()), rv1);
    assert_eq!(data_of(&got), map(&[("k1", "v1")]));
    assert_eq!(got.labels().get("app").map(String::as_str), Some("x"));

    // list with a label selector
    api.create(&pp, &cm("two", &[("app", "x")], &[("k", "v")]))
        .await
        .expect("create two");
    api.create(&pp, &cm("three", &[("app", "y")], &[("k", "v")]))
        .await
        .expect("create three");
    let listed = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .expect("list app=x");
    let mut names: Vec<String> = listed.items.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["one", "two"]);
    let list_rv = rv_num(listed.metadata.resource_version.clone());
    assert!(list_rv >= rv1, "list resourceVersion {list_rv} < {rv1}");
    let listed = api
        .list(&ListParams::default().labels("app!=x"))
        .await
        .expect("list app!=x");
    // (the namespace may hold other ConfigMaps, such as kube-root-ca.crt)
    let names: Vec<String> = listed.items.iter().map(|c| c.name_any()).collect();
    assert!(names.contains(&"three".to_string()), "app!=x: {names:?}");
    assert!(
        !names.iter().any(|n| n == "one" || n == "two"),
        "app!=x: {names:?}"
    );
    let all = api.list(&ListParams::default()).await.expect("list all");
    for n in ["one", "two", "three"] {
        assert!(
            all.items.iter().any(|c| c.name_any() == n),
            "{n} missing from the unfiltered list"
        );
    }

    // merge patch
    let merged = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k2": "v2"}, "metadata": {"labels": {"tier": "t"}}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(data_of(&merged), map(&[("k1", "v1"), ("k2", "v2")]));
    assert_eq!(merged.labels().get("tier").map(String::as_str), Some("t"));
    assert_eq!(merged.labels().get("app").map(String::as_str), Some("x"));
    let rv2 = rv_num(merged.resource_version());
    assert!(rv2 > rv1, "merge patch did not bump resourceVersion");
    assert_eq!(merged.uid(), created.uid(), "uid changed on patch");

    // JSON patch (RFC 6902)
    let jp = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "add", "path": "/data/k3", "value": "v3"},
                    {"op": "remove", "path": "/data/k1"},
                    {"op": "replace", "path": "/data/k2", "value": "v2b"}
                ]))
                .expect("json patch"),
            ),
        )
        .await
        .expect("json patch");
    assert_eq!(data_of(&jp), map(&[("k2", "v2b"), ("k3", "v3")]));
    let rv3 = rv_num(jp.resource_version());
    assert!(rv3 > rv2, "json patch did not bump resourceVersion");

    // a JSON patch whose `test` op fails is rejected and changes nothing
    let failed = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/data/k2", "value": "nope"},
                    {"op": "add", "path": "/data/k9", "value": "v9"}
                ]))
                .expect("json patch"),
            ),
        )
        .await;
    let s = api_status(failed);
    assert!(
        (400..500).contains(&s.code),
        "failed JSON patch test op: {s:?}"
    );
    let after = api.get("one").await.expect("get after failed patch");
    assert_eq!(data_of(&after), map(&[("k2", "v2b"), ("k3", "v3")]));
    assert_eq!(rv_num(after.resource_version()), rv3);

    // server-side apply with a field manager: creates, then updates
    let ssa = PatchParams::apply("spinlet-it");
    let applied = api
        .patch(
            "applied",
            &ssa,
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "applied", "labels": {"app": "x"}},
                "data": {"a": "1"}
            })),
        )
        .await
        .expect("server-side apply (create)");
    assert_eq!(data_of(&applied), map(&[("a", "1")]));
    let applied_uid = applied.uid();
    let applied = api
        .patch(
            "applied",
            &ssa,
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "applied", "labels": {"app": "x"}},
                "data": {"a": "2", "b": "3"}
            })),
        )
        .await
        .expect("server-side apply (update)");
    assert_eq!(data_of(&applied), map(&[("a", "2"), ("b", "3")]));
    assert_eq!(applied.uid(), applied_uid, "apply replaced the object");
    let got = api.get("applied").await.expect("get applied");
    assert_eq!(data_of(&got), map(&[("a", "2"), ("b", "3")]));

    // stale update: replace with the resourceVersion the object had before the patches
    let mut stale = got_with_rv(&created, rv1);
    stale.data = Some(map(&[("stale", "write")]));
    let s = api_status(api.replace("one", &pp, &stale).await);
    assert_eq!(s.code, 409, "stale replace: {s:?}");
    assert_eq!(s.reason, "Conflict", "stale replace: {s:?}");
    let now = api.get("one").await.expect("get after conflict");
    assert_eq!(
        data_of(&now),
        map(&[("k2", "v2b"), ("k3", "v3")]),
        "a conflicting replace changed the object"
    );
    // a merge patch carrying a stale resourceVersion conflicts too
    let s = api_status(
        api.patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"resourceVersion": rv1.to_string()}, "data": {"x": "y"}}),
            ),
        )
        .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str()),
        (409, "Conflict"),
        "stale merge patch: {s:?}"
    );
    // replace with the current resourceVersion succeeds
    let mut fresh = now.clone();
    fresh.data = Some(map(&[("fresh", "write")]));
    let replaced = api.replace("one", &pp, &fresh).await.expect("replace");
    assert_eq!(data_of(&replaced), map(&[("fresh", "write")]));
    assert!(rv_num(replaced.resource_version()) > rv_num(now.resource_version()));

    // delete
    api.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    let s = api_status(api.get("one").await);
    assert_eq!(
        (s.code, s.reason.as_str()),
        (404, "NotFound"),
        "get after delete: {s:?}"
    );
    let s = api_status(api.delete("one", &DeleteParams::default()).await);
    assert_eq!(s.code, 404, "second delete: {s:?}");
    let listed = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .expect("list after delete");
    let mut names: Vec<String> = listed.items.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["applied", "two"]);
}

fn got_with_rv(c: &ConfigMap, rv: u64) -> ConfigMap {
    let mut c = c.clone();
    c.metadata.resource_version = Some(rv.to_string());
    c
}

#[tokio::test]
async fn aggregated_discovery_finds_spinapps_in_both_groups() {
    let server = Server::start();
    let client = server.client().await;
    let discovery = Discovery::new(client)
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    for group in SPIN_GROUPS {
        let g = discovery
            .get(group)
            .unwrap_or_else(|| panic!("group {group} not discovered"));
        let found = g
            .recommended_resources()
            .into_iter()
            .find(|(ar, _)| ar.plural == "spinapps");
        let (ar, caps) = found.unwrap_or_else(|| panic!("spinapps not in {group}"));
        assert_eq!(ar.kind, "SpinApp");
        assert_eq!(ar.group, group);
        assert_eq!(ar.version, "v1alpha1");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        assert!(
            caps.supports_operation(kube::discovery::verbs::WATCH),
            "spinapps in {group} not watchable: {:?}",
            caps.operations
        );
    }
    // and the core group still has configmaps
    let (ar, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
        .expect("ConfigMap discovered");
    assert_eq!(ar.plural, "configmaps");
}

type Events = mpsc::UnboundedReceiver<Result<watcher::Event<ConfigMap>, watcher::Error>>;

/// Runs a watcher on `api` and forwards its items (errors included) to a channel.
fn spawn_watcher(api: Api<ConfigMap>) -> (Events, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    (rx, task)
}

/// Waits for the next watcher event for which `pick` returns `Some`, failing after `STEP`.
/// Every event seen on the way is appended to `seen` as a short description.
async fn wait_for<T>(
    rx: &mut Events,
    seen: &mut Vec<String>,
    what: &str,
    mut pick: impl FnMut(&Result<watcher::Event<ConfigMap>, watcher::Error>) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let item = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => panic!("watcher ended while waiting for {what}; saw {seen:?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:?}"),
        };
        seen.push(describe(&item));
        if let Some(t) = pick(&item) {
            return t;
        }
    }
}

fn describe(item: &Result<watcher::Event<ConfigMap>, watcher::Error>) -> String {
    match item {
        Ok(watcher::Event::Init) => "Init".into(),
        Ok(watcher::Event::InitApply(o)) => format!("InitApply({})", o.name_any()),
        Ok(watcher::Event::InitDone) => "InitDone".into(),
        Ok(watcher::Event::Apply(o)) => format!("Apply({})", o.name_any()),
        Ok(watcher::Event::Delete(o)) => format!("Delete({})", o.name_any()),
        Err(e) => format!("Err({e})"),
    }
}

#[tokio::test]
async fn watcher_sees_applies_and_deletes() {
    let server = Server::start();
    let client = server.client().await;
    create_namespace(&client, "watched").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "watched");
    let pp = PostParams::default();
    api.create(&pp, &cm("pre", &[], &[("k", "v")]))
        .await
        .expect("create pre");
    // an object in another namespace must not show up
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let (mut rx, task) = spawn_watcher(api.clone());
    let mut seen = Vec::new();
    wait_for(&mut rx, &mut seen, "Init", |e| {
        matches!(e, Ok(watcher::Event::Init)).then_some(())
    })
    .await;
    wait_for(&mut rx, &mut seen, "InitDone", |e| match e {
        Ok(watcher::Event::InitDone) => Some(()),
        Err(e) => panic!("watcher error during the initial list: {e}"),
        _ => None,
    })
    .await;
    assert!(
        seen.contains(&"InitApply(pre)".to_string()),
        "initial list lacks pre: {seen:?}"
    );

    other
        .create(&pp, &cm("elsewhere", &[], &[("k", "v")]))
        .await
        .expect("create elsewhere");
    let created = api
        .create(&pp, &cm("live", &[], &[("k", "1")]))
        .await
        .expect("create live");
    let got = wait_for(&mut rx, &mut seen, "Apply(live)", |e| match e {
        Ok(watcher::Event::Apply(o)) if o.name_any() == "live" => Some(o.clone()),
        Err(e) => panic!("watcher error: {e}"),
        _ => None,
    })
    .await;
    assert_eq!(got.resource_version(), created.resource_version());
    assert_eq!(data_of(&got), map(&[("k", "1")]));

    let patched = api
        .patch(
            "live",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "2"}})),
        )
        .await
        .expect("patch live");
    let got = wait_for(&mut rx, &mut seen, "Apply(live) after patch", |e| match e {
        Ok(watcher::Event::Apply(o)) if o.name_any() == "live" => Some(o.clone()),
        Err(e) => panic!("watcher error: {e}"),
        _ => None,
    })
    .await;
    assert_eq!(got.resource_version(), patched.resource_version());
    assert_eq!(data_of(&got), map(&[("k", "2")]));

    api.delete("live", &DeleteParams::default())
        .await
        .expect("delete live");
    let gone = wait_for(&mut rx, &mut seen, "Delete(live)", |e| match e {
        Ok(watcher::Event::Delete(o)) if o.name_any() == "live" => Some(o.clone()),
        Err(e) => panic!("watcher error: {e}"),
        _ => None,
    })
    .await;
    assert_eq!(gone.uid(), created.uid());
    assert!(
        !seen.iter().any(|s| s.contains("elsewhere")),
        "watcher saw an object of another namespace: {seen:?}"
    );
    task.abort();
}

#[tokio::test]
async fn watcher_relists_after_410_expired() {
    let server = Server::start_with(&["--watch-history-events", "20", "--max-watch-seconds", "2"]);
    let client = server.client().await;
    create_namespace(&client, "relist").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "relist");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    let (mut rx, task) = spawn_watcher(api.clone());
    let mut seen = Vec::new();
    wait_for(&mut rx, &mut seen, "first InitDone", |e| match e {
        Ok(watcher::Event::InitDone) => Some(()),
        Err(e) => panic!("watcher error during the first list: {e}"),
        _ => None,
    })
    .await;
    let inits_before = seen.iter().filter(|s| *s == "Init").count();
    assert_eq!(inits_before, 1, "{seen:?}");

    // The watcher's resourceVersion becomes this object's.
    api.create(&pp, &cm("before", &[], &[("k", "v")]))
        .await
        .expect("create before");
    wait_for(&mut rx, &mut seen, "Apply(before)", |e| match e {
        Ok(watcher::Event::Apply(o)) if o.name_any() == "before" => Some(()),
        Err(e) => panic!("watcher error: {e}"),
        _ => None,
    })
    .await;

    // Push that revision out of the 20-event history with writes the watcher does not see.
    for i in 0..45 {
        let mut s = Secret::default();
        s.metadata.name = Some(format!("filler-{i}"));
        s.string_data = Some(map(&[("k", "v")]));
        secrets.create(&pp, &s).await.expect("create filler secret");
    }

    // Within ~2 s the watch ends, resumes from the compacted revision, gets 410 Expired,
    // and the watcher relists: an Err carrying the 410, then Init … InitDone again.
    let status = wait_for(&mut rx, &mut seen, "the 410 Expired error", |e| match e {
        Err(watcher::Error::WatchError(s)) => Some((**s).clone()),
        Err(e) => panic!("unexpected watcher error (expected a 410 WatchError): {e}"),
        Ok(watcher::Event::Init) => panic!("relisted without a 410 first"),
        _ => None,
    })
    .await;
    assert_eq!(status.code, 410, "{status:?}");
    assert_eq!(status.reason, "Expired", "{status:?}");
    wait_for(&mut rx, &mut seen, "second Init", |e| match e {
        Ok(watcher::Event::Init) => Some(()),
        Err(e) => panic!("watcher error after the 410: {e}"),
        _ => None,
    })
    .await;
    wait_for(&mut rx, &mut seen, "second InitDone", |e| match e {
        Ok(watcher::Event::InitDone) => Some(()),
        Err(e) => panic!("watcher error during the relist: {e}"),
        _ => None,
    })
    .await;
    let tail = seen
        .iter()
        .rev()
        .take_while(|s| *s != "Init")
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        tail.contains(&"InitApply(before)".to_string()),
        "the relist did not include before: {seen:?}"
    );
    assert!(
        !tail.iter().any(|s| s.contains("filler")),
        "the ConfigMap watcher saw Secrets: {seen:?}"
    );

    // The watcher keeps working after the relist.
    api.create(&pp, &cm("after", &[], &[("k", "v")]))
        .await
        .expect("create after");
    wait_for(&mut rx, &mut seen, "Apply(after)", |e| match e {
        Ok(watcher::Event::Apply(o)) if o.name_any() == "after" => Some(()),
        Ok(watcher::Event::InitApply(o)) if o.name_any() == "after" => Some(()),
        _ => None,
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn spinapps_round_trip_across_both_groups() {
    let server = Server::start();
    let client = server.client().await;
    let [op_group, kube_group] = SPIN_GROUPS;
    let op: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &spinapp_resource(op_group));
    let kb: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &spinapp_resource(kube_group));
    let pp = PostParams::default();

    // created under core.spinoperator.dev, visible under core.spinkube.dev
    let a = op
        .create(&pp, &spinapp(op_group, "app-a"))
        .await
        .expect("create app-a under core.spinoperator.dev");
    assert_eq!(
        a.types.as_ref().map(|t| t.api_version.as_str()),
        Some("core.spinoperator.dev/v1alpha1")
    );
    assert_eq!(a.metadata.generation, Some(1));
    assert_eq!(
        a.data["spec"]["image"],
        spinapp(op_group, "x").data["spec"]["image"]
    );
    let a_kb = kb
        .get("app-a")
        .await
        .expect("app-a under core.spinkube.dev");
    assert_eq!(a_kb.uid(), a.uid());
    // The embedded SpinApp controller may write the app's status in between: the
    // resourceVersion then moves, the generation does not.
    assert_eq!(a_kb.metadata.generation, a.metadata.generation);
    assert_eq!(a_kb.data["spec"], a.data["spec"]);
    assert_eq!(
        a_kb.types
            .as_ref()
            .map(|t| (t.api_version.as_str(), t.kind.as_str())),
        Some(("core.spinkube.dev/v1alpha1", "SpinApp"))
    );

    // created under core.spinkube.dev, visible under core.spinoperator.dev
    let b = kb
        .create(&pp, &spinapp(kube_group, "app-b"))
        .await
        .expect("create app-b under core.spinkube.dev");
    let b_op = op
        .get("app-b")
        .await
        .expect("app-b under core.spinoperator.dev");
    assert_eq!(b_op.uid(), b.uid());
    assert_eq!(
        b_op.types.as_ref().map(|t| t.api_version.as_str()),
        Some("core.spinoperator.dev/v1alpha1")
    );

    // one object, whichever group: a create under the other group is AlreadyExists
    let s = api_status(kb.create(&pp, &spinapp(kube_group, "app-a")).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"), "{s:?}");

    // both groups list both apps
    for (api, group) in [(&op, op_group), (&kb, kube_group)] {
        let list = api
            .list(&ListParams::default())
            .await
            .expect("list spinapps");
        let mut names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
        names.sort();
        assert_eq!(names, ["app-a", "app-b"], "list under {group}");
        assert!(list
            .metadata
            .resource_version
            .is_some_and(|r| !r.is_empty()));
    }

    // a spec change under one group bumps generation, seen under the other
    let patched = kb
        .patch(
            "app-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("merge patch app-a under core.spinkube.dev");
    assert_eq!(patched.data["spec"]["replicas"], json!(3));
    assert_eq!(patched.metadata.generation, Some(2));
    let a2 = op.get("app-a").await.expect("get app-a");
    assert_eq!(a2.data["spec"]["replicas"], json!(3));
    assert_eq!(a2.metadata.generation, Some(2));
    assert_eq!(a2.uid(), patched.uid());
    // a metadata-only change does not
    let labelled = op
        .patch(
            "app-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "wasm"}}})),
        )
        .await
        .expect("label app-a");
    assert_eq!(labelled.metadata.generation, Some(2));

    // server-side apply of a SpinApp
    let applied = op
        .patch(
            "app-c",
            &PatchParams::apply("spinlet-it"),
            &Patch::Apply(json!({
                "apiVersion": "core.spinoperator.dev/v1alpha1",
                "kind": "SpinApp",
                "metadata": {"name": "app-c"},
                "spec": {"image": "ghcr.io/example/app:v1", "replicas": 2, "executor": "containerd-shim-spin"}
            })),
        )
        .await
        .expect("apply app-c");
    assert_eq!(applied.data["spec"]["replicas"], json!(2));
    let c_kb = kb
        .get("app-c")
        .await
        .expect("app-c under core.spinkube.dev");
    assert_eq!(c_kb.data["spec"]["image"], json!("ghcr.io/example/app:v1"));

    // replace with a stale resourceVersion conflicts
    let mut stale = a.clone();
    stale.data["spec"]["replicas"] = json!(9);
    let s = api_status(op.replace("app-a", &pp, &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"), "{s:?}");

    // deleted under one group, gone under both
    kb.delete("app-a", &DeleteParams::default())
        .await
        .expect("delete app-a under core.spinkube.dev");
    for (api, group) in [(&op, op_group), (&kb, kube_group)] {
        let s = api_status(api.get("app-a").await);
        assert_eq!(s.code, 404, "app-a under {group} after delete: {s:?}");
    }
    op.delete("app-b", &DeleteParams::default())
        .await
        .expect("delete app-b under core.spinoperator.dev");
    let s = api_status(kb.get("app-b").await);
    assert_eq!(
        s.code, 404,
        "app-b under core.spinkube.dev after delete: {s:?}"
    );
}

/// Adds `fieldValidation=Strict` to the query of an `http::Request` built by
/// `kube::api::Request` (kube 5's `PostParams` has no field-validation directive).
macro_rules! with_strict {
    ($req:expr) => {{
        let mut req = $req;
        let uri = req.uri().to_string();
        let sep = if uri.ends_with('?') {
            ""
        } else if uri.contains('?') {
            "&"
        } else {
            "?"
        };
        *req.uri_mut() = format!("{uri}{sep}fieldValidation=Strict")
            .parse()
            .expect("uri");
        req
    }};
}

fn message_and_causes(s: &kube::core::Status) -> String {
    let mut text = s.message.clone();
    if let Some(d) = &s.details {
        for c in &d.causes {
            text.push_str(&format!(" | {} {} {}", c.reason, c.field, c.message));
        }
    }
    text
}

#[tokio::test]
async fn strict_field_validation_names_the_unknown_field() {
    let server = Server::start();
    let client = server.client().await;

    // POST …/configmaps?fieldValidation=Strict with an unknown top-level field
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "strict-cm"},
        "data": {"k": "v"},
        "bogusField": "x"
    });
    let req = Request::new("/api/v1/namespaces/default/configmaps")
        .create(
            &PostParams::default(),
            serde_json::to_vec(&body).expect("body"),
        )
        .expect("request");
    let req = with_strict!(req);
    assert!(req.uri().to_string().contains("fieldValidation=Strict"));
    let s = api_status(client.request::<Value>(req).await);
    assert_eq!(s.code, 400, "strict create: {s:?}");
    assert_eq!(s.reason, "BadRequest", "strict create: {s:?}");
    assert!(
        message_and_causes(&s).contains("bogusField"),
        "strict create error does not name the field: {s:?}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        api_status(cms.get("strict-cm").await).code,
        404,
        "a rejected create was stored"
    );

    // Server-side apply with PatchParams::validation_strict: unknown field in a SpinApp spec
    let op: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &spinapp_resource("core.spinoperator.dev"),
    );
    let r = op
        .patch(
            "strict-app",
            &PatchParams::apply("spinlet-it").validation_strict(),
            &Patch::Apply(json!({
                "apiVersion": "core.spinoperator.dev/v1alpha1",
                "kind": "SpinApp",
                "metadata": {"name": "strict-app"},
                "spec": {"image": "ghcr.io/example/app:v1", "replicas": 1, "replicaz": 2}
            })),
        )
        .await;
    let s = api_status(r);
    assert_eq!(s.code, 400, "strict apply: {s:?}");
    assert!(
        message_and_causes(&s).contains("replicaz"),
        "strict apply error does not name the field: {s:?}"
    );
    assert_eq!(
        api_status(op.get("strict-app").await).code,
        404,
        "a rejected apply was stored"
    );

    // Strict apply of a ConfigMap with an unknown field
    let r = cms
        .patch(
            "strict-cm",
            &PatchParams::apply("spinlet-it").validation_strict(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "strict-cm"},
                "data": {"k": "v"},
                "dataa": {"k": "v"}
            })),
        )
        .await;
    let s = api_status(r);
    assert_eq!(s.code, 400, "strict apply of a ConfigMap: {s:?}");
    assert!(
        message_and_causes(&s).contains("dataa"),
        "strict apply error does not name the field: {s:?}"
    );

    // Without Strict, the same create is accepted (kube-apiserver's default is Warn)
    let req = Request::new("/api/v1/namespaces/default/configmaps")
        .create(
            &PostParams::default(),
            serde_json::to_vec(&body).expect("body"),
        )
        .expect("request");
    let created: ConfigMap = client
        .request(req)
        .await
        .expect("non-strict create with an unknown field");
    assert_eq!(created.name_any(), "strict-cm");
    let got = cms.get("strict-cm").await.expect("get strict-cm");
    assert_eq!(data_of(&got), map(&[("k", "v")]));
}

/// A watch with a label selector sees an object that stops matching as DELETED and one
/// that starts matching as ADDED, as kube-apiserver reports them.
#[tokio::test]
async fn selector_watch_sees_objects_enter_and_leave() {
    let server = Server::start();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let list = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    let mut stream = api
        .watch(&WatchParams::default().labels("app=x").timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    api.create(&PostParams::default(), &cm("moving", &[("app", "y")], &[]))
        .await
        .expect("create");
    let relabel = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    api.patch("moving", &PatchParams::default(), &relabel("x"))
        .await
        .expect("into the selection");
    api.patch("moving", &PatchParams::default(), &relabel("z"))
        .await
        .expect("out of the selection");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        match ev {
            kube::api::WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.name_any())),
            kube::api::WatchEvent::Modified(c) => seen.push(format!("MODIFIED {}", c.name_any())),
            kube::api::WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.name_any())),
            kube::api::WatchEvent::Bookmark(_) => {}
            kube::api::WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED moving", "DELETED moving"]);
}

/// Malformed bodies of every encoding get kube-apiserver's status code and reason, and
/// nothing is stored; so does a body over the 3 MiB limit.
#[tokio::test]
async fn malformed_bodies_get_kube_statuses() {
    let server = Server::start();
    let client = server.client().await;
    let post = |content_type: &str, body: Vec<u8>| {
        http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("content-type", content_type)
            .body(body)
            .expect("request")
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{\"apiVersion\": \"v1\", \"kind\": ".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "application/yaml",
            b"apiVersion: v1\nkind: [unterminated\n".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\x0a\xff\xff".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "application/vnd.kubernetes.protobuf",
            b"not protobuf at all".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "application/json",
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "big"}, "data": {"x": "a".repeat(3 * 1024 * 1024 + 1)}}))
            .expect("body"),
            413,
            "RequestEntityTooLarge",
        ),
        ("text/plain", b"hello".to_vec(), 415, "UnsupportedMediaType"),
    ];
    for (ct, body, code, reason) in cases {
        let s = api_status(client.request::<Value>(post(ct, body)).await);
        assert_eq!((s.code, s.reason.as_str()), (code, reason), "{ct}: {s:?}");
    }
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let left = cms.list(&ListParams::default()).await.expect("list");
    assert!(left.items.is_empty(), "nothing stored: {:?}", left.items);
}

/// kube-rs streaming lists (`sendInitialEvents=true`): the initial ADDED burst ends with
/// the `k8s.io/initial-events-end` bookmark, which the watcher turns into `InitDone`.
#[tokio::test]
async fn streaming_list_watcher_gets_initial_events() {
    let server = Server::start();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for name in ["s1", "s2"] {
        api.create(&PostParams::default(), &cm(name, &[], &[]))
            .await
            .expect("create");
    }
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(STEP, stream.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("no watch error");
        match ev {
            watcher::Event::Init => seen.push("Init".to_string()),
            watcher::Event::InitApply(c) => seen.push(format!("InitApply {}", c.name_any())),
            watcher::Event::InitDone => {
                seen.push("InitDone".into());
                break;
            }
            other => seen.push(format!("{other:?}")),
        }
    }
    assert_eq!(seen, ["Init", "InitApply s1", "InitApply s2", "InitDone"]);
    api.create(&PostParams::default(), &cm("s3", &[], &[]))
        .await
        .expect("create");
    let ev = tokio::time::timeout(STEP, stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("no watch error");
    assert!(
        matches!(ev, watcher::Event::Apply(ref c) if c.name_any() == "s3"),
        "{ev:?}"
    );
}

/// kube-rs sends no User-Agent, and `PostParams::default()` no `fieldManager`: the create
/// is still recorded in managedFields (manager empty, as kube-apiserver records it) with
/// the API version it was made under, which is how the SpinApp controller tells an app
/// created under `core.spinoperator.dev` and gives it that group's label keys.
#[tokio::test]
async fn a_spinapp_created_without_a_field_manager_keeps_its_group() {
    let server = Server::start();
    let client = server.client().await;
    let [op_group, _] = SPIN_GROUPS;
    let op: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &spinapp_resource(op_group));
    let created = op
        .create(&PostParams::default(), &spinapp(op_group, "anonymous"))
        .await
        .expect("create under core.spinoperator.dev");
    let entries = created.metadata.managed_fields.clone().unwrap_or_default();
    let entry = entries
        .iter()
        .find(|e| e.operation.as_deref() == Some("Update"))
        .unwrap_or_else(|| panic!("no Update entry in {entries:?}"));
    assert_eq!(entry.manager, None, "{entries:?}");
    assert_eq!(
        entry.api_version.as_deref(),
        Some("core.spinoperator.dev/v1alpha1")
    );

    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let deployment = loop {
        if let Some(d) = deployments.get_opt("anonymous").await.expect("get") {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Deployment for the app"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let labels = deployment.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("core.spinoperator.dev/app-name")
            .map(String::as_str),
        Some("anonymous"),
        "{labels:?}"
    );
    assert!(
        !labels.contains_key("core.spinkube.dev/app-name"),
        "{labels:?}"
    );
}

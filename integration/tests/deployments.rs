//! The Deployment and ReplicaSet controllers end to end: a real `spinlet server` (API
//! server, controllers, node agent), the real kubectl and its `rollout` commands, a real
//! registry holding the hello Spin app (pushed with `spinlet push`, a second time as
//! another tag), and real pod sandboxes serving inside a network namespace the test
//! creates (`common::pods::PodEnv`; where namespaces cannot be made, the tests skip).
//!
//! Covered: rolling updates (scale, image and env changes, undo, restart, pause/resume,
//! delete), maxSurge/maxUnavailable held throughout a rollout and revisionHistoryLimit,
//! Recreate, a bare ReplicaSet (adoption, release, orphaning, minReadySeconds) and a
//! rollout past its progress deadline.
//!
//! Every wait is for a state, with deadlines far beyond what a loaded machine needs; no
//! assertion is about speed. Run `cargo build -p spinlet` first.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::pods::{state, wait_or_show, PodEnv, HELLO_IMAGE};
use common::spinlet_bin;
use common::Server;
use serde_json::Value;

/// Longest a rollout step may take here (a state to reach, never a speed).
const DEADLINE: Duration = Duration::from_secs(180);

/// The second tag of the same app.
const HELLO_V2: &str = "127.0.0.1:5000/pod-hello:v2";

fn deployment(name: &str, replicas: u32, strategy: &str, greeting: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  strategy:
    type: {strategy}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: app
        image: {HELLO_IMAGE}
        ports:
        - containerPort: 8080
        env:
        - name: SPIN_VARIABLE_GREETING
          value: {greeting}
"#
    )
}

fn json(s: &Server, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl(&full)).unwrap_or(Value::Null)
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn text(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Everything a failure message needs: deployments, replica sets, pods, events, log.
fn show(s: &Server) -> String {
    let deploys = s.kubectl_output(&["get", "deploy,rs", "-o", "yaml"], None);
    let events = s.kubectl_output(&["get", "events.v1.events.k8s.io"], None);
    format!(
        "deployments and replica sets:\n{}\ncontroller events:\n{}\n{}",
        String::from_utf8_lossy(&deploys.stdout),
        String::from_utf8_lossy(&events.stdout),
        state(s)
    )
}

/// `kubectl rollout status`, which must report success.
fn rollout_status(s: &Server, name: &str) {
    let target = format!("deploy/{name}");
    let out = s.kubectl_output(&["rollout", "status", &target, "--timeout=240s"], None);
    assert!(
        out.status.success(),
        "rollout status {name}: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        show(s)
    );
}

/// A pod that runs, is ready and is not being deleted: (name, ip, pod-template-hash).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Serving {
    name: String,
    ip: String,
    hash: String,
}

fn serving(s: &Server, app: &str) -> Vec<Serving> {
    let selector = format!("app={app}");
    items(&json(s, &["get", "pods", "-l", &selector]))
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| text(p, "/status/phase") == "Running")
        .filter(|p| text(p, "/status/containerStatuses/0/ready") == "true")
        .map(|p| Serving {
            name: text(p, "/metadata/name"),
            ip: text(p, "/status/podIP"),
            hash: text(p, "/metadata/labels/pod-template-hash"),
        })
        .collect()
}

/// How many pods of `app` exist at all (terminating ones too).
fn pod_count(s: &Server, app: &str) -> usize {
    let selector = format!("app={app}");
    items(&json(s, &["get", "pods", "-l", &selector])).len()
}

/// Waits until exactly `count` pods of the new ReplicaSet serve and no other pod of
/// `app` exists; returns them.
fn wait_serving(s: &Server, app: &str, count: usize) -> Vec<Serving> {
    wait_or_show(
        &format!("{count} serving pods of {app} and no other"),
        DEADLINE,
        || {
            let now = serving(s, app);
            let new_hash = new_rs(s, app).map(|rs| text(&rs, "/metadata/labels/pod-template-hash"));
            (now.len() == count
                && pod_count(s, app) == count
                && now.iter().all(|p| Some(&p.hash) == new_hash.as_ref()))
            .then_some(now)
        },
        || show(s),
    )
}

/// The ReplicaSets of `app`, oldest first.
fn replica_sets(s: &Server, app: &str) -> Vec<Value> {
    let selector = format!("app={app}");
    let mut sets = items(&json(s, &["get", "rs", "-l", &selector]));
    sets.sort_by_key(|rs| text(rs, "/metadata/creationTimestamp") + &text(rs, "/metadata/name"));
    sets
}

/// The ReplicaSet with the Deployment's revision.
fn new_rs(s: &Server, app: &str) -> Option<Value> {
    let revision = s.jsonpath(
        &["deploy", app],
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    );
    replica_sets(s, app).into_iter().find(|rs| {
        text(
            rs,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        ) == revision
    })
}

/// Every serving pod answers with `greeting`.
fn assert_greeting(env: &PodEnv, pods: &[Serving], greeting: &str) {
    for p in pods {
        let (code, body) = env
            .ns
            .curl(&format!("http://{}:8080/?op=var&name=greeting", p.ip));
        assert_eq!((code, body.as_str()), (200, greeting), "pod {}", p.name);
    }
}

/// The revisions `kubectl rollout history` lists.
fn history(s: &Server, app: &str) -> Vec<u32> {
    let target = format!("deploy/{app}");
    s.kubectl(&["rollout", "history", &target])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The notes of the controllers' events about `name`, oldest first.
fn event_notes(s: &Server, name: &str) -> Vec<String> {
    let mut events = items(&json(s, &["get", "events.v1.events.k8s.io"]));
    events.retain(|e| text(e, "/regarding/name") == name);
    events.sort_by_key(|e| text(e, "/eventTime"));
    events.iter().map(|e| text(e, "/note")).collect()
}

fn wait_until(s: &Server, what: &str, mut check: impl FnMut() -> bool) {
    wait_or_show(what, DEADLINE, || check().then_some(()), || show(s));
}

#[test]
fn a_rolling_deployment_scales_rolls_out_undoes_restarts_pauses_and_is_deleted() {
    let Some(env) = PodEnv::start("deploy", &[]) else {
        return;
    };
    let s = &env.server;

    // Two replicas of the hello app: the rollout completes and both serve.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &deployment("hello", 2, "RollingUpdate", "one"),
    );
    rollout_status(s, "hello");
    let pods = wait_serving(s, "hello", 2);
    assert_greeting(&env, &pods, "one");
    let sets = replica_sets(s, "hello");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let first = sets[0].clone();
    let first_name = text(&first, "/metadata/name");
    let hash = text(&first, "/metadata/labels/pod-template-hash");
    assert_eq!(first_name, format!("hello-{hash}"));
    assert_eq!(
        text(&first, "/spec/selector/matchLabels/pod-template-hash"),
        hash
    );
    assert_eq!(
        text(&first, "/spec/template/metadata/labels/pod-template-hash"),
        hash
    );
    assert_eq!(
        text(&first, "/metadata/ownerReferences/0/kind"),
        "Deployment"
    );
    assert_eq!(
        text(&first, "/metadata/ownerReferences/0/controller"),
        "true"
    );
    assert_eq!(
        text(&first, "/metadata/ownerReferences/0/blockOwnerDeletion"),
        "true"
    );
    let annotations = &first["metadata"]["annotations"];
    assert_eq!(annotations["deployment.kubernetes.io/revision"], "1");
    assert_eq!(
        annotations["deployment.kubernetes.io/desired-replicas"],
        "2"
    );
    assert_eq!(
        annotations["deployment.kubernetes.io/max-replicas"], "3",
        "2 + 25% rounded up"
    );
    for p in &pods {
        let suffix = p.name.strip_prefix(&format!("{first_name}-")).unwrap_or("");
        assert_eq!(suffix.len(), 5, "pod name {}", p.name);
        let owner = s.jsonpath(&["pod", &p.name], "{.metadata.ownerReferences[0].name}");
        assert_eq!(owner, first_name);
    }
    let d = json(s, &["get", "deploy", "hello"]);
    assert_eq!(text(&d, "/status/replicas"), "2");
    assert_eq!(text(&d, "/status/updatedReplicas"), "2");
    assert_eq!(text(&d, "/status/readyReplicas"), "2");
    assert_eq!(text(&d, "/status/availableReplicas"), "2");
    assert_eq!(
        text(&d, "/status/observedGeneration"),
        text(&d, "/metadata/generation")
    );
    let conditions = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let reason = |t: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| text(c, "/reason"))
            .unwrap_or_default()
    };
    assert_eq!(reason("Available"), "MinimumReplicasAvailable");
    assert_eq!(reason("Progressing"), "NewReplicaSetAvailable");
    let rs_status = json(s, &["get", "rs", &first_name]);
    assert_eq!(text(&rs_status, "/status/fullyLabeledReplicas"), "2");
    assert_eq!(text(&rs_status, "/status/availableReplicas"), "2");
    assert!(
        event_notes(s, "hello")
            .contains(&format!("Scaled up replica set {first_name} from 0 to 2")),
        "{:?}",
        event_notes(s, "hello")
    );
    assert!(event_notes(s, &first_name)
        .iter()
        .any(|n| n.starts_with("Created pod: ")));
    // kubectl describe shows them too (core/v1 Events).
    let described = s.kubectl(&["describe", "deploy", "hello"]);
    assert!(
        described.contains(&format!("Scaled up replica set {first_name} from 0 to 2")),
        "{described}"
    );

    // kubectl scale up and down.
    s.kubectl(&["scale", "deploy/hello", "--replicas=4"]);
    rollout_status(s, "hello");
    wait_serving(s, "hello", 4);
    s.kubectl(&["scale", "deploy/hello", "--replicas=1"]);
    rollout_status(s, "hello");
    wait_serving(s, "hello", 1);
    assert!(
        event_notes(s, &first_name)
            .iter()
            .any(|n| n.starts_with("Deleted pod: ")),
        "{:?}",
        event_notes(s, &first_name)
    );
    s.kubectl(&["scale", "deploy/hello", "--replicas=2"]);
    rollout_status(s, "hello");
    wait_serving(s, "hello", 2);
    let notes = event_notes(s, "hello");
    for note in [
        format!("Scaled up replica set {first_name} from 2 to 4"),
        format!("Scaled down replica set {first_name} from 4 to 1"),
        format!("Scaled up replica set {first_name} from 1 to 2"),
    ] {
        assert!(notes.contains(&note), "no {note:?} in {notes:?}");
    }

    // A new image (the same app pushed as another tag) rolls out a second ReplicaSet.
    let push = env
        .ns
        .cmd(&spinlet_bin().to_string_lossy())
        .arg("push")
        .arg(env.scratch.path().join("app"))
        .arg(HELLO_V2)
        .output()
        .expect("spinlet push");
    assert!(
        push.status.success(),
        "push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    s.kubectl(&["set", "image", "deploy/hello", &format!("app={HELLO_V2}")]);
    rollout_status(s, "hello");
    let pods = wait_serving(s, "hello", 2);
    assert_greeting(&env, &pods, "one");
    for p in &pods {
        assert_eq!(
            s.jsonpath(&["pod", &p.name], "{.spec.containers[0].image}"),
            HELLO_V2
        );
    }
    let sets = replica_sets(s, "hello");
    assert_eq!(sets.len(), 2);
    assert_eq!(
        text(&sets[0], "/spec/replicas"),
        "0",
        "the old set is scaled to 0"
    );
    let second_name = text(&sets[1], "/metadata/name");
    assert_eq!(
        text(
            &sets[1],
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "2"
    );
    assert_eq!(history(s, "hello"), vec![1, 2]);
    let notes = event_notes(s, "hello");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&format!("Scaled up replica set {second_name} from 0 to "))),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&format!("Scaled down replica set {first_name} from 2 to "))),
        "{notes:?}"
    );

    // kubectl rollout undo goes back to the first template: its set is revision 3 now.
    s.kubectl(&["rollout", "undo", "deploy/hello"]);
    rollout_status(s, "hello");
    let pods = wait_serving(s, "hello", 2);
    assert!(pods.iter().all(|p| p.hash == hash), "{pods:?}");
    for p in &pods {
        assert_eq!(
            s.jsonpath(&["pod", &p.name], "{.spec.containers[0].image}"),
            HELLO_IMAGE
        );
    }
    assert_eq!(history(s, "hello"), vec![2, 3]);
    let first_again = json(s, &["get", "rs", &first_name]);
    assert_eq!(
        text(
            &first_again,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "3"
    );
    assert_eq!(
        text(
            &first_again,
            "/metadata/annotations/deployment.kubernetes.io~1revision-history"
        ),
        "1"
    );
    assert_eq!(
        replica_sets(s, "hello").len(),
        2,
        "no new set for an old template"
    );

    // A changed environment variable rolls out, and the new pods serve it.
    s.kubectl(&["set", "env", "deploy/hello", "SPIN_VARIABLE_GREETING=two"]);
    rollout_status(s, "hello");
    let pods = wait_serving(s, "hello", 2);
    assert_greeting(&env, &pods, "two");
    assert_eq!(history(s, "hello"), vec![2, 3, 4]);

    // kubectl rollout restart: a template annotation, so a new set and new pods.
    let before: BTreeSet<String> = pods.iter().map(|p| p.name.clone()).collect();
    s.kubectl(&["rollout", "restart", "deploy/hello"]);
    rollout_status(s, "hello");
    let pods = wait_serving(s, "hello", 2);
    assert!(
        pods.iter().all(|p| !before.contains(&p.name)),
        "{pods:?} vs {before:?}"
    );
    assert_greeting(&env, &pods, "two");
    assert_eq!(history(s, "hello"), vec![2, 3, 4, 5]);
    assert_ne!(
        s.jsonpath(
            &["deploy", "hello"],
            "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"
        ),
        ""
    );

    // Paused: a template change is recorded but not rolled out until resumed.
    s.kubectl(&["rollout", "pause", "deploy/hello"]);
    wait_until(s, "the Paused condition", || {
        s.jsonpath(
            &["deploy", "hello"],
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        ) == "DeploymentPaused"
    });
    s.kubectl(&["set", "env", "deploy/hello", "SPIN_VARIABLE_GREETING=three"]);
    wait_until(s, "the paused change to be observed", || {
        let d = json(s, &["get", "deploy", "hello"]);
        text(&d, "/status/observedGeneration") == text(&d, "/metadata/generation")
    });
    assert_eq!(replica_sets(s, "hello").len(), 4, "no rollout while paused");
    s.kubectl(&["rollout", "resume", "deploy/hello"]);
    rollout_status(s, "hello");
    let pods = wait_serving(s, "hello", 2);
    assert_greeting(&env, &pods, "three");
    assert_eq!(history(s, "hello"), vec![2, 3, 4, 5, 6]);

    // kubectl delete deploy: its ReplicaSets and pods go with it.
    s.kubectl(&["delete", "deploy", "hello"]);
    wait_until(s, "the replica sets and pods to be gone", || {
        replica_sets(s, "hello").is_empty() && pod_count(s, "hello") == 0
    });
}

#[test]
fn a_recreate_deployment_stops_every_old_pod_before_starting_new_ones() {
    let Some(env) = PodEnv::start("recreate", &[]) else {
        return;
    };
    let s = &env.server;
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &deployment("again", 2, "Recreate", "old"),
    );
    rollout_status(s, "again");
    let pods = wait_serving(s, "again", 2);
    assert_greeting(&env, &pods, "old");
    let first = text(&replica_sets(s, "again")[0], "/metadata/name");
    assert_eq!(
        text(
            &replica_sets(s, "again")[0],
            "/metadata/annotations/deployment.kubernetes.io~1max-replicas"
        ),
        "2",
        "no surge with Recreate"
    );

    // While the new template rolls out, no pod of the old set ever exists beside one of
    // the new set (an old pod is gone from the API, not only stopping, first).
    let old_hash = text(
        &replica_sets(s, "again")[0],
        "/metadata/labels/pod-template-hash",
    );
    s.kubectl(&["set", "env", "deploy/again", "SPIN_VARIABLE_GREETING=new"]);
    let pods = wait_or_show(
        "the new pods to serve",
        DEADLINE,
        || {
            let all = items(&json(s, &["get", "pods", "-l", "app=again"]));
            let hashes: BTreeSet<String> = all
                .iter()
                .map(|p| text(p, "/metadata/labels/pod-template-hash"))
                .collect();
            assert!(
                hashes.len() <= 1,
                "old and new pods side by side: {hashes:?}\n{}",
                show(s)
            );
            let now = serving(s, "again");
            (now.len() == 2 && all.len() == 2 && !hashes.contains(&old_hash)).then_some(now)
        },
        || show(s),
    );
    rollout_status(s, "again");
    assert_greeting(&env, &pods, "new");
    let sets = replica_sets(s, "again");
    assert_eq!(sets.len(), 2);
    let second = text(&sets[1], "/metadata/name");

    // The new set was created once the old one was at zero, and at full size.
    let notes = event_notes(s, "again");
    let down = notes
        .iter()
        .position(|n| *n == format!("Scaled down replica set {first} from 2 to 0"));
    let up = notes
        .iter()
        .position(|n| *n == format!("Scaled up replica set {second} from 0 to 2"));
    assert!(
        matches!((down, up), (Some(d), Some(u)) if d < u),
        "{notes:?}"
    );

    // A foreground delete: the Deployment goes only once its sets (blockOwnerDeletion)
    // are gone, and their pods follow.
    s.kubectl(&[
        "delete",
        "deploy",
        "again",
        "--cascade=foreground",
        "--timeout=180s",
    ]);
    wait_until(s, "the replica sets and pods to be gone", || {
        replica_sets(s, "again").is_empty() && pod_count(s, "again") == 0
    });
}

const SOLO_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: solo-orphan
  labels:
    app: solo
spec:
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - containerPort: 8080
"#;

const SOLO_RS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: solo
spec:
  replicas: 2
  minReadySeconds: 10
  selector:
    matchLabels:
      app: solo
  template:
    metadata:
      labels:
        app: solo
    spec:
      containers:
      - name: app
        image: 127.0.0.1:5000/pod-hello:v1
        ports:
        - containerPort: 8080
"#;

/// The pods labelled `app=solo`: (name, controller name or "").
fn solo_pods(s: &Server) -> Vec<(String, String)> {
    items(&json(s, &["get", "pods", "-l", "app=solo"]))
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .map(|p| {
            (
                text(p, "/metadata/name"),
                text(p, "/metadata/ownerReferences/0/name"),
            )
        })
        .collect()
}

#[test]
fn a_replica_set_adopts_orphans_releases_relabeled_pods_and_waits_min_ready_seconds() {
    let Some(env) = PodEnv::start("replicaset", &[]) else {
        return;
    };
    let s = &env.server;

    // An orphan pod the selector matches is adopted; only one more is created.
    s.kubectl_stdin(&["apply", "-f", "-"], SOLO_POD);
    env.wait_running("solo-orphan");
    s.kubectl_stdin(&["apply", "-f", "-"], SOLO_RS);
    wait_until(s, "two pods, both the set's, the orphan among them", || {
        let pods = solo_pods(s);
        pods.len() == 2
            && pods.iter().all(|(_, owner)| owner == "solo")
            && pods.iter().any(|(name, _)| name == "solo-orphan")
    });

    // minReadySeconds: ready pods count as available only 10 s after they became ready.
    let mut seen_ready_not_available = false;
    wait_until(s, "both pods available", || {
        let rs = json(s, &["get", "rs", "solo"]);
        let ready = text(&rs, "/status/readyReplicas");
        let available = text(&rs, "/status/availableReplicas");
        if ready == "2" && available != "2" {
            seen_ready_not_available = true;
        }
        available == "2"
    });
    assert!(
        seen_ready_not_available,
        "the new pod was available before minReadySeconds"
    );
    let rs = json(s, &["get", "rs", "solo"]);
    assert_eq!(text(&rs, "/status/replicas"), "2");
    assert_eq!(text(&rs, "/status/fullyLabeledReplicas"), "2");
    assert_eq!(
        text(&rs, "/status/observedGeneration"),
        text(&rs, "/metadata/generation")
    );

    // A pod relabelled out of the selector is released and replaced.
    let (created, _) = solo_pods(s)
        .into_iter()
        .find(|(name, _)| name != "solo-orphan")
        .unwrap_or_default();
    s.kubectl(&["label", "pod", &created, "app=elsewhere", "--overwrite"]);
    wait_until(s, "the relabelled pod released and replaced", || {
        let released = s.jsonpath(&["pod", &created], "{.metadata.ownerReferences[*].uid}");
        released.is_empty() && solo_pods(s).len() == 2
    });
    assert!(solo_pods(s).iter().all(|(name, _)| *name != created));

    // Orphaned by a cascade=orphan delete, the pods are adopted again by a new set.
    s.kubectl(&["delete", "rs", "solo", "--cascade=orphan"]);
    wait_until(s, "the pods orphaned", || {
        let pods = solo_pods(s);
        pods.len() == 2 && pods.iter().all(|(_, owner)| owner.is_empty())
    });
    let orphans: BTreeSet<String> = solo_pods(s).into_iter().map(|(n, _)| n).collect();
    s.kubectl_stdin(&["apply", "-f", "-"], SOLO_RS);
    wait_until(s, "the same pods adopted", || {
        let pods = solo_pods(s);
        pods.iter().all(|(_, owner)| owner == "solo")
            && pods.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>() == orphans
    });

    // Scaled down, it deletes one pod (and says so); deleted, its pods go too.
    s.kubectl(&["scale", "rs", "solo", "--replicas=1"]);
    wait_until(s, "one pod left", || pod_count(s, "solo") == 1);
    let notes = event_notes(s, "solo");
    assert!(
        notes.iter().any(|n| n.starts_with("Deleted pod: ")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.starts_with("Created pod: solo-")),
        "{notes:?}"
    );
    s.kubectl(&["delete", "rs", "solo"]);
    wait_until(s, "the pods gone", || pod_count(s, "solo") == 0);
    s.kubectl(&["delete", "pod", &created]);
}

const STUCK: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 1
  progressDeadlineSeconds: 5
  selector:
    matchLabels:
      app: stuck
  template:
    metadata:
      labels:
        app: stuck
    spec:
      containers:
      - name: app
        image: 127.0.0.1:5000/no-such-app:v1
"#;

#[test]
fn a_rollout_without_progress_exceeds_its_deadline() {
    let Some(env) = PodEnv::start("deadline", &[]) else {
        return;
    };
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], STUCK);
    let condition = |t: &str, field: &str| {
        s.jsonpath(
            &["deploy", "stuck"],
            &format!("{{.status.conditions[?(@.type==\"{t}\")].{field}}}"),
        )
    };
    wait_until(s, "ProgressDeadlineExceeded", || {
        condition("Progressing", "reason") == "ProgressDeadlineExceeded"
    });
    assert_eq!(condition("Progressing", "status"), "False");
    let rs = text(&replica_sets(s, "stuck")[0], "/metadata/name");
    assert_eq!(
        condition("Progressing", "message"),
        format!("ReplicaSet \"{rs}\" has timed out progressing.")
    );
    assert_eq!(
        condition("Available", "reason"),
        "MinimumReplicasUnavailable"
    );
    let out = s.kubectl_output(
        &["rollout", "status", "deploy/stuck", "--timeout=60s"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
}

const CAREFUL: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: careful
spec:
  replicas: 4
  revisionHistoryLimit: 1
  selector:
    matchLabels:
      app: careful
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: careful
    spec:
      containers:
      - name: app
        image: 127.0.0.1:5000/pod-hello:v1
        ports:
        - containerPort: 8080
        env:
        - name: SPIN_VARIABLE_GREETING
          value: g0
"#;

/// Changes `app`'s greeting and waits for the rollout, checking at every look that no more
/// than `max_asked` replicas are asked for and no fewer than `min_ready` pods serve
/// (ready and not on their way out); returns the new pods.
fn roll_within(
    s: &Server,
    app: &str,
    replicas: usize,
    max_asked: i64,
    min_ready: usize,
    greeting: &str,
) -> Vec<Serving> {
    let target = format!("deploy/{app}");
    let env_var = format!("SPIN_VARIABLE_GREETING={greeting}");
    s.kubectl(&["set", "env", &target, &env_var]);
    let want = replicas.to_string();
    wait_or_show(
        &format!("{app} rolled out to {greeting}"),
        DEADLINE,
        || {
            let asked: i64 = replica_sets(s, app)
                .iter()
                .map(|rs| rs["spec"]["replicas"].as_i64().unwrap_or(0))
                .sum();
            assert!(
                asked <= max_asked,
                "{asked} replicas asked for\n{}",
                show(s)
            );
            let ready = serving(s, app);
            assert!(
                ready.len() >= min_ready,
                "only {} ready: {ready:?}\n{}",
                ready.len(),
                show(s)
            );
            let d = json(s, &["get", "deploy", app]);
            let done = text(&d, "/status/observedGeneration") == text(&d, "/metadata/generation")
                && text(&d, "/status/updatedReplicas") == want
                && text(&d, "/status/replicas") == want
                && text(&d, "/status/availableReplicas") == want;
            let new_hash = new_rs(s, app).map(|rs| text(&rs, "/metadata/labels/pod-template-hash"));
            (done
                && ready.len() == replicas
                && pod_count(s, app) == replicas
                && ready.iter().all(|p| Some(&p.hash) == new_hash.as_ref()))
            .then_some(ready)
        },
        || show(s),
    )
}

#[test]
fn a_rolling_update_stays_within_max_surge_and_max_unavailable_and_prunes_history() {
    let Some(env) = PodEnv::start("surge", &[]) else {
        return;
    };
    let s = &env.server;

    // maxSurge 1, maxUnavailable 0: at most 5 asked for, never fewer than 4 serving.
    s.kubectl_stdin(&["apply", "-f", "-"], CAREFUL);
    rollout_status(s, "careful");
    wait_serving(s, "careful", 4);
    for round in 1..=3 {
        let greeting = format!("g{round}");
        let pods = roll_within(s, "careful", 4, 5, 4, &greeting);
        assert_greeting(&env, &pods, &greeting);
    }
    rollout_status(s, "careful");
    // revisionHistoryLimit 1: the current set and one old one are left.
    wait_until(s, "old revisions pruned", || {
        replica_sets(s, "careful").len() == 2
    });
    assert_eq!(history(s, "careful"), vec![3, 4]);

    // The defaults, 25 % and 25 % of 12: surge 3 (rounded up), unavailable 3 (down).
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &deployment("wide", 12, "RollingUpdate", "w0"),
    );
    rollout_status(s, "wide");
    wait_serving(s, "wide", 12);
    let pods = roll_within(s, "wide", 12, 15, 9, "w1");
    assert_greeting(&env, &pods, "w1");
    let annotations = new_rs(s, "wide").map(|rs| rs["metadata"]["annotations"].clone());
    assert_eq!(
        annotations.map(|a| a["deployment.kubernetes.io/max-replicas"].clone()),
        Some(Value::from("15"))
    );
}

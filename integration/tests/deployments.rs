//! The Deployment and ReplicaSet controllers end to end: a real `spinlet server` (API
//! server, controllers, node agent), the real kubectl and its `rollout` commands, a real
//! registry holding the hello Spin app (pushed with `spinlet push`, a second time as
//! another tag), and real pod sandboxes serving inside a network namespace the test
//! creates (`common::pods::PodEnv`; where namespaces cannot be made, the tests skip).
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

    s.kubectl(&["delete", "deploy", "again"]);
    wait_until(s, "the replica sets and pods to be gone", || {
        replica_sets(s, "again").is_empty() && pod_count(s, "again") == 0
    });
}

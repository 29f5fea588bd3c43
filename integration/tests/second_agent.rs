//! Scale-out: a second node agent, started with `spinlet agent` in its own network
//! namespace, joins a running server over a veth link the test makes between two
//! namespaces it creates. The second node registers and turns Ready, the scheduler
//! places a pod on it, it serves there, and `kubectl logs` reaches its kubelet API
//! through the API server. Nothing leaves the two namespaces.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::pods::{hello_app, pod_field, registry, state, wait_or_show, Killed, Netns, PodEnv};
use common::spinlet_bin;

const SERVER_IP: &str = "10.99.0.1";
const AGENT_IP: &str = "10.99.0.2";
const AGENT_NODE: &str = "agent-2";

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: far
spec:
  nodeSelector:
    kubernetes.io/hostname: agent-2
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - containerPort: 8080
"#;

fn ok(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_second_agent_in_its_own_namespace_joins_and_runs_a_pod() {
    let Some(env) = PodEnv::start(
        "server-ns",
        &["--bind-address", "0.0.0.0", "--tls-san", SERVER_IP],
    ) else {
        return;
    };
    let s = &env.server;
    let Some(far) = Netns::create("agent-ns") else {
        return;
    };
    // The link: 10.99.0.1 in the server's namespace, 10.99.0.2 in the agent's.
    let (a, b) = (&env.ns, &far);
    ok(
        a.run(
            "ip",
            &[
                "link", "add", "sl-a", "type", "veth", "peer", "name", "sl-b", "netns", &b.0,
            ],
        ),
        "veth pair",
    );
    ok(
        a.run("ip", &["addr", "add", "10.99.0.1/24", "dev", "sl-a"]),
        "address a",
    );
    ok(a.run("ip", &["link", "set", "sl-a", "up"]), "link a up");
    ok(
        b.run("ip", &["addr", "add", "10.99.0.2/24", "dev", "sl-b"]),
        "address b",
    );
    ok(b.run("ip", &["link", "set", "sl-b", "up"]), "link b up");

    // The agent's node pulls from its own registry (its 127.0.0.1 is its own).
    let scratch = tempfile::tempdir().expect("scratch");
    let _registry = registry(b, &scratch.path().join("registry"));
    let app = hello_app(scratch.path());
    ok(
        b.cmd(&spinlet_bin().to_string_lossy())
            .arg("push")
            .arg(&app)
            .arg("127.0.0.1:5000/pod-hello:v1")
            .output()
            .expect("push"),
        "push to the agent's registry",
    );

    let server_dir = s.data_dir.join("server");
    let log = std::fs::File::create(scratch.path().join("agent.log")).expect("agent log");
    let agent = b
        .cmd(&spinlet_bin().to_string_lossy())
        .arg("agent")
        .arg("--server")
        .arg(format!("https://{SERVER_IP}:{}", s.port))
        .arg("--token-file")
        .arg(server_dir.join("token"))
        .arg("--ca-file")
        .arg(server_dir.join("tls/server-ca.crt"))
        .arg("--data-dir")
        .arg(scratch.path().join("agent-data"))
        .arg("--pod-log-dir")
        .arg(scratch.path().join("agent-logs"))
        .args(["--node-name", AGENT_NODE, "--node-ip", AGENT_IP])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn spinlet agent");
    let agent = Killed(agent);
    let agent_log =
        || std::fs::read_to_string(scratch.path().join("agent.log")).unwrap_or_default();

    wait_or_show(
        "the second node to be Ready",
        Duration::from_secs(90),
        || {
            let out = s.kubectl_output(
                &[
                    "get",
                    "node",
                    AGENT_NODE,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
                None,
            );
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        },
        || format!("{}\nagent log:\n{}", state(s), agent_log()),
    );
    let nodes = s.kubectl(&["get", "nodes", "-o", "name"]);
    assert!(
        nodes.contains("node/spinlet-test") && nodes.contains("node/agent-2"),
        "{nodes}"
    );
    let address = s.jsonpath(
        &["node", AGENT_NODE],
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    assert_eq!(address, AGENT_IP);
    let cidr = s.jsonpath(&["node", AGENT_NODE], "{.spec.podCIDR}");
    let first = s.jsonpath(&["node", "spinlet-test"], "{.spec.podCIDR}");
    assert_ne!(cidr, first, "each node has its own pod range");

    // The scheduler places the pod on the second node, whose agent runs it.
    s.kubectl_stdin(&["apply", "-f", "-"], POD);
    let ip = wait_or_show(
        "the pod to run on the second node",
        Duration::from_secs(180),
        || {
            (pod_field(s, "far", "{.status.phase}") == "Running"
                && pod_field(s, "far", "{.status.containerStatuses[0].ready}") == "true")
                .then(|| pod_field(s, "far", "{.status.podIP}"))
        },
        || format!("{}\nagent log:\n{}", state(s), agent_log()),
    );
    assert_eq!(pod_field(s, "far", "{.spec.nodeName}"), AGENT_NODE);
    assert_eq!(pod_field(s, "far", "{.status.hostIP}"), AGENT_IP);
    let prefix = cidr.trim_end_matches("0/24");
    assert!(
        ip.starts_with(prefix),
        "pod IP {ip} from the node's range {cidr}"
    );
    let (code, body) = b.curl(&format!("http://{ip}:8080/?op=print&text=from-afar"));
    assert_eq!((code, body.as_str()), (200, "printed"));

    // kubectl logs goes through the API server to the second node's kubelet API.
    let logs = wait_or_show(
        "kubectl logs from the second node",
        Duration::from_secs(60),
        || {
            let out = s.kubectl_output(&["logs", "far"], None);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("from-afar").then_some(text)
        },
        || format!("{}\nagent log:\n{}", state(s), agent_log()),
    );
    assert!(logs.contains("from-afar"), "{logs}");

    // Deleting the pod ends its sandbox on the second node before the agent goes.
    s.kubectl(&["delete", "pod", "far", "--timeout=90s"]);
    drop(agent);
}

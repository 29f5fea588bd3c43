//! Selective deployment through the node agent: a container's
//! `SPIN_COMPONENTS_TO_RETAIN` (what spin-operator sets from a SpinApp's `components`)
//! picks the components the sandbox runs, as containerd-shim-spin does; an id the app
//! does not have fails the container with Spin's message. In a network namespace the
//! test creates (see `common::pods`).

mod common;

use std::time::Duration;

use common::pods::{pod_field, state, wait_or_show, PodEnv};

fn pod(name: &str, components: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - containerPort: 8080
    env:
    - name: SPIN_COMPONENTS_TO_RETAIN
      value: "{components}"
"#
    )
}

#[test]
fn components_to_retain_pick_what_the_sandbox_runs() {
    let Some(env) = PodEnv::start("selective", &[]) else {
        return;
    };
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("retained", "hello"));
    let ip = env.wait_running("retained");
    let (code, _) = env.ns.curl(&format!("http://{ip}:8080/?op=print&text=x"));
    assert_eq!(code, 200);

    s.kubectl_stdin(&["apply", "-f", "-"], &pod("unknown", "nope"));
    let message = wait_or_show(
        "the container to fail naming the component",
        Duration::from_secs(120),
        || {
            let m = pod_field(
                s,
                "unknown",
                "{.status.containerStatuses[0].state.terminated.message}",
            );
            (!m.is_empty()).then_some(m)
        },
        || state(s),
    );
    assert!(
        message.contains("specified component \"nope\" not found in application"),
        "{message}"
    );
    assert_eq!(pod_field(s, "unknown", "{.status.phase}"), "Failed");
}

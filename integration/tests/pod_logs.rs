//! Container logs end to end: the node agent's kubelet API reads the CRI files the
//! sandbox writes, and the API server proxies `pods/log` to it over TLS with its
//! kubelet-client certificate. Driven with the real kubectl (`logs`, `--tail`,
//! `--timestamps`, `-f`, `--previous`, bad input) and kube-rs (`Api::<Pod>::logs`), in a
//! network namespace the test creates (see `common::pods`); skipped where it cannot.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pods::{pod_field, state, wait_or_show, Killed, PodEnv};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels:
    app: hello
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - containerPort: 8080
"#;

const UNBOUND: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: unbound
spec:
  nodeSelector:
    no-such-label: "true"
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
"#;

fn print(env: &PodEnv, ip: &str, text: &str) {
    let (code, body) = env
        .ns
        .curl(&format!("http://{ip}:8080/?op=print&text={text}"));
    assert_eq!((code, body.as_str()), (200, "printed"), "printing {text}");
}

/// `kubectl logs <args…>` until its output satisfies `check`.
fn logs_until(env: &PodEnv, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
    let s = &env.server;
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    wait_or_show(
        what,
        Duration::from_secs(60),
        || {
            let out = s.kubectl_output(&all, None);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success() && check(&text)).then_some(text)
        },
        || {
            let out = s.kubectl_output(&all, None);
            format!(
                "last: {}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                state(s)
            )
        },
    )
}

#[test]
fn kubectl_logs_reads_the_pod_log_through_the_kubelet_api() {
    let Some(env) = PodEnv::start("logs", &["--kubelet-port", "0"]) else {
        return;
    };
    let s = &env.server;

    // The Node advertises the port the kubelet API bound (any free one here).
    let port = wait_or_show(
        "the node's kubelet port",
        Duration::from_secs(60),
        || {
            s.kubectl_output(
                &[
                    "get",
                    "node",
                    "spinlet-test",
                    "-o",
                    "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
                ],
                None,
            )
            .stdout
            .iter()
            .map(|b| *b as char)
            .collect::<String>()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0 && *p != 10250)
        },
        || state(s),
    );
    let node_ip = s.jsonpath(
        &["node", "spinlet-test"],
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    // Without a client certificate from the cluster CA the kubelet API answers 401.
    let (code, _) = env.ns.curl_with(
        &["-k", "-m", "20"],
        &format!("https://{node_ip}:{port}/pods"),
    );
    assert_eq!(code, 401, "kubelet API without a client certificate");
    // Through the API server's node proxy (its kubelet-client certificate) it answers.
    assert_eq!(
        s.kubectl(&["get", "--raw", "/api/v1/nodes/spinlet-test/proxy/healthz"]),
        "ok"
    );

    // A pod that is not bound has no logs yet: 400 as kube-apiserver says it.
    s.kubectl_stdin(&["apply", "-f", "-"], UNBOUND);
    let err = s.kubectl_fails(&["logs", "unbound"], None);
    assert!(
        err.contains("pod unbound does not have a host assigned"),
        "{err}"
    );

    s.kubectl_stdin(&["apply", "-f", "-"], POD);
    let ip = env.wait_running("hello");
    print(&env, &ip, "line-one");
    print(&env, &ip, "line-two");

    // kubectl logs: the printed lines, CRI prefix stripped.
    let all = logs_until(&env, &["hello"], "both lines in kubectl logs", |t| {
        t.contains("line-one\n") && t.contains("line-two\n")
    });
    assert!(
        all.lines().any(|l| l == "line-one"),
        "a bare line (no CRI prefix):\n{all}"
    );
    assert!(all.contains("to stderr: line-two"), "stderr too:\n{all}");

    // --tail=1: one line, the last one written.
    let tail = s.kubectl(&["logs", "hello", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.contains("line-two"), "{tail}");

    // --timestamps: each line starts with its RFC 3339 time.
    let stamped = s.kubectl(&["logs", "hello", "--timestamps", "--tail=2"]);
    assert_eq!(stamped.lines().count(), 2, "{stamped}");
    for line in stamped.lines() {
        let (time, text) = line.split_once(' ').expect("time and text");
        assert!(
            time.len() >= 20
                && time.as_bytes()[4] == b'-'
                && time.contains('T')
                && time.ends_with('Z'),
            "{line}"
        );
        assert!(text.contains("line-two"), "{line}");
    }

    // -l (a label selector), --since and --limit-bytes.
    let selected = s.kubectl(&["logs", "-l", "app=hello"]);
    assert!(selected.contains("line-two"), "{selected}");
    let since = s.kubectl(&["logs", "hello", "--since=1h"]);
    assert!(since.contains("line-one\n"), "{since}");
    let limited = s.kubectl(&["logs", "hello", "--limit-bytes=5"]);
    assert_eq!(limited.len(), 5, "{limited:?}");
    assert!(
        all.starts_with(&limited),
        "{limited:?} is the start of {all:?}"
    );

    // -c with a container the pod does not have: 400 naming it.
    let err = s.kubectl_fails(&["logs", "hello", "-c", "nope"], None);
    assert!(
        err.contains("container nope is not valid for pod hello"),
        "{err}"
    );
    // Bad options: kube-apiserver's codes, messages naming field and value.
    let err = s.kubectl_fails(
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/hello/log?tailLines=abc",
        ],
        None,
    );
    assert!(err.contains("tailLines") && err.contains("abc"), "{err}");
    assert!(err.contains("BadRequest"), "{err}");
    let err = s.kubectl_fails(
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/hello/log?tailLines=-3",
        ],
        None,
    );
    assert!(
        err.contains("tailLines: Invalid value: -3: must be greater than or equal to 0"),
        "{err}"
    );
    let err = s.kubectl_fails(
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/hello/log?limitBytes=0",
        ],
        None,
    );
    assert!(err.contains("limitBytes: Invalid value: 0"), "{err}");
    let err = s.kubectl_fails(&["logs", "no-such-pod"], None);
    assert!(err.contains("pods \"no-such-pod\" not found"), "{err}");

    // kubectl logs -f sees a line printed after it started.
    let mut follow = s.kubectl_cmd();
    follow
        .args(["logs", "-f", "hello", "--tail=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Killed(follow.spawn().expect("kubectl logs -f"));
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Give the follow time to be established, then print until it shows (a print
    // before the follow started would not count, so keep printing new markers).
    let start = Instant::now();
    let mut seen = None;
    let mut n = 0;
    while seen.is_none() && start.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(500));
        n += 1;
        let marker = format!("followed-{n}");
        print(&env, &ip, &marker);
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.starts_with("followed-") {
                seen = Some(line);
                break;
            }
        }
    }
    let seen =
        seen.unwrap_or_else(|| panic!("kubectl logs -f never showed a new line\n{}", state(s)));
    assert!(seen.starts_with("followed-"), "{seen}");
    // Once kubectl goes away, the relay and the kubelet's follow let go of the
    // connection to the kubelet.
    let kubelet_conns = || {
        let out = env.ns.run(
            "ss",
            &[
                "-tnH",
                "state",
                "established",
                &format!("( sport = :{port} )"),
            ],
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert!(kubelet_conns() >= 1, "the follow's kubelet connection");
    drop(child);
    wait_or_show(
        "the follow's kubelet connection to close",
        Duration::from_secs(60),
        || (kubelet_conns() == 0).then_some(()),
        || format!("{} connections", kubelet_conns()),
    );

    // kube-rs: Api::<Pod>::logs with tail_lines.
    let got = env.in_netns(|client| {
        Box::pin(async move {
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client, "default");
            pods.logs(
                "hello",
                &kube::api::LogParams {
                    tail_lines: Some(50),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())
        })
    });
    let got = got.expect("kube-rs logs");
    assert!(got.contains("line-one\n"), "{got}");

    // --previous after the sandbox is killed: the earlier run's lines; the new run's
    // log has only what it printed.
    let uid = pod_field(s, "hello", "{.metadata.uid}");
    let err = s.kubectl_fails(&["logs", "hello", "--previous"], None);
    assert!(
        err.contains("previous terminated container \"app\" in pod \"hello\" not found"),
        "{err}"
    );
    env.kill_sandbox(&uid);
    env.wait_restarted("hello", 1);
    print(&env, &ip, "after-restart");
    let now = logs_until(&env, &["hello"], "the new run's line", |t| {
        t.contains("after-restart\n")
    });
    assert!(!now.contains("line-one"), "the current run only:\n{now}");
    let previous = s.kubectl(&["logs", "hello", "--previous"]);
    assert!(previous.contains("line-one\n"), "{previous}");
    assert!(!previous.contains("after-restart"), "{previous}");

    // nodes/proxy/stats/summary: the node's and the pod's figures from /proc.
    let summary: serde_json::Value = serde_json::from_str(&s.kubectl(&[
        "get",
        "--raw",
        "/api/v1/nodes/spinlet-test/proxy/stats/summary",
    ]))
    .expect("summary JSON");
    assert_eq!(summary["node"]["nodeName"], "spinlet-test");
    assert!(
        summary["node"]["memory"]["availableBytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    let pod = summary["pods"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["podRef"]["name"] == "hello"))
        .unwrap_or_else(|| panic!("hello in {summary}"));
    assert!(
        pod["memory"]["workingSetBytes"].as_u64().unwrap_or(0) > 0,
        "{pod}"
    );
    // …and as metrics-server scrapes them.
    let metrics = s.kubectl(&[
        "get",
        "--raw",
        "/api/v1/nodes/spinlet-test/proxy/metrics/resource",
    ]);
    assert!(
        metrics.contains("pod_memory_working_set_bytes{namespace=\"default\",pod=\"hello\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nnode_cpu_usage_seconds_total "),
        "{metrics}"
    );

    // A follow ends when its pod is deleted.
    let mut follow = s.kubectl_cmd();
    follow
        .args(["logs", "-f", "hello", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Killed(follow.spawn().expect("kubectl logs -f"));
    let out = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the follow's first line");
    assert!(first.contains("after-restart"), "{first}");
    s.kubectl(&["delete", "pod", "hello", "--wait=false"]);
    wait_or_show(
        "kubectl logs -f to end with its pod",
        Duration::from_secs(120),
        || child.0.try_wait().ok().flatten().map(|_| ()),
        || state(s),
    );
}

#[test]
fn full_log_files_are_rotated_and_kubectl_logs_reads_the_current_one() {
    let Some(env) = PodEnv::start(
        "logrotate",
        &[
            "--container-log-max-size",
            "1Ki",
            "--container-log-max-files",
            "3",
        ],
    ) else {
        return;
    };
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], POD);
    let ip = env.wait_running("hello");
    let uid = pod_field(s, "hello", "{.metadata.uid}");
    // Each record is about 80 bytes: 60 of them fill the 1 KiB file several times over.
    let text = "x".repeat(40);
    for i in 0..60 {
        print(&env, &ip, &format!("{i:03}-{text}"));
    }
    print(&env, &ip, "the-last-line");
    let dir = env.pod_logs.join(format!("default_hello_{uid}/app"));
    let files = wait_or_show(
        "the log to be rotated down to three files",
        Duration::from_secs(60),
        || {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .ok()?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            (names.len() == 3).then_some(names)
        },
        || format!("{:?}", std::fs::read_dir(&dir).map(|d| d.count())),
    );
    assert_eq!(files[0], "0.log", "{files:?}");
    assert!(
        files[1..].iter().all(|f| f.starts_with("0.log.")),
        "rotated files are named <n>.log.<time>: {files:?}"
    );
    for f in &files {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len <= 1024, "{f}: {len} bytes");
    }
    // kubectl logs shows the current file, which ends with the last line.
    let out = logs_until(&env, &["hello"], "the last line in kubectl logs", |o| {
        o.contains("the-last-line")
    });
    assert!(
        !out.contains("000-"),
        "the first lines were rotated away: {out}"
    );
}

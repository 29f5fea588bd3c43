//! `kubectl port-forward` end to end: the API server relays the upgrade to the pod's
//! kubelet, which forwards each connection to `<podIP>:<containerPort>` where the
//! pod's Spin app serves. Driven with the real kubectl — WebSocket tunnel first (its
//! default), and pure SPDY (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`) — for a pod and a
//! Service, and with kube-rs's `Api::<Pod>::portforward` (WebSocket channels), in a
//! network namespace the test creates (see `common::pods`); skipped where it cannot.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::pods::{state, wait_or_show, Killed, PodEnv};

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
    env:
    - name: SPIN_VARIABLE_GREETING
      value: through-the-forward
    volumeMounts:
    - {name: big, mountPath: /big, readOnly: true}
  volumes:
  - name: big
    hostPath:
      path: BIG_DIR
      type: Directory
"#;

const PENDING: &str = r#"
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

const NOT_RUNNING: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: not-running
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: 127.0.0.1:5000/no-such-app:v1
"#;

/// The app's answer to the forwarded request.
const GREETING: &str = "through-the-forward";

/// A running `kubectl port-forward`, its stderr kept for failure messages.
struct Forward {
    _child: Killed,
    stderr: mpsc::Receiver<String>,
}

impl Forward {
    /// Whatever kubectl wrote to stderr so far.
    fn stderr(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// kubectl's stderr a moment after a failure (it logs asynchronously).
    fn stderr_later(&self) -> String {
        std::thread::sleep(Duration::from_secs(2));
        self.stderr()
    }
}

/// Starts `kubectl port-forward <args…>` (with `envs`) in the namespace and waits until
/// it says it listens on `local`.
fn port_forward(env: &PodEnv, args: &[&str], envs: &[(&str, &str)], local: u16) -> Forward {
    let mut cmd: Command = env.server.kubectl_cmd();
    cmd.arg("port-forward").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl port-forward");
    let (out_tx, out_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        // Read to the end: a closed pipe would kill kubectl ("Handling connection…").
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let (err_tx, err_rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let forward = Forward {
        _child: Killed(child),
        stderr: err_rx,
    };
    let want = format!("Forwarding from 127.0.0.1:{local}");
    let mut seen = Vec::new();
    loop {
        match out_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with(&want) => return forward,
            Ok(line) => seen.push(line),
            Err(e) => panic!(
                "kubectl port-forward {args:?} did not start ({e}); stdout: {seen:?}\nstderr: {}\n{}",
                forward.stderr(),
                state(&env.server)
            ),
        }
    }
}

/// A 2 MiB file the pod serves (`?op=read`): large transfers cross many frames.
fn big_file() -> String {
    (0..100_000).map(|i| format!("line {i:014}\n")).collect()
}

/// 20 requests one after another, then 8 at once, then a 2 MiB download, through
/// `local`: each gets the app's answer.
fn requests_through(env: &PodEnv, forward: &Forward, local: u16) {
    let url = format!("http://127.0.0.1:{local}/?op=var&name=greeting");
    for i in 0..20 {
        let (code, body) = env.ns.curl_with(&["-m", "60"], &url);
        assert_eq!(
            (code, body.as_str()),
            (200, GREETING),
            "request {i} through 127.0.0.1:{local}; kubectl: {}\n{}",
            forward.stderr_later(),
            env.server.log()
        );
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| env.ns.curl_with(&["-m", "60"], &url)))
            .collect();
        for h in handles {
            let (code, body) = h.join().expect("curl thread");
            assert_eq!(
                (code, body.as_str()),
                (200, GREETING),
                "concurrent request; kubectl: {}",
                forward.stderr_later()
            );
        }
    });
    let (code, body) = env.ns.curl_with(
        &["-m", "120"],
        &format!("http://127.0.0.1:{local}/?op=read&path=/big/big.txt"),
    );
    assert_eq!(code, 200, "kubectl: {}", forward.stderr_later());
    assert!(
        body == big_file(),
        "{} bytes of {}",
        body.len(),
        big_file().len()
    );
}

/// Runs `f` on a thread inside the test's network namespace.
fn netns_thread<T: Send + 'static>(
    env: &PodEnv,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns_path = format!("/run/netns/{}", env.ns.0);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&ns_path).expect("open the netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// 2 MiB up through `local` to an echo server on `<pod_ip>:<port>` (a port the pod
/// does not declare, served by another process: it connects, as upstream), and back.
fn echo_through(env: &PodEnv, pod_ip: &str, port: u16, local: u16) {
    use std::io::{Read, Write};
    let listener = netns_thread(env, {
        let addr = format!("{pod_ip}:{port}");
        move || std::net::TcpListener::bind(addr).expect("bind the echo server")
    })
    .join()
    .expect("bind thread");
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let mut reader = conn.try_clone().expect("clone");
        let mut writer = conn;
        std::io::copy(&mut reader, &mut writer).expect("echo");
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let payload: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let sent = payload.clone();
    let echoed = netns_thread(env, move || {
        let conn = std::net::TcpStream::connect(("127.0.0.1", local)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut writer = conn.try_clone().expect("clone");
        let upload = std::thread::spawn(move || {
            writer.write_all(&sent).expect("upload");
            writer
                .shutdown(std::net::Shutdown::Write)
                .expect("half-close");
        });
        let mut echoed = Vec::new();
        let mut reader = conn;
        reader.read_to_end(&mut echoed).expect("read the echo");
        upload.join().expect("upload thread");
        echoed
    })
    .join()
    .expect("client thread");
    server.join().expect("echo server");
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the echo differs");
}

/// kube-rs: one HTTP request over `Api::<Pod>::portforward`'s stream.
async fn kube_rs_request(client: kube::Client) -> (u16, String) {
    use http_body_util::{BodyExt, Empty};
    use k8s_openapi::api::core::v1::Pod;

    let pods: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    let mut pf = pods
        .portforward("hello", &[8080])
        .await
        .expect("portforward");
    let stream = pf.take_stream(8080).expect("the port's stream");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("HTTP over the forward");
    let conn = tokio::spawn(conn);
    let req = http::Request::get("/?op=var&name=greeting")
        .header("host", "127.0.0.1")
        .body(Empty::<hyper::body::Bytes>::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
        .await
        .expect("an answer in time")
        .expect("response");
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    drop(sender);
    let _ = conn.await;
    let _ = tokio::time::timeout(Duration::from_secs(30), pf.join()).await;
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// A WebSocket port-forward opened on the kubelet through `nodes/{name}/proxy` (the
/// API server passes any upgrade through): an HTTP exchange on data channel 0.
async fn node_proxy_request(client: kube::Client) -> String {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let req =
        http::Request::get("/api/v1/nodes/spinlet-test/proxy/portForward/default/hello?port=8080")
            .body(Vec::new())
            .expect("request");
    let mut ws = client
        .connect(req)
        .await
        .expect("an upgrade through nodes/proxy")
        .into_stream();
    ws.send(Message::binary(
        &b"\0GET /?op=var&name=greeting HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n"[..],
    ))
    .await
    .expect("send");
    let mut data = Vec::new();
    let mut announced = 0;
    while !String::from_utf8_lossy(&data).contains(GREETING) {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
            // The first message on each channel is its port.
            Ok(Some(Ok(Message::Binary(b)))) if announced < 2 && b.len() == 3 => {
                assert_eq!(u16::from_le_bytes([b[1], b[2]]), 8080);
                announced += 1;
            }
            Ok(Some(Ok(Message::Binary(b)))) if b.first() == Some(&0) => {
                data.extend_from_slice(&b[1..])
            }
            other => panic!(
                "unexpected {other:?} after {:?}",
                String::from_utf8_lossy(&data)
            ),
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

#[test]
fn kubectl_and_kube_rs_forward_ports_to_a_pod_through_its_kubelet() {
    let Some(env) = PodEnv::start("portfwd", &[]) else {
        return;
    };
    let s = &env.server;
    let big = env.scratch.path().join("big");
    std::fs::create_dir_all(&big).expect("big dir");
    std::fs::write(big.join("big.txt"), big_file()).expect("big file");
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &POD.replace("BIG_DIR", &big.to_string_lossy()),
    );
    let pod_ip = env.wait_running("hello");

    // Discovery lists the subresource.
    let resources = s.kubectl(&["get", "--raw", "/api/v1"]);
    assert!(resources.contains("\"pods/portforward\""), "{resources}");

    // Pure SPDY (kubectl's fallback, and what kube-apiserver speaks to a kubelet).
    let spdy = port_forward(
        &env,
        &["pod/hello", "18083:8080"],
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
        18083,
    );
    requests_through(&env, &spdy, 18083);
    drop(spdy);

    // kubectl's default: the WebSocket tunnel, which must not fall back.
    let ws = port_forward(&env, &["-v=4", "pod/hello", "18084:8080"], &[], 18084);
    requests_through(&env, &ws, 18084);
    let log = ws.stderr();
    assert!(!log.contains("fallback to secondary dialer"), "{log}");
    drop(ws);

    // Uploads cross many frames too, over either protocol, to any port that listens.
    for (mode, local) in [("false", 18090), ("true", 18091)] {
        let fwd = port_forward(
            &env,
            &["pod/hello", &format!("{local}:9000")],
            &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", mode)],
            local,
        );
        echo_through(&env, &pod_ip, 9000, local);
        drop(fwd);
    }

    // A Service selecting the pod: kubectl resolves it to the pod and its targetPort.
    s.kubectl(&["create", "service", "clusterip", "hello", "--tcp=80:8080"]);
    let svc = port_forward(&env, &["svc/hello", "18085:80"], &[], 18085);
    requests_through(&env, &svc, 18085);
    drop(svc);

    // kube-rs's WebSocket channels.
    let (code, body) = env.in_netns(|client| Box::pin(kube_rs_request(client)));
    assert_eq!((code, body.as_str()), (200, GREETING));

    // Any upgrade passes through nodes/{name}/proxy to the kubelet.
    let answer = env.in_netns(|client| Box::pin(node_proxy_request(client)));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Nothing listens on the port: kubectl reports the kubelet's error.
    let refused = port_forward(
        &env,
        &["pod/hello", "18086:9999"],
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
        18086,
    );
    let (code, _) = env.ns.curl_with(&["-m", "30"], "http://127.0.0.1:18086/");
    assert_ne!(code, 200);
    let err = wait_or_show(
        "kubectl to report the refused connection",
        Duration::from_secs(60),
        || {
            let e = refused.stderr();
            (e.contains("an error occurred forwarding 18086 -> 9999")
                && e.contains("connection refused"))
            .then_some(e)
        },
        || refused.stderr(),
    );
    assert!(err.contains("error forwarding port 9999"), "{err}");
    drop(refused);

    // A missing pod: kubectl's NotFound.
    let out = s.kubectl_output(&["port-forward", "pod/nope", "18087:8080"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );

    // The subresource itself, without an upgrade: 404 for a missing pod, 400 for a pod
    // that is not running, a bad port, or no upgrade.
    let raw = |path: &str| {
        let out = s.kubectl_output(&["get", "--raw", path], None);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let base = "/api/v1/namespaces/default/pods";
    assert!(
        raw(&format!("{base}/nope/portforward")).contains("NotFound"),
        "missing pod"
    );
    s.kubectl_stdin(&["apply", "-f", "-"], PENDING);
    let e = raw(&format!("{base}/unbound/portforward"));
    assert!(e.contains("does not have a host assigned"), "{e}");
    s.kubectl_stdin(&["apply", "-f", "-"], NOT_RUNNING);
    let e = raw(&format!("{base}/not-running/portforward"));
    assert!(
        e.contains("unable to forward port because pod is not running. Current status=Pending"),
        "{e}"
    );
    let e = raw(&format!("{base}/hello/portforward?ports=http"));
    assert!(e.contains("cannot convert to []int32"), "{e}");
    let e = raw(&format!("{base}/hello/portforward?ports=8080"));
    assert!(e.contains("Upgrade request required"), "{e}");
}

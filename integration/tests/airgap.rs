//! Air-gapped images end to end: the hello app built from source and written to a
//! zstd-compressed OCI image-layout archive with `spinlet save --app`, dropped in the
//! `<data-dir>/agent/images/` of a real `spinlet server` in a network namespace with no
//! registry (the image names ghcr.io, which nothing in the namespace reaches); a pod with
//! that image and `imagePullPolicy: IfNotPresent` runs and answers 200. A broken archive
//! next to it is reported as a Warning Event on the Node naming the file, and the agent
//! keeps going; the pod's sandbox finds the image's code compiled. After a restart with
//! the image cache wiped, the archive is imported again at start, and a `Never` pod runs
//! from it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pods::{hello_app, state, wait_or_show, PodEnv};
use common::spinlet_bin;

/// The image the archive names: on a registry the test's namespace cannot reach.
const IMAGE: &str = "ghcr.io/spinlet-test/airgap-hello:v1";

fn pod(name: &str, policy: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: {policy}
    ports:
    - containerPort: 8080
    env:
    - name: SPIN_VARIABLE_GREETING
      value: hello-offline
"#
    )
}

/// Runs `spinlet save` and returns its stdout.
fn save(args: &[&str], app: &Path, output: &Path) -> String {
    let out = std::process::Command::new(spinlet_bin())
        .arg("save")
        .args(args)
        .arg("--app")
        .arg(app)
        .arg("-o")
        .arg(output)
        .output()
        .expect("run spinlet save");
    assert!(
        out.status.success(),
        "spinlet save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_pod_runs_from_an_image_archive_with_no_registry() {
    let Some(env) = PodEnv::start_offline("airgap", &[]) else {
        return;
    };
    let s = &env.server;
    let app = hello_app(env.scratch.path());
    let archive = env.scratch.path().join("hello.tar.zst");
    let saved = save(&[IMAGE], &app, &archive);
    assert!(saved.contains(IMAGE), "{saved}");

    // No registry: the name does not resolve or route inside the namespace.
    let (code, _) = env.ns.curl_with(&["-m", "5"], "https://ghcr.io/v2/");
    assert_eq!(
        code, 0,
        "ghcr.io must be unreachable from the test's namespace"
    );

    // Dropped in while the server runs: the agent's poll imports it.
    let images = s.data_dir.join("agent/images");
    std::fs::create_dir_all(&images).expect("images dir");
    std::fs::write(images.join("broken.tar.gz"), b"\x1f\x8b this is not gzip").expect("write");
    std::fs::copy(&archive, images.join("hello.tar.zst")).expect("copy the archive");

    s.kubectl_stdin(&["apply", "-f", "-"], &pod("offline", "IfNotPresent"));
    let ip = env.wait_running("offline");
    let (code, body) = env
        .ns
        .curl(&format!("http://{ip}:8080/?op=var&name=greeting"));
    assert_eq!((code, body.as_str()), (200, "hello-offline"));
    let image_id = s.jsonpath(
        &["pod", "offline"],
        "{.status.containerStatuses[0].imageID}",
    );
    assert!(
        image_id.starts_with("ghcr.io/spinlet-test/airgap-hello@sha256:"),
        "{image_id}"
    );
    // Its code was compiled by the agent (at import, or before the sandbox started): the
    // sandbox mapped every Wasm file from the cache.
    let uid = s.jsonpath(&["pod", "offline"], "{.metadata.uid}");
    let stats_file = s
        .data_dir
        .join(format!("agent/sandboxes/{uid}/load-stats.json"));
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_file).expect("load stats")).expect("JSON");
    assert!(stats["wasm_files"].as_u64() >= Some(1), "{stats}");
    assert_eq!(stats["from_cache"], stats["wasm_files"], "{stats}");

    // The broken archive: a Warning on the Node naming the file; the agent goes on.
    let node_events = || {
        s.kubectl(&[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            "involvedObject.kind=Node",
            "-o",
            "jsonpath={range .items[*]}{.type} {.reason}: {.message}{\"\\n\"}{end}",
        ])
    };
    let events = wait_or_show(
        "the import events",
        Duration::from_secs(60),
        || {
            let events = node_events();
            (events.contains("FailedImageImport") && events.contains("ImageImported"))
                .then_some(events)
        },
        || state(s),
    );
    let failed = events
        .lines()
        .find(|l| l.contains("FailedImageImport"))
        .unwrap_or_default();
    assert!(
        failed.starts_with("Warning") && failed.contains("broken.tar.gz"),
        "{events}"
    );
    let imported = events
        .lines()
        .find(|l| l.contains("ImageImported"))
        .unwrap_or_default();
    assert!(
        imported.starts_with("Normal") && imported.contains(IMAGE),
        "{events}"
    );

    // A restart with the image cache gone: the archive is imported again at start,
    // before pods look for their images, so a `Never` pod runs from it.
    let mut env = env;
    env.server.kill();
    let registry_cache = env.server.data_dir.join("agent/cache/registry");
    std::fs::remove_dir_all(&registry_cache).expect("wipe the registry cache");
    env.server.boot();
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("never", "Never"));
    let ip = env.wait_running("never");
    let (code, body) = env
        .ns
        .curl(&format!("http://{ip}:8080/?op=var&name=greeting"));
    assert_eq!((code, body.as_str()), (200, "hello-offline"));
    // Once per start: the first one's poll, the restart's import at start.
    let log = s.log();
    assert_eq!(log.matches("imported air-gap image").count(), 2, "{log}");
}

#[test]
fn save_pulls_from_a_registry_what_push_uploaded() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: the registry runs in a network namespace (needs root)");
        return;
    }
    let Some(ns) = common::pods::Netns::create("airgap-save") else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let _registry = common::pods::registry(&ns, scratch.path());
    let app = hello_app(scratch.path());
    let image = "127.0.0.1:5000/saved-hello:v1";
    let bin = spinlet_bin().to_string_lossy().into_owned();
    let push = ns.cmd(&bin).arg("push").arg(&app).arg(image).output();
    let push = push.expect("spinlet push");
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let pushed = String::from_utf8_lossy(&push.stdout).into_owned();
    let digest = pushed
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");

    // From the registry, gzip-compressed: the same manifest the push uploaded.
    let from_registry = scratch.path().join("pulled.tar.gz");
    let out = ns
        .cmd(&bin)
        .args(["save", image, "-o"])
        .arg(&from_registry)
        .output()
        .expect("spinlet save");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(saved.contains(&digest), "{saved} (pushed {digest})");
    let magic = std::fs::read(&from_registry).expect("the archive");
    assert_eq!(&magic[..2], b"\x1f\x8b", "gzip");

    // Built locally, plain tar: the same artifact, byte for byte.
    let built = scratch.path().join("built.tar");
    let saved = save(&[image], &app, &built);
    assert!(saved.contains(&digest), "{saved} (pushed {digest})");
    let listing = std::process::Command::new("tar")
        .arg("tf")
        .arg(&built)
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let hex = digest.trim_start_matches("sha256:");
    for entry in ["oci-layout", "index.json", &format!("blobs/sha256/{hex}")] {
        assert!(listing.lines().any(|l| l == entry), "{entry} in\n{listing}");
    }
}

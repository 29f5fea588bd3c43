//! Code compiled at pull time, end to end: the hello app built from source and pushed with
//! `spinlet push` to a real registry, a real `spinlet server` with its agent in a network
//! namespace this test creates. The agent pulls the image for a pod and compiles its Wasm
//! into the compile cache before the sandbox starts: the cache holds an artifact for the
//! image's Wasm layer (named by the layer's content hash), and the sandbox reports that it
//! loaded every Wasm file from the cache and compiled none. A second pod of the same
//! image compiles nothing either, and the artifact is not written again. `spinlet push`
//! compiles what it pushed into its own machine's cache (`$XDG_CACHE_HOME/spinlet`), and
//! does not with `--no-precompile`.
//!
//! State only: which files exist and what the sandbox counted, never how long anything
//! took. Skips (saying why) where network namespaces cannot be made.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::pods::{pod_field, state, PodEnv, HELLO_IMAGE};
use common::spinlet_bin;

fn pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: {HELLO_IMAGE}
    ports:
    - containerPort: 8080
"#
    )
}

/// The compiled artifacts under the agent's compile cache.
fn artifacts(data_dir: &Path) -> Vec<PathBuf> {
    artifacts_under(&data_dir.join("agent/cache/compiled"))
}

/// The compiled artifacts under a compiled-code directory.
fn artifacts_under(compiled: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for engine in std::fs::read_dir(compiled).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(engine.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The content hashes (hex) of the Wasm layers the agent pulled.
fn pulled_wasm(data_dir: &Path) -> Vec<String> {
    let wasm = data_dir.join("agent/cache/registry/wasm");
    let mut found: Vec<String> = std::fs::read_dir(&wasm)
        .unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
        .flatten()
        .filter_map(|f| {
            f.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("sha256:"))
                // Not the `.lock` files of the pull.
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_string)
        })
        .collect();
    found.sort();
    found
}

/// What the sandbox of pod `uid` counted when it loaded its app.
fn load_stats(data_dir: &Path, uid: &str) -> serde_json::Value {
    let file = data_dir.join(format!("agent/sandboxes/{uid}/load-stats.json"));
    let text = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_slice(&text).expect("load stats JSON")
}

/// Asserts that the sandbox of `pod` loaded all its Wasm from the cache; returns how
/// many files that was.
fn assert_loaded_from_cache(env: &PodEnv, pod: &str) -> u64 {
    let s = &env.server;
    env.wait_running(pod);
    let uid = pod_field(s, pod, "{.metadata.uid}");
    let stats = load_stats(&s.data_dir, &uid);
    let files = stats["wasm_files"].as_u64().expect("wasm_files");
    assert!(files >= 1, "{stats}");
    assert_eq!(
        (stats["from_cache"].as_u64(), stats["compiled"].as_u64()),
        (Some(files), Some(0)),
        "pod {pod}: every Wasm file mapped from the cache, none compiled at start: {stats}\n{}",
        state(s)
    );
    files
}

#[test]
fn a_pulled_image_is_compiled_before_its_pod_starts_and_only_once() {
    let Some(env) = PodEnv::start("precomp", &[]) else {
        return;
    };
    let s = &env.server;

    s.kubectl_stdin(&["apply", "-f", "-"], &pod("first"));
    let files = assert_loaded_from_cache(&env, "first");

    // The artifact is the pulled layer's, keyed by its content hash.
    let layers = pulled_wasm(&s.data_dir);
    let compiled = artifacts(&s.data_dir);
    assert_eq!(layers.len() as u64, files, "{layers:?}");
    assert_eq!(compiled.len(), layers.len(), "{compiled:?}");
    for hash in &layers {
        assert!(
            compiled
                .iter()
                .any(|a| a.file_stem().and_then(|n| n.to_str()) == Some(hash.as_str())),
            "no artifact for layer {hash}: {compiled:?}"
        );
    }
    let before: Vec<(u64, i64, i64)> = compiled
        .iter()
        .map(|a| {
            let m = std::fs::metadata(a).expect("artifact");
            (m.ino(), m.mtime(), m.mtime_nsec())
        })
        .collect();

    // The pod answers from that code.
    let ip = pod_field(s, "first", "{.status.podIP}");
    let (code, _) = env.ns.curl(&format!("http://{ip}:8080/"));
    assert_eq!(code, 200, "{}", state(s));

    // A second pod of the image: nothing compiled, the artifact neither rewritten nor
    // joined by another.
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("second"));
    assert_loaded_from_cache(&env, "second");
    let after_compiled = artifacts(&s.data_dir);
    assert_eq!(after_compiled, compiled);
    let after: Vec<(u64, i64, i64)> = after_compiled
        .iter()
        .map(|a| {
            let m = std::fs::metadata(a).expect("artifact");
            (m.ino(), m.mtime(), m.mtime_nsec())
        })
        .collect();
    assert_eq!(after, before, "the artifact was written again");

    // `spinlet push` compiles into the pushing machine's cache: the same layer's artifact.
    let push = |tag: &str, xdg: &Path, extra: &[&str]| {
        let out = env
            .ns
            .cmd(&spinlet_bin().to_string_lossy())
            .env("XDG_CACHE_HOME", xdg)
            .arg("push")
            .args(extra)
            .arg(env.scratch.path().join("app"))
            .arg(format!("127.0.0.1:5000/pod-hello:{tag}"))
            .output()
            .expect("spinlet push");
        assert!(
            out.status.success(),
            "push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let xdg = env.scratch.path().join("xdg");
    push("pushed", &xdg, &[]);
    let local = artifacts_under(&xdg.join("spinlet/compiled"));
    let names: Vec<&str> = local
        .iter()
        .filter_map(|a| a.file_stem().and_then(|n| n.to_str()))
        .collect();
    assert_eq!(names, layers, "{local:?}");
    let bare = env.scratch.path().join("xdg-bare");
    push("uncompiled", &bare, &["--no-precompile"]);
    assert!(artifacts_under(&bare.join("spinlet/compiled")).is_empty());
}

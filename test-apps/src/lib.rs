//! Builds Rust Spin test apps from source, once per content hash, for the test suites of
//! every crate (spin-runtime's, the end-to-end ones in `integration/`).
//!
//! An app is a crate directory; it is built with `cargo build --release --target <t>`
//! into `<target dir>/spin-test-apps/target`, and the `.wasm` is published as
//! `<target dir>/spin-test-apps/<name>-<target>-<hash>.wasm`, where the hash covers the
//! app's sources and those of the directories it depends on by path. A test that finds
//! that file reuses it.
//!
//! Test support only: it panics with a message on anything that goes wrong.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The cargo target directory: `$CARGO_TARGET_DIR`, else `<workspace root>/target`.
pub fn target_dir(workspace_root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"))
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-apps lives in the workspace")
        .to_owned()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the per-crate variables cargo sets for a test process (`CARGO_PKG_*`,
/// `CARGO_MANIFEST_DIR`, ...) so a nested `cargo build` sees the same environment as a
/// top-level one; otherwise build scripts that track them rebuild on every test run.
pub fn clean_cargo_env(cmd: &mut Command) {
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_INCREMENTAL",
        "CARGO_BUILD_",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
        "CARGO_PROFILE_",
    ];
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if (key.starts_with("CARGO_") && !KEEP.iter().any(|k| key.starts_with(k)))
            || key == "OUT_DIR"
        {
            cmd.env_remove(key);
        }
    }
}

/// Feeds every file under `dir` (relative path and content; `target` and dot entries
/// skipped) into `hasher`, in path order.
pub fn hash_dir(hasher: &mut Sha256, root: &Path, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read app dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "target" || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            hash_dir(hasher, root, &path);
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            hasher.update(rel.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(std::fs::read(&path).expect("read app source"));
            hasher.update([0]);
        }
    }
}

/// Builds the app crate in `app_dir` (its directory name is the crate name) for `target`,
/// once per content hash of the app and of `path_deps` (directories it depends on by
/// path), and returns its `.wasm`.
pub fn build(app_dir: &Path, path_deps: &[&Path], target: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let name = app_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("app dir has a UTF-8 name");
    let mut hasher = Sha256::new();
    hash_dir(&mut hasher, app_dir, app_dir);
    for dep in path_deps {
        hash_dir(&mut hasher, dep, dep);
    }
    let hash = hex(&hasher.finalize()[..8]);
    let out_dir = target_dir(&workspace_root()).join("spin-test-apps");
    let out = out_dir.join(format!("{name}-{target}-{hash}.wasm"));
    if out.is_file() {
        return out;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build_target = out_dir.join("target");
    let mut cmd = Command::new(cargo);
    clean_cargo_env(&mut cmd);
    let status = cmd
        .current_dir(app_dir)
        .env("CARGO_TARGET_DIR", &build_target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--release", "--target", target])
        .status()
        .expect("run cargo build for the test app");
    assert!(status.success(), "building test app {name} failed");
    let built = build_target
        .join(target)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::create_dir_all(&out_dir).expect("create app output dir");
    let tmp = out.with_extension("wasm.tmp");
    std::fs::copy(&built, &tmp).expect("copy built app");
    std::fs::rename(&tmp, &out).expect("publish built app");
    out
}

/// The directory of a spin-runtime test app (`spin-runtime/tests/apps/<name>`) and the
/// shared support crate the Rust apps depend on.
pub fn spin_runtime_app(name: &str) -> (PathBuf, PathBuf) {
    let apps = workspace_root().join("spin-runtime/tests/apps");
    (apps.join(name), apps.join("app-support"))
}

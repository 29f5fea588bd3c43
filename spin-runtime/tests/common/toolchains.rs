//! Builds the test apps whose SDKs are not Rust, with their real toolchains:
//!
//! - Python (`tests/apps/<name>/requirements.txt` + `app.py`): `componentize-py -w
//!   spin-http componentize app`, as the Spin Python template does, from a venv made
//!   with `python3 -m venv` (or `$SPINLET_TEST_PYTHON`) and the pinned requirements;
//! - JavaScript (`package.json` + `package-lock.json`): `npm ci` then `npm run build`
//!   (esbuild with the Spin plugin, then `j2w`), as the Spin JS template does.
//!
//! Each build runs in a copy of the app's sources under `<target>/spin-test-apps/work/`
//! (so the source tree never gets `node_modules`, `__pycache__` or outputs) and the
//! `.wasm` is cached as `<target>/spin-test-apps/<name>-<hash>.wasm`, the hash covering
//! every source file and lockfile. Venvs (keyed by `requirements.txt`) and the pip and
//! npm download caches live under `<target>/spin-test-apps/` too, so a second run is
//! offline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{hex, target_dir};

/// Names never copied or hashed: build outputs, dependency trees, caches.
const SKIPPED: &[&str] = &[
    "node_modules",
    "build",
    "dist",
    "__pycache__",
    "venv",
    "target",
];

fn app_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("apps")
        .join(name)
}

/// The app's source files (relative paths, sorted), without outputs and dependencies.
fn sources(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read app dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || SKIPPED.contains(&name) || name.ends_with(".wasm") {
            continue;
        }
        if path.is_dir() {
            sources(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).expect("under root").to_owned());
        }
    }
}

fn hash_files(root: &Path, files: &[PathBuf]) -> String {
    let mut hasher = Sha256::new();
    for rel in files {
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(root.join(rel)).expect("read app source"));
        hasher.update([0]);
    }
    hex(&hasher.finalize()[..8])
}

fn out_dir() -> PathBuf {
    target_dir().join("spin-test-apps")
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); see spin-runtime/CI-SETUP.md"));
    assert!(status.success(), "{what} failed ({status})");
}

/// Builds `tests/apps/<name>` with `build` (given the work dir, returning the path of
/// the built `.wasm` inside it), once per content hash.
fn build_cached(name: &str, build: impl FnOnce(&Path) -> PathBuf) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = app_dir(name);
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let hash = hash_files(&src, &files);
    let out = out_dir().join(format!("{name}-{hash}.wasm"));
    if out.is_file() {
        return out;
    }
    let work = out_dir().join("work").join(format!("{name}-{hash}"));
    let _ = std::fs::remove_dir_all(&work);
    for rel in &files {
        let dest = work.join(rel);
        std::fs::create_dir_all(dest.parent().expect("has a parent")).expect("mkdir work");
        std::fs::copy(src.join(rel), &dest).expect("copy app source");
    }
    let built = build(&work);
    let tmp = out.with_extension("wasm.tmp");
    std::fs::copy(&built, &tmp).expect("copy built app");
    std::fs::rename(&tmp, &out).expect("publish built app");
    let _ = std::fs::remove_dir_all(&work);
    out
}

/// A venv with `requirements` installed, reused while the requirements are unchanged.
fn python_venv(requirements: &Path) -> PathBuf {
    let reqs = std::fs::read(requirements).expect("read requirements.txt");
    let venv = out_dir()
        .join("venvs")
        .join(format!("python-{}", hex(&Sha256::digest(&reqs)[..8])));
    let complete = venv.join("spinlet-complete");
    if complete.is_file() {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let python = std::env::var("SPINLET_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        &format!("{python} -m venv"),
    );
    run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--disable-pip-version-check", "--cache-dir"])
            .arg(out_dir().join("pip-cache"))
            .arg("-r")
            .arg(requirements),
        "pip install -r requirements.txt",
    );
    std::fs::write(&complete, b"").expect("mark venv complete");
    venv
}

/// Builds the Python app `tests/apps/<name>` (module `app`) into a component of the Spin
/// SDK's `spin-http` world.
pub fn build_python_app(name: &str) -> PathBuf {
    build_python(name, true, |_| vec!["-w".into(), "spin-http".into()])
}

/// Builds the Python app `tests/apps/<name>` (module `app`) into a component of the
/// `wasi:http/proxy@0.2.0` world only (no Spin imports, so `wasmtime serve` links it), from
/// the WASI WIT that spin-sdk ships. The venv is not activated: through an activated one
/// componentize-py also reads spin-sdk's own configuration, which names the bindings after
/// the SDK's world.
pub fn build_python_proxy_app(name: &str) -> PathBuf {
    build_python(name, false, |venv| {
        let lib = venv.join("lib");
        let wit = std::fs::read_dir(&lib)
            .expect("venv lib dir")
            .flatten()
            .map(|e| e.path().join("site-packages/spin_sdk/wit"))
            .find(|p| p.is_dir())
            .expect("spin-sdk's WIT in the venv (requirements.txt must list spin-sdk)");
        vec![
            "-d".into(),
            wit.into_os_string(),
            "-w".into(),
            "wasi:http/proxy@0.2.0".into(),
        ]
    })
}

fn build_python(
    name: &str,
    activate: bool,
    world: impl FnOnce(&Path) -> Vec<std::ffi::OsString>,
) -> PathBuf {
    build_cached(name, |work| {
        let venv = python_venv(&work.join("requirements.txt"));
        let bin = venv.join("bin");
        let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .expect("PATH");
        let mut cmd = Command::new(bin.join("componentize-py"));
        cmd.current_dir(work).env("PYTHONDONTWRITEBYTECODE", "1");
        if activate {
            // As with an activated venv: componentize-py finds spin-sdk's WIT through it.
            cmd.env("VIRTUAL_ENV", &venv).env("PATH", path);
        }
        run(
            cmd.args(world(&venv))
                .args(["componentize", "app", "-o", "app.wasm"]),
            "componentize-py",
        );
        work.join("app.wasm")
    })
}

/// Builds the JS app `tests/apps/<name>` (its `npm run build` writes `dist/<name>.wasm`).
pub fn build_js_app(name: &str) -> PathBuf {
    build_cached(name, |work| {
        let npm = std::env::var("SPINLET_TEST_NPM").unwrap_or_else(|_| "npm".into());
        run(
            Command::new(&npm)
                .current_dir(work)
                .args([
                    "ci",
                    "--prefer-offline",
                    "--no-audit",
                    "--no-fund",
                    "--cache",
                ])
                .arg(out_dir().join("npm-cache")),
            "npm ci",
        );
        run(
            Command::new(&npm).current_dir(work).args(["run", "build"]),
            "npm run build",
        );
        work.join("dist").join(format!("{name}.wasm"))
    })
}

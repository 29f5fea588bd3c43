//! The bench apps under `benches/apps/<dir>`, shared by the `serve` and `phases` benches:
//! built with the test harness's builder (cached by a hash of their sources) and given a
//! one-route manifest (`/...` → the component, `common::ONE_COMPONENT_MANIFEST`).

use std::path::{Path, PathBuf};

/// Builds `benches/apps/<dir>` for `target` and writes an app directory named
/// `scratch_name` around it; returns the `.wasm` and the app directory.
pub fn hello_app(dir: &str, target: &str, scratch_name: &str) -> (PathBuf, PathBuf) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/apps")
        .join(dir);
    let wasm = crate::common::build_app_in(&crate_dir, target);
    let app_dir = crate::common::app_with_manifest(
        scratch_name,
        &wasm,
        crate::common::ONE_COMPONENT_MANIFEST,
    );
    (wasm, app_dir)
}

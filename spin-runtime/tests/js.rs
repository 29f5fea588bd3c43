//! End-to-end: the JavaScript test app (`tests/apps/js-hello`), built with the Spin JS
//! SDK's build tools from npm (esbuild + `j2w` over componentize-js), served by the real
//! `spinlet run` from a directory and from a registry.

mod common;

#[test]
fn js_sdk_app_is_served_from_a_directory_and_a_registry() {
    let wasm = common::toolchains::build_js_app("js-hello");
    common::sdk_apps::serve_from_dir_then_registry(
        "js-hello",
        &wasm,
        "Hello from the JS SDK",
        &|_, _| {},
    );
}

/// The JS app loaded three times against one fresh compile cache: the first load compiles
/// (once, though two components use the file), the second maps the artifact by the file's
/// identity, and a copy of the file elsewhere maps it by content hash; neither compiles.
#[test]
fn a_second_start_of_the_js_app_compiles_nothing() {
    let wasm = common::toolchains::build_js_app("js-hello");
    let dir = common::scratch_dir("js-cache");
    let cache = dir.join("cache");
    let write_app = |name: &str, wasm: &std::path::Path| {
        let app = dir.join(name);
        std::fs::create_dir_all(&app).expect("app dir");
        std::fs::write(
            app.join("spin.toml"),
            format!(
                r#"spin_manifest_version = 2
[application]
name = "{name}"
[[trigger.http]]
route = "/a"
component = "a"
[[trigger.http]]
route = "/b"
component = "b"
[component.a]
source = "{wasm}"
[component.b]
source = "{wasm}"
"#,
                wasm = wasm.display()
            ),
        )
        .expect("manifest");
        app
    };
    let load = |app: &std::path::Path| {
        let options = spin_runtime::app::AppOptions {
            app: app.to_owned(),
            cache_dir: Some(cache.clone()),
            // Compiled before serving, so that the artifact exists when load returns
            // (tiering, which compiles it in the background, is tests/tiers.rs's).
            engine: spin_runtime::engine::EngineOptions {
                fast_tier: spin_runtime::engine::FastTier::Off,
                ..Default::default()
            },
            ..Default::default()
        };
        let loaded = spin_runtime::app::load(&options).expect("load");
        (loaded.stats.compiled, loaded.stats.cache_hits)
    };

    let app = write_app("first", &wasm);
    assert_eq!(load(&app), (1, 0), "an empty cache compiles the file once");
    assert_eq!(load(&app), (0, 1), "the second start maps the artifact");

    let copy = dir.join("copy.wasm");
    std::fs::copy(&wasm, &copy).expect("copy wasm");
    let other = write_app("copy", &copy);
    assert_eq!(
        load(&other),
        (0, 1),
        "the same bytes elsewhere map the artifact"
    );

    let artifacts: Vec<_> = walk(&cache.join("compiled"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(
        artifacts.len(),
        1,
        "one artifact per content hash: {artifacts:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

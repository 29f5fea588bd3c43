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

//! End-to-end: the spin-sdk 3 test app (`tests/apps/rust-v3-hello`), built for
//! wasm32-wasip1 as Spin 3 templates do, served by the real `spinlet run` from a
//! directory and from a registry.

mod common;

#[test]
fn spin_sdk_3_core_module_is_served_from_a_directory_and_a_registry() {
    let wasm = common::build_app_for("rust-v3-hello", "wasm32-wasip1");
    let bytes = std::fs::read(&wasm).expect("read module");
    assert_eq!(
        &bytes[4..8],
        b"\x01\0\0\0",
        "a wasip1 build is a core module"
    );
    common::sdk_apps::serve_from_dir_then_registry(
        "rust-v3-hello",
        &wasm,
        "Hello from spin-sdk 3",
        &|_, _| {},
    );
}

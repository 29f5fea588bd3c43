//! End-to-end: the Python test app (`tests/apps/python-hello`), built with spin-sdk and
//! componentize-py from PyPI, served by the real `spinlet run` from a directory and from
//! a registry. componentize-py targets the whole `spin-http` world, so this also proves
//! that every Spin interface links.

mod common;

#[test]
fn python_sdk_app_is_served_from_a_directory_and_a_registry() {
    let wasm = common::toolchains::build_python_app("python-hello");
    common::sdk_apps::serve_from_dir_then_registry(
        "python-hello",
        &wasm,
        "Hello from the Python SDK",
        &|s, _| {
            // An interface spinlet only stubs answers with an error, not a trap.
            let r = s.get("/app?op=llm");
            assert_eq!(r.status, 501, "{}", r.text());
            assert!(
                r.text().contains("llm is not available on this host"),
                "{}",
                r.text()
            );
        },
    );
}

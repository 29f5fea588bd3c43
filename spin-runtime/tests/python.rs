//! End-to-end: the Python test app (`tests/apps/python-hello`), built with spin-sdk and
//! componentize-py from PyPI, served by the real `spinlet run` from a directory and from
//! a registry. componentize-py targets the whole `spin-http` world, so this also proves
//! that every Spin interface links; and a Python component of the plain `wasi:http/proxy`
//! world (`tests/apps/python-bare`).

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

/// A Python component of the plain `wasi:http/proxy` world (no Spin imports, as Spin also
/// runs): `tests/apps/python-bare`, the heavy-apps bench's app for `wasmtime serve`.
#[test]
fn python_component_of_the_wasi_http_proxy_world_is_served() {
    let wasm = common::toolchains::build_python_proxy_app("python-bare");
    let app = common::app_with_manifest("python-bare", &wasm, common::ONE_COMPONENT_MANIFEST);
    let spinlet = common::Spinlet::start(&app, common::Start::default());
    for path in ["/", "/any/path?q=1"] {
        let r = spinlet.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        assert_eq!(r.text(), "Hello from the Python SDK", "GET {path}");
    }
    spinlet.stop();
}

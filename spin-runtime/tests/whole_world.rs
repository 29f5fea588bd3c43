//! Link-time coverage: a component importing every interface of the Spin platform worlds
//! (as Python apps built with componentize-py do) must link and pre-instantiate, with
//! unimplemented interfaces answering "not available on this host" at call time.
//!
//! The component is generated from the WIT in `spin-runtime/wit` with `wit-component`'s
//! dummy module, so it imports exactly what the worlds declare.

mod common;

const WORLD: &str = r#"
package spinlet:whole-world-test;

world everything {
  include fermyon:spin/http-trigger@2.0.0;
  include wasi:keyvalue/imports@0.2.0-draft2;
  import wasi:config/store@0.2.0-draft-2024-09-27;
}
"#;

#[test]
fn every_spin_platform_import_links() {
    let c = common::wit_components::compile_dummy("whole-world.wit", WORLD, "everything");
    c.assert_imports(&[
        "fermyon:spin/llm@2.0.0",
        "fermyon:spin/sqlite@2.0.0",
        "fermyon:spin/redis@2.0.0",
        "fermyon:spin/postgres@2.0.0",
        "fermyon:spin/mysql@2.0.0",
        "fermyon:spin/mqtt@2.0.0",
        "fermyon:spin/key-value@2.0.0",
        "fermyon:spin/variables@2.0.0",
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:keyvalue/atomics@0.2.0-draft2",
        "wasi:keyvalue/batch@0.2.0-draft2",
        "wasi:config/store@0.2.0-draft-2024-09-27",
        "wasi:http/outgoing-handler@0.2.0",
        "wasi:sockets/tcp@0.2.0",
    ]);
    spin_runtime::app::link_http_component(&c.engine, &c.base_linker(), &c.component)
        .expect("every import links and the component is an HTTP proxy");
}

//! Link-time proof for the component-model `async` database interfaces spin-sdk 7 imports,
//! `spin:postgres/postgres@4.2.0` and `spin:mysql/mysql@3.0.0`, and for 4.0.0 / 4.1.0
//! imports being served by the 4.2.0 implementation (semver-compatible linking): a
//! component importing them pre-instantiates against the base linker alone, so they are
//! real implementations and not the "unavailable" stubs. (Their calls are exercised
//! end to end through 2.0.0 / 3.0.0 / 4.0.0 in `tests/rdbms.rs`, which share the code.)
//!
//! The component is generated from the WIT in `spin-runtime/wit` with `wit-component`'s
//! dummy module, so it imports exactly what the interfaces declare (async functions,
//! streams and futures included).

mod common;

const WORLD: &str = r#"
package spinlet:rdbms-async-test;

world rdbms-async {
  include wasi:http/proxy@0.2.0;
  import spin:postgres/postgres@4.2.0;
  import spin:mysql/mysql@3.0.0;
}
"#;

#[test]
fn async_postgres_and_mysql_link_against_the_base_linker() {
    let c = common::wit_components::compile_dummy("rdbms-async.wit", WORLD, "rdbms-async");
    let expected = ["spin:postgres/postgres@4.2.0", "spin:mysql/mysql@3.0.0"];
    c.assert_imports(&expected);
    for name in expected.into_iter().chain([
        "spin:postgres/postgres@4.0.0",
        "spin:postgres/postgres@4.1.0",
    ]) {
        assert!(spin_runtime::unavailable::is_implemented(name), "{name}");
    }
    // No stubs: every import, the async functions included, is defined by the base linker.
    c.base_linker()
        .instantiate_pre(&c.component)
        .expect("spin:postgres@4.2.0 and spin:mysql@3.0.0 link without stubs");
}

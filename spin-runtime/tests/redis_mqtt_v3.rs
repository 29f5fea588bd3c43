//! Link-time proof for the async 3.0 interfaces `spin:redis/redis@3.0.0` and
//! `spin:mqtt/mqtt@3.0.0` (spin-sdk 7, WASI 0.3 apps): a component importing them
//! pre-instantiates against the base linker alone, so they are real implementations and
//! not the "unavailable" stubs.
//!
//! The component is generated from the WIT in `spin-runtime/wit` with `wit-component`'s
//! dummy module, so it imports exactly what the interfaces declare (async functions
//! included).

mod common;

const WORLD: &str = r#"
package spinlet:v3-outbound-test;

world v3-outbound {
  include wasi:http/proxy@0.2.0;
  import spin:redis/redis@3.0.0;
  import spin:mqtt/mqtt@3.0.0;
}
"#;

#[test]
fn async_redis_and_mqtt_link_against_the_base_linker() {
    let c = common::wit_components::compile_dummy("v3-outbound.wit", WORLD, "v3-outbound");
    let expected = ["spin:redis/redis@3.0.0", "spin:mqtt/mqtt@3.0.0"];
    c.assert_imports(&expected);
    for name in expected {
        assert!(spin_runtime::unavailable::is_implemented(name), "{name}");
    }
    let base = c.base_linker();
    // No stubs: every import, the async functions included, is defined by the base linker.
    base.instantiate_pre(&c.component)
        .expect("spin:redis@3.0.0 and spin:mqtt@3.0.0 link without stubs");
    spin_runtime::app::link_http_component(&c.engine, &base, &c.component)
        .expect("the component is an HTTP proxy");
}

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

fn dummy_component() -> Vec<u8> {
    common::wit_components::dummy_component("v3-outbound.wit", WORLD, "v3-outbound")
}

#[test]
fn async_redis_and_mqtt_link_against_the_base_linker() {
    let bytes = dummy_component();
    let engine = wasmtime::Engine::new(
        wasmtime::Config::new()
            .wasm_component_model(true)
            .wasm_component_model_async(true),
    )
    .expect("engine");
    let component = wasmtime::component::Component::new(&engine, &bytes).expect("compile");
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for expected in ["spin:redis/redis@3.0.0", "spin:mqtt/mqtt@3.0.0"] {
        assert!(
            imports.iter().any(|i| i == expected),
            "{expected} not in {imports:?}"
        );
        assert!(spin_runtime::unavailable::is_implemented(expected));
    }
    let base = spin_runtime::app::base_linker(&engine).expect("base linker");
    // No stubs: every import, the async functions included, is defined by the base linker.
    base.instantiate_pre(&component)
        .expect("spin:redis@3.0.0 and spin:mqtt@3.0.0 link without stubs");
    spin_runtime::app::link_http_component(&engine, &base, &component)
        .expect("the component is an HTTP proxy");
}

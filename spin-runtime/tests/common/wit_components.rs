//! Synthetic components for link-time tests: a component generated from a WIT world with
//! `wit-component`'s dummy module imports exactly what the world declares (async
//! functions included), so a test can prove an interface links without an SDK build.

use std::path::Path;

/// A component for `world` of the WIT package `source`, resolved against
/// `spin-runtime/wit` (`file` names the source in parse errors).
pub fn dummy_component(file: &str, source: &str, world: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("wit"))
        .expect("load spin-runtime/wit");
    let pkg = resolve.push_str(file, source).expect("parse test world");
    let world = resolve
        .select_world(&[pkg], Some(world))
        .expect("select world");
    let mut module =
        wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed metadata");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .expect("module")
        .encode()
        .expect("encode component")
}

/// A dummy component compiled by an engine configured as spinlet's (component model,
/// its `async` ABI, epoch interruption), with the names of its imports.
pub struct Compiled {
    pub engine: wasmtime::Engine,
    pub component: wasmtime::component::Component,
    pub imports: Vec<String>,
}

/// Generates ([`dummy_component`]) and compiles the component for `world`.
pub fn compile_dummy(file: &str, source: &str, world: &str) -> Compiled {
    let bytes = dummy_component(file, source, world);
    let engine = wasmtime::Engine::new(
        wasmtime::Config::new()
            .wasm_component_model(true)
            .wasm_component_model_async(true)
            .epoch_interruption(true),
    )
    .expect("engine");
    let component = wasmtime::component::Component::new(&engine, &bytes).expect("compile");
    let imports = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    Compiled {
        engine,
        component,
        imports,
    }
}

impl Compiled {
    /// Asserts that the component imports each of `expected`.
    pub fn assert_imports(&self, expected: &[&str]) {
        for name in expected {
            assert!(
                self.imports.iter().any(|i| i == name),
                "{name} not in {:?}",
                self.imports
            );
        }
    }

    /// spinlet's base linker (real host interfaces, no "unavailable" stubs).
    pub fn base_linker(&self) -> wasmtime::component::Linker<spin_runtime::state::InstanceState> {
        spin_runtime::app::base_linker(&self.engine).expect("base linker")
    }
}

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

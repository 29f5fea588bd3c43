//! Imports spinlet does not implement yet, linked so that no app fails to instantiate.
//!
//! This module owns the "not available on this host" behaviour. SDK worlds import whole
//! platforms (Python components import every interface of `fermyon:spin@2.0.0`,
//! `spin:postgres`, `spin:sqlite`, `wasi:keyvalue`, ...), so every import a component
//! has that no real implementation covers gets a dynamic definition:
//!
//! - a function returning `result<_, E>` where `E` is a variant with a string case
//!   (`other`, `runtime-error`, `io`, `connection-failed`, ...) returns that error with
//!   the message "`<interface>` is not available on this host";
//! - any other function traps with the same message;
//! - resources get a host type with a no-op destructor (no instance can ever be created,
//!   since every constructor fails).
//!
//! Which imports are real is decided by [`is_implemented`]; keep it in sync with the
//! linker set up in `crate::app`.
//!
//! `wasi:sockets` (0.2 and 0.3) is real: wasmtime-wasi's, permitted per component by
//! `allowed_outbound_hosts` ([`crate::outbound_sockets`]).

use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, Linker, ResourceType, Val};
use wasmtime::Engine;

/// Interface-name prefixes that have a real implementation in the base linker.
const IMPLEMENTED: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "wasi:http/types@",
    "wasi:http/outgoing-handler@",
    "wasi:http/client@0.3.",
    "fermyon:spin/variables@2.",
    "fermyon:spin/key-value@2.",
    "fermyon:spin/sqlite@2.",
    "fermyon:spin/redis@2.",
    "fermyon:spin/mqtt@2.",
    "spin:redis/redis@3.0.",
    "spin:mqtt/mqtt@3.0.",
    "fermyon:spin/postgres@2.",
    "fermyon:spin/mysql@2.",
    "spin:postgres/postgres@3.0.",
    "spin:postgres/postgres@4.",
    "spin:mysql/mysql@3.0.",
    "spin:sqlite/sqlite@3.0.",
    "spin:sqlite/sqlite@3.1.",
    "spin:variables/variables@3.0.",
    "spin:key-value/key-value@3.0.",
    "wasi:keyvalue/store@0.2.0-draft2",
    "wasi:keyvalue/atomics@0.2.0-draft2",
    "wasi:keyvalue/batch@0.2.0-draft2",
    "wasi:config/store@0.2.0-draft-2024-09-27",
];

/// Whether an import name has a real implementation.
pub fn is_implemented(import: &str) -> bool {
    IMPLEMENTED.iter().any(|p| import.starts_with(p))
}

/// Error-variant cases preferred for the "not available" message, in order.
const STRING_CASES: &[&str] = &[
    "other",
    "runtime-error",
    "io",
    "connection-failed",
    "upstream",
    "provider",
];

/// Marker host type for resources of unavailable interfaces.
struct Unavailable;

/// Defines every import of `component` that is not implemented as an "unavailable" stub.
pub fn define_unavailable<T: 'static>(
    engine: &Engine,
    linker: &mut Linker<T>,
    component: &Component,
) -> wasmtime::Result<Vec<String>> {
    let mut stubbed = Vec::new();
    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        if is_implemented(name) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                let message = format!("{} is not available on this host", short_name(name));
                let mut inst = linker.instance(name)?;
                for (export, item) in instance.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(func) if func.async_() => {
                            // An `async func` import needs a concurrent host function.
                            let message = format!("{message} ({name}#{export})");
                            inst.func_new_concurrent(
                                export,
                                move |_store, func, _params, results| {
                                    let message = message.clone();
                                    Box::pin(
                                        async move { unavailable_result(&func, &message, results) },
                                    )
                                },
                            )?;
                        }
                        ComponentItem::ComponentFunc(_) => {
                            let message = format!("{message} ({name}#{export})");
                            inst.func_new(export, move |_store, func, _params, results| {
                                unavailable_result(&func, &message, results)
                            })?;
                        }
                        ComponentItem::Resource(_) => {
                            inst.resource(export, ResourceType::host::<Unavailable>(), |_, _| {
                                Ok(())
                            })?;
                        }
                        _ => {}
                    }
                }
                stubbed.push(name.to_string());
            }
            ComponentItem::ComponentFunc(_) => {
                let message = format!("{name} is not available on this host");
                linker
                    .root()
                    .func_new(name, move |_store, func, _params, results| {
                        unavailable_result(&func, &message, results)
                    })?;
                stubbed.push(name.to_string());
            }
            _ => {}
        }
    }
    Ok(stubbed)
}

/// `fermyon:spin/llm@2.0.0` → `llm`; `spin:postgres/postgres@4.0.0` → `postgres`.
fn short_name(import: &str) -> &str {
    let no_version = import.split('@').next().unwrap_or(import);
    no_version.rsplit('/').next().unwrap_or(no_version)
}

fn unavailable_result(
    func: &ComponentFunc,
    message: &str,
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let mut types = func.results();
    if let (Some(Type::Result(result)), Some(slot)) = (types.next(), results.first_mut()) {
        if let Some(Type::Variant(variant)) = result.err() {
            let cases: Vec<_> = variant.cases().collect();
            let pick = STRING_CASES
                .iter()
                .find_map(|want| {
                    cases
                        .iter()
                        .find(|c| c.name == *want && matches!(c.ty, Some(Type::String)))
                })
                .or_else(|| cases.iter().find(|c| matches!(c.ty, Some(Type::String))));
            if let Some(case) = pick {
                *slot = Val::Result(Err(Some(Box::new(Val::Variant(
                    case.name.to_string(),
                    Some(Box::new(Val::String(message.to_string()))),
                )))));
                return Ok(());
            }
        }
    }
    wasmtime::bail!("{message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(short_name("fermyon:spin/llm@2.0.0"), "llm");
        assert!(is_implemented("wasi:cli/environment@0.2.6"));
        assert!(is_implemented("fermyon:spin/key-value@2.0.0"));
        assert!(!is_implemented("fermyon:spin/llm@2.0.0"));
        assert!(is_implemented("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(is_implemented("spin:sqlite/sqlite@3.0.0"));
        assert!(is_implemented("spin:sqlite/sqlite@3.1.0"));
        assert!(!is_implemented("spin:sqlite/sqlite@3.2.0"));
        assert!(is_implemented("spin:variables/variables@3.0.0"));
        assert!(is_implemented("spin:key-value/key-value@3.0.0"));
        assert!(is_implemented("spin:redis/redis@3.0.0"));
        assert!(is_implemented("spin:mqtt/mqtt@3.0.0"));
        assert!(!is_implemented("spin:redis/inbound-redis@3.0.0"));
        assert!(is_implemented("spin:postgres/postgres@4.0.0"));
        assert!(is_implemented("spin:postgres/postgres@4.2.0"));
        assert!(is_implemented("spin:mysql/mysql@3.0.0"));
        assert!(is_implemented("wasi:sockets/tcp@0.2.0"));
        assert!(is_implemented("wasi:sockets/ip-name-lookup@0.2.6"));
        assert!(is_implemented("wasi:sockets/types@0.3.0"));
        assert!(is_implemented("wasi:sockets/ip-name-lookup@0.3.0"));
    }
}

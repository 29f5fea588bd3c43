//! Turning WASI preview1 core modules into components at load time.
//!
//! This module owns core-module detection and adaptation. `cargo build --target
//! wasm32-wasip1` with spin-sdk 3/5 produces a core module that imports both preview1
//! functions and (through wit-bindgen's component-type sections) WASI 0.2 interfaces;
//! like Spin, spinlet wraps it with the upstream `wasi_snapshot_preview1` **reactor**
//! adapter (shipped by the `wasi-preview1-component-adapter-provider` crate, the same
//! wasmtime release as the engine) using `wit-component`. Components pass through
//! unchanged. The output is deterministic, so the compile cache still hits on restart.
//!
//! Not handled: Spin 1.x-era modules (wit-bindgen 0.2, the TinyGo SDK v2) that need
//! Spin's own adapter, and Wagi command modules.

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

/// Errors from componentizing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a Wasm module or component.
    #[error("not a WebAssembly module or component")]
    NotWasm,
    /// wit-component could not adapt the module.
    #[error("cannot componentize the core module with the preview1 reactor adapter: {0}")]
    Adapt(String),
}

/// What kind of Wasm binary a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core module (version 1).
    Module,
    /// A component (layer 1).
    Component,
}

/// Classifies Wasm bytes by their preamble.
pub fn kind(bytes: &[u8]) -> Result<WasmKind, Error> {
    if bytes.len() < 8 || bytes[0..4] != *b"\0asm" {
        return Err(Error::NotWasm);
    }
    match bytes[6..8] {
        [0, 0] => Ok(WasmKind::Module),
        [1, 0] => Ok(WasmKind::Component),
        _ => Err(Error::NotWasm),
    }
}

/// Returns a component: `bytes` unchanged if already one, else the adapted module.
pub fn componentize_if_needed(bytes: Vec<u8>) -> Result<(Vec<u8>, bool), Error> {
    match kind(&bytes)? {
        WasmKind::Component => Ok((bytes, false)),
        WasmKind::Module => {
            let adapted = wit_component::ComponentEncoder::default()
                .validate(true)
                .module(&bytes)
                .and_then(|e| {
                    e.adapter(
                        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                        WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                    )
                })
                .and_then(|mut e| e.encode())
                .map_err(|e| Error::Adapt(format!("{e:#}")))?;
            Ok((adapted, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind(b"\0asm\x01\0\0\0").unwrap(), WasmKind::Module);
        assert_eq!(kind(b"\0asm\x0d\0\x01\0").unwrap(), WasmKind::Component);
        assert!(kind(b"nope").is_err());
    }

    #[test]
    fn components_pass_through() {
        let bytes = b"\0asm\x0d\0\x01\0".to_vec();
        let (out, adapted) = componentize_if_needed(bytes.clone()).unwrap();
        assert!(!adapted);
        assert_eq!(out, bytes);
    }
}

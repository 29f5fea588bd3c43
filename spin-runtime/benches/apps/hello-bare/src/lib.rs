//! Bench app for spinlet's Spin runtime: a spin-sdk 5 hello handler that imports only
//! WASI (p2) and `wasi:http`, so the same component runs under `spinlet run` and under
//! `wasmtime serve` (see `spin-runtime/benches/serve.rs`).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello, Fermyon!\n")
        .build())
}

//! Bench app for spinlet's Spin runtime: a spin-sdk 7 (WASI 0.3) hello service that
//! imports only `wasi:*` interfaces, so the same component runs under `spinlet run` and
//! under `wasmtime serve -S p3=y -W component-model-async=y` (see
//! `spin-runtime/benches/serve.rs`). It answers like `hello-bare`, its WASI 0.2 twin.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    Ok(http::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello, Fermyon!\n".to_string())?)
}

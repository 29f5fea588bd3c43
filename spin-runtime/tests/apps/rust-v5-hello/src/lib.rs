//! Test app for spinlet's Spin runtime, built with spin-sdk 5 for wasm32-wasip2.
//!
//! One handler serves every component of the test manifest; the `op` query parameter
//! picks what it does, so a single wasm file exercises routing, headers, variables,
//! key-value and the failure modes (trap, infinite loop, memory bomb).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_string())
    })
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .build()
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let op = query_param(&req, "op").unwrap_or_default();
    let param = |name: &str| query_param(&req, name).unwrap_or_default();
    Ok(match op.as_str() {
        "" | "echo" => {
            let mut lines: Vec<String> = req
                .headers()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            lines.sort();
            let mut body = format!("method: {:?}\nuri: {}\n", req.method(), req.uri());
            for line in lines {
                body.push_str(&line);
                body.push('\n');
            }
            text(200, body)
        }
        "var" => match spin_sdk::variables::get(&param("name")) {
            Ok(v) => text(200, v),
            Err(e) => text(404, format!("variable error: {e}")),
        },
        "env" => match std::env::var(param("name")) {
            Ok(v) => text(200, v),
            Err(_) => text(404, "unset"),
        },
        "kv-set" => {
            let label = query_param(&req, "label").unwrap_or_else(|| "default".into());
            match Store::open(&label).and_then(|s| s.set(&param("key"), param("value").as_bytes())) {
                Ok(()) => text(200, "stored"),
                Err(e) => text(403, format!("kv error: {e:?}")),
            }
        }
        "kv-get" => {
            let label = query_param(&req, "label").unwrap_or_else(|| "default".into());
            match Store::open(&label).and_then(|s| s.get(&param("key"))) {
                Ok(Some(v)) => text(200, String::from_utf8_lossy(&v).into_owned()),
                Ok(None) => text(404, "missing"),
                Err(e) => text(403, format!("kv error: {e:?}")),
            }
        }
        "kv-keys" => match Store::open_default().and_then(|s| s.get_keys()) {
            Ok(mut keys) => {
                keys.sort();
                text(200, keys.join(","))
            }
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "kv-delete" => match Store::open_default().and_then(|s| s.delete(&param("key"))) {
            Ok(()) => text(200, "deleted"),
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "body" => text(200, format!("{} bytes: {}", req.body().len(), String::from_utf8_lossy(req.body()))),
        "status" => Response::builder()
            .status(param("code").parse::<u16>().unwrap_or(200))
            .header("x-test", "yes")
            .body(())
            .build(),
        "trap" => panic!("trap requested"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 * 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        "llm" => match spin_sdk::llm::infer(spin_sdk::llm::InferencingModel::Llama2Chat, "hi") {
            Ok(r) => text(200, r.text),
            Err(e) => text(501, format!("llm error: {e:?}")),
        },
        other => text(400, format!("unknown op {other}")),
    })
}

//! Test app for spinlet's Spin runtime, built with spin-sdk 5 for wasm32-wasip2.
//!
//! One handler serves every component of the test manifest; the `op` query parameter
//! picks what it does, so a single wasm file exercises routing, headers, variables,
//! key-value, sqlite, files, outbound HTTP, service chaining, stdout/stderr output
//! (`op=print`, for container logs), memory a previous request wrote (`op=fresh`) and
//! the failure modes (trap, infinite loop, memory bomb). Query values are percent-decoded.

use std::sync::Mutex;

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

use app_support::sql_rows;

fn query_param(req: &Request, name: &str) -> Option<String> {
    app_support::query_param(req.query(), name)
}

fn query_params(req: &Request, name: &str) -> Vec<String> {
    app_support::query_params(req.query(), name)
}

/// A statement argument: `i:42`, `r:1.5`, `b:bytes`, `null`, else text.
fn sql_arg<V>(
    arg: &str,
    int: fn(i64) -> V,
    real: fn(f64) -> V,
    text: fn(String) -> V,
    blob: fn(Vec<u8>) -> V,
    null: V,
) -> V {
    if let Some(i) = arg.strip_prefix("i:").and_then(|i| i.parse().ok()) {
        int(i)
    } else if let Some(r) = arg.strip_prefix("r:").and_then(|r| r.parse().ok()) {
        real(r)
    } else if let Some(b) = arg.strip_prefix("b:") {
        blob(b.as_bytes().to_vec())
    } else if arg == "null" {
        null
    } else {
        text(arg.to_string())
    }
}

/// Initialised data (in the component's memory image) and zeroed data (3 MiB, beyond it)
/// that `op=fresh` checks and then overwrites: a request in a fresh instance finds both
/// as they were initialised.
static IMAGE_DATA: Mutex<[u8; 64 * 1024]> = Mutex::new([7u8; 64 * 1024]);
static ZEROED: Mutex<[u8; 3 * 1024 * 1024]> = Mutex::new([0u8; 3 * 1024 * 1024]);

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .build()
}

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
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
        "print" => {
            println!("{}", param("text"));
            eprintln!("to stderr: {}", param("text"));
            text(200, "printed")
        }
        "env" => match std::env::var(param("name")) {
            Ok(v) => text(200, v),
            Err(_) => text(404, "unset"),
        },
        "read" => match std::fs::read_to_string(param("path")) {
            Ok(v) => text(200, v),
            Err(e) => text(404, format!("read error: {e}")),
        },
        "write" => match std::fs::write(param("path"), b"x") {
            Ok(()) => text(200, "written"),
            Err(e) => text(403, format!("write error: {e}")),
        },
        "kv-set" => {
            let label = query_param(&req, "label").unwrap_or_else(|| "default".into());
            match Store::open(&label).and_then(|s| s.set(&param("key"), param("value").as_bytes()))
            {
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
        "wkv-set" | "wkv-get" | "wkv-incr" | "wkv-cas" | "wkv-batch" => {
            use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};
            let label = query_param(&req, "label").unwrap_or_else(|| "default".into());
            let bucket = match store::open(&label) {
                Ok(b) => b,
                Err(e) => return Ok(text(403, format!("wasi kv error: {e:?}"))),
            };
            let key = param("key");
            let result: Result<String, String> = match op.as_str() {
                "wkv-set" => bucket
                    .set(&key, param("value").as_bytes())
                    .map(|()| "stored".into())
                    .map_err(|e| format!("{e:?}")),
                "wkv-get" => bucket
                    .get(&key)
                    .map(|v| {
                        v.map_or("missing".into(), |v| {
                            String::from_utf8_lossy(&v).into_owned()
                        })
                    })
                    .map_err(|e| format!("{e:?}")),
                "wkv-incr" => {
                    atomics::increment(&bucket, &key, param("delta").parse().unwrap_or(1))
                        .map(|n| n.to_string())
                        .map_err(|e| format!("{e:?}"))
                }
                "wkv-cas" => match atomics::Cas::new(&bucket, &key) {
                    Ok(cas) => {
                        let before = cas.current().ok().flatten().unwrap_or_default();
                        // Change the value behind the handle's back, so the swap must fail.
                        if param("conflict") == "1" {
                            let _ = bucket.set(&key, b"changed");
                        }
                        match atomics::swap(cas, param("value").as_bytes()) {
                            Ok(()) => {
                                Ok(format!("swapped from {}", String::from_utf8_lossy(&before)))
                            }
                            Err(atomics::CasError::CasFailed(_)) => Ok("cas failed".into()),
                            Err(e) => Err(format!("{e:?}")),
                        }
                    }
                    Err(e) => Err(format!("{e:?}")),
                },
                _ => {
                    let pairs = vec![
                        ("b1".to_string(), b"1".to_vec()),
                        ("b2".to_string(), b"2".to_vec()),
                    ];
                    batch::set_many(&bucket, &pairs)
                        .and_then(|()| batch::delete_many(&bucket, &["b1".to_string()]))
                        .and_then(|()| {
                            batch::get_many(&bucket, &["b1".to_string(), "b2".to_string()])
                        })
                        .map(|got| format!("{got:?}"))
                        .map_err(|e| format!("{e:?}"))
                }
            };
            match result {
                Ok(body) => text(200, body),
                Err(e) => text(500, format!("wasi kv error: {e}")),
            }
        }
        // fermyon:spin/sqlite@2.0.0
        "sql" => {
            use spin_sdk::sqlite::{Connection, Value};
            let db = query_param(&req, "db").unwrap_or_else(|| "default".into());
            let args: Vec<Value> = query_params(&req, "arg")
                .iter()
                .map(|a| {
                    sql_arg(
                        a,
                        Value::Integer,
                        Value::Real,
                        Value::Text,
                        Value::Blob,
                        Value::Null,
                    )
                })
                .collect();
            match Connection::open(&db).and_then(|c| c.execute(&param("stmt"), &args)) {
                Ok(r) => text(
                    200,
                    sql_rows(&r.columns, r.rows.into_iter().map(|r| r.values)),
                ),
                Err(e) => text(403, format!("sqlite error: {e:?}")),
            }
        }
        // spin:sqlite/sqlite@3.0.0
        "sql3" => {
            use spin_sdk::sqlite3::{Connection, Value};
            let db = query_param(&req, "db").unwrap_or_else(|| "default".into());
            let args: Vec<Value> = query_params(&req, "arg")
                .iter()
                .map(|a| {
                    sql_arg(
                        a,
                        Value::Integer,
                        Value::Real,
                        Value::Text,
                        Value::Blob,
                        Value::Null,
                    )
                })
                .collect();
            match Connection::open(&db)
                .and_then(|c| c.execute(&param("stmt"), &args).map(|r| (c, r)))
            {
                Ok((c, r)) => {
                    let mut body = sql_rows(&r.columns, r.rows.into_iter().map(|r| r.values));
                    body.push_str(&format!(
                        "rowid: {} changes: {}\n",
                        c.last_insert_rowid(),
                        c.changes()
                    ));
                    text(200, body)
                }
                Err(e) => text(403, format!("sqlite error: {e:?}")),
            }
        }
        // fermyon:spin/redis@2.0.0 against `addr`; `cmd` picks the call, anything else
        // goes through `execute` with the `arg`s (`i:<n>` for integers).
        "redis" => {
            use spin_sdk::redis::{Connection, RedisParameter};
            let conn = match Connection::open(&param("addr")) {
                Ok(c) => c,
                Err(e) => return Ok(text(403, format!("redis error: {e:?}"))),
            };
            let key = param("key");
            let value = param("value").into_bytes();
            let members = query_params(&req, "member");
            let result = match param("cmd").as_str() {
                "set" => conn.set(&key, &value).map(|()| "ok".to_string()),
                "get" => conn
                    .get(&key)
                    .map(|v| v.map_or("nil".into(), |v| String::from_utf8_lossy(&v).into_owned())),
                "incr" => conn.incr(&key).map(|n| n.to_string()),
                "del" => conn.del(&[key.clone()]).map(|n| n.to_string()),
                "sadd" => conn.sadd(&key, &members).map(|n| n.to_string()),
                "srem" => conn.srem(&key, &members).map(|n| n.to_string()),
                "smembers" => conn.smembers(&key).map(|mut m| {
                    m.sort();
                    m.join(",")
                }),
                "publish" => conn.publish(&key, &value).map(|()| "published".to_string()),
                command => {
                    let args: Vec<RedisParameter> = query_params(&req, "arg")
                        .into_iter()
                        .map(
                            |a| match a.strip_prefix("i:").and_then(|i| i.parse().ok()) {
                                Some(i) => RedisParameter::Int64(i),
                                None => RedisParameter::Binary(a.into_bytes()),
                            },
                        )
                        .collect();
                    conn.execute(command, &args).map(|r| format!("{r:?}"))
                }
            };
            match result {
                Ok(body) => text(200, body),
                Err(e) => text(500, format!("redis error: {e:?}")),
            }
        }
        // fermyon:spin/mqtt@2.0.0: publish `value` to `topic` at `addr` with `qos` 0/1/2.
        "mqtt" => {
            use spin_sdk::mqtt::{Connection, Qos};
            let qos = match param("qos").as_str() {
                "1" => Qos::AtLeastOnce,
                "2" => Qos::ExactlyOnce,
                _ => Qos::AtMostOnce,
            };
            let result = Connection::open(&param("addr"), &param("user"), &param("password"), 30)
                .and_then(|c| c.publish(&param("topic"), &param("value").into_bytes(), qos));
            match result {
                Ok(()) => text(200, "published"),
                Err(e) => text(502, format!("mqtt error: {e:?}")),
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
        "body" => text(
            200,
            format!(
                "{} bytes: {}",
                req.body().len(),
                String::from_utf8_lossy(req.body())
            ),
        ),
        "status" => Response::builder()
            .status(param("code").parse::<u16>().unwrap_or(200))
            .header("x-test", "yes")
            .body(())
            .build(),
        "fresh" => {
            let mut data = IMAGE_DATA.lock().unwrap_or_else(|e| e.into_inner());
            let mut zeroed = ZEROED.lock().unwrap_or_else(|e| e.into_inner());
            let changed = data.iter().filter(|b| **b != 7).count()
                + zeroed.iter().filter(|b| **b != 0).count();
            data.fill(0xee);
            zeroed.fill(0xee);
            text(
                200,
                format!("changed {changed}, wrote {}", data.len() + zeroed.len()),
            )
        }
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
        "fetch" => {
            let url = param("url");
            let outbound = Request::get(url).build();
            match spin_sdk::http::send::<_, Response>(outbound).await {
                Ok(resp) => text(
                    200,
                    format!("{} {}", resp.status(), String::from_utf8_lossy(resp.body())),
                ),
                Err(e) => text(502, format!("fetch error: {e}")),
            }
        }
        "llm" => match spin_sdk::llm::infer(spin_sdk::llm::InferencingModel::Llama2Chat, "hi") {
            Ok(r) => text(200, r.text),
            Err(e) => text(501, format!("llm error: {e:?}")),
        },
        other => text(400, format!("unknown op {other}")),
    })
}

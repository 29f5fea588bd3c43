//! Test app for spinlet's Spin runtime, built with spin-sdk 7 for wasm32-wasip2: a
//! WASI 0.3 component exporting `wasi:http/handler@0.3.0`, whose Spin imports are the
//! component-model-async `spin:*@3.x` interfaces.
//!
//! The `op` query parameter picks what the handler does (the protocol shared by every
//! SDK's hello app, see `tests/common/sdk_apps.rs`), plus `kv-keys` / `kv-exists` /
//! `kv-del` (the rest of the key-value store), `sqlite&value=V[&db=L]` (create table `t`,
//! insert V, select every value in database L, `default` unless given: answers the values
//! comma-separated, with the insert's `last-insert-rowid` and `changes` in the
//! `sqlite-rowid` and `sqlite-changes` headers), `count` (a
//! per-instance request counter: instances are reused), and `trap`, `loop` and `bomb`
//! for the failure modes.

use app_support::text;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

fn query_param(req: &Request, name: &str) -> Option<String> {
    app_support::query_param(req.uri().query().unwrap_or(""), name)
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let op = query_param(&req, "op").unwrap_or_else(|| "hello".into());
    let param = |name: &str| query_param(&req, name).unwrap_or_default();
    let label = query_param(&req, "label").unwrap_or_else(|| "default".into());
    Ok(match op.as_str() {
        "hello" => text(200, "Hello from spin-sdk 7"),
        "echo" => {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            lines.sort();
            let mut body = format!("method: {}\nuri: {}\n", req.method(), req.uri());
            for line in lines {
                body.push_str(&line);
                body.push('\n');
            }
            text(200, body)
        }
        "var" => match spin_sdk::variables::get(param("name")).await {
            Ok(v) => text(200, v),
            Err(e) => text(404, format!("variable error: {e:?}")),
        },
        "kv-set" => match Store::open(&label).await {
            Ok(store) => match store.set(param("key"), param("value")).await {
                Ok(()) => text(200, "stored"),
                Err(e) => text(500, format!("kv error: {e:?}")),
            },
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "kv-get" => match Store::open(&label).await {
            Ok(store) => match store.get(param("key")).await {
                Ok(Some(v)) => text(200, String::from_utf8_lossy(&v).into_owned()),
                Ok(None) => text(404, "missing"),
                Err(e) => text(500, format!("kv error: {e:?}")),
            },
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "kv-keys" => match Store::open(&label).await {
            Ok(store) => match store.get_keys().await.collect().await {
                Ok(mut keys) => {
                    keys.sort();
                    text(200, keys.join(","))
                }
                Err(e) => text(500, format!("kv error: {e:?}")),
            },
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "kv-exists" => match Store::open(&label).await {
            Ok(store) => match store.exists(param("key")).await {
                Ok(found) => text(200, found.to_string()),
                Err(e) => text(500, format!("kv error: {e:?}")),
            },
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "kv-del" => match Store::open(&label).await {
            Ok(store) => match store.delete(param("key")).await {
                Ok(()) => text(200, "deleted"),
                Err(e) => text(500, format!("kv error: {e:?}")),
            },
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "fetch" => match spin_sdk::http::get(param("url")).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = http_body_util::BodyExt::collect(resp.into_body())
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_else(|e| format!("body error: {e:?}"));
                text(200, format!("{status} {body}"))
            }
            Err(e) => text(502, format!("fetch error: {e:?}")),
        },
        "count" => {
            static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = SERVED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            text(200, n.to_string())
        }
        "sqlite" => {
            let db = query_param(&req, "db").unwrap_or_else(|| "default".into());
            match sqlite_roundtrip(&db, &param("value")).await {
                Ok((values, rowid, changes)) => {
                    let mut response = text(200, values);
                    let headers = response.headers_mut();
                    headers.insert("sqlite-rowid", rowid.into());
                    headers.insert("sqlite-changes", changes.into());
                    response
                }
                Err(e) => text(500, format!("sqlite error: {e:?}")),
            }
        }
        "trap" => panic!("trap requested"),
        "loop" => {
            let mut i: u64 = 0;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        "bomb" => {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            loop {
                chunks.push(vec![1u8; 16 << 20]);
                std::hint::black_box(&chunks);
            }
        }
        other => text(400, format!("unknown op {other}")),
    })
}

async fn sqlite_roundtrip(
    db: &str,
    value: &str,
) -> Result<(String, i64, u64), spin_sdk::sqlite::Error> {
    use spin_sdk::sqlite::{Connection, Value};
    let db = Connection::open(db).await?;
    db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT NOT NULL)", [])
        .await?
        .collect()
        .await?;
    db.execute(
        "INSERT INTO t (v) VALUES (?)",
        [Value::Text(value.to_string())],
    )
    .await?
    .collect()
    .await?;
    let rowid = db.last_insert_rowid().await;
    let changes = db.changes().await;
    let rows = db
        .execute("SELECT v FROM t ORDER BY rowid", [])
        .await?
        .collect()
        .await?;
    let values: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get::<&str>(0).map(String::from))
        .collect();
    Ok((values.join(","), rowid, changes))
}

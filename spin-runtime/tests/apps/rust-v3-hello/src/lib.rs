//! Test app for spinlet's Spin runtime, built with spin-sdk 3 for wasm32-wasip1: a core
//! module that spin-runtime componentizes at load (as Spin 3 templates produce).
//!
//! The `op` query parameter picks what the handler does (the protocol shared by every
//! SDK's hello app, see `spin-runtime/tests/common/sdk_apps.rs`): `hello` (default), `echo` (method, URI
//! and headers, one `name: value` per line), `var`, `kv-set`/`kv-get` on a store,
//! `fetch` (outbound HTTP) and `sqlite&value=V[&db=L]` (create table `t`, insert V and
//! answer every value in database L, `default` unless given, comma-separated; 500 with
//! the error when it fails).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

fn query_param(req: &Request, name: &str) -> Option<String> {
    app_support::query_param(req.query(), name)
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .build()
}

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let op = query_param(&req, "op").unwrap_or_else(|| "hello".into());
    let param = |name: &str| query_param(&req, name).unwrap_or_default();
    let label = query_param(&req, "label").unwrap_or_else(|| "default".into());
    Ok(match op.as_str() {
        "hello" => text(200, "Hello from spin-sdk 3"),
        "echo" => {
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
        "kv-set" => match Store::open(&label)
            .and_then(|s| s.set(&param("key"), param("value").as_bytes()))
        {
            Ok(()) => text(200, "stored"),
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "kv-get" => match Store::open(&label).and_then(|s| s.get(&param("key"))) {
            Ok(Some(v)) => text(200, String::from_utf8_lossy(&v).into_owned()),
            Ok(None) => text(404, "missing"),
            Err(e) => text(403, format!("kv error: {e:?}")),
        },
        "fetch" => {
            let outbound = Request::get(param("url")).build();
            match spin_sdk::http::send::<_, Response>(outbound).await {
                Ok(resp) => text(
                    200,
                    format!("{} {}", resp.status(), String::from_utf8_lossy(resp.body())),
                ),
                Err(e) => text(502, format!("fetch error: {e}")),
            }
        }
        "sqlite" => {
            let db = query_param(&req, "db").unwrap_or_else(|| "default".into());
            match sqlite_roundtrip(&db, &param("value")) {
                Ok(values) => text(200, values),
                Err(e) => text(500, format!("sqlite error: {e:?}")),
            }
        }
        other => text(400, format!("unknown op {other}")),
    })
}

fn sqlite_roundtrip(db: &str, value: &str) -> Result<String, spin_sdk::sqlite::Error> {
    use spin_sdk::sqlite::{Connection, Value};
    let db = Connection::open(db)?;
    db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT NOT NULL)", &[])?;
    db.execute(
        "INSERT INTO t (v) VALUES (?)",
        &[Value::Text(value.to_string())],
    )?;
    let result = db.execute("SELECT v FROM t ORDER BY rowid", &[])?;
    let values: Vec<&str> = result
        .rows
        .iter()
        .filter_map(|r| r.get::<&str>(0))
        .collect();
    Ok(values.join(","))
}

//! Test app for spinlet's outbound interfaces as spin-sdk 7 calls them, built for
//! wasm32-wasip2: a WASI 0.3 component exporting `wasi:http/handler@0.3.0` that imports
//! the component-model-async `spin:redis/redis@3.0.0`, `spin:mqtt/mqtt@3.0.0`,
//! `spin:postgres/postgres@4.2.0` and `spin:mysql/mysql@3.0.0`.
//!
//! `op=redis&addr=<url>&cmd=<call>` opens a connection to `addr` and makes one call with
//! `key`, `value` and `member`s (any other `cmd` goes through `execute` with the `arg`s,
//! `i:<n>` for integers); `op=mqtt&addr=<url>&topic=&value=&qos=` publishes one message;
//! `op=sql&db=pg|mysql&addr=<url>&mode=query|execute&sql=<statement>&arg=..` runs one statement
//! with the `arg`s (`str:<text>`, `i64:<n>` or `null`), answering `columns: name,..` then
//! one `row: v|v|..` line per streamed row (values in Debug form) for a query, and
//! `affected: <n>` (PostgreSQL) or `ok` (MySQL) for an execute.
//! Query values are percent-decoded. Errors come back as `<what> error: <debug>`.

use app_support::text;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

fn query_params(req: &Request, name: &str) -> Vec<String> {
    app_support::query_params(req.uri().query().unwrap_or(""), name)
}

async fn redis(req: &Request) -> http::Response<String> {
    use spin_sdk::redis::{Connection, RedisParameter};
    let param = |name: &str| {
        query_params(req, name)
            .into_iter()
            .next()
            .unwrap_or_default()
    };
    let conn = match Connection::open(param("addr")).await {
        Ok(c) => c,
        Err(e) => return text(403, format!("redis error: {e:?}")),
    };
    let key = param("key");
    let value = param("value").into_bytes();
    let members = query_params(req, "member");
    let result = match param("cmd").as_str() {
        "set" => conn.set(&key, &value).await.map(|()| "ok".to_string()),
        "get" => conn
            .get(&key)
            .await
            .map(|v| v.map_or("nil".into(), |v| String::from_utf8_lossy(&v).into_owned())),
        "incr" => conn.incr(&key).await.map(|n| n.to_string()),
        "del" => conn.del([&key]).await.map(|n| n.to_string()),
        "sadd" => conn.sadd(&key, &members).await.map(|n| n.to_string()),
        "srem" => conn.srem(&key, &members).await.map(|n| n.to_string()),
        "smembers" => conn.smembers(&key).await.map(|mut m| {
            m.sort();
            m.join(",")
        }),
        "publish" => conn
            .publish(&key, &value)
            .await
            .map(|()| "published".to_string()),
        command => {
            let args: Vec<RedisParameter> = query_params(req, "arg")
                .into_iter()
                .map(
                    |a| match a.strip_prefix("i:").and_then(|i| i.parse().ok()) {
                        Some(i) => RedisParameter::Int64(i),
                        None => RedisParameter::Binary(a.into_bytes()),
                    },
                )
                .collect();
            conn.execute(command, args).await.map(|r| format!("{r:?}"))
        }
    };
    match result {
        Ok(body) => text(200, body),
        Err(e) => text(500, format!("redis error: {e:?}")),
    }
}

async fn mqtt(req: &Request) -> http::Response<String> {
    use spin_sdk::mqtt::{Connection, Qos};
    let param = |name: &str| {
        query_params(req, name)
            .into_iter()
            .next()
            .unwrap_or_default()
    };
    let qos = match param("qos").as_str() {
        "1" => Qos::AtLeastOnce,
        "2" => Qos::ExactlyOnce,
        _ => Qos::AtMostOnce,
    };
    let conn = match Connection::open(param("addr"), param("user"), param("password"), 30).await {
        Ok(c) => c,
        Err(e) => return text(502, format!("mqtt error: {e:?}")),
    };
    match conn
        .publish(param("topic"), param("value").into_bytes(), qos)
        .await
    {
        Ok(()) => text(200, "published"),
        Err(e) => text(502, format!("mqtt error: {e:?}")),
    }
}

/// One `arg`: `str:<text>`, `i64:<n>` or `null`, as the interface's parameter type.
fn sql_arg<P>(arg: &str, str_: fn(String) -> P, int: fn(i64) -> P, null: P) -> Option<P> {
    match arg.split_once(':') {
        Some(("str", v)) => Some(str_(v.to_string())),
        Some(("i64", v)) => v.parse().ok().map(int),
        None if arg == "null" => Some(null),
        _ => None,
    }
}

/// One statement through the SQL interface `$db` (`spin_sdk::pg` or `spin_sdk::mysql`):
/// the two have the same shape but their own types, hence a macro.
macro_rules! sql_statement {
    ($req:expr, $db:ident, $executed:expr) => {{
        use spin_sdk::$db::{Connection, DbValue, ParameterValue as P};
        let mut rows: Vec<Vec<DbValue>> = Vec::new();
        let what = stringify!($db);
        let param = |name: &str| {
            query_params($req, name)
                .into_iter()
                .next()
                .unwrap_or_default()
        };
        let Some(args) = query_params($req, "arg")
            .iter()
            .map(|a| sql_arg(a, P::Str, P::Int64, P::DbNull))
            .collect::<Option<Vec<P>>>()
        else {
            return text(400, "bad arg");
        };
        let conn = match Connection::open(param("addr")).await {
            Ok(c) => c,
            Err(e) => return text(500, format!("{what} error: {e:?}")),
        };
        if param("mode") == "execute" {
            return match conn.execute(param("sql"), args).await {
                Ok(done) => text(200, $executed(done)),
                Err(e) => text(500, format!("{what} error: {e:?}")),
            };
        }
        let mut result = match conn.query(param("sql"), args).await {
            Ok(r) => r,
            Err(e) => return text(500, format!("{what} error: {e:?}")),
        };
        let columns: Vec<String> = result.columns().iter().map(|c| c.name.clone()).collect();
        while let Some(row) = result.rows().next().await {
            rows.push(row);
        }
        match result.result().await {
            Ok(()) => text(200, app_support::sql_rows(&columns, rows)),
            Err(e) => text(500, format!("{what} error: {e:?}")),
        }
    }};
}

async fn sql(req: &Request) -> http::Response<String> {
    match query_params(req, "db").into_iter().next().as_deref() {
        Some("pg") => sql_statement!(req, pg, |n: u64| format!("affected: {n}")),
        Some("mysql") => sql_statement!(req, mysql, |()| "ok".to_string()),
        _ => text(400, "db must be pg or mysql"),
    }
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let op = query_params(&req, "op")
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(match op.as_str() {
        "redis" => redis(&req).await,
        "mqtt" => mqtt(&req).await,
        "sql" => sql(&req).await,
        _ => text(404, format!("unknown op `{op}`")),
    })
}

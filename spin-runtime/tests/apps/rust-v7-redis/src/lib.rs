//! Test app for spinlet's outbound Redis and MQTT 3.0 interfaces, built with spin-sdk 7
//! for wasm32-wasip2: a WASI 0.3 component exporting `wasi:http/handler@0.3.0` that
//! imports the component-model-async `spin:redis/redis@3.0.0` and `spin:mqtt/mqtt@3.0.0`.
//!
//! `op=redis&addr=<url>&cmd=<call>` opens a connection to `addr` and makes one call with
//! `key`, `value` and `member`s (any other `cmd` goes through `execute` with the `arg`s,
//! `i:<n>` for integers); `op=mqtt&addr=<url>&topic=&value=&qos=` publishes one message.
//! Query values are percent-decoded. Errors come back as `<what> error: <debug>`.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

/// Every value of `name`, percent-decoded, in order.
fn query_params(req: &Request, name: &str) -> Vec<String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text(status: u16, body: impl Into<String>) -> http::Response<String> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .expect("static response parts are valid")
}

async fn redis(req: &Request) -> http::Response<String> {
    use spin_sdk::redis::{Connection, RedisParameter};
    let param = |name: &str| query_params(req, name).into_iter().next().unwrap_or_default();
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
                .map(|a| match a.strip_prefix("i:").and_then(|i| i.parse().ok()) {
                    Some(i) => RedisParameter::Int64(i),
                    None => RedisParameter::Binary(a.into_bytes()),
                })
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
    let param = |name: &str| query_params(req, name).into_iter().next().unwrap_or_default();
    let qos = match param("qos").as_str() {
        "1" => Qos::AtLeastOnce,
        "2" => Qos::ExactlyOnce,
        _ => Qos::AtMostOnce,
    };
    let conn = match Connection::open(param("addr"), param("user"), param("password"), 30).await {
        Ok(c) => c,
        Err(e) => return text(502, format!("mqtt error: {e:?}")),
    };
    match conn.publish(param("topic"), param("value").into_bytes(), qos).await {
        Ok(()) => text(200, "published"),
        Err(e) => text(502, format!("mqtt error: {e:?}")),
    }
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let op = query_params(&req, "op").into_iter().next().unwrap_or_default();
    Ok(match op.as_str() {
        "redis" => redis(&req).await,
        "mqtt" => mqtt(&req).await,
        _ => text(404, format!("unknown op `{op}`")),
    })
}

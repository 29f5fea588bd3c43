//! Test app for spinlet's outbound PostgreSQL and MySQL, built with spin-sdk 5 for
//! wasm32-wasip2.
//!
//! `GET /?db=<pg4|pg3|pg2|mysql>&addr=<address>&mode=<query|execute>&sql=<statement>&arg=..`
//! opens a connection with the chosen interface (`spin:postgres/postgres@4.0.0`,
//! `@3.0.0`, `fermyon:spin/postgres@2.0.0` or `fermyon:spin/mysql@2.0.0`) and runs the
//! statement with the `arg` parameters in order. An argument is `kind:value`
//! (`bool:true`, `i8:-1` .. `i64:`, `u8:` .. `u64:`, `f32:`, `f64:`, `str:`, `bin:`,
//! `null`, and for Postgres `date:y,m,d`, `time:h,m,s,ns`, `dt:y,m,d,h,m,s,ns`, `ts:secs`,
//! and for 4.0.0 `uuid:`, `json:`, `dec:`, `i32s:1,~,3` (`~` is null), `range32:lo,hi`
//! (`[lo,hi)`), `interval:micros,days,months`).
//!
//! The reply is 200 with `columns: name:Type,...` then one `row: v|v|...` line per row
//! (values in Debug form) for a query, `affected: N` (Postgres) or `ok` (MySQL) for an
//! execute; 500 with `error: <Debug of the interface's error>` when a call fails, 400
//! when an argument does not parse.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{mysql, pg, pg3, pg4};

fn query_params(req: &Request, name: &str) -> Vec<String> {
    app_support::query_params(req.query(), name)
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .build()
}

/// Comma-separated numbers.
fn nums<T: std::str::FromStr>(v: &str) -> Option<Vec<T>> {
    v.split(',').map(|n| n.trim().parse().ok()).collect()
}

/// The cases every interface version has.
macro_rules! common_arg {
    ($P:ident, $kind:expr, $v:expr) => {
        match $kind {
            "bool" => Some($P::Boolean($v == "true")),
            "i8" => $v.parse().ok().map($P::Int8),
            "i16" => $v.parse().ok().map($P::Int16),
            "i32" => $v.parse().ok().map($P::Int32),
            "i64" => $v.parse().ok().map($P::Int64),
            "f32" => $v.parse().ok().map($P::Floating32),
            "f64" => $v.parse().ok().map($P::Floating64),
            "str" => Some($P::Str($v.to_string())),
            "bin" => Some($P::Binary($v.as_bytes().to_vec())),
            "null" => Some($P::DbNull),
            _ => None,
        }
    };
}

/// The date and time cases of `spin:postgres` 3.0.0 and 4.0.0.
macro_rules! time_arg {
    ($P:ident, $kind:expr, $v:expr) => {
        match ($kind, nums::<i64>($v).unwrap_or_default().as_slice()) {
            ("date", &[y, m, d]) => Some($P::Date((y as i32, m as u8, d as u8))),
            ("time", &[h, m, s, ns]) => Some($P::Time((h as u8, m as u8, s as u8, ns as u32))),
            ("dt", &[y, mo, d, h, mi, s, ns]) => Some($P::Datetime((
                y as i32, mo as u8, d as u8, h as u8, mi as u8, s as u8, ns as u32,
            ))),
            ("ts", &[secs]) => Some($P::Timestamp(secs)),
            _ => None,
        }
    };
}

/// The unsigned cases of `fermyon:spin@2.0.0`'s rdbms-types.
macro_rules! unsigned_arg {
    ($P:ident, $kind:expr, $v:expr) => {
        match $kind {
            "u8" => $v.parse().ok().map($P::Uint8),
            "u16" => $v.parse().ok().map($P::Uint16),
            "u32" => $v.parse().ok().map($P::Uint32),
            "u64" => $v.parse().ok().map($P::Uint64),
            _ => None,
        }
    };
}

fn split(arg: &str) -> (&str, &str) {
    arg.split_once(':').unwrap_or((arg, ""))
}

fn pg4_arg(arg: &str) -> Option<pg4::ParameterValue> {
    use pg4::ParameterValue as P;
    let (kind, v) = split(arg);
    let bound = |n: i32, kind| Some((n, kind));
    common_arg!(P, kind, v)
        .or_else(|| time_arg!(P, kind, v))
        .or_else(|| match kind {
            "uuid" => Some(P::Uuid(v.to_string())),
            "json" => Some(P::Jsonb(v.as_bytes().to_vec())),
            "dec" => Some(P::Decimal(v.to_string())),
            "i32s" => Some(P::ArrayInt32(
                v.split(',').map(|n| n.parse().ok()).collect(),
            )),
            "range32" => match nums::<i32>(v)?.as_slice() {
                &[lo, hi] => Some(P::RangeInt32((
                    bound(lo, pg4::RangeBoundKind::Inclusive),
                    bound(hi, pg4::RangeBoundKind::Exclusive),
                ))),
                _ => None,
            },
            "interval" => match nums::<i64>(v)?.as_slice() {
                &[micros, days, months] => Some(P::Interval(pg4::Interval {
                    micros,
                    days: days as i32,
                    months: months as i32,
                })),
                _ => None,
            },
            _ => None,
        })
}

fn pg3_arg(arg: &str) -> Option<pg3::ParameterValue> {
    use pg3::ParameterValue as P;
    let (kind, v) = split(arg);
    common_arg!(P, kind, v).or_else(|| time_arg!(P, kind, v))
}

fn rdbms_arg(arg: &str) -> Option<pg::ParameterValue> {
    use pg::ParameterValue as P;
    let (kind, v) = split(arg);
    common_arg!(P, kind, v).or_else(|| unsigned_arg!(P, kind, v))
}

fn mysql_arg(arg: &str) -> Option<mysql::ParameterValue> {
    use mysql::ParameterValue as P;
    let (kind, v) = split(arg);
    common_arg!(P, kind, v).or_else(|| unsigned_arg!(P, kind, v))
}

/// `columns: name:Type,...` then one `row: v|v` line per row.
fn rows<C: std::fmt::Debug, V: std::fmt::Debug>(
    columns: impl Iterator<Item = (String, C)>,
    rows: &[Vec<V>],
) -> String {
    let columns: Vec<String> = columns.map(|(n, t)| format!("{n}:{t:?}")).collect();
    let mut body = format!("columns: {}\n", columns.join(","));
    for row in rows {
        let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        body.push_str(&format!("row: {}\n", values.join("|")));
    }
    body
}

/// Parses every `arg` with `parse`; the first that does not parse is the error.
fn args<P>(raw: &[String], parse: fn(&str) -> Option<P>) -> Result<Vec<P>, Response> {
    raw.iter()
        .map(|a| parse(a).ok_or_else(|| text(400, format!("bad argument `{a}`"))))
        .collect()
}

fn reply<T, E: std::fmt::Debug>(r: Result<T, E>, ok: impl FnOnce(T) -> String) -> Response {
    match r {
        Ok(v) => text(200, ok(v)),
        Err(e) => text(500, format!("error: {e:?}")),
    }
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let one = |name: &str| {
        query_params(&req, name)
            .into_iter()
            .next()
            .unwrap_or_default()
    };
    let (db, addr, sql, mode) = (one("db"), one("addr"), one("sql"), one("mode"));
    let query = mode == "query";
    let raw = query_params(&req, "arg");
    Ok(match db.as_str() {
        "pg4" => {
            let params = match args(&raw, pg4_arg) {
                Ok(p) => p,
                Err(r) => return Ok(r),
            };
            let conn = match pg4::Connection::open(&addr) {
                Ok(c) => c,
                Err(e) => return Ok(text(500, format!("error: {e:?}"))),
            };
            if query {
                reply(conn.query(&sql, &params), |r| {
                    let cols = r
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), c.data_type.clone()));
                    rows(cols, &r.rows)
                })
            } else {
                reply(conn.execute(&sql, &params), |n| format!("affected: {n}"))
            }
        }
        "pg3" => {
            let params = match args(&raw, pg3_arg) {
                Ok(p) => p,
                Err(r) => return Ok(r),
            };
            let conn = match pg3::Connection::open(&addr) {
                Ok(c) => c,
                Err(e) => return Ok(text(500, format!("error: {e:?}"))),
            };
            if query {
                reply(conn.query(&sql, &params), |r| {
                    rows(
                        r.columns.iter().map(|c| (c.name.clone(), c.data_type)),
                        &r.rows,
                    )
                })
            } else {
                reply(conn.execute(&sql, &params), |n| format!("affected: {n}"))
            }
        }
        "pg2" => {
            let params = match args(&raw, rdbms_arg) {
                Ok(p) => p,
                Err(r) => return Ok(r),
            };
            let conn = match pg::Connection::open(&addr) {
                Ok(c) => c,
                Err(e) => return Ok(text(500, format!("error: {e:?}"))),
            };
            if query {
                reply(conn.query(&sql, &params), |r| {
                    rows(
                        r.columns.iter().map(|c| (c.name.clone(), c.data_type)),
                        &r.rows,
                    )
                })
            } else {
                reply(conn.execute(&sql, &params), |n| format!("affected: {n}"))
            }
        }
        "mysql" => {
            let params = match args(&raw, mysql_arg) {
                Ok(p) => p,
                Err(r) => return Ok(r),
            };
            let conn = match mysql::Connection::open(&addr) {
                Ok(c) => c,
                Err(e) => return Ok(text(500, format!("error: {e:?}"))),
            };
            if query {
                reply(conn.query(&sql, &params), |r| {
                    rows(
                        r.columns.iter().map(|c| (c.name.clone(), c.data_type)),
                        &r.rows,
                    )
                })
            } else {
                reply(conn.execute(&sql, &params), |()| "ok".to_string())
            }
        }
        other => text(404, format!("unknown db `{other}`")),
    })
}

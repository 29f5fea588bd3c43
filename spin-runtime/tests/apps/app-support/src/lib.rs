//! What every Rust test app of spinlet's Spin runtime shares, whatever its spin-sdk
//! version: reading the query string (the apps' request protocol is query parameters,
//! see `spin-runtime/tests/common/sdk_apps.rs`) and the reply format of SQL rows.
//!
//! The test harness hashes this crate with each app, so a change here rebuilds them.

/// A `text/plain` reply with `status` (for the apps built on `http` types, spin-sdk 7).
#[cfg(feature = "http")]
pub fn text(status: u16, body: impl Into<String>) -> http::Response<String> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .expect("static response parts are valid")
}

/// Every value of `name` in the query string `query`, percent-decoded, in order.
pub fn query_params(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
        .collect()
}

/// The first value of `name` in `query`, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query_params(query, name).into_iter().next()
}

/// Decodes `%XX` escapes and `+` (a space, as in form values).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `columns: a,b` then one `row: v1|v2` line per row, values in Debug form.
pub fn sql_rows<V: std::fmt::Debug>(
    columns: &[String],
    rows: impl IntoIterator<Item = Vec<V>>,
) -> String {
    let mut body = format!("columns: {}\n", columns.join(","));
    for row in rows {
        let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        body.push_str(&format!("row: {}\n", values.join("|")));
    }
    body
}

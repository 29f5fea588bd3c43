//! The database test apps (`tests/apps/rust-v5-rdbms`, and the SQL ops of
//! `tests/apps/rust-v7-outbound`) served by `spinlet run` and called over HTTP: shared by
//! `rdbms.rs` (spin-sdk 5) and `rust_v7_rdbms.rs` (spin-sdk 7).
//!
//! Both apps answer `/?op=sql&db=<interface>&addr=<address>&mode=<query|execute>&sql=..
//! &arg=..` (the spin-sdk 5 app ignores `op`).

use super::common::servers::enc;
use super::common::{app_with_manifest, build_app, Spinlet, Start};

/// The test app `app`, whose component may reach `allowed` only, started with `start`.
pub fn serve(app: &str, allowed: &str, start: Start) -> Spinlet {
    let wasm = build_app(app);
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "rdbms-test"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["{allowed}"]
"#
    );
    let dir = app_with_manifest(&format!("rdbms-{app}"), &wasm, &manifest);
    Spinlet::start(&dir, start)
}

/// Runs `sql` through interface `db` at `addr`; the status and body.
pub fn call(
    s: &Spinlet,
    db: &str,
    addr: &str,
    mode: &str,
    sql: &str,
    args: &[&str],
) -> (u16, String) {
    let mut path = format!(
        "/?op=sql&db={db}&addr={}&mode={mode}&sql={}",
        enc(addr),
        enc(sql)
    );
    for a in args {
        path.push_str(&format!("&arg={}", enc(a)));
    }
    let r = s.get(&path);
    (r.status, r.text())
}

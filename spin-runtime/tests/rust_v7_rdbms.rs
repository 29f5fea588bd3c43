//! End-to-end: the async `spin:postgres/postgres@4.2.0` and `spin:mysql/mysql@3.0.0`,
//! called by a spin-sdk 7 app (`tests/apps/rust-v7-outbound`, a WASI 0.3 component)
//! served by the real `spinlet run`, against a real PostgreSQL and a real MariaDB on
//! loopback (see `rdbms/servers.rs`). Rows arrive through the interfaces' streams; the
//! value mapping itself is covered for every type by `tests/rdbms.rs`.

mod common;
#[path = "rdbms/servers.rs"]
mod servers;

use common::servers::enc;
use common::{app_with_manifest, build_app, Spinlet, Start};

/// The app, allowed to reach `allowed` only.
fn serve(allowed: &str) -> Spinlet {
    let wasm = build_app("rust-v7-outbound");
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "v7-rdbms"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["{allowed}"]
"#
    );
    let dir = app_with_manifest("v7-rdbms", &wasm, &manifest);
    Spinlet::start(&dir, Start::default())
}

/// Runs `sql` with `args` through interface `db` (`pg`, `mysql`) at `addr`.
fn call(s: &Spinlet, db: &str, addr: &str, mode: &str, sql: &str, args: &[&str]) -> (u16, String) {
    let mut path = format!("/?op={db}&addr={}&mode={mode}&sql={}", enc(addr), enc(sql));
    for a in args {
        path.push_str(&format!("&arg={}", enc(a)));
    }
    let r = s.get(&path);
    (r.status, r.text())
}

#[test]
fn spin_sdk_7_postgres_4_2_against_a_real_server() {
    let pg = servers::Postgres::start();
    let port = pg.port;
    let s = serve(&format!("postgres://127.0.0.1:{port}"));
    let addr = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let run = |mode, sql, args: &[&str]| call(&s, "pg", &addr, mode, sql, args);

    let create = "CREATE TABLE t (id SERIAL PRIMARY KEY, name TEXT, n BIGINT)";
    assert_eq!(run("execute", create, &[]), (200, "affected: 0".into()));
    let insert = "INSERT INTO t (name, n) VALUES ($1, $2), ($3, $4)";
    assert_eq!(
        run(
            "execute",
            insert,
            &["str:héllo", "i64:-9000000000", "str:b", "null"]
        ),
        (200, "affected: 2".into())
    );
    let (status, body) = run("query", "SELECT id, name, n FROM t ORDER BY id", &[]);
    assert_eq!(status, 200, "{body}\n{}", s.stderr());
    assert_eq!(
        body,
        "columns: id,name,n\n\
         row: DbValue::Int32(1)|DbValue::Str(\"héllo\")|DbValue::Int64(-9000000000)\n\
         row: DbValue::Int32(2)|DbValue::Str(\"b\")|DbValue::DbNull\n"
    );
    let (status, body) = run("query", "SELECT n FROM t WHERE name = $1", &["str:none"]);
    assert_eq!((status, body.as_str()), (200, "columns: n\n"));

    let (status, body) = run("query", "SELECT * FROM missing", &[]);
    assert_eq!(status, 500);
    assert!(body.contains("QueryFailed"), "{body}");

    // An address outside allowed_outbound_hosts never leaves the host.
    let other = common::free_port();
    let (status, body) = call(
        &s,
        "pg",
        &format!("postgres://postgres@127.0.0.1:{other}/postgres"),
        "query",
        "SELECT 1",
        &[],
    );
    assert_eq!(status, 500);
    assert!(
        body.contains("ConnectionFailed") && body.contains("allowed_outbound_hosts"),
        "{body}"
    );
}

#[test]
fn spin_sdk_7_mysql_3_0_against_a_real_mariadb() {
    let db = servers::Mariadb::start();
    let port = db.port;
    let s = serve(&format!("mysql://127.0.0.1:{port}"));
    let addr = format!("mysql://spin:spin@127.0.0.1:{port}/spin");
    let run = |mode, sql, args: &[&str]| call(&s, "mysql", &addr, mode, sql, args);

    let create = "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50), n BIGINT)";
    assert_eq!(run("execute", create, &[]), (200, "ok".into()));
    let insert = "INSERT INTO t (name, n) VALUES (?, ?), (?, ?)";
    assert_eq!(
        run(
            "execute",
            insert,
            &["str:héllo", "i64:-9000000000", "str:b", "null"]
        ),
        (200, "ok".into())
    );
    let (status, body) = run("query", "SELECT id, name, n FROM t ORDER BY id", &[]);
    assert_eq!(status, 200, "{body}\n{}", s.stderr());
    assert_eq!(
        body,
        "columns: id,name,n\n\
         row: DbValue::Int32(1)|DbValue::Str(\"héllo\")|DbValue::Int64(-9000000000)\n\
         row: DbValue::Int32(2)|DbValue::Str(\"b\")|DbValue::DbNull\n"
    );

    let (status, body) = run("query", "SELECT * FROM missing", &[]);
    assert_eq!(status, 500);
    assert!(body.contains("QueryFailed"), "{body}");

    let other = common::free_port();
    let (status, body) = call(
        &s,
        "mysql",
        &format!("mysql://spin:spin@127.0.0.1:{other}/spin"),
        "query",
        "SELECT 1",
        &[],
    );
    assert_eq!(status, 500);
    assert!(
        body.contains("ConnectionFailed") && body.contains("allowed_outbound_hosts"),
        "{body}"
    );
}

//! End-to-end: the async `spin:postgres/postgres@4.2.0` and `spin:mysql/mysql@3.0.0`,
//! called by a spin-sdk 7 app (`tests/apps/rust-v7-outbound`, a WASI 0.3 component)
//! served by the real `spinlet run`, against a real PostgreSQL and a real MariaDB on
//! loopback (see `rdbms/servers.rs`; PostgreSQL over TLS too). Rows arrive through the
//! interfaces' streams; the value mapping itself is covered for every type by
//! `tests/rdbms.rs`.

#[path = "rdbms/client.rs"]
mod client;
mod common;
// Shared with rdbms.rs, which uses all of it.
#[allow(dead_code)]
#[path = "rdbms/servers.rs"]
mod servers;

use client::call;
use common::Start;

/// What differs between the two databases in [`round_trip`].
struct Dialect {
    /// `pg` or `mysql`.
    db: &'static str,
    /// The address scheme, as `allowed_outbound_hosts` names it.
    scheme: &'static str,
    /// `user[:password]@` in the address.
    credentials: &'static str,
    /// The database in the address.
    database: &'static str,
    create: &'static str,
    insert: &'static str,
    /// The execute replies to `create` and `insert`.
    executed: [&'static str; 2],
    /// A query answering whether the connection is TLS, the address suffix asking for
    /// TLS, and a CA file the server's certificate is signed by.
    tls: Option<(&'static str, &'static str, std::path::PathBuf)>,
}

/// Creates a table, inserts two rows with parameters, reads them back through the
/// stream, and checks a failing statement and an address the component may not reach.
fn round_trip(d: &Dialect, port: u16) {
    let trust = d.tls.iter().map(|(_, _, ca)| {
        (
            "SSL_CERT_FILE".to_string(),
            ca.to_string_lossy().into_owned(),
        )
    });
    let s = client::serve(
        "rust-v7-outbound",
        &format!("{}://127.0.0.1:{port}", d.scheme),
        Start {
            env: trust.collect(),
            ..Default::default()
        },
    );
    let addr = format!(
        "{}://{}127.0.0.1:{port}/{}",
        d.scheme, d.credentials, d.database
    );
    let run = |mode, sql, args: &[&str]| call(&s, d.db, &addr, mode, sql, args);

    assert_eq!(run("execute", d.create, &[]), (200, d.executed[0].into()));
    let args = ["str:héllo", "i64:-9000000000", "str:b", "null"];
    assert_eq!(run("execute", d.insert, &args), (200, d.executed[1].into()));
    let (status, body) = run("query", "SELECT id, name, n FROM t ORDER BY id", &[]);
    assert_eq!(status, 200, "{body}\n{}", s.stderr());
    assert_eq!(
        body,
        "columns: id,name,n\n\
         row: DbValue::Int32(1)|DbValue::Str(\"héllo\")|DbValue::Int64(-9000000000)\n\
         row: DbValue::Int32(2)|DbValue::Str(\"b\")|DbValue::DbNull\n"
    );
    let (status, body) = run("query", "SELECT n FROM t WHERE id = 3", &[]);
    assert_eq!((status, body.as_str()), (200, "columns: n\n"));

    let (status, body) = run("query", "SELECT * FROM missing", &[]);
    assert_eq!(status, 500);
    assert!(body.contains("QueryFailed"), "{body}");

    if let Some((is_tls, suffix, _)) = &d.tls {
        let tls = call(&s, d.db, &format!("{addr}{suffix}"), "query", is_tls, &[]);
        let answer = "columns: ssl\nrow: DbValue::Boolean(true)\n";
        assert_eq!((tls.0, tls.1.as_str()), (200, answer), "TLS, verified");
    }

    // An address outside allowed_outbound_hosts never leaves the host.
    let other = addr.replace(&port.to_string(), &common::free_port().to_string());
    let (status, body) = call(&s, d.db, &other, "query", "SELECT 1", &[]);
    assert_eq!(status, 500);
    assert!(
        body.contains("ConnectionFailed") && body.contains("allowed_outbound_hosts"),
        "{body}"
    );
}

#[test]
fn spin_sdk_7_postgres_4_2_against_a_real_server() {
    let pki = common::servers::Pki::new(&common::scratch_dir("v7-pg-tls"), "pg");
    let pg = servers::Postgres::start_tls(&pki.cert, &pki.key);
    let dialect = Dialect {
        db: "pg",
        scheme: "postgres",
        credentials: "postgres@",
        database: "postgres",
        create: "CREATE TABLE t (id SERIAL PRIMARY KEY, name TEXT, n BIGINT)",
        insert: "INSERT INTO t (name, n) VALUES ($1, $2), ($3, $4)",
        executed: ["affected: 0", "affected: 2"],
        tls: Some((
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            "?sslmode=require",
            pki.ca.clone(),
        )),
    };
    round_trip(&dialect, pg.port);
}

#[test]
fn spin_sdk_7_mysql_3_0_against_a_real_mariadb() {
    let db = servers::Mariadb::start();
    let dialect = Dialect {
        db: "mysql",
        scheme: "mysql",
        credentials: "spin:spin@",
        database: "spin",
        create: "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50), n BIGINT)",
        insert: "INSERT INTO t (name, n) VALUES (?, ?), (?, ?)",
        executed: ["ok", "ok"],
        // MySQL TLS is covered by rdbms.rs (the connection code is shared).
        tls: None,
    };
    round_trip(&dialect, db.port);
}

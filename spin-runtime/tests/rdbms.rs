//! End-to-end tests of outbound PostgreSQL and MySQL: real servers (Debian's `postgresql`
//! and `mariadb-server`, see [`servers`]) on loopback, the real `spinlet run` serving the
//! spin-sdk 5 test app `tests/apps/rust-v5-rdbms`, which calls
//! `spin:postgres/postgres@4.0.0`, `@3.0.0`, `fermyon:spin/postgres@2.0.0` and
//! `fermyon:spin/mysql@2.0.0` as each request asks (the 4.0.0 import is served by the
//! 4.2.0 implementation; the async 4.2.0 and MySQL 3.0.0 functions share this code and
//! are link-tested in `tests/rdbms_v4_2.rs`).

#[path = "rdbms/client.rs"]
mod client;
mod common;
#[path = "rdbms/servers.rs"]
mod servers;

use client::call;
use common::{Spinlet, Start};

/// The spin-sdk 5 app, whose component may reach `allowed` only.
fn serve(allowed: &str) -> Spinlet {
    serve_with(allowed, Start::default())
}

/// [`serve`], starting `spinlet run` with `start`.
fn serve_with(allowed: &str, start: Start) -> Spinlet {
    client::serve("rust-v5-rdbms", allowed, start)
}

#[test]
fn postgres_against_a_real_server() {
    let pg = servers::Postgres::start();
    let port = pg.port;
    let s = serve(&format!("postgres://127.0.0.1:{port}"));
    let addr = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let run = |db, mode, sql, args: &[&str]| call(&s, db, &addr, mode, sql, args);

    let create = "CREATE TABLE t (id SERIAL PRIMARY KEY, flag BOOLEAN, small SMALLINT, \
                  big BIGINT, real4 REAL, dbl DOUBLE PRECISION, name TEXT, data BYTEA, \
                  day DATE, at TIMESTAMP, ident UUID, doc JSONB, amount NUMERIC, \
                  nums INT4[], span INTERVAL, r INT4RANGE, addr INET)";
    assert_eq!(
        run("pg4", "execute", create, &[]),
        (200, "affected: 0".into())
    );

    // Parameters of every kind; an execute reports the rows it changed.
    let insert = "INSERT INTO t (flag, small, big, real4, dbl, name, data, day, at, ident, doc, \
                  amount, nums, span, r, addr) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '10.0.0.1')";
    let args = [
        "bool:true",
        "i16:-7",
        "i64:9000000000",
        "f32:1.5",
        "f64:-2.25",
        "str:héllo",
        "bin:raw",
        "date:2024,2,29",
        "dt:2024,2,29,23,59,58,123000000",
        "uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
        "json:{\"a\": [1, 2]}",
        "dec:12.50",
        "i32s:1,~,3",
        "interval:1500000,2,14",
        "range32:1,10",
    ];
    assert_eq!(
        run("pg4", "execute", insert, &args),
        (200, "affected: 1".into())
    );
    let nulls = ["null"; 15];
    assert_eq!(
        run("pg4", "execute", insert, &nulls),
        (200, "affected: 1".into())
    );

    // Rows come back with their columns and typed values; nulls as db-null, a column
    // of a type without a mapping as other/unsupported with its raw bytes.
    let (status, body) = run("pg4", "query", "SELECT * FROM t ORDER BY id", &[]);
    assert_eq!(status, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "columns: id:DbDataType::Int32,flag:DbDataType::Boolean,small:DbDataType::Int16,\
         big:DbDataType::Int64,real4:DbDataType::Floating32,dbl:DbDataType::Floating64,\
         name:DbDataType::Str,data:DbDataType::Binary,day:DbDataType::Date,\
         at:DbDataType::Datetime,ident:DbDataType::Uuid,doc:DbDataType::Jsonb,\
         amount:DbDataType::Decimal,nums:DbDataType::ArrayInt32,span:DbDataType::Interval,\
         r:DbDataType::RangeInt32,addr:DbDataType::Other(\"inet\")"
    );
    let row: Vec<&str> = lines[1].trim_start_matches("row: ").split('|').collect();
    assert_eq!(
        row,
        [
            "DbValue::Int32(1)",
            "DbValue::Boolean(true)",
            "DbValue::Int16(-7)",
            "DbValue::Int64(9000000000)",
            "DbValue::Floating32(1.5)",
            "DbValue::Floating64(-2.25)",
            "DbValue::Str(\"héllo\")",
            "DbValue::Binary([114, 97, 119])",
            "DbValue::Date((2024, 2, 29))",
            "DbValue::Datetime((2024, 2, 29, 23, 59, 58, 123000000))",
            "DbValue::Uuid(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")",
            // JSONB comes back as the server normalised it, re-serialised.
            &format!("DbValue::Jsonb({:?})", br#"{"a":[1,2]}"#.to_vec()),
            "DbValue::Decimal(\"12.50\")",
            "DbValue::ArrayInt32([Some(1), None, Some(3)])",
            "DbValue::Interval(Interval { micros: 1500000, days: 2, months: 14 })",
            "DbValue::RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((10, RangeBoundKind::Exclusive))))",
            // inet 10.0.0.1/32 on the wire: family, bits, is_cidr, length, address.
            "DbValue::Unsupported([2, 32, 0, 4, 10, 0, 0, 1])",
        ]
    );
    let nulls: Vec<&str> = lines[2].trim_start_matches("row: ").split('|').collect();
    assert_eq!(nulls[0], "DbValue::Int32(2)");
    assert!(
        nulls[1..16].iter().all(|v| *v == "DbValue::DbNull"),
        "{nulls:?}"
    );
    assert_eq!(lines.len(), 3, "{body}");

    // Parameters in a WHERE clause, and an update's affected-row count.
    let (status, body) = run(
        "pg4",
        "query",
        "SELECT name FROM t WHERE big = $1 AND flag = $2",
        &["i64:9000000000", "bool:true"],
    );
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "columns: name:DbDataType::Str\nrow: DbValue::Str(\"héllo\")\n"
        )
    );
    assert_eq!(
        run("pg4", "execute", "UPDATE t SET small = 1", &[]),
        (200, "affected: 2".into())
    );
    let (status, body) = run("pg4", "query", "SELECT id FROM t WHERE id > 100", &[]);
    assert_eq!(
        (status, body.as_str()),
        (200, "columns: id:DbDataType::Int32\n"),
        "columns of an empty result"
    );

    // A key=value connection string is checked host by host too.
    let kv = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let (status, body) = call(&s, "pg4", &kv, "query", "SELECT 1 + 1 AS two", &[]);
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "columns: two:DbDataType::Int32\nrow: DbValue::Int32(2)\n"
        )
    );

    // SQL errors are the interface's query error with the server's details, not a trap.
    let (status, body) = run("pg4", "query", "SELECT * FROM missing", &[]);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.starts_with("error: Error::QueryFailed(QueryError::DbError(DbError {"),
        "{body}"
    );
    assert!(
        body.contains("code: \"42P01\"")
            && body.contains("relation \\\"missing\\\" does not exist"),
        "{body}"
    );
    let (status, body) = run(
        "pg4",
        "execute",
        "INSERT INTO t (small) VALUES ($1)",
        &["i32:70000"],
    );
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("Error::QueryFailed(QueryError::Text("),
        "a parameter of the wrong type: {body}"
    );
    // A parameter that cannot convert is bad-parameter, naming it.
    let (status, body) = run("pg4", "query", "SELECT $1::date", &["date:2023,2,29"]);
    assert_eq!(status, 500);
    assert!(
        body.starts_with("error: Error::BadParameter(\"parameter $1: invalid date"),
        "{body}"
    );

    // 3.0.0 and 2.0.0 see the types they have and `unsupported`/`other` for the rest.
    let sql = "SELECT small, day, ident FROM t WHERE id = 1";
    let (status, body) = run("pg3", "query", sql, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "columns: small:DbDataType::Int16,day:DbDataType::Date,ident:DbDataType::Other\n\
         row: DbValue::Int16(1)|DbValue::Date((2024, 2, 29))|DbValue::Unsupported\n"
    );
    let (status, body) = run("pg2", "query", sql, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "columns: small:DbDataType::Int16,day:DbDataType::Other,ident:DbDataType::Other\n\
         row: DbValue::Int16(1)|DbValue::Unsupported|DbValue::Unsupported\n"
    );
    assert_eq!(
        run("pg3", "execute", "DELETE FROM t WHERE id = $1", &["i32:2"]),
        (200, "affected: 1".into())
    );
    assert_eq!(
        run("pg2", "execute", "UPDATE t SET name = $1", &["str:v2"]),
        (200, "affected: 1".into())
    );
    let (status, body) = run("pg3", "query", "SELECT * FROM missing", &[]);
    assert_eq!(status, 500);
    assert!(
        body.starts_with("error: Error::QueryFailed(\"db error: ERROR: relation"),
        "{body}"
    );
    let (status, body) = run("pg2", "query", "SELECT $1", &["u8:1"]);
    assert_eq!(
        (status, body.as_str()),
        (
            500,
            "error: Error::ValueConversionFailed(\"Postgres does not support unsigned integers\")"
        )
    );

    // A server not in allowed_outbound_hosts is a connection error naming it.
    let other = common::free_port();
    for db in ["pg4", "pg3", "pg2"] {
        let denied = format!("postgres://postgres:secret@127.0.0.1:{other}/postgres");
        let (status, body) = call(&s, db, &denied, "query", "SELECT 1", &[]);
        assert_eq!(
            (status, body.as_str()),
            (500, format!("error: Error::ConnectionFailed(\"address postgres://127.0.0.1:{other} is not permitted by the component's allowed_outbound_hosts\")").as_str()),
            "{db}"
        );
    }
    s.stop();
}

#[test]
fn mysql_against_a_real_mariadb() {
    let db = servers::Mariadb::start();
    let port = db.port;
    let s = serve(&format!("mysql://127.0.0.1:{port}"));
    let addr = format!("mysql://spin:spin@127.0.0.1:{port}/spin");
    let run = |mode, sql, args: &[&str]| call(&s, "mysql", &addr, mode, sql, args);

    let create = "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, flag BOOLEAN, \
                  tiny TINYINT, utiny TINYINT UNSIGNED, small SMALLINT, usmall SMALLINT UNSIGNED, \
                  uint INT UNSIGNED, big BIGINT, ubig BIGINT UNSIGNED, f FLOAT, d DOUBLE, \
                  name VARCHAR(50), note TEXT, data VARBINARY(50), blb BLOB, day DATE)";
    assert_eq!(run("execute", create, &[]), (200, "ok".into()));
    let insert = "INSERT INTO t (flag, tiny, utiny, small, usmall, uint, big, ubig, f, d, name, \
                  note, data, blb) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let args = [
        "bool:true",
        "i8:-8",
        "u8:200",
        "i16:-300",
        "u16:60000",
        "u32:4000000000",
        "i64:-9000000000",
        "u64:18000000000000000000",
        "f32:1.5",
        "f64:-2.25",
        "str:héllo",
        "str:long text",
        "bin:raw",
        "bin:blob",
    ];
    assert_eq!(run("execute", insert, &args), (200, "ok".into()));
    assert_eq!(run("execute", insert, &["null"; 14]), (200, "ok".into()));

    let (status, body) = run("query", "SELECT id, flag, tiny, utiny, small, usmall, uint, big, ubig, f, d, name, note, data, blb FROM t ORDER BY id", &[]);
    assert_eq!(status, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "columns: id:DbDataType::Int32,flag:DbDataType::Int8,tiny:DbDataType::Int8,\
         utiny:DbDataType::Uint8,small:DbDataType::Int16,usmall:DbDataType::Uint16,\
         uint:DbDataType::Uint32,big:DbDataType::Int64,ubig:DbDataType::Uint64,\
         f:DbDataType::Floating32,d:DbDataType::Floating64,name:DbDataType::Str,\
         note:DbDataType::Str,data:DbDataType::Binary,blb:DbDataType::Binary"
    );
    assert_eq!(
        lines[1],
        "row: DbValue::Int32(1)|DbValue::Int8(1)|DbValue::Int8(-8)|DbValue::Uint8(200)|\
         DbValue::Int16(-300)|DbValue::Uint16(60000)|DbValue::Uint32(4000000000)|\
         DbValue::Int64(-9000000000)|DbValue::Uint64(18000000000000000000)|\
         DbValue::Floating32(1.5)|DbValue::Floating64(-2.25)|DbValue::Str(\"héllo\")|\
         DbValue::Str(\"long text\")|DbValue::Binary([114, 97, 119])|\
         DbValue::Binary([98, 108, 111, 98])"
    );
    let nulls: Vec<&str> = lines[2].trim_start_matches("row: ").split('|').collect();
    assert_eq!(nulls[0], "DbValue::Int32(2)");
    assert!(
        nulls[1..].iter().all(|v| *v == "DbValue::DbNull"),
        "{nulls:?}"
    );
    assert_eq!(lines.len(), 3, "{body}");

    // Parameters in a WHERE clause.
    let (status, body) = run(
        "query",
        "SELECT name FROM t WHERE big = ? AND utiny = ?",
        &["i64:-9000000000", "u8:200"],
    );
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "columns: name:DbDataType::Str\nrow: DbValue::Str(\"héllo\")\n"
        )
    );
    // A column type Spin does not map fails the query naming the column (as in Spin);
    // a null in it is fine.
    assert_eq!(
        run(
            "execute",
            "UPDATE t SET day = ? WHERE id = ?",
            &["str:2024-02-29", "i32:1"]
        ),
        (200, "ok".into())
    );
    let (status, body) = run("query", "SELECT day FROM t WHERE id = 2", &[]);
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "columns: day:DbDataType::Other\nrow: DbValue::DbNull\n"
        )
    );
    let (status, body) = run("query", "SELECT day FROM t WHERE id = 1", &[]);
    assert_eq!(status, 500);
    assert!(
        body.starts_with(
            "error: Error::ValueConversionFailed(\"cannot convert the value of column `day`"
        ),
        "{body}"
    );

    // SQL errors are the interface's query error, not a trap.
    let (status, body) = run("query", "SELECT * FROM missing", &[]);
    assert_eq!(status, 500);
    assert!(
        body.starts_with("error: Error::QueryFailed(")
            && body.contains("spin.missing' doesn't exist"),
        "{body}"
    );
    let (status, body) = run("execute", "INSERT INTO nowhere VALUES (1)", &[]);
    assert_eq!(status, 500);
    assert!(body.starts_with("error: Error::QueryFailed("), "{body}");

    // A server not in allowed_outbound_hosts is a connection error naming it (and not
    // the password); a bad login is a connection error too.
    let other = common::free_port();
    let denied = format!("mysql://spin:secret@127.0.0.1:{other}/spin");
    let (status, body) = call(&s, "mysql", &denied, "query", "SELECT 1", &[]);
    assert_eq!(
        (status, body.as_str()),
        (500, format!("error: Error::ConnectionFailed(\"address mysql://127.0.0.1:{other} is not permitted by the component's allowed_outbound_hosts\")").as_str())
    );
    let wrong = format!("mysql://spin:wrong@127.0.0.1:{port}/spin");
    let (status, body) = call(&s, "mysql", &wrong, "query", "SELECT 1", &[]);
    assert_eq!(status, 500);
    assert!(
        body.starts_with("error: Error::ConnectionFailed(") && body.contains("Access denied"),
        "{body}"
    );
    s.stop();
}

#[test]
fn postgres_over_tls_with_the_hosts_trusted_roots() {
    let pki = common::servers::Pki::new(&common::scratch_dir("pg-tls"), "pg");
    let pg = servers::Postgres::start_tls(&pki.cert, &pki.key);
    let port = pg.port;
    let allowed = format!("postgres://127.0.0.1:{port}");
    let trusting = serve_with(
        &allowed,
        Start {
            env: vec![pki.trust_env()],
            ..Default::default()
        },
    );
    let is_tls = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let addr = |mode: &str| format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode={mode}");
    // `require` and the default `prefer` use TLS, verified against SSL_CERT_FILE's CA;
    // `disable` is plain text.
    for (mode, tls) in [("require", true), ("prefer", true), ("disable", false)] {
        let (status, body) = call(&trusting, "pg4", &addr(mode), "query", is_tls, &[]);
        assert_eq!(
            (status, body.as_str()),
            (
                200,
                format!("columns: ssl:DbDataType::Boolean\nrow: DbValue::Boolean({tls})\n")
                    .as_str()
            ),
            "sslmode={mode}"
        );
    }
    let default = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let (status, body) = call(&trusting, "pg3", &default, "query", is_tls, &[]);
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "columns: ssl:DbDataType::Boolean\nrow: DbValue::Boolean(true)\n"
        )
    );
    trusting.stop();

    // Without the CA the server's certificate is not trusted: a connection error.
    let plain = serve(&allowed);
    let (status, body) = call(&plain, "pg4", &addr("require"), "query", is_tls, &[]);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.starts_with("error: Error::ConnectionFailed(") && body.contains("certificate"),
        "{body}"
    );
    let (status, body) = call(&plain, "pg4", &addr("disable"), "query", is_tls, &[]);
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "columns: ssl:DbDataType::Boolean\nrow: DbValue::Boolean(false)\n"
        )
    );
    plain.stop();
}

#[test]
fn mysql_over_tls_with_the_hosts_trusted_roots() {
    let pki = common::servers::Pki::new(&common::scratch_dir("mysql-tls"), "mariadb");
    let db = servers::Mariadb::start_tls(&pki.cert, &pki.key);
    let port = db.port;
    let allowed = format!("mysql://127.0.0.1:{port}");
    let addr = |mode: &str| format!("mysql://spin:spin@127.0.0.1:{port}/spin?ssl-mode={mode}");
    let tls_version = "SHOW SESSION STATUS LIKE 'Ssl_version'";
    let trusting = serve_with(
        &allowed,
        Start {
            env: vec![pki.trust_env()],
            ..Default::default()
        },
    );
    // REQUIRED, VERIFY_* and PREFERRED (the server offers TLS) use TLS, verified
    // against SSL_CERT_FILE's CA; DISABLED is plain text.
    for (mode, tls) in [
        ("REQUIRED", true),
        ("verify_identity", true),
        ("PREFERRED", true),
        ("DISABLED", false),
    ] {
        let (status, body) = call(&trusting, "mysql", &addr(mode), "query", tls_version, &[]);
        assert_eq!(status, 200, "ssl-mode={mode}: {body}");
        assert_eq!(
            body.contains("DbValue::Str(\"TLSv1."),
            tls,
            "ssl-mode={mode}: {body}"
        );
    }
    let (status, body) = call(
        &trusting,
        "mysql",
        &addr("sometimes"),
        "query",
        "SELECT 1",
        &[],
    );
    assert_eq!(status, 500);
    assert!(body.contains("invalid ssl-mode `sometimes`"), "{body}");
    trusting.stop();

    // Without the CA the server's certificate is not trusted: a connection error.
    let plain = serve(&allowed);
    let (status, body) = call(
        &plain,
        "mysql",
        &addr("REQUIRED"),
        "query",
        tls_version,
        &[],
    );
    assert_eq!(status, 500, "{body}");
    assert!(
        body.starts_with("error: Error::ConnectionFailed(") && body.contains("certificate"),
        "{body}"
    );
    plain.stop();
}

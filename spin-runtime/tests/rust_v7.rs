//! End-to-end: the spin-sdk 7 test app (`tests/apps/rust-v7-hello`), a WASI 0.3
//! component exporting `wasi:http/handler@0.3.0`, served by the real `spinlet run` from a
//! directory and from a registry.

mod common;

use common::sdk_apps::Run;
use common::{app_with_manifest, build_app, Spinlet};

fn ok(s: &Spinlet, path: &str) -> String {
    let r = s.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), s.stderr());
    r.text()
}

fn failed_with(s: &Spinlet, path: &str, status: u16, error: &str) {
    let r = s.get(path);
    assert_eq!(r.status, status, "GET {path}: {}", r.text());
    assert!(r.text().contains(error), "GET {path}: {}", r.text());
}

/// What the shared SDK run does not cover for spin-sdk 7: the rest of the async
/// `spin:key-value@3.0.0` store (streamed keys, exists, delete, grants), the async
/// `spin:sqlite@3.1.0` functions (streamed rows, rowid, changes, grants; the default
/// database persists across the restart), instance reuse and concurrent requests.
fn check_v7(s: &Spinlet, run: Run) {
    // Each insert is the table's newest row: its rowid counts the rows (none deleted).
    for value in ["x", "y"] {
        let r = s.get(&format!("/app?op=sqlite&value={value}"));
        assert_eq!(r.status, 200, "{}\n{}", r.text(), s.stderr());
        let text = r.text();
        let rows: Vec<&str> = text.split(',').collect();
        assert_eq!(rows.last(), Some(&value), "{text}");
        assert_eq!(r.headers["sqlite-rowid"], rows.len().to_string(), "{text}");
        assert_eq!(r.headers["sqlite-changes"], "1");
        if run == Run::FromRegistry {
            assert!(rows.len() > 2, "the rows of the first run persist: {text}");
        }
    }
    failed_with(s, "/hello?op=sqlite&value=z", 500, "AccessDenied");
    failed_with(s, "/app?op=sqlite&value=z&db=other", 500, "AccessDenied");

    // `k` was stored by the shared run before this, from the directory.
    assert_eq!(ok(s, "/app?op=kv-set&key=a&value=1"), "stored");
    assert_eq!(ok(s, "/app?op=kv-set&key=b&value=2"), "stored");
    assert_eq!(ok(s, "/app?op=kv-keys"), "a,b,k");
    assert_eq!(ok(s, "/app?op=kv-exists&key=a"), "true");
    assert_eq!(ok(s, "/app?op=kv-del&key=a"), "deleted");
    assert_eq!(ok(s, "/app?op=kv-exists&key=a"), "false");
    assert_eq!(ok(s, "/app?op=kv-del&key=b"), "deleted");
    assert_eq!(ok(s, "/app?op=kv-keys"), "k");
    failed_with(s, "/app?op=kv-keys&label=other", 403, "AccessDenied");
    failed_with(s, "/hello?op=kv-keys", 403, "AccessDenied");

    // Instances are reused across requests, as Spin 3.6+ does for WASI 0.3 (one
    // connection: its requests stay on one serving thread, whose instances serve them).
    let served = counts(s, "/app", 2);
    let first: u64 = served[0].parse().expect("count");
    let second: u64 = served[1].parse().expect("count");
    assert!(
        second > first,
        "the same instance served both: {first} then {second}"
    );

    // Concurrent requests are all answered.
    let addr = s.addr;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                common::http_request(addr, "GET", "/hello", &[], b"").expect("request")
            })
        })
        .collect();
    for t in threads {
        let r = t.join().expect("thread");
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// Routing, `spin-*` headers, variables (`spin:variables@3.0.0`) from the command line
/// and the environment, key-value persistence across the restart, outbound HTTP
/// (`wasi:http/client@0.3.0`) allowed and denied, from a directory and from a registry.
#[test]
fn spin_sdk_7_component_is_served_from_a_directory_and_a_registry() {
    let wasm = build_app("rust-v7-hello");
    common::sdk_apps::serve_from_dir_then_registry(
        "rust-v7-hello",
        &wasm,
        "Hello from spin-sdk 7",
        &check_v7,
    );
}

const FAILURES: &str = r#"
spin_manifest_version = 2
[application]
name = "failures-p3"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
"#;

#[test]
fn wasi_0_3_traps_deadlines_and_memory_cap_give_500_and_the_server_keeps_serving() {
    let wasm = build_app("rust-v7-hello");
    let dir = app_with_manifest("failures-p3", &wasm, FAILURES);
    let s = Spinlet::start(&dir, common::failure_limits());

    common::failures_give_500(&s);
}

fn start_with(dir: &std::path::Path, args: &[&str]) -> Spinlet {
    Spinlet::start(
        dir,
        common::Start {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// `n` requests for the instance's request count, on one kept-alive connection.
fn counts(s: &Spinlet, path: &str, n: usize) -> Vec<String> {
    let mut connection = common::Connection::open(s.addr).expect("connect");
    (0..n)
        .map(|_| {
            let r = connection
                .get(&format!("{path}?op=count"))
                .unwrap_or_else(|e| panic!("GET {path}?op=count: {e}\n{}", s.stderr()));
            assert_eq!(r.status, 200, "{}\n{}", r.text(), s.stderr());
            r.text()
        })
        .collect()
}

#[test]
fn instance_reuse_follows_spins_reuse_flags() {
    let wasm = build_app("rust-v7-hello");
    let dir = app_with_manifest("reuse-flags", &wasm, FAILURES);

    let s = start_with(&dir, &["--max-instance-reuse-count", "1"]);
    assert_eq!(
        counts(&s, "/", 3),
        ["1", "1", "1"],
        "a fresh instance per request"
    );
    s.stop();

    let s = start_with(&dir, &["--max-instance-reuse-count", "3"]);
    assert_eq!(
        counts(&s, "/", 4),
        ["1", "2", "3", "1"],
        "three requests per instance"
    );
    s.stop();

    let s = start_with(&dir, &["--idle-instance-timeout", "100ms"]);
    let mut connection = common::Connection::open(s.addr).expect("connect");
    let mut count = || connection.get("/?op=count").expect("GET /?op=count").text();
    assert_eq!([count(), count()], ["1", "2"]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(count(), "1", "the idle instance was dropped");
    s.stop();

    for (flag, value) in [
        ("--max-instance-reuse-count", "0"),
        ("--max-instance-concurrent-reuse-count", "0"),
        ("--idle-instance-timeout", "soon"),
    ] {
        let (success, stderr) = common::run_expecting_failure(&dir, &[flag, value]);
        assert!(!success, "{flag} {value} must be refused");
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "the error names {flag} and {value}: {stderr}"
        );
    }
}

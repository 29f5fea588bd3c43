//! End-to-end: the spin-sdk 7 test app (`tests/apps/rust-v7-hello`), a WASI 0.3
//! component exporting `wasi:http/handler@0.3.0`, served by the real `spinlet run` from a
//! directory and from a registry.

mod common;

use std::path::Path;

use common::{app_with_manifest, build_app, Spinlet, Start};

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "rust-v7-hello"
version = "7.0.0"
[[trigger.http]]
route = "/hello"
component = "hello"
[[trigger.http]]
route = "/app/..."
component = "app"
[component.hello]
source = "{wasm}"
[component.app]
source = "{wasm}"
allowed_outbound_hosts = ["http://127.0.0.1:ALLOWED"]
"#;

/// Routing, `spin-*` headers, outbound HTTP allowed and denied, instance reuse and
/// concurrent requests, for one server.
fn check_served(s: &Spinlet, allowed: u16, denied: u16) {
    let r = s.get("/hello");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.stderr());
    assert_eq!(r.text(), "Hello from spin-sdk 7");
    assert_eq!(s.get("/hello/more").status, 404, "/hello is an exact route");

    let r = s
        .request(
            "GET",
            "/app/a/b?op=echo&x=1",
            &[("Host", "sdk.example")],
            b"",
        )
        .expect("echo request");
    assert_eq!(r.status, 200, "{}", r.text());
    let h = r.echoed();
    assert_eq!(h["spin-full-url"], "http://sdk.example/app/a/b?op=echo&x=1");
    assert_eq!(h["spin-path-info"], "/a/b");
    assert_eq!(h["spin-matched-route"], "/app/...");
    assert_eq!(h["spin-raw-component-route"], "/app/...");
    assert_eq!(h["spin-component-route"], "/app");
    assert_eq!(h["spin-base-path"], "/");
    assert_eq!(h["spin-client-addr"], r.local_addr.to_string());

    // wasi:http/client@0.3.0 goes through the same allowed_outbound_hosts check.
    let r = s.get(&format!("/app?op=fetch&url=http://127.0.0.1:{allowed}/up"));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.stderr());
    assert_eq!(r.text(), "200 upstream says hi");
    let r = s.get(&format!("/app?op=fetch&url=http://127.0.0.1:{denied}/up"));
    assert_eq!(r.status, 502, "not in allowed_outbound_hosts: {}", r.text());

    // Instances are reused across requests, as Spin 3.6+ does for WASI 0.3.
    let first: u64 = s.get("/app?op=count").text().parse().expect("count");
    let second: u64 = s.get("/app?op=count").text().parse().expect("count");
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

    // Imports not implemented yet for WASI 0.3 (the async spin:key-value@3.0.0) link
    // and answer the interface's error instead of failing the app at start.
    let r = s.get("/app?op=kv-get&key=k");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("not available on this host"),
        "{}",
        r.text()
    );
}

#[test]
fn spin_sdk_7_component_is_served_from_a_directory_and_a_registry() {
    let wasm = build_app("rust-v7-hello");
    let allowed = common::upstream(4);
    let denied = common::upstream(2);
    let dir = app_with_manifest(
        "rust-v7-hello",
        &wasm,
        &APP.replace("ALLOWED", &allowed.to_string()),
    );
    let s = Spinlet::start(&dir, Start::default());
    check_served(&s, allowed, denied);
    s.stop();

    let registry = common::Registry::start();
    let reference = format!(
        "{}/spinlet-tests/rust-v7-hello:{}",
        registry.host,
        std::process::id()
    );
    common::push(&dir, &reference);
    let s = Spinlet::start(Path::new(&reference), Start::default());
    check_served(&s, allowed, denied);
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

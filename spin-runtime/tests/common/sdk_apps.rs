//! The run every SDK's hello app goes through (`tests/apps/{rust-v3,js,python}-hello`):
//! the same manifest, the same requests, the same expectations, so the SDKs are held to
//! one contract.
//!
//! The apps share a query protocol: `op=hello` (the default) answers a greeting,
//! `op=echo` the request's headers as `name: value` lines, `op=var&name=N` a variable
//! (404 when it fails), `op=kv-set&key=K&value=V` / `op=kv-get&key=K` the default
//! key-value store (404 when missing) and `op=fetch&url=U` an outbound GET answered as
//! `<status> <body>` (502 when it fails).
//!
//! One test = two `spinlet` starts: from the app directory, then from a registry after
//! `spinlet push`, sharing a state directory so key-value data must survive the restart.

use std::collections::HashMap;
use std::path::Path;

use super::{app_with_manifest, push, upstream, Registry, Response, Spinlet, Start};

fn manifest(app: &str, allowed_port: u16) -> String {
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "{app}"
version = "1.2.3"
[variables]
greeting = {{ required = true }}
[[trigger.http]]
route = "/hello"
component = "hello"
[[trigger.http]]
route = "/app/..."
component = "app"
[component.hello]
source = "{{wasm}}"
[component.app]
source = "{{wasm}}"
key_value_stores = ["default"]
variables = {{ message = "{{{{ greeting }}}}!" }}
allowed_outbound_hosts = ["http://127.0.0.1:{allowed_port}"]
"#
    )
}

fn ok(s: &Spinlet, path: &str) -> Response {
    let r = s.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), s.stderr());
    r
}

fn echo(s: &Spinlet, path: &str) -> (Response, HashMap<String, String>) {
    let r = s
        .request("GET", path, &[("Host", "sdk.example")], b"")
        .expect("echo request");
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), s.stderr());
    let h = r.echoed();
    (r, h)
}

/// Serves `wasm` (the app `app`, whose greeting is `hello`) from a directory and then
/// from a registry, checking routing, `spin-*` headers, variables, key-value
/// persistence and outbound HTTP; `more` runs the app's own checks against the
/// directory run (the component serves `/app/...`).
pub fn serve_from_dir_then_registry(app: &str, wasm: &Path, hello: &str, more: &dyn Fn(&Spinlet)) {
    let allowed = upstream(2);
    let denied = upstream(2);
    let dir = app_with_manifest(app, wasm, &manifest(app, allowed));
    let state = dir.join("state").to_string_lossy().into_owned();

    let s = Spinlet::start(
        &dir,
        Start {
            args: vec![
                "--state-dir".into(),
                state.clone(),
                "--variable".into(),
                "greeting=hi from the cli".into(),
            ],
            ..Default::default()
        },
    );
    assert_eq!(ok(&s, "/hello").text(), hello);
    assert_eq!(s.get("/hello/more").status, 404, "/hello is an exact route");

    let (r, h) = echo(&s, "/app/a/b?op=echo&x=1");
    assert_eq!(h["spin-full-url"], "http://sdk.example/app/a/b?op=echo&x=1");
    assert_eq!(h["spin-path-info"], "/a/b");
    assert_eq!(h["spin-matched-route"], "/app/...");
    assert_eq!(h["spin-raw-component-route"], "/app/...");
    assert_eq!(h["spin-component-route"], "/app");
    assert_eq!(h["spin-base-path"], "/");
    assert_eq!(h["spin-client-addr"], r.local_addr.to_string());
    assert_eq!(echo(&s, "/app/?op=echo").1["spin-path-info"], "/");

    assert_eq!(
        ok(&s, "/app?op=var&name=message").text(),
        "hi from the cli!"
    );
    assert_eq!(
        s.get("/app?op=var&name=greeting").status,
        404,
        "app variables are not component variables"
    );

    assert_eq!(s.get("/app?op=kv-get&key=k").status, 404);
    assert_eq!(
        ok(&s, "/app?op=kv-set&key=k&value=persisted").text(),
        "stored"
    );
    assert_eq!(ok(&s, "/app?op=kv-get&key=k").text(), "persisted");
    let r = s.get("/hello?op=kv-get&key=k");
    assert_ne!(
        r.status,
        200,
        "a component without the store is denied: {}",
        r.text()
    );

    let r = ok(
        &s,
        &format!("/app?op=fetch&url=http://127.0.0.1:{allowed}/up"),
    );
    assert_eq!(r.text(), "200 upstream says hi");
    let r = s.get(&format!("/app?op=fetch&url=http://127.0.0.1:{denied}/up"));
    assert_eq!(r.status, 502, "not in allowed_outbound_hosts: {}", r.text());
    more(&s);
    s.stop();

    // From a registry, same state directory: the key-value data is still there.
    let registry = Registry::start();
    let reference = format!(
        "{}/spinlet-tests/{app}:{}",
        registry.host,
        std::process::id()
    );
    let digest = push(&dir, &reference);
    let s = Spinlet::start(
        Path::new(&reference),
        Start {
            args: vec!["--state-dir".into(), state],
            env: vec![("SPIN_VARIABLE_GREETING".into(), "hi from the env".into())],
            ..Default::default()
        },
    );
    assert_eq!(ok(&s, "/hello").text(), hello);
    assert_eq!(echo(&s, "/app/x?op=echo").1["spin-path-info"], "/x");
    assert_eq!(
        ok(&s, "/app?op=var&name=message").text(),
        "hi from the env!"
    );
    assert_eq!(ok(&s, "/app?op=kv-get&key=k").text(), "persisted");
    let info: serde_json::Value =
        serde_json::from_slice(&ok(&s, "/.well-known/spin/info").body).expect("info JSON");
    assert_eq!(info["name"], app);
    assert_eq!(info["oci_image_digest"], digest.as_str());
}

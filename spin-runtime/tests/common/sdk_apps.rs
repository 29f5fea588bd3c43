//! The run every SDK's hello app goes through (`tests/apps/{rust-v3,js,python}-hello`):
//! the same manifest, the same requests, the same expectations, so the SDKs are held to
//! one contract.
//!
//! The apps share a query protocol: `op=hello` (the default) answers a greeting,
//! `op=echo` the request's headers as `name: value` lines, `op=var&name=N` a variable
//! (404 when it fails), `op=kv-set&key=K&value=V` / `op=kv-get&key=K` the default
//! key-value store (404 when missing), `op=fetch&url=U` an outbound GET answered as
//! `<status> <body>` (502 when it fails) and `op=sqlite&value=V[&db=L]` opens sqlite
//! database L (`default` unless given), creates table `t (v TEXT NOT NULL)` if missing,
//! inserts V and answers every `v` by rowid, comma-separated (500 with the error when it
//! fails).
//!
//! One test = two `spinlet` starts: from the app directory, then from a registry after
//! `spinlet push`, sharing a state directory so key-value and sqlite data must survive
//! the restart.

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
sqlite_databases = ["default"]
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

/// Which of the two starts an app's own checks run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// `spinlet run <app dir>`, with a fresh state directory.
    FromDir,
    /// `spinlet run <reference>` after `spinlet push`, with the same state directory.
    FromRegistry,
}

/// Serves `wasm` (the app `app`, whose greeting is `hello`) from a directory and then
/// from a registry, checking routing, `spin-*` headers, variables, key-value and sqlite
/// persistence and outbound HTTP; `more` runs the app's own checks against each run
/// (the component `app` serves `/app/...` and is granted the `default` key-value store
/// and sqlite database; `hello` serves `/hello` and is granted nothing).
pub fn serve_from_dir_then_registry(
    app: &str,
    wasm: &Path,
    hello: &str,
    more: &dyn Fn(&Spinlet, Run),
) {
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
    assert_eq!(
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.as_str()),
        Some("sdk.example"),
        "the guest gets the request's Host"
    );
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

    // Before `more`: an app's own checks may add rows to the same table.
    assert_eq!(ok(&s, "/app?op=sqlite&value=a").text(), "a");
    assert_eq!(ok(&s, "/app?op=sqlite&value=b").text(), "a,b");
    // Each SDK spells the error its own way: `AccessDenied`, `Error_AccessDenied`,
    // `{"tag":"access-denied"}`.
    for (path, why) in [
        (
            "/hello?op=sqlite&value=z",
            "a component without the database",
        ),
        (
            "/app?op=sqlite&value=z&db=other",
            "a database the component is not granted",
        ),
    ] {
        let r = s.get(path);
        let error = r.text().to_ascii_lowercase().replace(['-', '_'], "");
        assert!(
            r.status != 200 && error.contains("accessdenied"),
            "{why} is denied with access-denied: {} {}",
            r.status,
            r.text()
        );
    }
    more(&s, Run::FromDir);
    s.stop();

    // From a registry, same state directory: the key-value and sqlite data are still
    // there.
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
    // The directory run's rows, then whatever its `more` added, then this one.
    let rows = ok(&s, "/app?op=sqlite&value=c").text();
    assert!(
        rows.starts_with("a,b,") && rows.ends_with(",c"),
        "the default database persists across runs: {rows}"
    );
    more(&s, Run::FromRegistry);
}

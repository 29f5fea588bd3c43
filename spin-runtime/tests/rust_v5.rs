//! End-to-end tests: the real `spinlet run` serving the spin-sdk 5 test app
//! (`tests/apps/rust-v5-hello`, built for wasm32-wasip2), over HTTP on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{
    app_with_manifest, build_app, build_app_for, push, run_expecting_failure, upstream, Registry,
    Spinlet, Start,
};

const ROUTING: &str = r#"
spin_manifest_version = 2
[application]
name = "routing-test"
version = "0.3.0"

[[trigger.http]]
route = "/"
component = "root"
[[trigger.http]]
route = "/foo/..."
component = "foo"
[[trigger.http]]
route = "/foo/bar"
component = "foobar"
[[trigger.http]]
route = "/users/:user_id"
component = "users"
[[trigger.http]]
route = { private = true }
component = "hidden"
[[trigger.http]]
route = "/static"
static_response = { status_code = 201, headers = { x-static = "yes" }, body = "static body" }

[component.root]
source = "{wasm}"
[component.foo]
source = "{wasm}"
[component.foobar]
source = "{wasm}"
[component.users]
source = "{wasm}"
[component.hidden]
source = "{wasm}"
"#;

#[test]
fn routing_and_spin_headers() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("routing", &wasm, ROUTING);
    let s = Spinlet::start(&dir, Start::default());

    // The worked example of Spin's header tests, over a real socket.
    let r = s
        .request(
            "GET",
            "/foo/bar/baz?key1=value1&key2=value2",
            &[("Host", "fermyon.dev")],
            b"",
        )
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.text());
    let h = r.echoed();
    assert_eq!(
        h["spin-full-url"],
        "http://fermyon.dev/foo/bar/baz?key1=value1&key2=value2"
    );
    assert_eq!(h["spin-path-info"], "/bar/baz");
    assert_eq!(h["spin-matched-route"], "/foo/...");
    assert_eq!(h["spin-base-path"], "/");
    assert_eq!(h["spin-raw-component-route"], "/foo/...");
    assert_eq!(h["spin-component-route"], "/foo");
    assert_eq!(h["spin-client-addr"], r.local_addr.to_string());
    assert_eq!(
        h["uri"],
        "http://fermyon.dev/foo/bar/baz?key1=value1&key2=value2"
    );
    assert!(!h.contains_key("connection"), "Connection must be dropped");
    assert_eq!(
        h["host"], "fermyon.dev",
        "the guest gets the request's Host"
    );

    // Exact beats wildcard.
    let h = s.get("/foo/bar").echoed();
    assert_eq!(h["spin-matched-route"], "/foo/bar");
    assert_eq!(h["spin-component-route"], "/foo/bar");
    assert_eq!(h["spin-path-info"], "");

    // Path info keeps the trailing slash.
    assert_eq!(s.get("/foo").echoed()["spin-path-info"], "");
    assert_eq!(s.get("/foo/").echoed()["spin-path-info"], "/");
    assert_eq!(s.get("/foo/x/").echoed()["spin-path-info"], "/x/");

    // Captures.
    let h = s.get("/users/42").echoed();
    assert_eq!(h["spin-path-match-user-id"], "42");
    assert_eq!(h["spin-matched-route"], "/users/:user_id");

    // Root route: Spin's based route for `/` is empty.
    let h = s.get("/").echoed();
    assert_eq!(h["spin-raw-component-route"], "/");
    assert_eq!(h["spin-matched-route"], "");

    // No route, private route, reserved prefix: 404 with an empty body.
    for path in [
        "/nothing",
        "/users/1/2",
        "/hidden",
        "/.well-known/spin/other",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body.is_empty(), "{path}: {}", r.text());
    }

    // Reserved endpoints.
    let r = s.get("/.well-known/spin/health");
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let r = s.get("/.well-known/spin/info");
    let info: serde_json::Value = serde_json::from_slice(&r.body).expect("info is JSON");
    assert_eq!(info["name"], "routing-test");
    assert_eq!(info["version"], "0.3.0");

    // Static response.
    let r = s.get("/static");
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["x-static"], "yes");
    assert_eq!(r.text(), "static body");

    // Request body and guest-set status and headers.
    let r = s
        .request("POST", "/foo?op=body", &[], b"hello body")
        .expect("post");
    assert_eq!(r.text(), "10 bytes: hello body");
    let r = s.get("/foo?op=status&code=418");
    assert_eq!(r.status, 418);
    assert_eq!(r.headers["x-test"], "yes");
}

const VARIABLES: &str = r#"
spin_manifest_version = 2
[application]
name = "variables-test"

[variables]
from_cli = { required = true }
from_env = { required = true }
from_default = { default = "the default" }
cli_beats_env = { default = "d" }
env_beats_default = { default = "d" }

[[trigger.http]]
route = "/..."
component = "vars"

[component.vars]
source = "{wasm}"
environment = { FROM_MANIFEST = "manifest-env", OVERRIDDEN = "manifest" }
[component.vars.variables]
cli = "{{ from_cli }}"
env = "{{ from_env }}"
dflt = "{{ from_default }}"
both = "{{ cli_beats_env }}"
env_default = "{{ env_beats_default }}"
composed = "[{{ from_cli }}|{{from_env}}]"
"#;

#[test]
fn variables_from_each_provider() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("variables", &wasm, VARIABLES);
    let s = Spinlet::start(
        &dir,
        Start {
            args: vec![
                "--variable".into(),
                "from_cli=cli value".into(),
                "--variable".into(),
                "cli_beats_env=cli".into(),
                "--env".into(),
                "OVERRIDDEN=cli-env".into(),
            ],
            env: vec![
                ("SPIN_VARIABLE_FROM_ENV".into(), "env value".into()),
                ("SPIN_VARIABLE_CLI_BEATS_ENV".into(), "env".into()),
                ("SPIN_VARIABLE_ENV_BEATS_DEFAULT".into(), "env".into()),
            ],
            ..Default::default()
        },
    );
    let var = |name: &str| s.get(&format!("/?op=var&name={name}"));
    assert_eq!(var("cli").text(), "cli value");
    assert_eq!(var("env").text(), "env value");
    assert_eq!(var("dflt").text(), "the default");
    assert_eq!(var("both").text(), "cli");
    assert_eq!(var("env_default").text(), "env");
    assert_eq!(var("composed").text(), "[cli value|env value]");
    // Only component variables are visible to the guest.
    let r = var("from_cli");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("Undefined"), "{}", r.text());
    let r = var("Bad-Name");
    assert!(r.text().contains("InvalidName"), "{}", r.text());

    // Environment: the manifest's `environment`, with --env taking precedence.
    assert_eq!(s.get("/?op=env&name=FROM_MANIFEST").text(), "manifest-env");
    assert_eq!(s.get("/?op=env&name=OVERRIDDEN").text(), "cli-env");
}

#[test]
fn missing_required_variable_stops_the_app() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("missing-var", &wasm, VARIABLES);
    let (ok, stderr) = run_expecting_failure(&dir, &["--variable", "from_cli=x"]);
    assert!(!ok);
    assert!(stderr.contains("from_env"), "{stderr}");
    assert!(!stderr.contains("from_cli,"), "{stderr}");
}

#[test]
fn invalid_manifests_are_rejected_with_file_line_and_field() {
    let wasm = build_app("rust-v5-hello");
    let manifest = r#"spin_manifest_version = 2
[application]
name = "bad"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
allowed_outbund_hosts = []
"#;
    let dir = app_with_manifest("unknown-field", &wasm, manifest);
    let (ok, stderr) = run_expecting_failure(&dir, &[]);
    assert!(!ok);
    assert!(stderr.contains("spin.toml"), "{stderr}");
    assert!(stderr.contains("line 9"), "{stderr}");
    assert!(stderr.contains("allowed_outbund_hosts"), "{stderr}");

    let dir = app_with_manifest(
        "unconfigured-kv",
        &wasm,
        &manifest.replace(
            "allowed_outbund_hosts = []",
            "key_value_stores = [\"other\"]",
        ),
    );
    let (ok, stderr) = run_expecting_failure(&dir, &[]);
    assert!(!ok);
    assert!(stderr.contains("other"), "{stderr}");
}

const KV: &str = r#"
spin_manifest_version = 2
[application]
name = "kv-test"
[[trigger.http]]
route = "/..."
component = "kv"
[[trigger.http]]
route = "/nokv/..."
component = "nokv"
[component.kv]
source = "{wasm}"
key_value_stores = ["default"]
[component.nokv]
source = "{wasm}"
"#;

#[test]
fn key_value_persists_across_restart_and_enforces_grants() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("kv", &wasm, KV);
    let state = dir.join("state");
    let start = Start {
        args: vec!["--state-dir".into(), state.to_string_lossy().into_owned()],
        ..Default::default()
    };
    let s = Spinlet::start(&dir, start.clone());
    assert_eq!(s.get("/?op=kv-get&key=greeting").status, 404);
    assert_eq!(
        s.get("/?op=kv-set&key=greeting&value=hello").text(),
        "stored"
    );
    assert_eq!(s.get("/?op=kv-set&key=other&value=x").text(), "stored");
    assert_eq!(s.get("/?op=kv-delete&key=other").text(), "deleted");
    assert_eq!(s.get("/?op=kv-get&key=greeting").text(), "hello");
    // A label the component was not granted, and a component with no grant at all.
    let r = s.get("/?op=kv-get&key=greeting&label=other");
    assert!(r.text().contains("AccessDenied"), "{}", r.text());
    let r = s.get("/nokv/?op=kv-get&key=greeting");
    assert!(r.text().contains("AccessDenied"), "{}", r.text());
    s.stop();
    assert!(state.join("key_value.sled").is_dir());

    let s = Spinlet::start(&dir, start);
    assert_eq!(s.get("/?op=kv-get&key=greeting").text(), "hello");
    assert_eq!(s.get("/?op=kv-keys").text(), "greeting");
}

const FAILURES: &str = r#"
spin_manifest_version = 2
[application]
name = "failures"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
"#;

#[test]
fn traps_deadlines_and_memory_cap_give_500_and_the_server_keeps_serving() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("failures", &wasm, FAILURES);
    let s = Spinlet::start(&dir, common::failure_limits());

    common::failures_give_500(&s);

    // Unimplemented interfaces link and fail at call time with a clear error.
    let r = s.get("/?op=llm");
    assert_eq!(r.status, 501);
    assert!(
        r.text().contains("llm is not available on this host"),
        "{}",
        r.text()
    );
}

/// Each request runs in an instance whose memory is as the component initialised it,
/// whatever the instance before it in the same slot wrote: 64 KiB of initialised data
/// (the memory image) and 3 MiB of zeroed data, more than a freed slot keeps resident
/// and resets in place (`spin_runtime::engine`), so both the in-place reset and the
/// dropped pages are exercised; one request after another, and eight at a time.
#[test]
fn every_request_finds_memory_as_initialised() {
    const ANSWER: &str = "changed 0, wrote 3211264";
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("fresh", &wasm, FAILURES);
    let s = Spinlet::start(&dir, Start::default());
    for i in 0..20 {
        let r = s.get("/?op=fresh");
        assert_eq!((r.status, r.text().as_str()), (200, ANSWER), "request {i}");
    }
    std::thread::scope(|scope| {
        for t in 0..8 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..10 {
                    let r = s.get("/?op=fresh");
                    assert_eq!(
                        (r.status, r.text().as_str()),
                        (200, ANSWER),
                        "thread {t}, request {i}"
                    );
                }
            });
        }
    });
}

#[test]
fn compiled_code_is_cached_across_restarts() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("cache", &wasm, FAILURES);
    let cache = dir.join("compile-cache");
    // Cranelift's code, compiled before serving: the fast tier (which serves from Winch's
    // code and fills the cache in the background) has its own test, `tests/tiers.rs`.
    let start = Start {
        cache_dir: Some(cache.clone()),
        env: vec![("SPINLET_FAST_TIER".into(), "off".into())],
        ..Default::default()
    };
    let s = Spinlet::start(&dir, start.clone());
    assert!(
        s.stderr().contains("from_cache=0 compiled=1"),
        "{}",
        s.stderr()
    );
    s.stop();
    let s = Spinlet::start(&dir, start);
    assert!(
        s.stderr().contains("from_cache=1 compiled=0"),
        "{}",
        s.stderr()
    );
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn wasip1_core_module_is_componentized_at_load() {
    let wasm = build_app_for("rust-v5-hello", "wasm32-wasip1");
    let bytes = std::fs::read(&wasm).expect("read module");
    assert_eq!(
        &bytes[4..8],
        b"\x01\0\0\0",
        "a wasip1 build is a core module"
    );
    let dir = app_with_manifest("wasip1", &wasm, KV);
    let s = Spinlet::start(&dir, Start::default());
    let h = s.get("/a/b?op=echo").echoed();
    assert_eq!(h["spin-path-info"], "/a/b");
    assert_eq!(s.get("/?op=kv-set&key=k&value=v").text(), "stored");
    assert_eq!(s.get("/?op=kv-get&key=k").text(), "v");
    assert_eq!(s.get("/?op=trap").status, 500);
}

#[test]
fn push_to_a_registry_and_run_from_it() {
    let wasm = build_app("rust-v5-hello");
    let manifest = format!(
        "{ROUTING}\n[variables]\ngreeting = {{ required = true }}\n",
    )
    .replace(
        "[component.foo]\nsource = \"{wasm}\"",
        "[component.foo]\nsource = \"{wasm}\"\nkey_value_stores = [\"default\"]\nvariables = { message = \"{{ greeting }}!\" }\nenvironment = { FROM = \"registry\" }",
    );
    let dir = app_with_manifest("push", &wasm, &manifest);
    let registry = Registry::start();
    let reference = format!("{}/spinlet-tests/routing:v1", registry.host);
    let digest = push(&dir, &reference);

    // Run from the registry into a fresh cache (nothing local is reused).
    let cache = common::scratch_dir("oci-cache");
    let start = Start {
        args: vec!["--variable".into(), "greeting=hello".into()],
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };
    let s = Spinlet::start(std::path::Path::new(&reference), start.clone());
    let h = s.get("/foo/bar/baz").echoed();
    assert_eq!(h["spin-matched-route"], "/foo/...");
    assert_eq!(h["spin-path-info"], "/bar/baz");
    assert_eq!(s.get("/users/5").echoed()["spin-path-match-user-id"], "5");
    assert_eq!(s.get("/nothing").status, 404);
    assert_eq!(s.get("/hidden").status, 404);
    assert_eq!(s.get("/static").text(), "static body");
    assert_eq!(s.get("/foo?op=var&name=message").text(), "hello!");
    assert_eq!(s.get("/foo?op=env&name=FROM").text(), "registry");
    assert_eq!(s.get("/foo?op=kv-set&key=k&value=v").text(), "stored");
    let info: serde_json::Value =
        serde_json::from_slice(&s.get("/.well-known/spin/info").body).expect("info JSON");
    assert_eq!(info["oci_image_digest"], digest.as_str());
    s.stop();

    // The layout is Spin's: config label, one wasm layer, the locked app last.
    let manifest_path = cache
        .join("registry/manifests")
        .join(registry.host.replace(':', "_"))
        .join("spinlet-tests/routing/v1/manifest.json");
    let oci: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("cached manifest"))
            .expect("json");
    let layers = oci["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "one component file, one locked app: {oci}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.wasm.content.layer.v1+wasm"
    );
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.fermyon.spin.application.v1+config"
    );
    assert!(cache
        .join("registry/wasm")
        .join(layers[0]["digest"].as_str().expect("digest"))
        .is_file());

    // By digest, and a required variable is still enforced for registry apps.
    let by_digest = format!("{}/spinlet-tests/routing@{digest}", registry.host);
    let s = Spinlet::start(std::path::Path::new(&by_digest), start);
    assert_eq!(s.get("/foo?op=var&name=message").text(), "hello!");
    s.stop();
    let err = Spinlet::try_start(std::path::Path::new(&by_digest), Start::default())
        .err()
        .expect("missing variable must fail");
    assert!(err.contains("greeting"), "{err}");
}

#[test]
fn outbound_http_is_checked_against_allowed_outbound_hosts() {
    let wasm = build_app("rust-v5-hello");
    let allowed_port = upstream(4);
    let denied_port = upstream(4);
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "outbound"
[variables]
upstream_port = {{ default = "{allowed_port}" }}
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["http://127.0.0.1:{{{{ upstream_port }}}}"]
"#
    );
    let dir = app_with_manifest("outbound", &wasm, &manifest);
    let s = Spinlet::start(&dir, Start::default());
    let r = s.get(&format!("/?op=fetch&url=http://127.0.0.1:{allowed_port}/x"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "200 upstream says hi");
    let r = s.get(&format!("/?op=fetch&url=http://127.0.0.1:{denied_port}/x"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
}

#[test]
fn runtime_config_file_supplies_variables_stores_and_limits() {
    let wasm = build_app("rust-v5-hello");
    let manifest = r#"
spin_manifest_version = 2
[application]
name = "runtime-config"
[variables]
from_static = { required = true }
from_custom_env = { required = true }
cli_wins = { required = true }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
key_value_stores = ["default", "cache"]
variables = { a = "{{ from_static }}", b = "{{ from_custom_env }}", c = "{{ cli_wins }}" }
"#;
    let dir = app_with_manifest("runtime-config", &wasm, manifest);
    std::fs::write(
        dir.join("runtime-config.toml"),
        r#"
state_dir = "rc-state"
max_instance_memory = 67108864
[[config_provider]]
type = "static"
values = { from_static = "static value", cli_wins = "static" }
[[variables_provider]]
type = "env"
prefix = "MY_APP"
[key_value_store.cache]
type = "spin"
path = "cache.sled"
"#,
    )
    .expect("write runtime config");
    let rc = dir
        .join("runtime-config.toml")
        .to_string_lossy()
        .into_owned();
    let s = Spinlet::start(
        &dir,
        Start {
            args: vec![
                "--runtime-config-file".into(),
                rc.clone(),
                "--variable".into(),
                "cli_wins=cli".into(),
            ],
            env: vec![("MY_APP_FROM_CUSTOM_ENV".into(), "custom env".into())],
            ..Default::default()
        },
    );
    assert_eq!(s.get("/?op=var&name=a").text(), "static value");
    assert_eq!(s.get("/?op=var&name=b").text(), "custom env");
    assert_eq!(s.get("/?op=var&name=c").text(), "cli");
    assert_eq!(
        s.get("/?op=kv-set&label=cache&key=k&value=cached").text(),
        "stored"
    );
    assert_eq!(s.get("/?op=kv-get&label=cache&key=k").text(), "cached");
    assert_eq!(
        s.get("/?op=kv-get&key=k").status,
        404,
        "stores are separate"
    );
    assert_eq!(
        s.get("/?op=bomb").status,
        500,
        "max_instance_memory applies"
    );
    s.stop();
    assert!(dir.join("cache.sled").is_dir());
    assert!(dir.join("rc-state").join("key_value.sled").is_dir());

    std::fs::write(dir.join("bad.toml"), "stat_dir = \"x\"\n").expect("write");
    let bad = dir.join("bad.toml").to_string_lossy().into_owned();
    let (ok, stderr) = run_expecting_failure(&dir, &["--runtime-config-file", &bad]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("stat_dir"),
        "{stderr}"
    );
}

#[test]
fn files_are_mounted_read_only() {
    let wasm = build_app("rust-v5-hello");
    let manifest = r#"
spin_manifest_version = 2
[application]
name = "files"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
files = [{ source = "assets", destination = "/static" }, "data"]
"#;
    let dir = app_with_manifest("files", &wasm, manifest);
    std::fs::create_dir_all(dir.join("assets/sub")).expect("mkdir");
    std::fs::write(dir.join("assets/sub/hello.txt"), "hello file").expect("write");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("data/d.txt"), "data file").expect("write");
    let s = Spinlet::start(&dir, Start::default());
    assert_eq!(
        s.get("/?op=read&path=/static/sub/hello.txt").text(),
        "hello file"
    );
    assert_eq!(s.get("/?op=read&path=/data/d.txt").text(), "data file");
    assert_eq!(s.get("/?op=read&path=/etc/passwd").status, 404);
    let r = s.get("/?op=write&path=/static/new.txt");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!dir.join("assets/new.txt").exists());
}

#[test]
fn version_1_manifests_are_served() {
    let wasm = build_app("rust-v5-hello");
    let manifest = r#"
spin_manifest_version = "1"
name = "old-style"
version = "0.1.0"
trigger = { type = "http", base = "/" }
[variables]
greeting = { default = "hello from v1" }
[[component]]
id = "hello"
source = "{wasm}"
key_value_stores = ["default"]
[component.trigger]
route = "/hello/..."
[component.config]
message = "{{ greeting }}"
"#;
    let dir = app_with_manifest("v1", &wasm, manifest);
    let s = Spinlet::start(&dir, Start::default());
    let h = s.get("/hello/x").echoed();
    assert_eq!(h["spin-component-route"], "/hello");
    assert_eq!(h["spin-path-info"], "/x");
    assert_eq!(s.get("/hello?op=var&name=message").text(), "hello from v1");
    assert_eq!(s.get("/hello?op=kv-set&key=a&value=b").text(), "stored");
    assert_eq!(s.get("/other").status, 404);
}

#[test]
fn wasi_keyvalue_store_atomics_and_batch() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("wasi-kv", &wasm, KV);
    let s = Spinlet::start(&dir, Start::default());
    assert_eq!(s.get("/?op=wkv-set&key=a&value=one").text(), "stored");
    assert_eq!(s.get("/?op=wkv-get&key=a").text(), "one");
    // Both interfaces see the same store.
    assert_eq!(s.get("/?op=kv-get&key=a").text(), "one");
    assert_eq!(s.get("/?op=wkv-incr&key=n&delta=5").text(), "5");
    assert_eq!(s.get("/?op=wkv-incr&key=n&delta=-2").text(), "3");
    assert_eq!(
        s.get("/?op=wkv-cas&key=a&value=two").text(),
        "swapped from one"
    );
    assert_eq!(s.get("/?op=wkv-get&key=a").text(), "two");
    assert_eq!(
        s.get("/?op=wkv-cas&key=a&value=three&conflict=1").text(),
        "cas failed"
    );
    assert_eq!(s.get("/?op=wkv-get&key=a").text(), "changed");
    assert_eq!(
        s.get("/?op=wkv-batch").text(),
        r#"[("b1", None), ("b2", Some([50]))]"#
    );
    let r = s.get("/?op=wkv-get&key=a&label=other");
    assert!(r.text().contains("AccessDenied"), "{}", r.text());
    let r = s.get("/nokv/?op=wkv-get&key=a");
    assert!(r.text().contains("AccessDenied"), "{}", r.text());
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/<prefix>?op=<op>&db=<db>&stmt=<sql>&arg=...` for the test app's sqlite ops.
fn sql(prefix: &str, op: &str, db: &str, stmt: &str, args: &[&str]) -> String {
    let mut path = format!("{prefix}?op={op}&db={db}&stmt={}", enc(stmt));
    for a in args {
        path.push_str(&format!("&arg={}", enc(a)));
    }
    path
}

const SQLITE: &str = r#"
spin_manifest_version = 2
[application]
name = "sqlite-test"
[[trigger.http]]
route = "/..."
component = "db"
[[trigger.http]]
route = "/nodb/..."
component = "nodb"
[component.db]
source = "{wasm}"
sqlite_databases = ["default", "reports"]
[component.nodb]
source = "{wasm}"
"#;

#[test]
fn sqlite_persists_across_restart_and_enforces_grants() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("sqlite", &wasm, SQLITE);
    std::fs::write(
        dir.join("runtime-config.toml"),
        "[sqlite_database.reports]\ntype = \"spin\"\npath = \"reports.db\"\n",
    )
    .expect("write runtime config");
    let state = dir.join("state");
    let start = Start {
        args: vec![
            "--state-dir".into(),
            state.to_string_lossy().into_owned(),
            "--runtime-config-file".into(),
            dir.join("runtime-config.toml")
                .to_string_lossy()
                .into_owned(),
        ],
        ..Default::default()
    };
    let s = Spinlet::start(&dir, start.clone());
    let create = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)";
    let r = s.get(&sql("/", "sql", "default", create, &[]));
    assert_eq!((r.status, r.text().as_str()), (200, "columns: \n"));
    // spin:sqlite@3: last-insert-rowid and changes are the connection's.
    let insert = "INSERT INTO notes (body) VALUES (?)";
    let r = s.get(&sql("/", "sql3", "default", insert, &["hello"]));
    assert_eq!(r.text(), "columns: \nrowid: 1 changes: 1\n");
    let r = s.get(&sql("/", "sql3", "default", insert, &["world"]));
    assert_eq!(r.text(), "columns: \nrowid: 2 changes: 1\n");
    let select = "SELECT id, body FROM notes ORDER BY id";
    assert_eq!(
        s.get(&sql("/", "sql", "default", select, &[])).text(),
        "columns: id,body\nrow: Value::Integer(1)|Value::Text(\"hello\")\nrow: Value::Integer(2)|Value::Text(\"world\")\n"
    );
    // Every value type round-trips through both interface versions.
    for op in ["sql", "sql3"] {
        let r = s.get(&sql(
            "/",
            op,
            "default",
            "SELECT ? AS i, ? AS r, ? AS t, ? AS b, ? AS n",
            &["i:-42", "r:1.5", "text", "b:ab", "null"],
        ));
        assert!(
            r.text().starts_with(
                "columns: i,r,t,b,n\nrow: Value::Integer(-42)|Value::Real(1.5)|Value::Text(\"text\")|Value::Blob([97, 98])|Value::Null\n"
            ),
            "{op}: {}",
            r.text()
        );
    }
    // SQL errors come back as `io` errors.
    let r = s.get(&sql("/", "sql", "default", "SELECT * FROM missing", &[]));
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("Io(") && r.text().contains("missing"),
        "{}",
        r.text()
    );

    // A second granted database from the runtime config is separate.
    let r = s.get(&sql("/", "sql", "reports", "CREATE TABLE r (x)", &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.get(&sql(
        "/",
        "sql",
        "reports",
        "INSERT INTO r VALUES (?)",
        &["i:7"],
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.get(&sql("/", "sql", "default", "SELECT x FROM r", &[]));
    assert!(r.text().contains("no such table"), "{}", r.text());

    // Labels not granted: access-denied, whether or not the database exists.
    for (prefix, db) in [("/", "other"), ("/nodb/", "default"), ("/nodb/", "reports")] {
        for op in ["sql", "sql3"] {
            let r = s.get(&sql(prefix, op, db, "SELECT 1", &[]));
            assert_eq!(r.status, 403, "{prefix} {db}");
            assert!(r.text().contains("AccessDenied"), "{}", r.text());
        }
    }
    s.stop();
    assert!(state.join("sqlite_db.db").is_file());
    assert!(dir.join("reports.db").is_file());

    let s = Spinlet::start(&dir, start);
    assert_eq!(
        s.get(&sql("/", "sql", "default", select, &[])).text(),
        "columns: id,body\nrow: Value::Integer(1)|Value::Text(\"hello\")\nrow: Value::Integer(2)|Value::Text(\"world\")\n"
    );
    assert_eq!(
        s.get(&sql("/", "sql", "reports", "SELECT x FROM r", &[]))
            .text(),
        "columns: x\nrow: Value::Integer(7)\n"
    );
    s.stop();

    // A granted label with no configured database stops the app at start.
    let (ok, stderr) = run_expecting_failure(&dir, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("reports") && stderr.contains("[sqlite_database.reports]"),
        "{stderr}"
    );
}

const CHAINING: &str = r#"
spin_manifest_version = 2
[application]
name = "chaining-test"
[[trigger.http]]
route = "/..."
component = "front"
[[trigger.http]]
route = "/back/..."
component = "back"
[[trigger.http]]
route = { private = true }
component = "hidden"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[component.front]
source = "{wasm}"
allowed_outbound_hosts = ["http://self", "http://*.spin.internal"]
[component.back]
source = "{wasm}"
allowed_outbound_hosts = ["http://hidden.spin.internal"]
[component.hidden]
source = "{wasm}"
[component.closed]
source = "{wasm}"
allowed_outbound_hosts = ["*://*:*"]
"#;

#[test]
fn service_chaining_via_self_and_spin_internal_is_in_process_and_checked() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("chaining", &wasm, CHAINING);
    let s = Spinlet::start(&dir, Start::default());
    let fetch = |prefix: &str, url: &str| s.get(&format!("{prefix}?op=fetch&url={}", enc(url)));
    let origin = s.addr.to_string();

    // A relative URL and http://self go through the app's router, as if from the listener.
    for url in ["/back/x?op=echo", "http://self/back/x?op=echo"] {
        let r = fetch("/", url);
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        assert!(
            r.text().starts_with("200 method: Method::Get\n"),
            "{}",
            r.text()
        );
        let h = r.echoed();
        assert_eq!(h["spin-matched-route"], "/back/...", "{url}");
        assert_eq!(h["spin-path-info"], "/x");
        assert_eq!(
            h["spin-full-url"],
            format!("http://{origin}/back/x?op=echo")
        );
        assert_eq!(h["spin-client-addr"], "127.0.0.1:0");
    }
    assert_eq!(fetch("/", "/.well-known/spin/health").text(), "200 OK");
    assert_eq!(fetch("/", "http://self/.well-known/spin/x").text(), "404 ");
    // A private component is reachable by <id>.spin.internal with Spin's synthetic route.
    let r = fetch("/", "http://hidden.spin.internal/some/path?op=echo");
    assert_eq!(r.status, 200, "{}", r.text());
    let h = r.echoed();
    assert_eq!(h["spin-matched-route"], "/...");
    assert_eq!(h["spin-raw-component-route"], "/...");
    assert_eq!(h["spin-path-info"], "/some/path");
    assert_eq!(
        h["spin-full-url"],
        "http://hidden.spin.internal/some/path?op=echo"
    );
    assert_eq!(h["spin-client-addr"], "127.0.0.1:0");
    // Chains nest, each hop checked against its own component's allow list.
    let inner = format!(
        "http://back.spin.internal/?op=fetch&url={}",
        enc("http://hidden.spin.internal/z?op=var&name=nothing")
    );
    assert_eq!(
        fetch("/", &inner).text(),
        "200 404 variable error: Error::Undefined(\"no variable for `nothing`\")"
    );
    let inner = format!(
        "http://back.spin.internal/?op=fetch&url={}",
        enc("http://front.spin.internal/")
    );
    let r = fetch("/", &inner);
    assert!(
        r.text().starts_with("502 fetch error") && r.text().contains("HttpRequestDenied"),
        "{}",
        r.text()
    );
    // An unknown component.
    let r = fetch("/", "http://nope.spin.internal/");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("DestinationNotFound"), "{}", r.text());

    // Denied without the entries; `*://*:*` covers neither self nor relative URLs, and
    // no socket is opened for a spin.internal host it does allow.
    for url in ["/back/x", "http://self/back/x"] {
        let r = fetch("/closed/", url);
        assert_eq!(r.status, 502, "{url}: {}", r.text());
        assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    }
    let r = fetch("/back/", "/x");
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    let r = fetch("/back/", "http://front.spin.internal/");
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    assert_eq!(
        fetch("/closed/", "http://hidden.spin.internal/?op=env&name=X").text(),
        "404 unset"
    );
}

#[test]
fn push_and_run_an_app_with_files_from_the_registry() {
    let wasm = build_app("rust-v5-hello");
    let manifest = r#"
spin_manifest_version = 2
[application]
name = "files-push"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
files = [{ source = "assets", destination = "/static" }, "data"]
"#;
    let dir = app_with_manifest("files-push", &wasm, manifest);
    let small = "small file, inlined";
    let large: String = (0..400).map(|i| format!("line {i:04}\n")).collect();
    std::fs::create_dir_all(dir.join("assets/sub")).expect("mkdir");
    std::fs::write(dir.join("assets/small.txt"), small).expect("write");
    std::fs::write(dir.join("assets/sub/large.txt"), &large).expect("write");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("data/copy.txt"), &large).expect("write");
    let registry = Registry::start();
    let reference = format!("{}/spinlet-tests/files:v1", registry.host);
    push(&dir, &reference);
    // Nothing local is left to serve from.
    std::fs::remove_dir_all(dir.join("assets")).expect("rm assets");
    std::fs::remove_dir_all(dir.join("data")).expect("rm data");

    let cache = common::scratch_dir("oci-files-cache");
    let start = Start {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };
    let s = Spinlet::start(std::path::Path::new(&reference), start);
    assert_eq!(s.get("/?op=read&path=/static/small.txt").text(), small);
    assert_eq!(s.get("/?op=read&path=/static/sub/large.txt").text(), large);
    assert_eq!(s.get("/?op=read&path=/data/copy.txt").text(), large);
    assert_eq!(s.get("/?op=read&path=/static/missing.txt").status, 404);
    let r = s.get("/?op=write&path=/static/new.txt");
    assert_eq!(r.status, 403, "files stay read-only: {}", r.text());
    s.stop();

    // Spin's layout: the wasm layer, one data layer for the two identical large files,
    // the locked app last; the small file is inline in the locked app.
    let tag_dir = cache
        .join("registry/manifests")
        .join(registry.host.replace(':', "_"))
        .join("spinlet-tests/files/v1");
    let oci: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tag_dir.join("manifest.json")).expect("cached manifest"),
    )
    .expect("json");
    let media: Vec<&str> = oci["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().expect("media type"))
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.wasm.content.layer.v1+wasm",
            "application/vnd.wasm.content.layer.v1+data",
            "application/vnd.fermyon.spin.application.v1+config",
        ]
    );
    let data_digest = oci["layers"][1]["digest"].as_str().expect("digest");
    assert_eq!(oci["layers"][1]["size"], large.len());
    let locked: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tag_dir.join("config.json")).expect("cached locked app"),
    )
    .expect("json");
    let files = &locked["components"][0]["files"];
    assert_eq!(
        *files,
        serde_json::json!([
            { "digest": data_digest, "path": "data/copy.txt" },
            { "inline": "c21hbGwgZmlsZSwgaW5saW5lZA==", "path": "static/small.txt" },
            { "digest": data_digest, "path": "static/sub/large.txt" },
        ])
    );
}

/// A `redis-server` on a free loopback port, without persistence, stopped on drop.
struct RedisServer {
    child: std::process::Child,
    port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        RedisServer::start_on(common::free_port())
    }

    /// A server on `port` (another one's, after that one stopped).
    fn start_on(port: u16) -> RedisServer {
        let dir = common::scratch_dir("redis");
        let bin = std::env::var("SPINLET_TEST_REDIS_BIN").unwrap_or_else(|_| "redis-server".into());
        let log = std::fs::File::create(dir.join("log")).expect("redis log");
        let child = std::process::Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{bin}` ({e}): install Debian's redis-server package")
            });
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if server.cli(&["PING"]) == "PONG" {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not come up on port {port}");
    }

    /// Runs `redis-cli` against this server; its trimmed output.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli (Debian's redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_redis_key_value_store_from_the_runtime_config_keeps_keys_in_redis() {
    let wasm = build_app("rust-v5-hello");
    let redis = RedisServer::start();
    let dir = app_with_manifest("redis-kv", &wasm, KV);
    std::fs::write(
        dir.join("runtime-config.toml"),
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}/3\"\n",
            redis.port
        ),
    )
    .expect("write runtime config");
    let rc = dir
        .join("runtime-config.toml")
        .to_string_lossy()
        .into_owned();
    let s = Spinlet::start(
        &dir,
        Start {
            args: vec!["--runtime-config-file".into(), rc],
            ..Default::default()
        },
    );
    let db3 = |args: &[&str]| {
        let mut all = vec!["-n", "3"];
        all.extend_from_slice(args);
        redis.cli(&all)
    };

    // fermyon:spin/key-value@2.0.0: plain string keys of the URL's database.
    assert_eq!(s.get("/?op=kv-get&key=greeting").status, 404);
    assert_eq!(
        s.get("/?op=kv-set&key=greeting&value=hello").text(),
        "stored"
    );
    assert_eq!(db3(&["GET", "greeting"]), "hello");
    assert_eq!(db3(&["TYPE", "greeting"]), "string");
    assert_eq!(
        redis.cli(&["EXISTS", "greeting"]),
        "0",
        "database 0 untouched"
    );
    db3(&["SET", "from-cli", "set by redis-cli"]);
    assert_eq!(s.get("/?op=kv-get&key=from-cli").text(), "set by redis-cli");
    assert_eq!(s.get("/?op=kv-keys").text(), "from-cli,greeting");
    assert_eq!(s.get("/?op=kv-delete&key=from-cli").text(), "deleted");
    assert_eq!(db3(&["EXISTS", "from-cli"]), "0");

    // wasi:keyvalue: store, atomics (INCRBY; WATCH/MULTI/EXEC) and batch.
    assert_eq!(s.get("/?op=wkv-set&key=a&value=one").text(), "stored");
    assert_eq!(s.get("/?op=wkv-incr&key=n&delta=5").text(), "5");
    assert_eq!(s.get("/?op=wkv-incr&key=n&delta=-2").text(), "3");
    assert_eq!(db3(&["GET", "n"]), "3");
    assert_eq!(
        s.get("/?op=wkv-cas&key=a&value=two").text(),
        "swapped from one"
    );
    assert_eq!(db3(&["GET", "a"]), "two");
    assert_eq!(
        s.get("/?op=wkv-cas&key=a&value=three&conflict=1").text(),
        "cas failed"
    );
    assert_eq!(db3(&["GET", "a"]), "changed");
    assert_eq!(
        s.get("/?op=wkv-batch").text(),
        r#"[("b1", None), ("b2", Some([50]))]"#
    );
    assert_eq!(db3(&["GET", "b2"]), "2");
    let r = s.get("/?op=wkv-incr&key=a&delta=1");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("not an integer"), "{}", r.text());

    // A server that went away: the store's open fails with `other`; back, it works again.
    let port = redis.port;
    drop(redis);
    let r = s.get("/?op=kv-get&key=greeting");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("Other"), "{}", r.text());
    let redis = RedisServer::start_on(port);
    redis.cli(&["-n", "3", "SET", "greeting", "again"]);
    assert_eq!(s.get("/?op=kv-get&key=greeting").text(), "again");
    s.stop();
}

#[test]
fn outbound_redis_against_a_real_server_with_host_checks() {
    let wasm = build_app("rust-v5-hello");
    let redis = RedisServer::start();
    let port = redis.port;
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "redis-test"
[[trigger.http]]
route = "/..."
component = "c"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["redis://127.0.0.1:{port}"]
[component.closed]
source = "{{wasm}}"
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]
"#
    );
    let dir = app_with_manifest("redis", &wasm, &manifest);
    let s = Spinlet::start(&dir, Start::default());
    let addr = enc(&format!("redis://127.0.0.1:{port}"));
    let call = |query: &str| s.get(&format!("/?op=redis&addr={addr}&{query}"));

    assert_eq!(call("cmd=set&key=greeting&value=hello").text(), "ok");
    assert_eq!(
        redis.cli(&["GET", "greeting"]),
        "hello",
        "stored in the real server"
    );
    assert_eq!(call("cmd=get&key=greeting").text(), "hello");
    assert_eq!(call("cmd=get&key=missing").text(), "nil");
    assert_eq!(call("cmd=incr&key=counter").text(), "1");
    assert_eq!(call("cmd=incr&key=counter").text(), "2");
    let r = call("cmd=incr&key=greeting");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "redis error: Error::TypeError")
    );
    assert_eq!(
        call("cmd=sadd&key=set&member=a&member=b&member=c").text(),
        "3"
    );
    assert_eq!(call("cmd=srem&key=set&member=a").text(), "1");
    assert_eq!(call("cmd=smembers&key=set").text(), "b,c");
    let r = call("cmd=get&key=set");
    assert_eq!(r.text(), "redis error: Error::TypeError", "WRONGTYPE");
    assert_eq!(call("cmd=del&key=counter").text(), "1");
    assert_eq!(redis.cli(&["EXISTS", "counter"]), "0");
    // execute: arbitrary commands, integer and binary arguments, flattened replies.
    assert_eq!(
        call("cmd=SET&arg=n&arg=i:41").text(),
        "[RedisResult::Status(\"OK\")]"
    );
    assert_eq!(
        call("cmd=INCRBY&arg=n&arg=i:1").text(),
        "[RedisResult::Int64(42)]"
    );
    assert_eq!(
        call("cmd=MGET&arg=n&arg=nothing&arg=greeting").text(),
        "[RedisResult::Binary([52, 50]), RedisResult::Nil, RedisResult::Binary([104, 101, 108, 108, 111])]"
    );
    let r = call("cmd=NOSUCHCOMMAND");
    assert!(
        r.text().contains("Error::Other(") && r.text().contains("unknown command"),
        "{}",
        r.text()
    );

    // publish reaches a real subscriber.
    let mut sub = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "SUBSCRIBE",
            "news",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli subscribe");
    let mut out = std::io::BufReader::new(sub.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("subscribe output");
        lines.push(line.trim().to_string());
    }
    assert_eq!(lines, ["subscribe", "news", "1"]);
    assert_eq!(call("cmd=publish&key=news&value=extra").text(), "published");
    let mut message = Vec::new();
    while message.len() < 3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("message output");
        message.push(line.trim().to_string());
    }
    let _ = sub.kill();
    let _ = sub.wait();
    assert_eq!(message, ["message", "news", "extra"]);

    // Addresses outside allowed_outbound_hosts are invalid-address; no connection is made.
    let other = enc(&format!("redis://127.0.0.1:{}", common::free_port()));
    let r = s.get(&format!("/?op=redis&addr={other}&cmd=get&key=greeting"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "redis error: Error::InvalidAddress")
    );
    let r = s.get(&format!(
        "/closed/?op=redis&addr={addr}&cmd=get&key=greeting"
    ));
    assert_eq!(
        r.text(),
        "redis error: Error::InvalidAddress",
        "scheme must match"
    );
    let r = s.get("/?op=redis&addr=not-a-url&cmd=get&key=greeting");
    assert_eq!(r.text(), "redis error: Error::InvalidAddress");
}

#[test]
fn a_chaining_app_from_the_registry_declares_and_gets_service_chaining() {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest("chaining-push", &wasm, CHAINING);
    let registry = Registry::start();
    let reference = format!("{}/spinlet-tests/chaining:v1", registry.host);
    push(&dir, &reference);
    let cache = common::scratch_dir("oci-chaining-cache");
    let s = Spinlet::start(
        std::path::Path::new(&reference),
        Start {
            cache_dir: Some(cache.clone()),
            ..Default::default()
        },
    );
    // As `spin registry push` writes it: a host requirement readers must understand.
    let locked: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            cache
                .join("registry/manifests")
                .join(registry.host.replace(':', "_"))
                .join("spinlet-tests/chaining/v1/config.json"),
        )
        .expect("cached locked app"),
    )
    .expect("json");
    assert_eq!(locked["spin_lock_version"], 1);
    assert_eq!(
        locked["must_understand"],
        serde_json::json!(["host_requirements"])
    );
    assert_eq!(
        locked["host_requirements"],
        serde_json::json!({ "local_service_chaining": "required" })
    );
    let url = enc("http://hidden.spin.internal/p?op=echo");
    let r = s.get(&format!("/?op=fetch&url={url}"));
    assert_eq!(r.echoed()["spin-path-info"], "/p", "{}", r.text());
    let r = s.get(&format!("/closed/?op=fetch&url={}", enc("http://self/")));
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
}

#[test]
fn glob_files_exclusions_and_file_placements_locally_and_from_the_registry() {
    let wasm = build_app("rust-v5-hello");
    let manifest = r#"
spin_manifest_version = 2
[application]
name = "files-glob"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
files = ["static/**/*.txt", { source = "config/app.toml", destination = "/etc/app.toml" }]
exclude_files = ["static/secret*"]
"#;
    let dir = app_with_manifest("files-glob", &wasm, manifest);
    for (path, content) in [
        ("static/a.txt", "a"),
        ("static/deep/b.txt", "b"),
        ("static/style.css", "css"),
        ("static/secret.txt", "hidden"),
        ("config/app.toml", "key = 1"),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    let check = |s: &Spinlet| {
        assert_eq!(s.get("/?op=read&path=/static/a.txt").text(), "a");
        assert_eq!(s.get("/?op=read&path=/static/deep/b.txt").text(), "b");
        assert_eq!(s.get("/?op=read&path=/etc/app.toml").text(), "key = 1");
        for missing in [
            "/static/style.css",
            "/static/secret.txt",
            "/config/app.toml",
        ] {
            let r = s.get(&format!("/?op=read&path={missing}"));
            assert_eq!(r.status, 404, "{missing}: {}", r.text());
        }
        let r = s.get("/?op=write&path=/static/new.txt");
        assert_eq!(r.status, 403, "{}", r.text());
    };
    let s = Spinlet::start(&dir, Start::default());
    check(&s);
    s.stop();
    assert!(!dir.join("static/new.txt").exists());

    let registry = Registry::start();
    let reference = format!("{}/spinlet-tests/files-glob:v1", registry.host);
    push(&dir, &reference);
    let s = Spinlet::start(
        std::path::Path::new(&reference),
        Start {
            cache_dir: Some(common::scratch_dir("oci-glob-cache")),
            ..Default::default()
        },
    );
    check(&s);
}

/// A `mosquitto` broker on a free loopback port (anonymous access), stopped on drop.
struct MqttBroker {
    child: std::process::Child,
    port: u16,
}

impl MqttBroker {
    fn start() -> MqttBroker {
        let dir = common::scratch_dir("mosquitto");
        let port = common::free_port();
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .expect("write mosquitto config");
        let log = std::fs::File::create(dir.join("log")).expect("mosquitto log");
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto ({e}): install Debian's mosquitto"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not come up on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        MqttBroker { child, port }
    }

    /// Subscribes to `topic` with `mosquitto_sub` and waits for one message.
    fn subscribe_one(&self, topic: &str) -> std::thread::JoinHandle<String> {
        // Line-buffered, so the SUBACK line arrives while it runs.
        let mut sub = std::process::Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                topic,
            ])
            .args(["-C", "1", "-W", "30", "-d"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (Debian's mosquitto-clients)");
        let stdout = sub.stdout.take().expect("stdout");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        // -d prints the SUBACK before any message arrives: wait for it.
        for line in lines.by_ref() {
            if line.expect("line").contains("SUBACK") {
                break;
            }
        }
        std::thread::spawn(move || {
            let message = lines
                .map_while(Result::ok)
                .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed"))
                .last()
                .unwrap_or_default();
            let _ = sub.wait();
            message
        })
    }
}

impl Drop for MqttBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn outbound_mqtt_publishes_to_a_real_broker_with_host_checks() {
    let wasm = build_app("rust-v5-hello");
    let broker = MqttBroker::start();
    let port = broker.port;
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "mqtt-test"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["mqtt://127.0.0.1:{port}"]
"#
    );
    let dir = app_with_manifest("mqtt", &wasm, &manifest);
    let s = Spinlet::start(&dir, Start::default());
    let addr = enc(&format!("mqtt://127.0.0.1:{port}?client_id=spinlet-test"));
    for qos in ["0", "1", "2"] {
        let message = broker.subscribe_one("sensors/temp");
        let r = s.get(&format!(
            "/?op=mqtt&addr={addr}&topic=sensors/temp&value=21.5-q{qos}&qos={qos}"
        ));
        assert_eq!(r.text(), "published", "qos {qos}");
        assert_eq!(message.join().expect("subscriber"), format!("21.5-q{qos}"));
    }
    // Not in allowed_outbound_hosts: refused before any connection.
    let other = enc(&format!(
        "mqtt://127.0.0.1:{}?client_id=x",
        common::free_port()
    ));
    let r = s.get(&format!("/?op=mqtt&addr={other}&topic=t&value=v"));
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("ConnectionFailed") && r.text().contains("not permitted"),
        "{}",
        r.text()
    );
    // Allowed but malformed (rumqttc needs a client_id).
    let r = s.get(&format!(
        "/?op=mqtt&addr={}&topic=t&value=v",
        enc(&format!("mqtt://127.0.0.1:{port}"))
    ));
    assert!(r.text().contains("InvalidAddress"), "{}", r.text());
}

#[test]
fn selective_deployment_runs_only_the_chosen_components() {
    let wasm = build_app("rust-v5-hello");
    let manifest = r#"
spin_manifest_version = 2
[application]
name = "selective"
[[trigger.http]]
route = "/hello/..."
component = "hello"
[[trigger.http]]
route = "/bye/..."
component = "bye"
[component.hello]
source = "{wasm}"
[component.bye]
source = "{wasm}"
"#;
    let dir = app_with_manifest("selective", &wasm, manifest);
    // spin up --component-id hello: /bye goes with its component.
    let s = Spinlet::start(
        &dir,
        Start {
            args: vec!["--component-id".into(), "hello".into()],
            ..Start::default()
        },
    );
    assert_eq!(s.get("/hello/x").status, 200);
    assert_eq!(s.get("/bye/x").status, 404);
    s.stop();
    // Every component without the flag.
    let s = Spinlet::start(&dir, Start::default());
    assert_eq!(s.get("/bye/x").status, 200);
    s.stop();
    // An id the app does not have is refused, naming it.
    let (ok, stderr) = run_expecting_failure(&dir, &["--component-id", "nope"]);
    assert!(!ok);
    assert!(
        stderr.contains("specified component \"nope\" not found in application"),
        "{stderr}"
    );
}

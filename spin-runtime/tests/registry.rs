//! End-to-end registry tests: the real `spinlet push` / `spinlet run <reference>` against
//! Debian's real `docker-registry` (distribution 2.8), over real sockets.
//!
//! - concurrent pulls into one cache fetch each blob once (a delaying proxy in front of
//!   the registry makes the pulls overlap, and the registry's access log is counted);
//! - basic auth (`htpasswd`, credentials from a Docker config file);
//! - a TLS registry, on a non-loopback address inside a network namespace the test
//!   creates (loopback registries are spoken to over plain HTTP);
//! - bearer-token auth with a token server written here.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use common::servers::Pki;
use common::{app_with_manifest, build_app, free_port, http_request, scratch_dir, spinlet_bin};
use common::{Spinlet, Start};

const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "registry-test"
version = "1.0.0"

[[trigger.http]]
route = "/..."
component = "hello"

[component.hello]
source = "{wasm}"
environment = { FROM = "registry" }
files = [{ source = "assets", destination = "/assets" }]
"#;

/// The content of `/assets/big.txt` (over 128 bytes, so it is its own data layer).
fn big_file() -> String {
    "spinlet registry test asset\n".repeat(12)
}

/// The test app: one component, one environment variable, one data layer.
fn app(name: &str) -> PathBuf {
    let wasm = build_app("rust-v5-hello");
    let dir = app_with_manifest(name, &wasm, MANIFEST);
    std::fs::create_dir_all(dir.join("assets")).expect("assets dir");
    std::fs::write(dir.join("assets/big.txt"), big_file()).expect("write asset");
    dir
}

/// Checks a running app pulled from a registry.
fn check_app(get: &dyn Fn(&str) -> (u16, String)) {
    assert_eq!(get("/?op=env&name=FROM"), (200, "registry".to_string()));
    assert_eq!(get("/?op=read&path=/assets/big.txt"), (200, big_file()));
}

/// `spinlet run <reference>` with a fresh cache and the registry login in the docker
/// config directory `docker_config`: the app it pulls answers [`check_app`].
fn run_and_check_pulled(reference: &str, cache_name: &str, docker_config: &Path) {
    let s = Spinlet::start(
        Path::new(reference),
        Start {
            cache_dir: Some(scratch_dir(cache_name)),
            env: vec![(
                "DOCKER_CONFIG".into(),
                docker_config.to_string_lossy().into_owned(),
            )],
            ..Default::default()
        },
    );
    check_app(&|p| {
        let r = s.get(p);
        (r.status, r.text())
    });
    s.stop();
}

/// A `docker-registry` with a test-specific config, killed on drop.
struct TestRegistry {
    child: Child,
    dir: PathBuf,
    /// `host:port` as used in references.
    host: String,
}

impl TestRegistry {
    /// Writes `config.yml` (info logging incl. the access log, filesystem storage, `addr`,
    /// plus `extra` top-level YAML) and starts `docker-registry serve` through `wrapper`
    /// (e.g. `ip netns exec <ns>`); waits until `ready` says so.
    fn start(
        dir: &Path,
        wrapper: &[&str],
        addr: &str,
        http_extra: &str,
        extra: &str,
        ready: &dyn Fn() -> bool,
    ) -> TestRegistry {
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  secret: spinlet-test-secret\n{http_extra}{extra}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("write registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let bin =
            std::env::var("SPINLET_TEST_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".into());
        let mut cmd = if let Some((first, rest)) = wrapper.split_first() {
            let mut c = Command::new(first);
            c.args(rest).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let child = cmd
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{bin}` ({e}): install Debian's docker-registry")
            });
        let mut registry = TestRegistry {
            child,
            dir: dir.to_owned(),
            host: addr.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited with {status}:\n{}", registry.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not come up on {addr}:\n{}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// A plain-HTTP registry on a loopback port with `extra` config.
    fn loopback(name: &str, extra: &str) -> TestRegistry {
        let dir = scratch_dir(name);
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let ready = move || {
            http_request(addr, "GET", "/v2/", &[], b"").is_ok_and(|r| matches!(r.status, 200 | 401))
        };
        TestRegistry::start(&dir, &[], &addr.to_string(), "", extra, &ready)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// How many `GET /v2/<repo>/blobs/<digest>` the access log shows.
    fn blob_gets(&self, repository: &str, digest: &str) -> usize {
        let needle = format!("\"GET /v2/{repository}/blobs/{digest} HTTP/1.1\"");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the spinlet binary (through `wrapper`, if any) with `args` and `env`.
fn spinlet(wrapper: &[&str], args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = if let Some((first, rest)) = wrapper.split_first() {
        let mut c = Command::new(first);
        c.args(rest).arg(spinlet_bin());
        c
    } else {
        Command::new(spinlet_bin())
    };
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run spinlet")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A Docker config dir with credentials for `registry` (none when `auth` is `None`).
fn docker_config(name: &str, registry: &str, auth: Option<(&str, &str)>) -> PathBuf {
    let dir = scratch_dir(name);
    if let Some((user, pass)) = auth {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let config = serde_json::json!({ "auths": { registry: { "auth": auth } } });
        std::fs::write(dir.join("config.json"), config.to_string()).expect("write config.json");
    }
    dir
}

/// The regular files under `dir` (none if it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The digests of the manifest's config and layers.
fn blob_digests(manifest: &serde_json::Value) -> Vec<String> {
    let mut digests = vec![manifest["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_string()];
    for l in manifest["layers"].as_array().expect("layers") {
        digests.push(l["digest"].as_str().expect("layer digest").to_string());
    }
    digests
}

/// A TCP proxy to `target` that holds every chunk the client sends for `delay` before
/// forwarding it, so concurrent pullers are all in flight at once.
fn delaying_proxy(target: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    std::thread::sleep(delay);
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn concurrent_pulls_share_the_cache_and_fetch_each_blob_once() {
    let registry = TestRegistry::loopback("registry-dedup", "");
    let dir = app("dedup");
    let repository = "spinlet-tests/dedup";
    common::push(&dir, &format!("{}/{repository}:v1", registry.host));

    // Pull through a proxy delaying each request by 300 ms, so that the four pulls are
    // in flight at the same time and race for every blob.
    let proxy = delaying_proxy(
        registry.host.parse().expect("addr"),
        Duration::from_millis(300),
    );
    let reference = format!("{proxy}/{repository}:v1");
    let cache = scratch_dir("shared-oci-cache");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let reference = reference.clone();
            let start = Start {
                cache_dir: Some(cache.clone()),
                ..Default::default()
            };
            std::thread::spawn(move || Spinlet::try_start(Path::new(&reference), start))
        })
        .collect();
    let spinlets: Vec<Spinlet> = runs
        .into_iter()
        .map(|r| {
            r.join()
                .expect("start thread")
                .unwrap_or_else(|e| panic!("spinlet run did not come up:\n{e}"))
        })
        .collect();
    for s in &spinlets {
        check_app(&|p| {
            let r = s.get(p);
            (r.status, r.text())
        });
    }

    let manifest_path = cache
        .join("registry/manifests")
        .join(proxy.to_string().replace(':', "_"))
        .join(repository)
        .join("v1/manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("cached manifest"))
            .expect("manifest JSON");
    let digests = blob_digests(&manifest);
    assert_eq!(
        digests.len(),
        4,
        "config, wasm, data, locked app: {manifest}"
    );
    let log = registry.log();
    for d in &digests {
        assert_eq!(
            registry.blob_gets(repository, d),
            1,
            "blob {d} must be fetched exactly once by 4 concurrent pulls; registry log:\n{log}"
        );
    }
    // The four pulls did overlap: each fetched the manifest.
    let manifest_gets = log
        .lines()
        .filter(|l| {
            l.contains(&format!(
                "\"GET /v2/{repository}/manifests/v1 HTTP/1.1\" 200"
            ))
        })
        .count();
    assert_eq!(manifest_gets, 4, "{log}");
    // No temp files are left behind; lock files sit next to the entries.
    let leftovers: Vec<_> = files_under(&cache.join("registry"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A fifth run with everything cached fetches no blob at all.
    let s = Spinlet::start(
        Path::new(&reference),
        Start {
            cache_dir: Some(cache.clone()),
            ..Default::default()
        },
    );
    check_app(&|p| {
        let r = s.get(p);
        (r.status, r.text())
    });
    for d in &digests {
        assert_eq!(registry.blob_gets(repository, d), 1, "{d} fetched again");
    }

    // A corrupted cache entry is detected and fetched again (once).
    let wasm = &manifest["layers"][0]["digest"].as_str().expect("digest");
    std::fs::write(cache.join("registry/wasm").join(wasm), b"garbage").expect("corrupt");
    let s2 = Spinlet::start(
        Path::new(&reference),
        Start {
            cache_dir: Some(cache.clone()),
            ..Default::default()
        },
    );
    check_app(&|p| {
        let r = s2.get(p);
        (r.status, r.text())
    });
    assert_eq!(registry.blob_gets(repository, wasm), 2);
    s.stop();
    s2.stop();
    for s in spinlets {
        s.stop();
    }
}

/// An htpasswd line for `user` with a bcrypt hash of `password`.
fn htpasswd(user: &str, password: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(password, 4).expect("bcrypt"))
}

#[test]
fn basic_auth_uses_docker_config_credentials() {
    let dir = scratch_dir("htpasswd");
    std::fs::write(dir.join("htpasswd"), htpasswd("alice", "s3cret")).expect("htpasswd");
    let registry = TestRegistry::loopback(
        "registry-basic",
        &format!(
            "auth:\n  htpasswd:\n    realm: spinlet-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ),
    );
    let app = app("basic");
    let reference = format!("{}/spinlet-tests/basic:v1", registry.host);
    let none = docker_config("docker-none", &registry.host, None);
    let wrong = docker_config("docker-wrong", &registry.host, Some(("alice", "wrong")));
    let good = docker_config("docker-good", &registry.host, Some(("alice", "s3cret")));
    let push = |config: &Path| {
        spinlet(
            &[],
            &["push", &app.to_string_lossy(), &reference],
            &[("DOCKER_CONFIG", config)],
        )
    };

    let o = push(&none);
    assert!(!o.status.success(), "push without credentials succeeded");
    let e = stderr(&o);
    eprintln!("expected failure: {e}");
    assert!(
        e.contains(&registry.host)
            && e.contains("401 Unauthorized")
            && e.contains("requires credentials"),
        "{e}"
    );
    let o = push(&wrong);
    assert!(!o.status.success(), "push with a wrong password succeeded");
    let e = stderr(&o);
    eprintln!("expected failure: {e}");
    assert!(
        e.contains(&registry.host) && e.contains("401 Unauthorized") && e.contains("were rejected"),
        "{e}"
    );
    let o = push(&good);
    assert!(o.status.success(), "push with credentials: {}", stderr(&o));

    // Runs without (valid) credentials fail clearly and leave nothing in the cache.
    for (config, expected) in [(&none, "requires credentials"), (&wrong, "were rejected")] {
        let cache = scratch_dir("oci-cache-unauthorized");
        let err = Spinlet::try_start(
            Path::new(&reference),
            Start {
                cache_dir: Some(cache.clone()),
                env: vec![(
                    "DOCKER_CONFIG".into(),
                    config.to_string_lossy().into_owned(),
                )],
                ..Default::default()
            },
        )
        .err()
        .expect("run without valid credentials must fail");
        eprintln!("expected failure: {err}");
        assert!(
            err.contains(&registry.host)
                && err.contains("401 Unauthorized")
                && err.contains(expected),
            "{err}"
        );
        let written = files_under(&cache.join("registry"));
        assert!(written.is_empty(), "nothing is cached: {written:?}");
    }

    run_and_check_pulled(&reference, "oci-cache-authorized", &good);
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    /// Creates the namespace with `lo` up and a dummy interface `d0` holding `ip/24`;
    /// `None` when this process may not create namespaces.
    fn create(ip: &str) -> Option<Netns> {
        let name = format!("spinlet-reg-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip (iproute2)");
        if !out.status.success() {
            eprintln!(
                "skipping: `ip netns add` is not permitted here: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]).expect("lo up");
        // A dummy interface holds the address; kernels without the dummy module get it
        // on `lo` (still a non-loopback address as far as spinlet is concerned).
        let dummy = ns
            .ip(&["link", "add", "d0", "type", "dummy"])
            .and_then(|()| {
                ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "d0"])?;
                ns.ip(&["link", "set", "d0", "up"])
            });
        if let Err(e) = dummy {
            eprintln!("no dummy interface ({e}); putting {ip} on lo");
            ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"])
                .expect("address on lo");
        }
        Some(ns)
    }

    /// `ip -n <ns> <args>`; its stderr on failure.
    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .expect("run ip");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip -n {} {args:?}: {}",
                self.0,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn exec(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.0]
    }

    /// `curl` inside the namespace: (HTTP status, body).
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.0,
                "curl",
                "-s",
                "-m",
                "10",
                "-w",
                "\n%{http_code}",
            ])
            .args(args)
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tls_registry_in_a_network_namespace() {
    const IP: &str = "10.213.0.1";
    let Some(ns) = Netns::create(IP) else {
        return;
    };
    let dir = scratch_dir("registry-tls");
    let trusted = Pki::for_hosts(&dir, "trusted", &[IP]);
    let untrusted = Pki::for_hosts(&dir, "untrusted", &[IP]);
    let addr = format!("{IP}:5000");
    let ca = trusted.ca.clone();
    let url = format!("https://{addr}/v2/");
    let ready = || ns.curl(&["--cacert", &ca.to_string_lossy(), &url]).0 == 200;
    let registry = TestRegistry::start(
        &dir,
        &ns.exec(),
        &addr,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            trusted.cert.display(),
            trusted.key.display()
        ),
        "",
        &ready,
    );
    let app = app("tls");
    let reference = format!("{}/spinlet-tests/tls:v1", registry.host);
    let no_creds = docker_config("docker-tls", &registry.host, None);

    // Without the CA, push and run fail with a TLS error naming the registry.
    let o = spinlet(
        &ns.exec(),
        &["push", &app.to_string_lossy(), &reference],
        &[
            ("SSL_CERT_FILE", &untrusted.ca),
            ("DOCKER_CONFIG", &no_creds),
        ],
    );
    assert!(!o.status.success(), "push trusting the wrong CA succeeded");
    let e = stderr(&o);
    eprintln!("expected failure: {e}");
    assert!(
        e.contains("TLS handshake with 10.213.0.1:5000 failed") && e.contains("SSL_CERT_FILE"),
        "{e}"
    );

    let o = spinlet(
        &ns.exec(),
        &["push", &app.to_string_lossy(), &reference],
        &[("SSL_CERT_FILE", &trusted.ca), ("DOCKER_CONFIG", &no_creds)],
    );
    assert!(o.status.success(), "push over TLS: {}", stderr(&o));

    let cache = scratch_dir("oci-cache-tls");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let run = |ca: &Path, log: &str| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0])
            .arg(spinlet_bin())
            .args(["run", &reference, "--listen", &listen, "--cache-dir"])
            .arg(&cache)
            .env("SSL_CERT_FILE", ca)
            .env("DOCKER_CONFIG", &no_creds)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).expect("log"));
        Killed(cmd.spawn().expect("spawn spinlet run"))
    };

    let mut failing = run(&untrusted.ca, "run-untrusted.log");
    let status = failing.0.wait().expect("wait");
    assert!(!status.success());
    let e = std::fs::read_to_string(dir.join("run-untrusted.log")).unwrap_or_default();
    eprintln!("expected failure: {e}");
    assert!(
        e.contains("TLS handshake with 10.213.0.1:5000 failed") && e.contains("cannot pull"),
        "{e}"
    );
    assert!(files_under(&cache.join("registry")).is_empty());

    let mut serving = run(&trusted.ca, "run.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    let base = format!("http://{listen}");
    while ns.curl(&[&format!("{base}/.well-known/spin/health")]).0 != 200 {
        if let Ok(Some(status)) = serving.0.try_wait() {
            panic!(
                "spinlet run exited with {status}:\n{}",
                std::fs::read_to_string(dir.join("run.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "spinlet run not healthy after 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    check_app(&|p| ns.curl(&[&format!("{base}{p}")]));
    drop(serving);
    drop(registry);
}

/// Decodes `%XX` escapes and `+`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token server on loopback: answers `GET /token?scope=..&service=..` with an ES256 JWT
/// for the requested scope when the basic credentials are `user:password`, 401
/// otherwise. Returns its port; the signing certificate is written to `bundle`.
fn token_server(
    bundle: &Path,
    issuer: &'static str,
    user: &str,
    password: &str,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let key = rcgen::KeyPair::generate().expect("signing key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "spinlet test token signer");
    let cert = params.self_signed(&key).expect("signing cert");
    std::fs::write(bundle, cert.pem()).expect("write rootcertbundle");
    let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
    let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .expect("ring key");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        authorization = v.trim().to_string();
                    }
                }
            }
            let target = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            seen2.lock().expect("lock").push(target.clone());
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let mut service = String::new();
            let mut scopes = Vec::new();
            for pair in query.split('&') {
                match pair.split_once('=') {
                    Some(("service", v)) => service = unescape(v),
                    Some(("scope", v)) => scopes.push(unescape(v)),
                    _ => {}
                }
            }
            let (status, body) = if authorization != expected {
                (
                    "401 Unauthorized",
                    r#"{"details":"bad credentials"}"#.to_string(),
                )
            } else {
                let access: Vec<serde_json::Value> = scopes
                    .iter()
                    .filter_map(|s| {
                        let mut parts = s.splitn(3, ':');
                        let (t, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                        Some(serde_json::json!({
                            "type": t, "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>(),
                        }))
                    })
                    .collect();
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .expect("time")
                    .as_secs();
                let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [x5c] });
                let claims = serde_json::json!({
                    "iss": issuer, "sub": "alice", "aud": service,
                    "exp": now + 600, "nbf": now - 60, "iat": now - 60,
                    "jti": format!("{now}-{}", scopes.len()), "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let sig = signer
                    .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
                    .expect("sign");
                let token = format!("{signing_input}.{}", b64url(sig.as_ref()));
                ("200 OK", serde_json::json!({ "token": token }).to_string())
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    const ISSUER: &str = "spinlet-test-issuer";
    const SERVICE: &str = "spinlet-test-registry";
    let dir = scratch_dir("token-auth");
    let bundle = dir.join("token-signer.pem");
    let (token_port, token_requests) = token_server(&bundle, ISSUER, "alice", "s3cret");
    let registry = TestRegistry::loopback(
        "registry-bearer",
        &format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            bundle.display()
        ),
    );
    let app = app("bearer");
    let reference = format!("{}/spinlet-tests/bearer:v1", registry.host);
    let wrong = docker_config(
        "docker-bearer-wrong",
        &registry.host,
        Some(("alice", "nope")),
    );
    let good = docker_config(
        "docker-bearer-good",
        &registry.host,
        Some(("alice", "s3cret")),
    );

    let o = spinlet(
        &[],
        &["push", &app.to_string_lossy(), &reference],
        &[("DOCKER_CONFIG", &wrong)],
    );
    assert!(!o.status.success(), "push with a wrong password succeeded");
    let e = stderr(&o);
    eprintln!("expected failure: {e}");
    assert!(
        e.contains(&registry.host)
            && e.contains("401 Unauthorized")
            && e.contains("token endpoint"),
        "{e}"
    );

    let o = spinlet(
        &[],
        &["push", &app.to_string_lossy(), &reference],
        &[("DOCKER_CONFIG", &good)],
    );
    assert!(
        o.status.success(),
        "push with a token: {}\nregistry log:\n{}",
        stderr(&o),
        registry.log()
    );
    let requests = token_requests.lock().expect("lock").clone();
    assert!(
        requests.iter().any(|r| r
            .contains("scope=repository%3Aspinlet-tests%2Fbearer%3Apull%2Cpush")
            && r.contains(&format!("service={SERVICE}"))),
        "{requests:?}"
    );

    run_and_check_pulled(&reference, "oci-cache-bearer", &good);
}

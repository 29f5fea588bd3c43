//! End-to-end: outbound Redis over `rediss://` and MQTT over `mqtts://`, against a real
//! `redis-server` and a real `mosquitto` with TLS listeners on loopback.
//!
//! Each test makes its own CA and a server certificate for 127.0.0.1/localhost with
//! rcgen, trusts that CA in `spinlet run` through `SSL_CERT_FILE`, and also starts a
//! server whose certificate comes from a CA nobody trusts: the guest must get the
//! interface's error for it, promptly, not a trap or a hang.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{app_with_manifest, build_app, Spinlet, Start};

fn enc(s: &str) -> String {
    url_escape(s)
}

/// Percent-encodes everything but unreserved characters (for query values).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A CA and a server certificate for 127.0.0.1 and localhost it signed, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("spinlet test CA {name}"));
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = params.signed_by(&key, &ca).expect("server cert");
        let pki = Pki {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&pki.ca, ca.pem()).expect("write CA");
        std::fs::write(&pki.cert, cert.pem()).expect("write cert");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
        pki
    }
}

/// A child process killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_logged(cmd: &mut Command, dir: &Path, what: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{what}.log"))).expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({e}): see CI-SETUP (Debian packages)"))
}

/// `redis-cli --tls` against `port`, trusting `ca`; its trimmed output.
fn redis_cli(port: u16, ca: &Path, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli (Debian's redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `redis-server` with only a TLS port (no client certificates required).
fn redis_tls(dir: &Path, pki: &Pki, name: &str) -> Server {
    let port = common::free_port();
    let data = dir.join(name);
    std::fs::create_dir_all(&data).expect("redis dir");
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--tls-cert-file")
        .arg(&pki.cert)
        .arg("--tls-key-file")
        .arg(&pki.key)
        .arg("--tls-ca-cert-file")
        .arg(&pki.ca)
        .args(["--tls-auth-clients", "no", "--dir"])
        .arg(&data);
    let server = Server {
        child: spawn_logged(&mut cmd, dir, name),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis_cli(port, &pki.ca, &["PING"]) != "PONG" {
        assert!(
            Instant::now() < deadline,
            "redis-server (TLS) did not come up on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A `mosquitto` with one TLS listener (anonymous access).
fn mosquitto_tls(dir: &Path, pki: &Pki, name: &str) -> Server {
    let port = common::free_port();
    let config = dir.join(format!("{name}.conf"));
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous true\npersistence false\n",
            pki.ca.display(),
            pki.cert.display(),
            pki.key.display()
        ),
    )
    .expect("write mosquitto config");
    let server = Server {
        child: spawn_logged(Command::new("mosquitto").arg("-c").arg(&config), dir, name),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto (TLS) did not come up on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// `mosquitto_sub` over TLS (trusting `ca`) waiting for one message on `topic`; returns
/// once it is subscribed, with a handle yielding the message.
fn subscribe_one(port: u16, ca: &Path, topic: &str) -> std::thread::JoinHandle<String> {
    let mut sub = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub", "--cafile"])
        .arg(ca)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "30", "-d"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (Debian's mosquitto-clients)");
    let stdout = sub.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if line.contains("SUBACK") {
            break;
        }
        seen.push(line);
    }
    assert!(
        !seen.iter().any(|l| l.contains("Error")),
        "mosquitto_sub: {seen:?}"
    );
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

fn start_spinlet(dir: &Path, ca: &Path) -> Spinlet {
    Spinlet::start(
        dir,
        Start {
            env: vec![("SSL_CERT_FILE".into(), ca.to_string_lossy().into_owned())],
            ..Default::default()
        },
    )
}

#[test]
fn rediss_through_a_trusted_ca_and_untrusted_servers_refused() {
    let wasm = build_app("rust-v5-hello");
    let scratch = common::scratch_dir("rediss");
    let trusted = Pki::new(&scratch, "trusted");
    let rogue = Pki::new(&scratch, "rogue");
    let redis = redis_tls(&scratch, &trusted, "redis-trusted");
    let untrusted = redis_tls(&scratch, &rogue, "redis-rogue");
    let (port, rogue_port) = (redis.port, untrusted.port);
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "rediss-test"
[[trigger.http]]
route = "/..."
component = "c"
[[trigger.http]]
route = "/plain/..."
component = "plain"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["rediss://127.0.0.1:{port}", "rediss://localhost:{port}", "rediss://127.0.0.1:{rogue_port}"]
[component.plain]
source = "{{wasm}}"
allowed_outbound_hosts = ["redis://127.0.0.1:{port}"]
"#
    );
    let dir = app_with_manifest("rediss", &wasm, &manifest);
    let s = start_spinlet(&dir, &trusted.ca);
    let addr = enc(&format!("rediss://127.0.0.1:{port}"));
    let call = |query: &str| s.get(&format!("/?op=redis&addr={addr}&{query}"));

    assert_eq!(call("cmd=set&key=greeting&value=hello").text(), "ok");
    assert_eq!(
        redis_cli(port, &trusted.ca, &["GET", "greeting"]),
        "hello",
        "stored in the real server"
    );
    assert_eq!(call("cmd=get&key=greeting").text(), "hello");
    assert_eq!(call("cmd=incr&key=counter").text(), "1");
    assert_eq!(
        call("cmd=INCRBY&arg=counter&arg=i:41").text(),
        "[RedisResult::Int64(42)]"
    );
    // The certificate names localhost too; the database number is honoured.
    let by_name = enc(&format!("rediss://localhost:{port}/3"));
    let r = s.get(&format!(
        "/?op=redis&addr={by_name}&cmd=set&key=db3&value=x"
    ));
    assert_eq!(r.text(), "ok");
    assert_eq!(
        redis_cli(port, &trusted.ca, &["-n", "3", "GET", "db3"]),
        "x"
    );

    // A server whose certificate no trusted CA signed: the interface's error, promptly.
    let started = Instant::now();
    let other = enc(&format!("rediss://127.0.0.1:{rogue_port}"));
    let r = s.get(&format!("/?op=redis&addr={other}&cmd=get&key=greeting"));
    assert!(
        r.text().starts_with("redis error: Error::Other(") && r.text().contains("certificate"),
        "{}",
        r.text()
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(redis_cli(rogue_port, &rogue.ca, &["DBSIZE"]), "0");

    // The scheme is part of the permission: a redis:// entry does not allow rediss://.
    let r = s.get(&format!(
        "/plain/?op=redis&addr={addr}&cmd=get&key=greeting"
    ));
    assert_eq!(r.text(), "redis error: Error::InvalidAddress");
    // Certificate checks cannot be switched off by the guest.
    let insecure = enc(&format!("rediss://127.0.0.1:{rogue_port}#insecure"));
    let r = s.get(&format!("/?op=redis&addr={insecure}&cmd=get&key=k"));
    assert!(r.text().contains("not supported"), "{}", r.text());
}

#[test]
fn mqtts_through_a_trusted_ca_and_untrusted_brokers_refused() {
    let wasm = build_app("rust-v5-hello");
    let scratch = common::scratch_dir("mqtts");
    let trusted = Pki::new(&scratch, "trusted");
    let rogue = Pki::new(&scratch, "rogue");
    let broker = mosquitto_tls(&scratch, &trusted, "mosquitto-trusted");
    let untrusted = mosquitto_tls(&scratch, &rogue, "mosquitto-rogue");
    let (port, rogue_port) = (broker.port, untrusted.port);
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "mqtts-test"
[[trigger.http]]
route = "/..."
component = "c"
[[trigger.http]]
route = "/plain/..."
component = "plain"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["mqtts://127.0.0.1:{port}", "mqtts://127.0.0.1:{rogue_port}"]
[component.plain]
source = "{{wasm}}"
allowed_outbound_hosts = ["mqtt://127.0.0.1:{port}"]
"#
    );
    let dir = app_with_manifest("mqtts", &wasm, &manifest);
    let s = start_spinlet(&dir, &trusted.ca);
    let addr = enc(&format!("mqtts://127.0.0.1:{port}?client_id=spinlet-tls"));
    for qos in ["0", "1", "2"] {
        let message = subscribe_one(port, &trusted.ca, "sensors/tls");
        let r = s.get(&format!(
            "/?op=mqtt&addr={addr}&topic=sensors/tls&value=secret-q{qos}&qos={qos}"
        ));
        assert_eq!(r.text(), "published", "qos {qos}");
        assert_eq!(
            message.join().expect("subscriber"),
            format!("secret-q{qos}")
        );
    }

    let started = Instant::now();
    let other = enc(&format!(
        "mqtts://127.0.0.1:{rogue_port}?client_id=spinlet-rogue"
    ));
    let r = s.get(&format!("/?op=mqtt&addr={other}&topic=t&value=v&qos=1"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("ConnectionFailed") && r.text().contains("certificate"),
        "{}",
        r.text()
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    let r = s.get(&format!("/plain/?op=mqtt&addr={addr}&topic=t&value=v"));
    assert!(
        r.text().contains("ConnectionFailed") && r.text().contains("not permitted"),
        "{}",
        r.text()
    );
}

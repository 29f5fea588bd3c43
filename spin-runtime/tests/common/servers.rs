//! TLS servers for the outbound Redis and MQTT tests: a CA and server certificate made
//! with rcgen, a real `redis-server` with only a TLS port, a real `mosquitto` with a TLS
//! listener, their command-line clients, and `spinlet run` trusting the CA through
//! `SSL_CERT_FILE`. Everything listens on 127.0.0.1 and is stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Spinlet, Start};

/// Percent-encodes everything but unreserved characters (for query values).
pub fn enc(s: &str) -> String {
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
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server key.
    pub key: PathBuf,
}

impl Pki {
    /// Writes `<name>-ca.pem`, `<name>-cert.pem` and `<name>-key.pem` into `dir`, for a
    /// server on loopback (`127.0.0.1`, `localhost`).
    pub fn new(dir: &Path, name: &str) -> Pki {
        Pki::for_hosts(dir, name, &["127.0.0.1", "localhost"])
    }

    /// The environment entry that makes `spinlet run` trust this CA (`SSL_CERT_FILE`).
    pub fn trust_env(&self) -> (String, String) {
        (
            "SSL_CERT_FILE".into(),
            self.ca.to_string_lossy().into_owned(),
        )
    }

    /// As [`Pki::new`], for a server certificate naming `hosts` (the first is its
    /// common name).
    pub fn for_hosts(dir: &Path, name: &str, hosts: &[&str]) -> Pki {
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
        let sans: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).expect("server params");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            hosts.first().copied().unwrap_or("localhost"),
        );
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
pub struct Server {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
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
        .unwrap_or_else(|e| {
            panic!("cannot start {what} ({e}): install Debian's redis-server, mosquitto")
        })
}

/// `redis-cli --tls` against `port`, trusting `ca`; its trimmed output.
pub fn redis_cli(port: u16, ca: &Path, args: &[&str]) -> String {
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
pub fn redis_tls(dir: &Path, pki: &Pki, name: &str) -> Server {
    let port = super::free_port();
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
pub fn mosquitto_tls(dir: &Path, pki: &Pki, name: &str) -> Server {
    let port = super::free_port();
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
pub fn subscribe_one(port: u16, ca: &Path, topic: &str) -> std::thread::JoinHandle<String> {
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

/// `spinlet run` with `SSL_CERT_FILE` naming `ca`.
pub fn start_spinlet(dir: &Path, ca: &Path) -> Spinlet {
    Spinlet::start(
        dir,
        Start {
            env: vec![("SSL_CERT_FILE".into(), ca.to_string_lossy().into_owned())],
            ..Default::default()
        },
    )
}

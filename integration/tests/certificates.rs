//! Certificates as k3s manages them, end to end with the real binary: a leaf certificate
//! within 90 days of expiry (rewritten here, signed by the server's own CA, before a
//! restart) is renewed at start with a Warning event kubectl shows; `spinlet certificate
//! rotate` refuses while the server runs, then moves the leaves aside and issues new ones
//! that the restarted server serves and the rewritten kubeconfig authenticates with; an
//! agent joins with the K10 token alone (the CA fetched from `/cacerts` and checked
//! against the token's hash), and a token whose hash is not the CA's is refused, naming
//! both hashes. Loopback only (the agent in a network namespace the test creates).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::pods::{wait_or_show, Killed, Netns};
use common::{spinlet_bin, Server};

fn spinlet(args: &[&str], data_dir: &Path) -> Output {
    Command::new(spinlet_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run spinlet")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `spinlet certificate check`'s line for `file`.
fn check_line(data_dir: &Path, file: &str) -> String {
    let out = spinlet(&["certificate", "check"], data_dir);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{file}:")))
        .unwrap_or_else(|| panic!("no line for {file}: {}", text(&out)))
        .to_string()
}

/// Rewrites the admin client certificate, same key and subject, valid 30 more days.
fn expire_admin_soon(tls: &Path) {
    let read = |f: &str| std::fs::read_to_string(tls.join(f)).expect(f);
    let ca_key = rcgen::KeyPair::from_pem(&read("server-ca.key")).expect("CA key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("server-ca.crt"), ca_key).expect("CA");
    let key = rcgen::KeyPair::from_pem(&read("client-admin.key")).expect("admin key");
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "system:admin");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(335);
    p.not_after = now + time::Duration::days(30);
    let cert = p.signed_by(&key, &issuer).expect("sign");
    std::fs::write(tls.join("client-admin.crt"), cert.pem()).expect("write");
}

/// The first certificate the server presents on `port`, verified with `ca_pem`.
fn served_certificate(port: u16, ca_pem: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .expect("TLS handshake with the server's CA");
    }
    conn.peer_certificates().expect("peer certificates")[0].to_vec()
}

fn first_der(pem: &str) -> Vec<u8> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM")
        .to_vec()
}

#[test]
fn leaves_are_renewed_near_expiry_with_an_event_and_rotate_reissues_them() {
    let mut s = Server::start();
    let tls = s.data_dir.join("server/tls");
    s.stop();
    expire_admin_soon(&tls);
    let line = check_line(&s.data_dir, "client-admin.crt");
    assert!(line.contains("will expire within 90 days"), "{line}");
    let ca_before = std::fs::read_to_string(tls.join("server-ca.crt")).expect("CA");

    // The start renews it, logs a warning and records a Warning event on the Node.
    s.boot();
    let events = wait_or_show(
        "the certificate Warning event",
        Duration::from_secs(60),
        || {
            let out = s.kubectl(&[
                "get",
                "events",
                "-n",
                "default",
                "-o",
                "jsonpath={range .items[*]}{.type}|{.reason}|{.involvedObject.kind}|{.message}{\"\\n\"}{end}",
            ]);
            out.contains("CertificateExpirationWarning").then_some(out)
        },
        || s.log(),
    );
    let event = events
        .lines()
        .find(|l| l.contains("CertificateExpirationWarning"))
        .expect("event line");
    assert!(
        event.starts_with("Warning|CertificateExpirationWarning|Node|")
            && event.contains("client-admin.crt: certificate CN=system:admin")
            && event.contains("would expire within 90 days"),
        "{event}"
    );
    assert!(
        !event.contains("serving.crt"),
        "only the expiring one: {event}"
    );
    let log = s.log();
    assert!(
        log.contains("WARN") && log.contains("would expire within 90 days"),
        "{log}"
    );
    let line = check_line(&s.data_dir, "client-admin.crt");
    assert!(line.contains("is ok"), "{line}");
    // The kubeconfig the server wrote carries the renewed certificate: kubectl works.
    s.kubectl(&["get", "ns", "default"]);
    let ca_after = std::fs::read_to_string(tls.join("server-ca.crt")).expect("CA");
    assert_eq!(ca_before, ca_after, "the CA is kept");

    // Rotation refuses while the server runs.
    let kubeconfig = s.kubeconfig.to_string_lossy().into_owned();
    let out = spinlet(&["certificate", "rotate", "-o", &kubeconfig], &s.data_dir);
    assert!(!out.status.success(), "{}", text(&out));
    let pid = s.pid().expect("pid").to_string();
    assert!(
        text(&out).contains("server is running") && text(&out).contains(&pid),
        "{}",
        text(&out)
    );

    // Stopped: rotate moves the leaves aside, issues new ones, rewrites the kubeconfig.
    s.stop();
    let old_serving = std::fs::read_to_string(tls.join("serving.crt")).expect("serving");
    let old_kubeconfig = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    let out = spinlet(&["certificate", "rotate", "-o", &kubeconfig], &s.data_dir);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("serving.crt") && said.contains("kubeconfig") && said.contains("tls-"),
        "{said}"
    );
    let backups: Vec<_> = std::fs::read_dir(s.data_dir.join("server"))
        .expect("server dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tls-"))
        .collect();
    assert_eq!(backups.len(), 1);
    let backup = backups[0].path();
    assert_eq!(
        std::fs::read_to_string(backup.join("serving.crt")).expect("backup"),
        old_serving
    );
    let new_serving = std::fs::read_to_string(tls.join("serving.crt")).expect("serving");
    assert_ne!(new_serving, old_serving);
    let rotated = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    assert_ne!(rotated, old_kubeconfig, "the admin certificate changed");
    let rotated_path = s.dir.path().join("rotated.yaml");
    std::fs::write(&rotated_path, &rotated).expect("copy");

    // Restarted, the server presents the new serving certificate, and kubectl with the
    // kubeconfig rotate wrote (pointed at the new port) trusts it and is admitted.
    s.boot();
    assert_eq!(
        served_certificate(s.port, &ca_after),
        first_der(&new_serving)
    );
    let out = s
        .kubectl_cmd()
        .env("KUBECONFIG", &rotated_path)
        .args(["--server", &format!("https://127.0.0.1:{}", s.port)])
        .args(["get", "ns", "default", "-o", "name"])
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/default"
    );
}

#[test]
fn an_agent_joins_with_the_k10_token_alone_and_a_wrong_hash_is_refused() {
    let Some(ns) = Netns::create("k10") else {
        return;
    };
    let s = Server::start_in_netns(&ns.0, &["--disable-agent"]);
    let token = std::fs::read_to_string(s.data_dir.join("server/token")).expect("token");
    let token = token.trim();
    let (hash, secret) = token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::server:"))
        .unwrap_or_else(|| panic!("not a K10 token: {token}"));
    let url = format!("https://127.0.0.1:{}", s.port);
    let scratch = tempfile::tempdir().expect("scratch");
    let agent = |token: &str, extra: &[&str]| {
        let mut c = ns.cmd(&spinlet_bin().to_string_lossy());
        c.args(["agent", "--server", &url, "--token", token])
            .args(extra)
            .arg("--data-dir")
            .arg(scratch.path().join("agent-data"))
            .arg("--pod-log-dir")
            .arg(scratch.path().join("agent-logs"))
            .args(["--node-name", "k10-agent"]);
        c
    };

    // A token naming another CA: refused before anything trusts the server.
    let wrong = format!(
        "{}{}",
        &hash[..63],
        if hash.ends_with('0') { "1" } else { "0" }
    );
    let out = agent(&format!("K10{wrong}::server:{secret}"), &[])
        .output()
        .expect("agent");
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("refusing to trust")
            && said.contains("/cacerts")
            && said.contains(&wrong)
            && said.contains(hash),
        "{said}"
    );
    // The token's hash also checks a CA file given with it.
    let other_ca = scratch.path().join("other-ca.crt");
    std::fs::write(&other_ca, b"not this cluster's CA\n").expect("write");
    let other = other_ca.to_string_lossy().into_owned();
    let out = agent(token, &["--ca-file", &other])
        .output()
        .expect("agent");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("--ca-file") && text(&out).contains(hash),
        "{}",
        text(&out)
    );
    // A malformed token is named.
    let out = agent("K10abc::server:x", &[]).output().expect("agent");
    assert!(
        !out.status.success() && text(&out).contains("\"abc\""),
        "{}",
        text(&out)
    );

    // The right token and no CA file: the agent fetches the CA, checks it, and joins.
    let log = std::fs::File::create(scratch.path().join("agent.log")).expect("log");
    let child = agent(token, &[])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn agent");
    let _agent = Killed(child);
    let agent_log =
        || std::fs::read_to_string(scratch.path().join("agent.log")).unwrap_or_default();
    wait_or_show(
        "the K10-joined node to be Ready",
        Duration::from_secs(90),
        || {
            let out = s.kubectl_output(
                &[
                    "get",
                    "node",
                    "k10-agent",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
                None,
            );
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        },
        || format!("agent log:\n{}\nserver log:\n{}", agent_log(), s.log()),
    );
    assert!(
        agent_log().contains("matches the join token's hash"),
        "{}",
        agent_log()
    );
}

//! End-to-end: `wasi:sockets` under `allowed_outbound_hosts`, through the real `spinlet
//! run` and a spin-sdk 7 app built from source (`tests/apps/rust-v7-sockets`), over both
//! `wasi:sockets@0.2` (Rust's `std::net`) and `wasi:sockets@0.3.0`
//! (`spin_sdk::wasip3::sockets`), against a TCP and a UDP echo server on loopback.
//!
//! Also: every malformed rule form fails `spinlet run` with a message naming the rule.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use common::servers::enc;
use common::{app_with_manifest, build_app, free_port, run_expecting_failure, Spinlet, Start};

/// A TCP server on 127.0.0.1 that answers each connection's first line with that line,
/// then closes it. Serves until the test process ends.
fn tcp_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp echo");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut line).is_ok() {
                    let _ = (&stream).write_all(line.as_bytes());
                }
            });
        }
    });
    port
}

/// A UDP server on 127.0.0.1 that sends each datagram back to its sender.
fn udp_echo() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp echo");
    let port = socket.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    port
}

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "sockets"
[variables]
tcp_port = { default = "{tcp}" }
[[trigger.http]]
route = "/exact/..."
component = "exact"
[[trigger.http]]
route = "/cidr/..."
component = "cidr"
[[trigger.http]]
route = "/range/..."
component = "range"
[[trigger.http]]
route = "/none/..."
component = "none"
[[trigger.http]]
route = "/other/..."
component = "other"
[[trigger.http]]
route = "/names/..."
component = "names"
[component.exact]
source = "{wasm}"
allowed_outbound_hosts = ["*://127.0.0.1:{{ tcp_port }}", "*://127.0.0.1:{udp}"]
[component.cidr]
source = "{wasm}"
allowed_outbound_hosts = ["*://127.0.0.0/24:{tcp}", "udp://127.0.0.0/24:{udp}"]
[component.range]
source = "{wasm}"
allowed_outbound_hosts = ["tcp://127.0.0.1:{tcp_from}..{tcp_to}", "udp://127.0.0.1:{udp_from}..{udp_to}"]
[component.none]
source = "{wasm}"
[component.other]
source = "{wasm}"
allowed_outbound_hosts = ["*://127.0.0.1:{other}", "http://127.0.0.1:{tcp}", "redis://127.0.0.1:{tcp}", "tcp://127.0.0.1:{udp}", "udp://127.0.0.2/32:{udp}"]
[component.names]
source = "{wasm}"
allowed_outbound_hosts = ["tcp://localhost:{tcp}"]
"#;

struct Echo {
    tcp: u16,
    udp: u16,
}

fn get(s: &Spinlet, path: &str) -> (u16, String) {
    let r = s.get(path);
    (r.status, r.text())
}

fn tcp(s: &Spinlet, prefix: &str, api: &str, port: u16) -> (u16, String) {
    get(
        s,
        &format!("/{prefix}/?op=tcp&api={api}&addr=127.0.0.1:{port}&msg=hello-{prefix}"),
    )
}

fn udp(s: &Spinlet, prefix: &str, api: &str, port: u16) -> (u16, String) {
    get(
        s,
        &format!("/{prefix}/?op=udp&api={api}&addr=127.0.0.1:{port}&msg=ping-{prefix}"),
    )
}

fn lookup(s: &Spinlet, prefix: &str, api: &str, name: &str) -> (u16, String) {
    get(
        s,
        &format!("/{prefix}/?op=lookup&api={api}&name={}", enc(name)),
    )
}

/// What a denial looks like to the app: `access-denied` from 0.3, `EACCES` (kind
/// `PermissionDenied`) through wasi-libc from 0.2 (name lookups included).
fn assert_denied(api: &str, what: &str, (status, body): (u16, String)) {
    assert_eq!(status, 403, "{api} {what}: {body}");
    let expected = if api == "p3" {
        "AccessDenied"
    } else {
        "PermissionDenied"
    };
    assert!(body.contains(expected), "{api} {what}: {body}");
}

fn check(s: &Spinlet, echo: &Echo, api: &str) {
    // TCP: allowed by an exact rule (a template rendered at load), a CIDR range and a
    // port range.
    for prefix in ["exact", "cidr", "range"] {
        let (status, body) = tcp(s, prefix, api, echo.tcp);
        assert_eq!(
            status,
            200,
            "{api} tcp via {prefix}: {body}\n{}",
            s.stderr()
        );
        assert_eq!(
            body,
            format!("echo: hello-{prefix}\n"),
            "{api} tcp {prefix}"
        );
    }
    // UDP round trip, likewise.
    for prefix in ["exact", "cidr", "range"] {
        let (status, body) = udp(s, prefix, api, echo.udp);
        assert_eq!(
            status,
            200,
            "{api} udp via {prefix}: {body}\n{}",
            s.stderr()
        );
        assert_eq!(body, format!("echo: ping-{prefix}"), "{api} udp {prefix}");
    }
    // Denied, as an error the app reports (not a trap): no rule at all; rules for
    // another port, for other schemes on the right port (`http`, `redis`, and `tcp` for
    // the UDP port), for another address; a name rule for an address.
    for prefix in ["none", "other"] {
        assert_denied(api, &format!("tcp {prefix}"), tcp(s, prefix, api, echo.tcp));
        assert_denied(api, &format!("udp {prefix}"), udp(s, prefix, api, echo.udp));
    }
    assert_denied(api, "tcp names", tcp(s, "names", api, echo.tcp));
    // Outside the CIDR range and the port range.
    let (status, body) = get(
        s,
        &format!("/cidr/?op=tcp&api={api}&addr=127.0.1.1:{}&msg=x", echo.tcp),
    );
    assert_denied(api, "tcp outside the CIDR range", (status, body));
    assert_denied(
        api,
        "tcp outside the range",
        tcp(s, "range", api, echo.tcp + 10),
    );

    // Name lookup: allowed for a name a rule names, denied for names no rule could match
    // (address rules name no names).
    let (status, body) = lookup(s, "names", api, "localhost");
    assert_eq!(
        status,
        200,
        "{api} lookup localhost: {body}\n{}",
        s.stderr()
    );
    assert!(
        body.starts_with("addresses: ") && (body.contains("127.0.0.1") || body.contains("::1")),
        "{api} lookup localhost: {body}"
    );
    for prefix in ["none", "exact"] {
        let denied = lookup(s, prefix, api, "localhost");
        assert!(
            denied.1.starts_with("lookup error: "),
            "{api} {prefix}: {denied:?}"
        );
        assert_denied(api, &format!("lookup via {prefix}"), denied);
    }
    assert_denied(
        api,
        "lookup of another name",
        lookup(s, "names", api, "example.invalid"),
    );
    // An address literal needs no lookup.
    let (status, body) = lookup(s, "none", api, "127.0.0.1");
    assert_eq!(
        (status, body.as_str()),
        (200, "addresses: 127.0.0.1"),
        "{api}"
    );
}

#[test]
fn sockets_connect_send_and_resolve_only_as_allowed_outbound_hosts_permit() {
    let wasm = build_app("rust-v7-sockets");
    let echo = Echo {
        tcp: tcp_echo(),
        udp: udp_echo(),
    };
    let other = loop {
        let p = free_port();
        if p != echo.tcp && p != echo.udp {
            break p;
        }
    };
    let manifest = APP
        .replace("{tcp_from}", &(echo.tcp - 3).to_string())
        .replace("{tcp_to}", &(echo.tcp + 3).to_string())
        .replace("{udp_from}", &(echo.udp - 3).to_string())
        .replace("{udp_to}", &(echo.udp + 3).to_string())
        .replace("{tcp}", &echo.tcp.to_string())
        .replace("{udp}", &echo.udp.to_string())
        .replace("{other}", &other.to_string());
    let dir = app_with_manifest("sockets", &wasm, &manifest);
    let s = Spinlet::start(&dir, Start::default());
    check(&s, &echo, "p2");
    check(&s, &echo, "p3");
    // Nothing trapped: the app reported every denial itself.
    assert!(!s.stderr().contains("trap"), "{}", s.stderr());
}

const MALFORMED: &str = r#"
spin_manifest_version = 2
[application]
name = "malformed-rule"
[variables]
host = { default = "db" }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{wasm}"
allowed_outbound_hosts = ["https://fine.example.com", RULE]
"#;

#[test]
fn each_malformed_rule_fails_spinlet_run_naming_the_rule() {
    // The component is never compiled: rules are checked first.
    let wasm = std::path::Path::new("never-read.wasm");
    for (rule, reason) in [
        ("example.com", "no scheme"),
        ("*", "not a rule"),
        ("insecure:allow-all", "use `*://*:*`"),
        ("h2c2://example.com:80", "may contain only letters"),
        (
            "{http,https}://example.com",
            "scheme lists are not supported",
        ),
        ("http://", "no host"),
        ("http://example.com/path", "a path (`/path`)"),
        ("http://example.com:http", "the port `http` is not a number"),
        (
            "http://example.com:70000",
            "the port `70000` is not a number",
        ),
        (
            "tcp://127.0.0.1:2000..1000",
            "the port range `2000..1000` is empty",
        ),
        ("tcp://127.0.0.1:1000..", "must be two port numbers"),
        (
            "tcp://127.0.0.1:1000-2000",
            "a port range is written `1000..2000`",
        ),
        ("tcp://127.0.0.1", "the scheme `tcp` has no default port"),
        (
            "*://10.0.0.0/24",
            "a rule for any scheme (`*://`) needs one",
        ),
        ("*://10.0.0.0/33:5000", "the prefix length `/33`"),
        ("*://10.0.0.0/:5000", "has no prefix length"),
        (
            "http://a.*.example.com",
            "`*` is allowed only as the whole host or a `*.` prefix",
        ),
        ("http://*.10.0.0.1", "not the IP address `10.0.0.1`"),
        (
            "http://exa mple.com",
            "is not a valid domain name or IP address",
        ),
        ("http://[::1", "has no closing `]`"),
        ("http://::1", "in brackets"),
        ("http://example.com:80:90", "more than one `:`"),
        ("tcp://{{ host }}", "(rendered as `tcp://db`)"),
    ] {
        let manifest = MALFORMED.replace("RULE", &format!("{rule:?}"));
        let dir = app_with_manifest("malformed-rule", wasm, &manifest);
        let (ok, stderr) = run_expecting_failure(&dir, &[]);
        assert!(!ok, "{rule}: spinlet run started");
        assert!(
            stderr.contains(&format!("invalid allowed_outbound_hosts rule `{rule}`")),
            "{rule}: {stderr}"
        );
        assert!(stderr.contains(reason), "{rule}: {stderr}");
        assert!(stderr.contains("component `c`"), "{rule}: {stderr}");
    }
}

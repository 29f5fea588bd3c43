//! End-to-end: outbound Redis over `rediss://` and MQTT over `mqtts://`, against a real
//! `redis-server` and a real `mosquitto` with TLS listeners on loopback.
//!
//! Each test makes its own CA and a server certificate for 127.0.0.1/localhost with
//! rcgen, trusts that CA in `spinlet run` through `SSL_CERT_FILE`, and also starts a
//! server whose certificate comes from a CA nobody trusts: the guest must get the
//! interface's error for it, promptly, not a trap or a hang.

mod common;

use std::time::{Duration, Instant};

use common::servers::{
    enc, mosquitto_tls, redis_cli, redis_tls, start_spinlet, subscribe_one, Pki,
};
use common::{app_with_manifest, build_app};

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

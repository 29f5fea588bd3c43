//! End-to-end: the async 3.0 interfaces `spin:redis/redis@3.0.0` and
//! `spin:mqtt/mqtt@3.0.0`, called by a spin-sdk 7 app (`tests/apps/rust-v7-outbound`, a
//! WASI 0.3 component) served by the real `spinlet run`, against a real `redis-server`
//! and a real `mosquitto` (TLS listeners on loopback, trusted through `SSL_CERT_FILE`;
//! see `common::servers`).

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};

use common::servers::{
    enc, mosquitto_tls, redis_cli, redis_tls, start_spinlet, subscribe_one, Pki,
};
use common::{app_with_manifest, build_app};

#[test]
fn spin_sdk_7_redis_and_mqtt_against_real_servers() {
    let wasm = build_app("rust-v7-outbound");
    let scratch = common::scratch_dir("v3-outbound");
    let trusted = Pki::new(&scratch, "trusted");
    let rogue = Pki::new(&scratch, "rogue");
    let redis = redis_tls(&scratch, &trusted, "redis");
    let untrusted = redis_tls(&scratch, &rogue, "redis-rogue");
    let broker = mosquitto_tls(&scratch, &trusted, "mosquitto");
    let (port, rogue_port, mqtt_port) = (redis.port, untrusted.port, broker.port);
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "v3-outbound"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "{{wasm}}"
allowed_outbound_hosts = ["rediss://127.0.0.1:{port}", "rediss://127.0.0.1:{rogue_port}", "mqtts://127.0.0.1:{mqtt_port}"]
"#
    );
    let dir = app_with_manifest("v3-outbound", &wasm, &manifest);
    let s = start_spinlet(&dir, &trusted.ca);
    let addr = enc(&format!("rediss://127.0.0.1:{port}"));
    let call = |query: &str| s.get(&format!("/?op=redis&addr={addr}&{query}"));

    let r = call("cmd=set&key=greeting&value=hello");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", s.stderr());
    assert_eq!(redis_cli(port, &trusted.ca, &["GET", "greeting"]), "hello");
    assert_eq!(call("cmd=get&key=greeting").text(), "hello");
    assert_eq!(call("cmd=get&key=missing").text(), "nil");
    assert_eq!(call("cmd=incr&key=counter").text(), "1");
    assert_eq!(call("cmd=incr&key=counter").text(), "2");
    assert_eq!(
        call("cmd=incr&key=greeting").text(),
        "redis error: Error::TypeError"
    );
    assert_eq!(call("cmd=sadd&key=set&member=a&member=b").text(), "2");
    assert_eq!(call("cmd=srem&key=set&member=a").text(), "1");
    assert_eq!(call("cmd=smembers&key=set").text(), "b");
    assert_eq!(call("cmd=del&key=counter").text(), "1");
    assert_eq!(redis_cli(port, &trusted.ca, &["EXISTS", "counter"]), "0");
    assert_eq!(
        call("cmd=INCRBY&arg=n&arg=i:42").text(),
        "[RedisResult::Int64(42)]"
    );
    assert_eq!(
        call("cmd=MGET&arg=n&arg=nothing&arg=greeting").text(),
        "[RedisResult::Binary([52, 50]), RedisResult::Nil, RedisResult::Binary([104, 101, 108, 108, 111])]"
    );

    // publish reaches a real subscriber.
    let mut sub = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(&trusted.ca)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["SUBSCRIBE", "news"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli subscribe");
    let mut out = std::io::BufReader::new(sub.stdout.take().expect("stdout"));
    let mut read = |n: usize| {
        (0..n)
            .map(|_| {
                let mut line = String::new();
                out.read_line(&mut line).expect("subscriber output");
                line.trim().to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(read(3), ["subscribe", "news", "1"]);
    assert_eq!(call("cmd=publish&key=news&value=async").text(), "published");
    let message = read(3);
    let _ = sub.kill();
    let _ = sub.wait();
    assert_eq!(message, ["message", "news", "async"]);

    // Not allowed, and not trusted: the interface's errors.
    let other = enc(&format!("rediss://127.0.0.1:{}", common::free_port()));
    let r = s.get(&format!("/?op=redis&addr={other}&cmd=get&key=k"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "redis error: Error::InvalidAddress")
    );
    let rogue_addr = enc(&format!("rediss://127.0.0.1:{rogue_port}"));
    let r = s.get(&format!("/?op=redis&addr={rogue_addr}&cmd=get&key=k"));
    assert!(
        r.text().starts_with("redis error: Error::Other(") && r.text().contains("certificate"),
        "{}",
        r.text()
    );

    // MQTT: each QoS is acknowledged as it requires and reaches a subscriber.
    let mqtt = enc(&format!(
        "mqtts://127.0.0.1:{mqtt_port}?client_id=spinlet-v3"
    ));
    for qos in ["0", "1", "2"] {
        let message = subscribe_one(mqtt_port, &trusted.ca, "v3/topic");
        let r = s.get(&format!(
            "/?op=mqtt&addr={mqtt}&topic=v3/topic&value=async-q{qos}&qos={qos}"
        ));
        assert_eq!(r.text(), "published", "qos {qos}");
        assert_eq!(message.join().expect("subscriber"), format!("async-q{qos}"));
    }
    let denied = enc("mqtts://127.0.0.1:1?client_id=x");
    let r = s.get(&format!("/?op=mqtt&addr={denied}&topic=t&value=v"));
    assert!(
        r.text().contains("ConnectionFailed") && r.text().contains("not permitted"),
        "{}",
        r.text()
    );
}

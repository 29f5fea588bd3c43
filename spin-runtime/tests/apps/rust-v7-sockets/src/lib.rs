//! Test app for spinlet's `wasi:sockets` under `allowed_outbound_hosts`, built for
//! wasm32-wasip2: a spin-sdk 7 component (`wasi:http/handler@0.3.0`) that opens sockets
//! through both versions of the interface:
//!
//! - `api=p2`: Rust's `std::net` (wasi-libc over `wasi:sockets@0.2`: `tcp`, `udp`,
//!   `ip-name-lookup`);
//! - `api=p3`: `spin_sdk::wasip3::sockets` (`wasi:sockets/types@0.3.0` and
//!   `ip-name-lookup@0.3.0`).
//!
//! `op=tcp&addr=<ip:port>&msg=<text>` connects, sends `<text>\n`, and answers
//! `echo: <what came back>` (read to the end: the test's server closes after one line);
//! `op=udp&addr=<ip:port>&msg=<text>` sends one datagram from an ephemeral port and
//! answers `echo: <the reply datagram>`; `op=lookup&name=<host>` answers
//! `addresses: <ip>,<ip>..`. A failure answers 403 with `<op> error: <the error>` (the
//! p3 error codes in Debug form, `std::io::Error`s with their kind).

use std::net::SocketAddr;

use app_support::text;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

fn param(req: &Request, name: &str) -> String {
    app_support::query_param(req.uri().query().unwrap_or(""), name).unwrap_or_default()
}

mod p2 {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};

    fn show(e: std::io::Error) -> String {
        format!("{:?}: {e}", e.kind())
    }

    pub fn tcp(addr: SocketAddr, msg: &str) -> Result<String, String> {
        let mut stream = TcpStream::connect(addr).map_err(show)?;
        stream
            .write_all(format!("{msg}\n").as_bytes())
            .map_err(show)?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).map_err(show)?;
        Ok(reply)
    }

    pub fn udp(addr: SocketAddr, msg: &str) -> Result<String, String> {
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).map_err(show)?;
        socket.send_to(msg.as_bytes(), addr).map_err(show)?;
        let mut buf = [0u8; 1500];
        let (n, from) = socket.recv_from(&mut buf).map_err(show)?;
        if from != addr {
            return Err(format!("reply from {from}, not {addr}"));
        }
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    pub fn lookup(name: &str) -> Result<Vec<String>, String> {
        let addrs = (name, 0).to_socket_addrs().map_err(show)?;
        Ok(addrs.map(|a| a.ip().to_string()).collect())
    }
}

mod p3 {
    use std::net::{IpAddr, SocketAddr};

    use spin_sdk::wasip3::sockets::ip_name_lookup;
    use spin_sdk::wasip3::sockets::types::{
        IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
        TcpSocket, UdpSocket,
    };
    use spin_sdk::wasip3::wit_stream;

    fn family(addr: &SocketAddr) -> IpAddressFamily {
        if addr.is_ipv4() {
            IpAddressFamily::Ipv4
        } else {
            IpAddressFamily::Ipv6
        }
    }

    fn wasi_addr(addr: SocketAddr) -> IpSocketAddress {
        match addr {
            SocketAddr::V4(a) => {
                let [a0, a1, a2, a3] = a.ip().octets();
                IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port: a.port(),
                    address: (a0, a1, a2, a3),
                })
            }
            SocketAddr::V6(a) => {
                let s = a.ip().segments();
                IpSocketAddress::Ipv6(Ipv6SocketAddress {
                    port: a.port(),
                    flow_info: 0,
                    address: (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
                    scope_id: 0,
                })
            }
        }
    }

    fn std_ip(ip: IpAddress) -> IpAddr {
        match ip {
            IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
            IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::from([a, b, c, d, e, f, g, h]),
        }
    }

    pub async fn tcp(addr: SocketAddr, msg: &str) -> Result<String, String> {
        let show = |e| format!("{e:?}");
        let socket = TcpSocket::create(family(&addr)).map_err(show)?;
        socket.connect(wasi_addr(addr)).await.map_err(show)?;
        let (mut tx, rx) = wit_stream::new::<u8>();
        let sent = socket.send(rx);
        let rest = tx.write_all(format!("{msg}\n").into_bytes()).await;
        if !rest.is_empty() {
            return Err("the send stream closed early".into());
        }
        drop(tx);
        sent.await.map_err(show)?;
        let (data, done) = socket.receive();
        let reply = data.collect().await;
        done.await.map_err(show)?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    pub async fn udp(addr: SocketAddr, msg: &str) -> Result<String, String> {
        let show = |e| format!("{e:?}");
        let socket = UdpSocket::create(family(&addr)).map_err(show)?;
        socket
            .send(msg.as_bytes().to_vec(), Some(wasi_addr(addr)))
            .await
            .map_err(show)?;
        let (data, _from) = socket.receive().await.map_err(show)?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    pub async fn lookup(name: &str) -> Result<Vec<String>, String> {
        let addrs = ip_name_lookup::resolve_addresses(name.to_string())
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(addrs.into_iter().map(|a| std_ip(a).to_string()).collect())
    }
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let op = param(&req, "op");
    let api = param(&req, "api");
    let msg = param(&req, "msg");
    let addr = || -> Result<SocketAddr, String> {
        param(&req, "addr")
            .parse()
            .map_err(|e| format!("bad addr: {e}"))
    };
    let p3 = match api.as_str() {
        "p2" => false,
        "p3" => true,
        _ => return Ok(text(400, "api must be p2 or p3")),
    };
    let result = match op.as_str() {
        "tcp" | "udp" => match addr() {
            Err(e) => Err(e),
            Ok(addr) => match (op.as_str(), p3) {
                ("tcp", false) => p2::tcp(addr, &msg),
                ("tcp", true) => p3::tcp(addr, &msg).await,
                ("udp", false) => p2::udp(addr, &msg),
                _ => p3::udp(addr, &msg).await,
            },
        }
        .map(|reply| format!("echo: {reply}")),
        "lookup" => {
            let name = param(&req, "name");
            if p3 {
                p3::lookup(&name).await
            } else {
                p2::lookup(&name)
            }
            .map(|addrs| format!("addresses: {}", addrs.join(",")))
        }
        _ => return Ok(text(404, format!("unknown op `{op}`"))),
    };
    Ok(match result {
        Ok(body) => text(200, body),
        Err(e) => text(403, format!("{op} error: {e}")),
    })
}

//! Outbound MQTT: the guest interfaces `fermyon:spin/mqtt@2.0.0` and `spin:mqtt/mqtt@3.0.0`,
//! with `rumqttc`.
//!
//! This module owns the host side of outbound MQTT as Spin's `outbound-mqtt` factor does
//! it: `open(address, username, password, keep-alive)` checks the address
//! (`mqtt://host[:port]?client_id=…`, default port 1883, or `mqtts://` for TLS, default
//! port 8883) against the component's `allowed_outbound_hosts` (`connection-failed` when
//! not permitted; the scheme must match, an `mqtt://` entry does not allow `mqtts://`),
//! parses it with rumqttc (`invalid-address`) and creates a client; nothing is sent until `publish`,
//! which drives the client's event loop until the broker acknowledged the message as the
//! QoS requires (sent for at-most-once, `PUBACK` for at-least-once, `PUBCOMP` for
//! exactly-once). Broker and network failures are `connection-failed`, and so is a TLS
//! failure such as an untrusted server certificate. TLS uses the shared client
//! configuration of [`crate::tls`] (system or `SSL_CERT_FILE` roots plus the Mozilla
//! ones); client certificates are not supported. (Spin itself knows no default port for
//! `mqtts`, so there an allow entry and the address must name the port.)
//!
//! The 3.0 interface has the same functions as component-model `async` functions (WASI
//! 0.3 apps, spin-sdk 7), sharing the connection type, the publish loop and the error
//! mapping with 2.0; the store is never held while the broker is awaited. Neither version
//! limits the number of connections (`too-many-connections` is never returned). Not
//! implemented: an MQTT trigger.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS, TlsConfiguration,
    Transport,
};
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};

use crate::outbound::AllowedHosts;

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/mqtt",
        imports: { default: async },
        with: {
            "fermyon:spin/mqtt.connection": super::Connection,
            "spin:mqtt/mqtt.connection": super::Connection,
        },
    });
}

use gen_::fermyon::spin::mqtt as v2;
use gen_::spin::mqtt::mqtt as v3;

/// Requests buffered between the client and its event loop (Spin's channel capacity).
const CHANNEL_CAP: usize = 1000;

/// An open connection, the host side of a guest `connection` resource (either version).
pub struct Connection {
    client: AsyncClient,
    event_loop: Arc<tokio::sync::Mutex<EventLoop>>,
}

/// Per-instance MQTT state: the component's allow list.
#[derive(Debug, Clone)]
pub struct MqttCtx {
    allowed: Arc<AllowedHosts>,
}

impl MqttCtx {
    /// A context allowing the addresses `allowed` permits.
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self { allowed }
    }
}

/// A borrowed view of [`MqttCtx`] plus the resource table; the guest interfaces are
/// implemented on it.
pub struct MqttCtxView<'a> {
    /// The context.
    pub ctx: &'a MqttCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by store data that holds an [`MqttCtx`].
pub trait MqttView: Send {
    /// Borrows the MQTT context and the resource table.
    fn mqtt(&mut self) -> MqttCtxView<'_>;
}

struct Mqtt;

impl HasData for Mqtt {
    type Data<'a> = MqttCtxView<'a>;
}

/// A failure of either version, converted into that version's `error`.
#[derive(Debug)]
enum Failure {
    InvalidAddress,
    ConnectionFailed(String),
    Other(String),
}

fn other(e: impl std::fmt::Display) -> Failure {
    Failure::Other(e.to_string())
}

macro_rules! conversions {
    ($v:ident) => {
        impl From<Failure> for $v::Error {
            fn from(f: Failure) -> Self {
                match f {
                    Failure::InvalidAddress => Self::InvalidAddress,
                    Failure::ConnectionFailed(m) => Self::ConnectionFailed(m),
                    Failure::Other(m) => Self::Other(m),
                }
            }
        }

        impl From<$v::Qos> for QoS {
            fn from(q: $v::Qos) -> Self {
                match q {
                    $v::Qos::AtMostOnce => QoS::AtMostOnce,
                    $v::Qos::AtLeastOnce => QoS::AtLeastOnce,
                    $v::Qos::ExactlyOnce => QoS::ExactlyOnce,
                }
            }
        }
    };
}
conversions!(v2);
conversions!(v3);

/// rumqttc's options for `address`. rumqttc would build a TLS configuration of its own
/// for `mqtts://` (reading the platform's roots on every open); the address is parsed as
/// `mqtt://` on the TLS port instead and given the shared one.
fn options(address: &str) -> Result<MqttOptions, Failure> {
    let mut url = url::Url::parse(address).map_err(|_| Failure::InvalidAddress)?;
    let tls = matches!(url.scheme(), "mqtts" | "ssl");
    if tls {
        let port = url.port().unwrap_or(8883);
        url.set_scheme("mqtt")
            .and_then(|()| url.set_port(Some(port)))
            .map_err(|()| Failure::InvalidAddress)?;
    }
    let mut options = MqttOptions::try_from(url).map_err(|_| Failure::InvalidAddress)?;
    if tls {
        let config = crate::tls::client_config().map_err(other)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    Ok(options)
}

impl MqttCtxView<'_> {
    /// Checks `address` against the allow list and creates a client (nothing is sent yet).
    fn new_connection(
        &self,
        address: &str,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Connection, Failure> {
        if !self.ctx.allowed.allows_address(address) {
            return Err(Failure::ConnectionFailed(format!(
                "address {address} is not permitted"
            )));
        }
        let mut options = options(address)?;
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(keep_alive_interval_in_secs));
        let (client, event_loop) = AsyncClient::new(options, CHANNEL_CAP);
        Ok(Connection {
            client,
            event_loop: Arc::new(tokio::sync::Mutex::new(event_loop)),
        })
    }

    /// The client and event loop behind resource `rep` (handles: the resource table must
    /// not be borrowed across an await).
    fn handles(&self, rep: u32) -> Result<Handles, Failure> {
        let conn = self
            .table
            .get(&Resource::<Connection>::new_borrow(rep))
            .map_err(other)?;
        Ok((conn.client.clone(), conn.event_loop.clone()))
    }
}

type Handles = (AsyncClient, Arc<tokio::sync::Mutex<EventLoop>>);

/// Publishes and drives the event loop until the broker acknowledged as `qos` requires.
async fn publish(
    (client, event_loop): Handles,
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
) -> Result<(), Failure> {
    client
        .publish_bytes(topic, qos, false, payload.into())
        .await
        .map_err(other)?;
    let mut event_loop = event_loop.lock().await;
    loop {
        let event = event_loop
            .poll()
            .await
            .map_err(|e| Failure::ConnectionFailed(e.to_string()))?;
        match (qos, event) {
            (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
            | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
            | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_))) => return Ok(()),
            _ => {}
        }
    }
}

impl v2::Host for MqttCtxView<'_> {}

impl v2::HostConnection for MqttCtxView<'_> {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<Connection>, v2::Error> {
        let conn =
            self.new_connection(&address, username, password, keep_alive_interval_in_secs)?;
        Ok(self.table.push(conn).map_err(other)?)
    }

    async fn publish(
        &mut self,
        c: Resource<Connection>,
        topic: String,
        payload: Vec<u8>,
        qos: v2::Qos,
    ) -> Result<(), v2::Error> {
        Ok(publish(self.handles(c.rep())?, topic, payload, qos.into()).await?)
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl v3::Host for MqttCtxView<'_> {}

impl v3::HostConnection for MqttCtxView<'_> {
    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl<U> v3::HostConnectionWithStore<U> for Mqtt {
    async fn open(
        store: &Accessor<U, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<Connection>, v3::Error> {
        // Creating the client does no I/O: one visit to the store does it all.
        Ok(store.with(|mut view| {
            let view = view.get();
            let conn =
                view.new_connection(&address, username, password, keep_alive_interval_in_secs)?;
            view.table.push(conn).map_err(other)
        })?)
    }

    async fn publish(
        store: &Accessor<U, Self>,
        c: Resource<Connection>,
        topic: String,
        payload: Vec<u8>,
        qos: v3::Qos,
    ) -> Result<(), v3::Error> {
        let handles = store.with(|mut view| view.get().handles(c.rep()))?;
        Ok(publish(handles, topic, payload, qos.into()).await?)
    }
}

/// Links `fermyon:spin/mqtt@2.0.0` and `spin:mqtt/mqtt@3.0.0` into `linker`.
pub fn add_to_linker<T: MqttView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Mqtt>(linker, T::mqtt)?;
    v3::add_to_linker::<T, Mqtt>(linker, T::mqtt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        let allowed = AllowedHosts::parse(&["mqtt://127.0.0.1".to_string()]).unwrap();
        assert!(allowed.allows_address("mqtt://127.0.0.1:1883?client_id=a"));
        assert!(allowed.allows_address("mqtt://127.0.0.1?client_id=a"));
        assert!(!allowed.allows_address("mqtt://127.0.0.1:1884?client_id=a"));
        assert!(!allowed.allows_address("mqtt://10.0.0.1?client_id=a"));
        assert!(!allowed.allows_address("mqtts://127.0.0.1:1883?client_id=a"));
        let tls = AllowedHosts::parse(&["mqtts://127.0.0.1".to_string()]).unwrap();
        assert!(tls.allows_address("mqtts://127.0.0.1:8883?client_id=a"));
        assert!(!tls.allows_address("mqtt://127.0.0.1:8883?client_id=a"));
    }

    #[test]
    fn tls_addresses_get_the_shared_configuration() {
        let o = options("mqtts://broker.test?client_id=a").unwrap();
        assert_eq!(o.broker_address(), ("broker.test".to_string(), 8883));
        assert!(matches!(o.transport(), Transport::Tls(_)));
        let o = options("mqtt://broker.test?client_id=a").unwrap();
        assert_eq!(o.broker_address(), ("broker.test".to_string(), 1883));
        assert!(matches!(o.transport(), Transport::Tcp));
        assert!(matches!(options("mqtts://x"), Err(Failure::InvalidAddress)));
    }
}

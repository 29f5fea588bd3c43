//! `wasi:sockets` (0.2 `tcp`, `udp`, `ip-name-lookup`, and their 0.3 forms in
//! `wasi:sockets/types@0.3.0` and `ip-name-lookup@0.3.0`, which spin-sdk 7 re-exports as
//! `spin_sdk::wasip3::sockets`), permitted by the component's `allowed_outbound_hosts`.
//!
//! This module owns the socket policy. wasmtime-wasi implements the interfaces and asks
//! [`permits`] (through the `WasiCtx`'s socket address check) before each use of an
//! address:
//!
//! - connecting a TCP socket, sending a UDP datagram (or connecting a UDP socket, which
//!   wasmtime checks as a send), and receiving one: allowed when a rule with the scheme
//!   `tcp`, `udp` or `*` matches the remote address and port, as Spin checks
//!   `tcp://<addr>` / `udp://<addr>` ([`AllowedHosts::allows_socket`]); a datagram from
//!   a peer no rule allows is dropped;
//! - binding: to port 0 (an ephemeral local port, which is also what wasmtime checks
//!   before the implicit bind of a connect or a first send) always; to a chosen port
//!   only as a connection to that address would be;
//! - listening and accepting: never (spinlet serves no inbound sockets to guests; Spin
//!   refuses every TCP bind).
//!
//! `ip-name-lookup` is linked here, over wasmtime-wasi's: a name is resolved only when
//! some rule could match it ([`AllowedHosts::allows_name_lookup`]: a host of `*`, a `*.`
//! wildcard it falls under, or that very name); IP literals need no lookup. Spin leaves
//! name lookup off altogether.
//!
//! Everything denied fails with the interface's `access-denied` error code, never a trap.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup as p2_lookup;
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode as P2ErrorCode, Network};
use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup as p3_lookup;
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};
use wasmtime_wasi::WasiCtxBuilder;

use crate::outbound_rules::AllowedHosts;
use crate::state::InstanceState;

/// Whether `use_` of `addr` is permitted by `allowed`.
pub fn permits(allowed: &AllowedHosts, addr: SocketAddr, use_: SocketAddrUse) -> bool {
    let permitted = match use_ {
        SocketAddrUse::TcpConnect => allowed.allows_socket("tcp", addr),
        SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => allowed.allows_socket("udp", addr),
        SocketAddrUse::TcpBind => addr.port() == 0 || allowed.allows_socket("tcp", addr),
        SocketAddrUse::UdpBind => addr.port() == 0 || allowed.allows_socket("udp", addr),
        SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
    };
    if !permitted {
        tracing::debug!(%addr, ?use_, "socket use denied by allowed_outbound_hosts");
    }
    permitted
}

/// Configures a component's WASI context: TCP, UDP and name lookups on, every address
/// checked by [`permits`] against `allowed`, names by this module's `ip-name-lookup`.
pub fn configure(wasi: &mut WasiCtxBuilder, allowed: &Arc<AllowedHosts>) {
    let allowed = allowed.clone();
    wasi.allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(true)
        .socket_addr_check(move |addr, use_| {
            let ok = permits(&allowed, addr, use_);
            Box::pin(std::future::ready(ok)) as Pin<Box<dyn Future<Output = bool> + Send + Sync>>
        });
}

/// The view `ip-name-lookup` works on: wasmtime-wasi's sockets view and the component's
/// rules.
pub struct NameLookup<'a> {
    sockets: WasiSocketsCtxView<'a>,
    allowed: &'a AllowedHosts,
}

/// [`HasData`] for [`NameLookup`].
pub struct NameLookupData;

impl HasData for NameLookupData {
    type Data<'a> = NameLookup<'a>;
}

fn name_lookup(state: &mut InstanceState) -> NameLookup<'_> {
    NameLookup {
        sockets: WasiSocketsCtxView {
            ctx: state.wasi.sockets(),
            table: &mut state.table,
        },
        allowed: state.hooks.allowed(),
    }
}

/// Links `wasi:sockets/ip-name-lookup` 0.2 and 0.3 over wasmtime-wasi's (which
/// `linker` must already have): the same functions, with names checked first.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = p2_lookup::add_to_linker::<InstanceState, NameLookupData>(linker, name_lookup)
        .and_then(|()| {
            p3_lookup::add_to_linker::<InstanceState, NameLookupData>(linker, name_lookup)
        });
    linker.allow_shadowing(false);
    linked
}

fn denied(name: &str) {
    tracing::debug!(%name, "name lookup denied by allowed_outbound_hosts");
}

impl p2_lookup::Host for NameLookup<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<p2_lookup::ResolveAddressStream>, wasmtime_wasi::p2::SocketError> {
        if !self.allowed.allows_name_lookup(&name) {
            denied(&name);
            return Err(P2ErrorCode::AccessDenied.into());
        }
        p2_lookup::Host::resolve_addresses(&mut self.sockets, network, name)
    }
}

// `ip-name-lookup` uses `network`'s types; its functions are wasmtime-wasi's.
impl network::Host for NameLookup<'_> {
    fn convert_error_code(
        &mut self,
        error: wasmtime_wasi::p2::SocketError,
    ) -> wasmtime::Result<P2ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<P2ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets, err)
    }
}

impl network::HostNetwork for NameLookup<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets, this)
    }
}

impl p2_lookup::HostResolveAddressStream for NameLookup<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<p2_lookup::ResolveAddressStream>,
    ) -> Result<Option<p2_lookup::IpAddress>, wasmtime_wasi::p2::SocketError> {
        p2_lookup::HostResolveAddressStream::resolve_next_address(&mut self.sockets, stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<p2_lookup::ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<wasmtime_wasi::p2::DynPollable>> {
        p2_lookup::HostResolveAddressStream::subscribe(&mut self.sockets, stream)
    }

    fn drop(&mut self, stream: Resource<p2_lookup::ResolveAddressStream>) -> wasmtime::Result<()> {
        p2_lookup::HostResolveAddressStream::drop(&mut self.sockets, stream)
    }
}

impl p3_lookup::Host for NameLookup<'_> {}

impl<T> p3_lookup::HostWithStore<T> for NameLookupData {
    async fn resolve_addresses(
        store: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<Vec<p3_lookup::IpAddress>, p3_lookup::ErrorCode>> {
        let allowed = store.with(|mut view| view.get().allowed.allows_name_lookup(&name));
        if !allowed {
            denied(&name);
            return Ok(Err(p3_lookup::ErrorCode::AccessDenied));
        }
        Ok(resolve(&name)
            .await
            .map(|addrs| addrs.into_iter().map(Into::into).collect()))
    }
}

/// Resolves `name` as wasmtime-wasi does: IP literals as they are, international names
/// as punycode, through the system resolver.
async fn resolve(name: &str) -> Result<Vec<IpAddr>, p3_lookup::ErrorCode> {
    use p3_lookup::ErrorCode;
    let domain = match url::Host::parse(name) {
        Ok(url::Host::Domain(domain)) => domain,
        Ok(url::Host::Ipv4(addr)) => return Ok(vec![IpAddr::V4(addr)]),
        Ok(url::Host::Ipv6(addr)) => return Ok(vec![IpAddr::V6(addr)]),
        Err(_) => match name.parse::<std::net::Ipv6Addr>() {
            Ok(addr) => return Ok(vec![IpAddr::V6(addr)]),
            Err(_) => return Err(ErrorCode::InvalidArgument),
        },
    };
    let addrs = tokio::net::lookup_host((domain.as_str(), 0))
        .await
        .map_err(|e| {
            tracing::debug!(%domain, error = %e, "name lookup failed");
            ErrorCode::NameUnresolvable
        })?;
    Ok(addrs.map(|a| a.ip().to_canonical()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_of_addresses() {
        let allowed = AllowedHosts::parse(&[
            "*://127.0.0.1:7000".to_string(),
            "udp://127.0.0.1:5353".to_string(),
        ])
        .unwrap();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ok = |a: &str, u| permits(&allowed, addr(a), u);
        assert!(ok("127.0.0.1:7000", SocketAddrUse::TcpConnect));
        assert!(!ok("127.0.0.1:7001", SocketAddrUse::TcpConnect));
        assert!(!ok("127.0.0.1:5353", SocketAddrUse::TcpConnect));
        assert!(ok("127.0.0.1:5353", SocketAddrUse::UdpSend));
        assert!(ok("127.0.0.1:5353", SocketAddrUse::UdpReceive));
        assert!(!ok("127.0.0.2:5353", SocketAddrUse::UdpReceive));
        // Ephemeral binds (explicit, or before a connect or first send) are allowed;
        // chosen ports only as a connection to them would be.
        assert!(ok("0.0.0.0:0", SocketAddrUse::TcpBind));
        assert!(ok("[::]:0", SocketAddrUse::UdpBind));
        assert!(ok("127.0.0.1:0", SocketAddrUse::UdpBind));
        assert!(!ok("0.0.0.0:8080", SocketAddrUse::TcpBind));
        assert!(ok("127.0.0.1:7000", SocketAddrUse::TcpBind));
        // No server sockets.
        assert!(!ok("0.0.0.0:0", SocketAddrUse::TcpListen));
        assert!(!ok("127.0.0.1:7000", SocketAddrUse::TcpListen));
        assert!(!ok("127.0.0.1:7000", SocketAddrUse::TcpAccept));
    }
}

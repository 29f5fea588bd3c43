//! Pod addresses: each pod gets one address from the node's pod range, put as a /32 on a
//! dummy interface the agent manages (`spinlet0`; `lo` on kernels built without dummy
//! interfaces); its sandbox serves on that address.
//! No bridge, no veth, no iptables, no CNI: a sandbox is a process on the host's network,
//! and a local address is all it needs to be reached as `<podIP>:<port>` from the node.
//!
//! Owns the interface and the addresses on it; knows nothing of pods beyond the address
//! each holds. The first address of the range is kept back (k3s gives it to `cni0`).
//!
//! Why iproute2 rather than a netlink crate: two commands per pod (add, delete), off the
//! serving path; `ip` is on every device the installer supports, and its error text is
//! what an operator recognises when the agent lacks CAP_NET_ADMIN.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// Errors managing pod addresses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ip` failed (not installed, or no CAP_NET_ADMIN).
    #[error("`ip {args}` failed: {message}")]
    Command {
        /// The arguments.
        args: String,
        /// What `ip` printed, or why it could not run.
        message: String,
    },
    /// Every address of the node's pod range is in use.
    #[error("no free address left in the pod range {0}")]
    Exhausted(String),
}

/// The node's pod addresses.
pub struct PodNetwork {
    interface: String,
    range: (Ipv4Addr, u8),
    used: Mutex<BTreeSet<Ipv4Addr>>,
    /// The interface the addresses go on: the dummy one, or `lo` where the kernel has no
    /// dummy device type.
    device: tokio::sync::OnceCell<String>,
}

/// Where the addresses go when the kernel cannot create dummy interfaces.
const FALLBACK_DEVICE: &str = "lo";

async fn ip(args: &[&str]) -> Result<(), Error> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| Error::Command {
            args: args.join(" "),
            message: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        args: args.join(" "),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

impl PodNetwork {
    /// The addresses of `range` on `interface` (created on first use).
    pub fn new(interface: &str, range: (Ipv4Addr, u8)) -> PodNetwork {
        PodNetwork {
            interface: interface.to_string(),
            range,
            used: Mutex::new(BTreeSet::new()),
            device: tokio::sync::OnceCell::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Ipv4Addr>> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device carrying the addresses, created (and up) on first use.
    async fn device(&self) -> Result<&str, Error> {
        self.device
            .get_or_try_init(|| async {
                match ip(&["link", "add", &self.interface, "type", "dummy"]).await {
                    Ok(()) => {}
                    Err(Error::Command { message, .. }) if message.contains("File exists") => {}
                    Err(Error::Command { message, .. })
                        if message.contains("Unknown device type") =>
                    {
                        tracing::warn!(
                            interface = %self.interface,
                            "this kernel has no dummy interfaces; pod addresses go on {FALLBACK_DEVICE}"
                        );
                        ip(&["link", "set", FALLBACK_DEVICE, "up"]).await?;
                        return Ok(FALLBACK_DEVICE.to_string());
                    }
                    Err(e) => return Err(e),
                }
                ip(&["link", "set", &self.interface, "up"]).await?;
                Ok(self.interface.clone())
            })
            .await
            .map(String::as_str)
    }

    /// The usable addresses of the range, in order.
    fn candidates(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.range.0) & (u32::MAX << (32 - u32::from(self.range.1)));
        let size = 1u32 << (32 - u32::from(self.range.1));
        (2..size.saturating_sub(1)).map(move |i| Ipv4Addr::from(base + i))
    }

    /// Whether `ip` lies in the node's range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.range.1));
        u32::from(ip) & mask == u32::from(self.range.0) & mask
    }

    /// Takes `ip` again for a pod that already had it (re-adoption), and makes sure it is
    /// on the interface.
    pub async fn claim(&self, ip: Ipv4Addr) -> Result<Ipv4Addr, Error> {
        self.lock().insert(ip);
        self.put(ip).await
    }

    async fn put(&self, addr: Ipv4Addr) -> Result<Ipv4Addr, Error> {
        let cidr = format!("{addr}/32");
        let added = match self.device().await {
            Ok(dev) => ip(&["addr", "replace", &cidr, "dev", dev]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            self.lock().remove(&addr);
            return Err(e);
        }
        Ok(addr)
    }

    /// A free address of the range, now on the interface.
    pub async fn allocate(&self) -> Result<Ipv4Addr, Error> {
        let addr = {
            let mut used = self.lock();
            let free = self.candidates().find(|a| !used.contains(a));
            let addr =
                free.ok_or_else(|| Error::Exhausted(format!("{}/{}", self.range.0, self.range.1)))?;
            used.insert(addr);
            addr
        };
        self.put(addr).await
    }

    /// Puts an address outside the pod range (a Service's cluster IP) on the interface.
    pub async fn add_extra(&self, addr: Ipv4Addr) -> Result<(), Error> {
        let cidr = format!("{addr}/32");
        let dev = self.device().await?;
        ip(&["addr", "replace", &cidr, "dev", dev]).await
    }

    /// Takes an address put by [`PodNetwork::add_extra`] off the interface.
    pub async fn remove_extra(&self, addr: Ipv4Addr) {
        let cidr = format!("{addr}/32");
        let device = self
            .device
            .get()
            .map_or(self.interface.as_str(), String::as_str);
        if let Err(e) = ip(&["addr", "del", &cidr, "dev", device]).await {
            tracing::debug!(error = %e, "service address was not on the interface");
        }
    }

    /// Removes `addr` from the interface and frees it.
    pub async fn release(&self, addr: Ipv4Addr) {
        let cidr = format!("{addr}/32");
        let device = self
            .device
            .get()
            .map_or(self.interface.as_str(), String::as_str);
        if let Err(e) = ip(&["addr", "del", &cidr, "dev", device]).await {
            tracing::debug!(error = %e, "pod address was not on the interface");
        }
        self.lock().remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_skips_network_gateway_and_broadcast() {
        let n = PodNetwork::new("x", (Ipv4Addr::new(10, 42, 1, 0), 24));
        let all: Vec<_> = n.candidates().collect();
        assert_eq!(all.first(), Some(&Ipv4Addr::new(10, 42, 1, 2)));
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 42, 1, 254)));
        assert_eq!(all.len(), 253);
        assert!(n.contains(Ipv4Addr::new(10, 42, 1, 77)));
        assert!(!n.contains(Ipv4Addr::new(10, 42, 2, 77)));
    }
}

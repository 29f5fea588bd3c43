//! What the node is, read from the machine: cores, memory, disk under the data dir, kernel,
//! OS image, boot and machine ids, architecture and the node's address.
//!
//! Read once at start; owns no API object (the Node is [`crate::node`]'s).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::AgentConfig;

/// Facts about this machine, as the kubelet reports them.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical cores.
    pub cpus: usize,
    /// Physical memory, bytes (`MemTotal`).
    pub memory_bytes: u64,
    /// Size of the file system holding the agent's data dir, bytes.
    pub ephemeral_bytes: u64,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of os-release.
    pub os_image: String,
    /// The boot id (changes at each boot).
    pub boot_id: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// Architecture as Go names it (`amd64`, `arm64`, `arm`, ...).
    pub arch: &'static str,
    /// The host name.
    pub hostname: String,
    /// The node's address.
    pub internal_ip: IpAddr,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `MemTotal` from a `/proc/meminfo` text, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// `PRETTY_NAME` from an os-release text.
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let v = line.strip_prefix("PRETTY_NAME=")?;
        Some(v.trim_matches('"').to_string())
    })
}

/// Go's name for this architecture, as in `kubernetes.io/arch`.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// The address the kernel would use to reach the outside, without sending anything
/// (`None` when there is no route).
pub fn outbound_ip() -> Option<IpAddr> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("10.255.255.255:9").ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

fn disk_size(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| {
            #[allow(
                clippy::useless_conversion,
                reason = "u32 on 32-bit targets, u64 on 64-bit ones"
            )]
            let (blocks, size) = (u64::from(s.blocks()), u64::from(s.fragment_size()));
            blocks.saturating_mul(size)
        })
        .unwrap_or(0)
}

impl Machine {
    /// Reads the machine's facts; what cannot be read is left empty or zero.
    pub fn read(config: &AgentConfig) -> Machine {
        let hostname = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| config.node_name.clone());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| mem_total(&m))
                .unwrap_or(0),
            ephemeral_bytes: disk_size(&config.data_dir),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|o| pretty_name(&o))
                .unwrap_or_else(|| "Linux".into()),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            machine_id: read_trimmed("/etc/machine-id").unwrap_or_default(),
            arch: go_arch(),
            hostname,
            internal_ip: config
                .node_ip
                .or_else(outbound_ip)
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_os_release_are_read() {
        let meminfo = "MemTotal:       24621892 kB\nMemFree:        1 kB\n";
        assert_eq!(mem_total(meminfo), Some(24621892 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB"), None);
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(os).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn this_machine_has_cores_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::node::tests::config(dir.path());
        let m = Machine::read(&config);
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > 0);
        assert!(m.ephemeral_bytes > 0);
        assert!(!m.kernel_version.is_empty());
    }
}

//! The `allowed_outbound_hosts` rule grammar, as Spin's outbound-networking parses it, and
//! the one matcher every outbound interface asks (HTTP, Redis, MySQL, PostgreSQL, MQTT,
//! `wasi:sockets`).
//!
//! A rule is `<scheme>://<host>[:<port>]`, with an optional trailing `/`:
//!
//! - **scheme**: `*` (any) or letters only: `http`, `https`, `redis`, `rediss`, `mysql`,
//!   `postgres`, `mqtt`, `mqtts`, `tcp`, `udp`, ... (`wasi:sockets` connections are
//!   `tcp` and `udp`);
//! - **host**: `*` (any), `*.example.com` (any subdomain, not `example.com` itself), a
//!   domain name, an IPv4 address, an IPv6 address in brackets (`[::1]`), a CIDR range
//!   (`10.0.0.0/24`, `2001:db8::/32`, `[2001:db8::]/32`; host bits are truncated), or
//!   `self` / `self.alt` (the app itself, for service chaining through the app's router);
//!   `<component>.spin.internal` and `*.spin.internal` name components for service
//!   chaining;
//! - **port**: `*` (any), a number, or a range `<from>..<to>` (as in Spin, the end is
//!   exclusive: `8000..8010` allows 8000 to 8009). Without a port, the scheme's well-known
//!   port (`http` 80, `https` 443, `redis` 6379, `mysql` 3306, `postgres` 5432, `mqtt`
//!   1883, ...); a scheme without one (`*`, `tcp`, `udp`) needs an explicit port.
//!
//! `{{ variable }}` templates are rendered at load, before parsing; a templated rule that
//! renders to nothing (``, `http://`, `https://`) is skipped, as Spin does ("optional
//! endpoint" variables). `insecure:allow-all` is refused: `*://*:*` allows everything.
//!
//! Matching: a rule allows a destination when its scheme, host and port all match. A
//! domain rule matches that name only, never the addresses it resolves to (as in Spin:
//! `wasi:sockets` connects to addresses, so socket rules name addresses or ranges), and
//! an address or CIDR rule matches addresses only. Rules deliberately go further than
//! Spin in one place: an empty port range (`2000..1000`) is a load error rather than a
//! rule that matches nothing.

use std::net::{IpAddr, SocketAddr};

/// An `allowed_outbound_hosts` rule that failed to parse: names the rule (and what it
/// rendered to, for a template) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed_outbound_hosts rule `{rule}`{}: {reason}", rendered_note(.rendered))]
pub struct Error {
    rule: String,
    rendered: Option<String>,
    reason: String,
}

fn rendered_note(rendered: &Option<String>) -> String {
    rendered
        .as_ref()
        .map(|r| format!(" (rendered as `{r}`)"))
        .unwrap_or_default()
}

impl Error {
    /// The rule as written in the manifest.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The scheme part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemePattern {
    /// `*://`
    Any,
    /// One scheme, lowercase.
    Is(String),
}

/// An IP network (a CIDR range), its address truncated to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `addr/prefix`, the host bits of `addr` cleared; `None` if the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
            _ => return None,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        IpNet::new(ip.to_canonical(), self.prefix).is_some_and(|n| n.addr == self.addr)
    }
}

/// The host part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`
    Any,
    /// `*.example.com`: held as `.example.com`.
    Subdomain(String),
    /// `self` or `self.alt`: the app itself.
    ToSelf,
    /// A domain name, lowercase (punycode for international names).
    Domain(String),
    /// One IP address.
    Ip(IpAddr),
    /// A CIDR range.
    Cidr(IpNet),
}

/// The port part of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    /// `*`
    Any,
    /// One port (given, or the scheme's well-known port).
    Port(u16),
    /// `<from>..<to>`: `from` up to, not including, `to`.
    Range(u16, u16),
}

impl PortPattern {
    fn allows(self, port: u16) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Port(p) => p == port,
            PortPattern::Range(from, to) => (from..to).contains(&port),
        }
    }
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The scheme.
    pub scheme: SchemePattern,
    /// The host.
    pub host: HostPattern,
    /// The port.
    pub port: PortPattern,
}

/// A destination host as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Domain(String),
    Ip(IpAddr),
}

impl Dest {
    /// `example.com`, `127.0.0.1`, `[::1]` or `::1`.
    fn parse(host: &str) -> Dest {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Dest::Ip(ip.to_canonical()),
            Err(_) => match url::Host::parse(host) {
                Ok(url::Host::Ipv4(ip)) => Dest::Ip(IpAddr::V4(ip)),
                Ok(url::Host::Ipv6(ip)) => Dest::Ip(IpAddr::V6(ip).to_canonical()),
                Ok(url::Host::Domain(d)) => Dest::Domain(d),
                Err(_) => Dest::Domain(host.to_ascii_lowercase()),
            },
        }
    }
}

impl HostPattern {
    fn allows(&self, dest: &Dest) -> bool {
        match (self, dest) {
            (HostPattern::Any, _) => true,
            (HostPattern::Subdomain(suffix), Dest::Domain(d)) => d.ends_with(suffix.as_str()),
            (HostPattern::Domain(name), Dest::Domain(d)) => name == d,
            (HostPattern::Ip(ip), Dest::Ip(d)) => ip.to_canonical() == *d,
            (HostPattern::Cidr(net), Dest::Ip(d)) => net.contains(*d),
            _ => false,
        }
    }
}

impl Rule {
    /// Parses one rendered rule; the error is the reason only.
    pub fn parse(rule: &str) -> Result<Rule, String> {
        let rule = rule.trim();
        if rule == "insecure:allow-all" {
            return Err(
                "`insecure:allow-all` is not supported: use `*://*:*` to allow all outbound networking"
                    .into(),
            );
        }
        let Some((scheme, rest)) = rule.split_once("://") else {
            return Err(match rule {
                "*" | "" | ":" | "?" => "not a rule: rules are `<scheme>://<host>[:<port>]`, with `*` wildcards allowed for each (`*://*:*` allows all outbound networking)".into(),
                _ => "no scheme: write `<scheme>://<host>[:<port>]`, e.g. `https://example.com` or `*://example.com:443`".into(),
            });
        };
        let scheme = parse_scheme(scheme)?;
        let (host, port) = split_authority(rest)?;
        let host = parse_host(host)?;
        let port = parse_port(port, &scheme)?;
        Ok(Rule { scheme, host, port })
    }

    fn allows_scheme(&self, scheme: &str) -> bool {
        match &self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Is(s) => s.eq_ignore_ascii_case(scheme),
        }
    }

    fn allows(&self, scheme: &str, dest: &Dest, port: Option<u16>) -> bool {
        self.allows_scheme(scheme)
            && self.host.allows(dest)
            && port
                .or_else(|| well_known_port(scheme))
                .is_some_and(|p| self.port.allows(p))
    }
}

/// The default port of a scheme, if it has one.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "redis" | "rediss" => Some(6379),
        "mysql" => Some(3306),
        "postgres" => Some(5432),
        "mqtt" => Some(1883),
        "mqtts" => Some(8883),
        _ => None,
    }
}

fn parse_scheme(scheme: &str) -> Result<SchemePattern, String> {
    if scheme == "*" {
        return Ok(SchemePattern::Any);
    }
    if scheme.starts_with('{') {
        return Err("scheme lists are not supported: write one rule per scheme".into());
    }
    if scheme.is_empty() {
        return Err("the scheme is empty: use `*://` for any scheme".into());
    }
    if !scheme.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "the scheme `{scheme}` may contain only letters (or be `*` for any scheme)"
        ));
    }
    Ok(SchemePattern::Is(scheme.to_ascii_lowercase()))
}

/// Splits `host[:port][/]` (the host possibly `[v6]`, a CIDR range, or a bare IPv6 CIDR
/// range like `2001:db8::/32`) into host and port.
fn split_authority(rest: &str) -> Result<(&str, Option<&str>), String> {
    // What follows the host: ``, `/`, `:<port>` or `:<port>/`.
    fn port_of<'a>(host: &str, after: &'a str) -> Result<Option<&'a str>, String> {
        let after_port = after.strip_suffix('/').unwrap_or(after);
        if after_port.is_empty() {
            return Ok(None);
        }
        if let Some(port) = after_port.strip_prefix(':') {
            if let Some((port, path)) = port.split_once('/') {
                return Err(format!(
                    "a path (`/{path}`) after the port `{port}`: rules name a host and port only"
                ));
            }
            if port.contains(':') {
                return Err(format!(
                    "more than one `:` after the host `{host}`: write `<host>:<port>`, and IPv6 addresses in brackets (`[::1]:80`)"
                ));
            }
            return Ok(Some(port));
        }
        if let Some(path) = after_port.strip_prefix('/') {
            return Err(format!(
                "a path (`/{path}`): rules name a host and port only"
            ));
        }
        Err(format!("unexpected `{after}` after the host `{host}`"))
    }

    if rest.starts_with('[') || rest.starts_with("*.[") {
        let Some(end) = rest.find(']') else {
            return Err(format!("the IPv6 address `{rest}` has no closing `]`"));
        };
        let (mut host_end, after) = (end + 1, &rest[end + 1..]);
        // `[2001:db8::]/32`
        let prefix_len = after
            .strip_prefix('/')
            .map(|a| a.chars().take_while(char::is_ascii_digit).count())
            .unwrap_or(0);
        if prefix_len > 0 {
            host_end += 1 + prefix_len;
        }
        let host = &rest[..host_end];
        return Ok((host, port_of(host, &rest[host_end..])?));
    }

    if let Some(slash) = rest.find('/') {
        let before = &rest[..slash];
        if before.parse::<IpAddr>().is_ok() && slash + 1 < rest.len() {
            // A CIDR range: `10.0.0.0/24`, `2001:db8::/32`.
            let digits = rest[slash + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .count();
            if digits == 0 {
                return Err(format!(
                    "the CIDR range `{before}/` has no prefix length (e.g. `{before}/24`)"
                ));
            }
            let host = &rest[..slash + 1 + digits];
            return Ok((host, port_of(host, &rest[slash + 1 + digits..])?));
        }
        let path = &rest[slash..];
        if path != "/" {
            return Err(format!(
                "a path (`{path}`): rules name a host and port only"
            ));
        }
        return split_authority(before);
    }

    if rest.matches(':').count() > 1 {
        return Err(if rest.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("write the IPv6 address `{rest}` in brackets: `[{rest}]`")
        } else {
            format!(
                "more than one `:` in `{rest}`: write `<host>:<port>`, and IPv6 addresses in brackets (`[::1]:80`)"
            )
        });
    }
    Ok(match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    })
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    match host {
        "" => return Err("no host: use `*` for any host".into()),
        "*" => return Ok(HostPattern::Any),
        "self" | "self.alt" => return Ok(HostPattern::ToSelf),
        _ => {}
    }
    if host.starts_with('{') {
        return Err("host lists are not supported: write one rule per host".into());
    }
    if let Some((addr, prefix)) = host.rsplit_once('/') {
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let ip: IpAddr = bare
            .parse()
            .map_err(|_| format!("`{addr}` in the CIDR range `{host}` is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let net = prefix
            .parse::<u8>()
            .ok()
            .and_then(|p| IpNet::new(ip, p))
            .ok_or_else(|| {
                format!(
                    "the prefix length `/{prefix}` of the CIDR range `{host}` is out of range (0 to {max} for an IPv{} network)",
                    if ip.is_ipv4() { 4 } else { 6 }
                )
            })?;
        return Ok(HostPattern::Cidr(net));
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.is_empty() {
            return Err("`*.` must be followed by a domain name (`*.example.com`)".into());
        }
        if domain.contains('*') {
            return Err(format!(
                "`*` is allowed only as the whole host or a `*.` prefix, not in `{host}`"
            ));
        }
        return match url::Host::parse(domain) {
            Ok(url::Host::Domain(d)) if d.parse::<IpAddr>().is_err() => {
                Ok(HostPattern::Subdomain(format!(".{d}")))
            }
            Ok(_) => Err(format!(
                "`*.` must be followed by a domain name, not the IP address `{domain}` (use a CIDR range such as `10.0.0.0/8` for addresses)"
            )),
            Err(e) => Err(format!("`{domain}` in `{host}` is not a valid domain name ({e})")),
        };
    }
    if host.contains('*') {
        return Err(format!(
            "`*` is allowed only as the whole host or a `*.` prefix, not in `{host}`"
        ));
    }
    if host.starts_with('[') {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        return bare
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| HostPattern::Ip(IpAddr::V6(ip)))
            .map_err(|_| format!("`{host}` is not an IPv6 address"));
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(d)) => Ok(HostPattern::Domain(d)),
        Ok(url::Host::Ipv4(ip)) => Ok(HostPattern::Ip(IpAddr::V4(ip))),
        Ok(url::Host::Ipv6(ip)) => Ok(HostPattern::Ip(IpAddr::V6(ip))),
        Err(e) => Err(format!(
            "the host `{host}` is not a valid domain name or IP address ({e})"
        )),
    }
}

fn parse_port(port: Option<&str>, scheme: &SchemePattern) -> Result<PortPattern, String> {
    let port = port.unwrap_or("");
    if port.is_empty() {
        return match scheme {
            SchemePattern::Any => Err(
                "no port: a rule for any scheme (`*://`) needs one: add `:<port>`, `:<from>..<to>` or `:*`"
                    .into(),
            ),
            SchemePattern::Is(s) => well_known_port(s).map(PortPattern::Port).ok_or_else(|| {
                format!(
                    "no port, and the scheme `{s}` has no default port: add `:<port>`, `:<from>..<to>` or `:*`"
                )
            }),
        };
    }
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    if port.starts_with('{') {
        return Err(
            "port lists are not supported: write one rule per port or use a range `<from>..<to>`"
                .into(),
        );
    }
    let number = |p: &str| p.parse::<u16>().ok();
    if let Some((from, to)) = port.split_once("..") {
        let (Some(from), Some(to)) = (number(from), number(to)) else {
            return Err(format!(
                "the port range `{port}` must be two port numbers (0 to 65535), `<from>..<to>`"
            ));
        };
        if from >= to {
            return Err(format!(
                "the port range `{port}` is empty: the end is exclusive, so `<from>..<to>` needs `<from>` below `<to>`"
            ));
        }
        return Ok(PortPattern::Range(from, to));
    }
    if let Some((from, to)) = port.split_once('-') {
        if number(from).is_some() && number(to).is_some() {
            return Err(format!(
                "`{port}` is not a port: a port range is written `{from}..{to}` (the end is exclusive)"
            ));
        }
    }
    number(port).map(PortPattern::Port).ok_or_else(|| {
        format!("the port `{port}` is not a number from 0 to 65535, `*` or a range `<from>..<to>`")
    })
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    rules: Vec<Rule>,
}

impl AllowedHosts {
    /// Parses rules that are already rendered (no templates).
    pub fn parse(rules: &[String]) -> Result<AllowedHosts, Error> {
        Self::parse_rendered(rules.iter().map(|r| (r.as_str(), r.clone())))
    }

    /// Parses `(as written, as rendered)` pairs. A rule written with a `{{ variable }}`
    /// template that renders to nothing (``, `http://` or `https://`) is skipped, as in
    /// Spin; errors name the rule as written, and what it rendered to.
    pub fn parse_rendered<'a>(
        rules: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<AllowedHosts, Error> {
        let mut parsed = Vec::new();
        for (written, rendered) in rules {
            let templated = written != rendered;
            if templated && matches!(rendered.trim(), "" | "http://" | "https://") {
                continue;
            }
            let rule = Rule::parse(&rendered).map_err(|reason| Error {
                rule: written.to_string(),
                rendered: templated.then(|| rendered.clone()),
                reason,
            })?;
            parsed.push(rule);
        }
        Ok(AllowedHosts { rules: parsed })
    }

    /// The parsed rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether a connection address such as `redis://host:port` (Redis, MQTT, ...) parses
    /// and its scheme, host and port are allowed.
    pub fn allows_address(&self, address: &str) -> bool {
        let Ok(url) = url::Url::parse(address) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        self.allows(url.scheme(), host, url.port())
    }

    /// Whether a request to `scheme://host:port` is allowed (a missing port is the
    /// scheme's well-known one). `host` may be a domain, an IPv4 address or an IPv6
    /// address with or without brackets. `self` and `self.alt` are allowed only by a
    /// `self` rule, never by wildcards; so is an empty host (a relative URL, whatever
    /// scheme the SDK gave it: spin-sdk makes them `https`), by one for `http` or `https`.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            return self.allows_self("http") || self.allows_self("https");
        }
        if host == "self" || host == "self.alt" {
            return self.allows_self(scheme);
        }
        let dest = Dest::parse(&host);
        self.rules.iter().any(|r| r.allows(scheme, &dest, port))
    }

    /// Whether a `wasi:sockets` use of `addr` is allowed, `scheme` being `tcp` or `udp`:
    /// some rule for that scheme (or `*`) matches the address and port.
    pub fn allows_socket(&self, scheme: &str, addr: SocketAddr) -> bool {
        let dest = Dest::Ip(addr.ip().to_canonical());
        self.rules
            .iter()
            .any(|r| r.allows(scheme, &dest, Some(addr.port())))
    }

    /// Whether `wasi:sockets/ip-name-lookup` may resolve `name`: some rule (of any scheme
    /// and port) could match it, i.e. its host is `*`, a `*.` wildcard the name is a
    /// subdomain of, or that very name. An IP address literal needs no lookup and is
    /// always allowed (what is done with the address is checked when it is used).
    pub fn allows_name_lookup(&self, name: &str) -> bool {
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        // A fully qualified `localhost.` is the name `localhost`.
        let name = name.strip_suffix('.').unwrap_or(name);
        let dest = match url::Host::parse(name) {
            Ok(url::Host::Domain(d)) => Dest::Domain(d),
            Ok(_) => return true,
            Err(_) => return false,
        };
        self.rules.iter().any(|r| match r.host {
            HostPattern::Any | HostPattern::Subdomain(_) | HostPattern::Domain(_) => {
                r.host.allows(&dest)
            }
            _ => false,
        })
    }

    /// Whether requests to the app itself (`self` rules) are allowed for `scheme`.
    fn allows_self(&self, scheme: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.allows_scheme(scheme) && r.host == HostPattern::ToSelf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        Rule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn is(s: &str) -> SchemePattern {
        SchemePattern::Is(s.into())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str, prefix: u8) -> HostPattern {
        HostPattern::Cidr(IpNet::new(ip(s), prefix).unwrap())
    }

    fn hosts(rules: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&rules.iter().map(|r| r.to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_form_parses() {
        use HostPattern as H;
        use PortPattern as P;
        use SchemePattern as S;
        let d = |s: &str| H::Domain(s.into());
        for (text, scheme, host, port) in [
            // Schemes, with and without their well-known ports.
            (
                "http://example.com",
                is("http"),
                d("example.com"),
                P::Port(80),
            ),
            (
                "https://example.com",
                is("https"),
                d("example.com"),
                P::Port(443),
            ),
            ("redis://cache", is("redis"), d("cache"), P::Port(6379)),
            ("rediss://cache", is("rediss"), d("cache"), P::Port(6379)),
            ("mysql://db", is("mysql"), d("db"), P::Port(3306)),
            ("postgres://db", is("postgres"), d("db"), P::Port(5432)),
            ("mqtt://broker", is("mqtt"), d("broker"), P::Port(1883)),
            ("mqtts://broker", is("mqtts"), d("broker"), P::Port(8883)),
            ("tcp://db:5000", is("tcp"), d("db"), P::Port(5000)),
            ("udp://dns:53", is("udp"), d("dns"), P::Port(53)),
            (
                "HTTP://Example.COM",
                is("http"),
                d("example.com"),
                P::Port(80),
            ),
            (
                "*://example.com:7777",
                S::Any,
                d("example.com"),
                P::Port(7777),
            ),
            ("*://*:*", S::Any, H::Any, P::Any),
            ("http://*", is("http"), H::Any, P::Port(80)),
            // Trailing slash, explicit empty port (the default), whitespace.
            (
                "http://example.com/",
                is("http"),
                d("example.com"),
                P::Port(80),
            ),
            (
                "http://example.com:",
                is("http"),
                d("example.com"),
                P::Port(80),
            ),
            (
                "http://example.com:4444/",
                is("http"),
                d("example.com"),
                P::Port(4444),
            ),
            (
                " https://example.com ",
                is("https"),
                d("example.com"),
                P::Port(443),
            ),
            // Ports and ranges.
            ("http://example.com:*", is("http"), d("example.com"), P::Any),
            (
                "http://example.com:0",
                is("http"),
                d("example.com"),
                P::Port(0),
            ),
            (
                "http://example.com:65535",
                is("http"),
                d("example.com"),
                P::Port(65535),
            ),
            (
                "tcp://h:4444..5555",
                is("tcp"),
                d("h"),
                P::Range(4444, 5555),
            ),
            // Wildcard subdomains (case-folded), international names.
            (
                "http://*.example.com",
                is("http"),
                H::Subdomain(".example.com".into()),
                P::Port(80),
            ),
            (
                "http://*.Example.COM:8080",
                is("http"),
                H::Subdomain(".example.com".into()),
                P::Port(8080),
            ),
            (
                "https://bücher.example",
                is("https"),
                d("xn--bcher-kva.example"),
                P::Port(443),
            ),
            // Addresses.
            (
                "http://192.168.1.1",
                is("http"),
                H::Ip(ip("192.168.1.1")),
                P::Port(80),
            ),
            (
                "http://192.168.1.1/",
                is("http"),
                H::Ip(ip("192.168.1.1")),
                P::Port(80),
            ),
            (
                "*://127.0.0.1:7000",
                S::Any,
                H::Ip(ip("127.0.0.1")),
                P::Port(7000),
            ),
            ("http://[::1]", is("http"), H::Ip(ip("::1")), P::Port(80)),
            (
                "http://[::1]:8001",
                is("http"),
                H::Ip(ip("::1")),
                P::Port(8001),
            ),
            (
                "http://[::1]:8000..9000",
                is("http"),
                H::Ip(ip("::1")),
                P::Range(8000, 9000),
            ),
            (
                "http://[::1]:8080/",
                is("http"),
                H::Ip(ip("::1")),
                P::Port(8080),
            ),
            ("*://[::1]:*", S::Any, H::Ip(ip("::1")), P::Any),
            // CIDR ranges, host bits truncated.
            (
                "*://10.0.0.0/24:5000",
                S::Any,
                cidr("10.0.0.0", 24),
                P::Port(5000),
            ),
            (
                "*://127.0.0.1/24:63551",
                S::Any,
                cidr("127.0.0.0", 24),
                P::Port(63551),
            ),
            (
                "http://10.0.0.0/8",
                is("http"),
                cidr("10.0.0.0", 8),
                P::Port(80),
            ),
            (
                "tcp://0.0.0.0/0:1000..2000",
                is("tcp"),
                cidr("0.0.0.0", 0),
                P::Range(1000, 2000),
            ),
            ("*://ff00::/8:80", S::Any, cidr("ff00::", 8), P::Port(80)),
            (
                "https://2001:db8::/32",
                is("https"),
                cidr("2001:db8::", 32),
                P::Port(443),
            ),
            (
                "http://2001:db8::/32:443",
                is("http"),
                cidr("2001:db8::", 32),
                P::Port(443),
            ),
            ("http://::1/128", is("http"), cidr("::1", 128), P::Port(80)),
            (
                "*://[2001:db8::]/32:*",
                S::Any,
                cidr("2001:db8::", 32),
                P::Any,
            ),
            (
                "*://10.0.0.0/24:5000/",
                S::Any,
                cidr("10.0.0.0", 24),
                P::Port(5000),
            ),
            // The app itself, and service chaining.
            ("http://self", is("http"), H::ToSelf, P::Port(80)),
            ("http://self.alt", is("http"), H::ToSelf, P::Port(80)),
            (
                "http://*.spin.internal",
                is("http"),
                H::Subdomain(".spin.internal".into()),
                P::Port(80),
            ),
            (
                "http://backend.spin.internal",
                is("http"),
                d("backend.spin.internal"),
                P::Port(80),
            ),
        ] {
            assert_eq!(rule(text), Rule { scheme, host, port }, "{text}");
        }
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        for (text, reason) in [
            ("example.com", "no scheme: write `<scheme>://<host>[:<port>]`"),
            ("example.com:8080", "no scheme"),
            ("*", "not a rule: rules are `<scheme>://<host>[:<port>]`"),
            ("", "not a rule"),
            ("insecure:allow-all", "`insecure:allow-all` is not supported: use `*://*:*`"),
            ("h2c2://example.com:80", "the scheme `h2c2` may contain only letters"),
            ("://example.com:80", "the scheme is empty"),
            ("{http,https}://example.com", "scheme lists are not supported"),
            ("http://", "no host: use `*` for any host"),
            ("http://:80", "no host"),
            ("http://{a,b}.com", "host lists are not supported"),
            ("http://example.com/a", "a path (`/a`): rules name a host and port only"),
            ("http://example.com//", "a path (`//`)"),
            ("http://example.com:6666/a/b", "a path (`/a/b`)"),
            ("http://*.example.com/p", "a path (`/p`)"),
            ("http://127.0.0.0/24/p", "a path (`/p`)"),
            ("http://example.com:notaport", "the port `notaport` is not a number from 0 to 65535"),
            ("http://example.com:99999", "the port `99999` is not a number"),
            ("http://example.com:8O8O", "the port `8O8O` is not a number"),
            ("http://[::1]:notaport", "the port `notaport` is not a number"),
            ("http://self:notaport", "the port `notaport`"),
            ("http://example.com:80:90", "more than one `:`"),
            ("http://example.com:8080..70000", "the port range `8080..70000` must be two port numbers"),
            ("http://example.com:8080..", "the port range `8080..` must be two port numbers"),
            ("tcp://h:2000..1000", "the port range `2000..1000` is empty"),
            ("tcp://h:1000..1000", "the port range `1000..1000` is empty"),
            ("tcp://h:1000-2000", "`1000-2000` is not a port: a port range is written `1000..2000`"),
            ("http://example.com:{80,443}", "port lists are not supported"),
            ("tcp://127.0.0.1", "no port, and the scheme `tcp` has no default port"),
            ("udp://127.0.0.1/", "no port, and the scheme `udp` has no default port"),
            ("*://example.com", "no port: a rule for any scheme (`*://`) needs one"),
            ("*://127.0.0.0/24", "no port: a rule for any scheme"),
            ("http://a.*.com", "`*` is allowed only as the whole host or a `*.` prefix"),
            ("http://foo*", "`*` is allowed only as the whole host"),
            ("http://*.*.com", "`*` is allowed only as the whole host"),
            ("http://*.", "`*.` must be followed by a domain name"),
            ("http://*.:8080", "`*.` must be followed by a domain name"),
            ("http://*.127.0.0.1", "not the IP address `127.0.0.1`"),
            ("http://*.[::1]", "not the IP address `[::1]`"),
            ("http://exa mple.com", "the host `exa mple.com` is not a valid domain name or IP address"),
            ("http://example%.com", "is not a valid domain name or IP address"),
            ("http://exa[mple.com", "is not a valid domain name or IP address"),
            (r"http://exa\mple.com", "is not a valid domain name or IP address"),
            ("http://[::1", "the IPv6 address `[::1` has no closing `]`"),
            ("http://[::1]junk", "unexpected `junk` after the host `[::1]`"),
            ("http://[::1]::80", "more than one `:` after the host `[::1]`"),
            ("http://[::1]/foo", "a path (`/foo`)"),
            ("http://[vG.example]", "`[vG.example]` is not an IPv6 address"),
            ("http://::1", "write the IPv6 address `::1` in brackets: `[::1]`"),
            ("http://ff00::/8/extra", "a path (`/extra`)"),
            ("*://10.0.0.0/33:80", "the prefix length `/33` of the CIDR range `10.0.0.0/33` is out of range (0 to 32 for an IPv4 network)"),
            ("*://ff00::/129:80", "out of range (0 to 128 for an IPv6 network)"),
            ("*://10.0.0.0/:80", "the CIDR range `10.0.0.0/` has no prefix length"),
        ] {
            match Rule::parse(text) {
                Ok(r) => panic!("{text:?} parsed as {r:?}"),
                Err(e) => assert!(e.contains(reason), "{text:?}: {e}\n  expected: {reason}"),
            }
        }
    }

    #[test]
    fn errors_name_the_rule_and_its_rendering() {
        let e = AllowedHosts::parse(&["https://ok.com".into(), "*://10.0.0.0/33:80".into()])
            .unwrap_err();
        assert_eq!(e.rule(), "*://10.0.0.0/33:80");
        assert_eq!(
            e.to_string(),
            "invalid allowed_outbound_hosts rule `*://10.0.0.0/33:80`: the prefix length `/33` of the CIDR range `10.0.0.0/33` is out of range (0 to 32 for an IPv4 network)"
        );
        let e = AllowedHosts::parse_rendered([("tcp://{{ host }}", "tcp://db".to_string())])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid allowed_outbound_hosts rule `tcp://{{ host }}` (rendered as `tcp://db`): no port, and the scheme `tcp` has no default port: add `:<port>`, `:<from>..<to>` or `:*`"
        );
    }

    #[test]
    fn templates_rendering_to_nothing_are_skipped() {
        let a = AllowedHosts::parse_rendered([
            ("https://{{ one }}", "https://".to_string()),
            ("{{ two }}", String::new()),
            ("https://three", "https://three".to_string()),
        ])
        .unwrap();
        assert_eq!(a.rules().len(), 1);
        // A literal empty rule is still an error.
        assert!(AllowedHosts::parse(&[String::new()]).is_err());
    }

    #[test]
    fn requests_match_scheme_host_and_port() {
        let a = hosts(&[
            "https://example.com",
            "http://*.test:8080",
            "*://any.org:*",
            "http://[::1]:8000..9000",
            "postgres://10.1.0.0/16",
        ]);
        assert!(a.allows("https", "example.com", None));
        assert!(a.allows("https", "EXAMPLE.com", Some(443)));
        assert!(!a.allows("http", "example.com", None));
        assert!(!a.allows("https", "example.com", Some(8443)));
        assert!(!a.allows("https", "www.example.com", None));
        assert!(a.allows("http", "a.b.test", Some(8080)));
        assert!(!a.allows("http", "test", Some(8080)));
        assert!(!a.allows("http", "atest", Some(8080)));
        assert!(a.allows("http", "any.org", Some(1)));
        assert!(a.allows("mqtt", "any.org", None));
        assert!(a.allows("http", "[::1]", Some(8000)));
        assert!(a.allows("http", "::1", Some(8999)));
        assert!(
            !a.allows("http", "[::1]", Some(9000)),
            "the end is exclusive"
        );
        assert!(!a.allows("http", "[::2]", Some(8000)));
        assert!(a.allows("postgres", "10.1.255.3", None));
        assert!(!a.allows("postgres", "10.2.0.1", None));
        assert!(!a.allows("postgres", "localhost", None));
        assert!(!a.allows("http", "self", None));
        assert!(!a.allows("http", "", Some(80)));
        assert!(a.allows_address("postgres://user:pw@10.1.0.9/db"));
        assert!(!a.allows_address("not a url"));
        assert!(!AllowedHosts::default().allows("https", "x", None));
        // A domain rule never matches an address, nor an address rule a name.
        let local = hosts(&["http://localhost:3000", "http://127.0.0.1:4000"]);
        assert!(local.allows("http", "localhost", Some(3000)));
        assert!(!local.allows("http", "127.0.0.1", Some(3000)));
        assert!(!local.allows("http", "localhost", Some(4000)));
    }

    #[test]
    fn self_and_service_chaining() {
        let chaining = hosts(&["http://self", "http://*.spin.internal"]);
        assert!(chaining.allows("http", "self", None));
        assert!(chaining.allows("http", "self.alt", None));
        assert!(chaining.allows("http", "", Some(80)));
        assert!(chaining.allows("https", "", Some(443)));
        assert!(!chaining.allows("https", "self", None));
        assert!(chaining.allows("http", "backend.spin.internal", None));
        assert!(!chaining.allows("http", "example.com", None));
        let any = hosts(&["*://*:*"]);
        assert!(
            !any.allows("http", "self", None),
            "wildcards do not cover self"
        );
        assert!(!any.allows("http", "", Some(80)));
    }

    #[test]
    fn sockets_match_tcp_udp_and_wildcard_schemes() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let exact = hosts(&["*://127.0.0.1:7000"]);
        assert!(exact.allows_socket("tcp", addr("127.0.0.1:7000")));
        assert!(exact.allows_socket("udp", addr("127.0.0.1:7000")));
        assert!(!exact.allows_socket("tcp", addr("127.0.0.1:7001")));
        assert!(!exact.allows_socket("tcp", addr("127.0.0.2:7000")));
        assert!(exact.allows_socket("tcp", addr("[::ffff:127.0.0.1]:7000")));
        let cidr = hosts(&["tcp://127.0.0.0/24:5000"]);
        assert!(cidr.allows_socket("tcp", addr("127.0.0.200:5000")));
        assert!(!cidr.allows_socket("tcp", addr("127.0.1.1:5000")));
        assert!(!cidr.allows_socket("udp", addr("127.0.0.1:5000")));
        let range = hosts(&["udp://[::1]:1000..2000"]);
        assert!(range.allows_socket("udp", addr("[::1]:1999")));
        assert!(!range.allows_socket("udp", addr("[::1]:2000")));
        // Other schemes' rules and name rules do not cover sockets.
        let other = hosts(&["redis://127.0.0.1:6379", "tcp://localhost:6379"]);
        assert!(!other.allows_socket("tcp", addr("127.0.0.1:6379")));
    }

    #[test]
    fn name_lookups_only_for_names_a_rule_could_match() {
        let a = hosts(&[
            "tcp://localhost:5000",
            "https://*.example.com",
            "*://10.0.0.0/8:*",
            "http://self",
        ]);
        assert!(a.allows_name_lookup("localhost"));
        assert!(a.allows_name_lookup("LOCALHOST"));
        assert!(a.allows_name_lookup("localhost."));
        assert!(a.allows_name_lookup("api.example.com"));
        assert!(!a.allows_name_lookup("example.com"));
        assert!(!a.allows_name_lookup("other.org"));
        assert!(!a.allows_name_lookup("self"));
        assert!(a.allows_name_lookup("10.1.2.3"), "addresses need no lookup");
        assert!(a.allows_name_lookup("::1"));
        assert!(!a.allows_name_lookup("bad name"));
        assert!(hosts(&["*://*:5000"]).allows_name_lookup("anything.test"));
        assert!(!AllowedHosts::default().allows_name_lookup("localhost"));
    }
}

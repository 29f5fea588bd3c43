//! A container's resources as the kubelet turns them into cgroup settings: Kubernetes
//! quantities (`200m`, `0.5`, `128Mi`, `1G`, `1e9`) parsed exactly, and the cpu shares,
//! CFS quota and memory limit that follow from `requests` and `limits`.
//!
//! Pure: knows nothing of cgroups' files ([`crate::cgroup`] writes them) or of the API.

use k8s_openapi::api::core::v1::Container;

/// The CFS period the kubelet uses, in microseconds.
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest cpu shares value (the kubelet's `MinShares`).
pub const MIN_SHARES: u64 = 2;
/// The smallest CFS quota the kernel accepts (the kubelet's `MinQuotaPeriod`), µs.
pub const MIN_QUOTA_US: u64 = 1_000;

/// A quantity that does not parse, naming the resource and the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}: quantity {value:?} is not a Kubernetes quantity (examples: 200m, 0.5, 128Mi, 1G)"
)]
pub struct BadQuantity {
    /// Where it was (`resources.limits.memory`).
    pub field: String,
    /// The text.
    pub value: String,
}

/// `text` scaled by 10^`scale10` or 2^`scale2`, as an integer rounded up (Kubernetes rounds
/// quantities up when it needs whole units).
fn parse_scaled(text: &str, scale10: i32) -> Option<u128> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (mut exp10, binary): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => {
            let e = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))?;
            (e.parse().ok()?, 0)
        }
    };
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.starts_with('-') || number.is_empty() {
        return None;
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let digits = format!("{int}{frac}");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mantissa: u128 = digits.parse().ok()?;
    exp10 += scale10 - frac.len() as i32;
    let mut value = mantissa.checked_mul(1u128.checked_shl(binary)?)?;
    if exp10 >= 0 {
        value = value.checked_mul(10u128.checked_pow(exp10 as u32)?)?;
    } else {
        let div = 10u128.checked_pow((-exp10) as u32)?;
        value = value.div_ceil(div);
    }
    Some(value)
}

/// A cpu quantity in millicores (rounded up).
pub fn millicores(text: &str) -> Option<u64> {
    parse_scaled(text, 3).and_then(|v| u64::try_from(v).ok())
}

/// A memory quantity in bytes (rounded up).
pub fn bytes(text: &str) -> Option<u64> {
    parse_scaled(text, 0).and_then(|v| u64::try_from(v).ok())
}

/// What the cgroup of a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// cpu shares (cgroup v1 `cpu.shares`; converted to a weight on v2).
    pub cpu_shares: u64,
    /// CFS quota per [`CFS_PERIOD_US`], µs; `None` is unlimited.
    pub cpu_quota_us: Option<u64>,
    /// Memory limit in bytes; `None` is unlimited.
    pub memory_bytes: Option<u64>,
}

/// The kubelet's shares for a cpu request (`MilliCPUToShares`).
pub fn shares(request_millis: Option<u64>) -> u64 {
    match request_millis {
        None | Some(0) => MIN_SHARES,
        Some(m) => (m * 1024 / 1000).max(MIN_SHARES),
    }
}

/// The cgroup v2 weight for v1 shares (the kubelet's `CpuSharesToCpuWeight`).
pub fn weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// The limits of `container` (a request missing falls back to the limit, as the API
/// server's defaulting does).
pub fn of(container: &Container) -> Result<Limits, BadQuantity> {
    let resources = container.resources.as_ref();
    let get = |which: &str, name: &str| {
        let map = match which {
            "limits" => resources.and_then(|r| r.limits.as_ref()),
            _ => resources.and_then(|r| r.requests.as_ref()),
        };
        map.and_then(|m| m.get(name)).map(|q| q.0.clone())
    };
    let parse = |which: &str, name: &str, f: fn(&str) -> Option<u64>| match get(which, name) {
        None => Ok(None),
        Some(text) => f(&text).map(Some).ok_or_else(|| BadQuantity {
            field: format!("resources.{which}.{name}"),
            value: text,
        }),
    };
    let cpu_limit = parse("limits", "cpu", millicores)?;
    let cpu_request = parse("requests", "cpu", millicores)?.or(cpu_limit);
    let memory = parse("limits", "memory", bytes)?;
    Ok(Limits {
        cpu_shares: shares(cpu_request),
        cpu_quota_us: cpu_limit.map(|m| (m * CFS_PERIOD_US / 1000).max(MIN_QUOTA_US)),
        memory_bytes: memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_exactly_and_round_up() {
        assert_eq!(millicores("200m"), Some(200));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("1500u"), Some(2));
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("1.5Ki"), Some(1536));
        for bad in ["", "abc", "1.2.3", "-1", "12Q", "Mi"] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_follow_requests_and_limits_as_the_kubelet_computes_them() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
        }))
        .unwrap();
        assert_eq!(
            of(&c).unwrap(),
            Limits {
                cpu_shares: 204,
                cpu_quota_us: Some(20_000),
                memory_bytes: Some(64 << 20)
            }
        );
        let none: Container = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        assert_eq!(
            of(&none).unwrap(),
            Limits {
                cpu_shares: 2,
                ..Limits::default()
            }
        );
        let bad: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"limits": {"memory": "lots"}},
        }))
        .unwrap();
        assert_eq!(
            of(&bad).unwrap_err().to_string(),
            "resources.limits.memory: quantity \"lots\" is not a Kubernetes quantity (examples: 200m, 0.5, 128Mi, 1G)"
        );
        assert_eq!(weight(2), 1);
        assert_eq!(weight(1024), 39);
        assert_eq!(weight(262_144), 10_000);
    }
}

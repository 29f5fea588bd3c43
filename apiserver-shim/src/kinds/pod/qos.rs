//! A pod's QoS class (`ComputePodQOS`) from its containers' CPU and memory requests and
//! limits, and the resource quantities it sums, read exactly.

use serde_json::Value;

/// A resource quantity (`100m`, `1.5`, `128Mi`, `1e3`) in billionths, exactly; `None`
/// when it does not parse.
pub fn quantity_nanos(q: &str) -> Option<i128> {
    let q = q.trim();
    let (negative, body) = match q.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, q.strip_prefix('+').unwrap_or(q)),
    };
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || int.len() + frac.len() > 30
        || !digits(int)
        || !digits(frac)
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for d in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa * 10 + i128::from(d - b'0');
    }
    let mut exp10 = 9 - frac.len() as i32;
    let mut factor: i128 = 1;
    match suffix {
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 10,
                "Mi" => 20,
                "Gi" => 30,
                "Ti" => 40,
                "Pi" => 50,
                _ => 60,
            };
            factor = 1i128 << power;
        }
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "" => {}
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        s if s.starts_with(['e', 'E']) => exp10 += s[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    if !(-40..=40).contains(&exp10) {
        return None;
    }
    let mut v = mantissa.checked_mul(factor)?;
    if exp10 >= 0 {
        v = v.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
    } else {
        v /= 10i128.checked_pow(exp10.unsigned_abs())?;
    }
    Some(if negative { -v } else { v })
}

/// `ComputePodQOS`: `Guaranteed` when every container limits CPU and memory and the
/// summed requests equal the summed limits, `BestEffort` when nothing is requested or
/// limited, else `Burstable`. Only CPU and memory count.
pub fn qos_class(pod: &Value) -> &'static str {
    use std::collections::BTreeMap;
    let mut requests: BTreeMap<String, i128> = BTreeMap::new();
    let mut limits: BTreeMap<String, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"].into_iter().flat_map(|k| {
        pod.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    for c in containers {
        let positive = |kind: &str| -> Vec<(String, i128)> {
            c.pointer(&format!("/resources/{kind}"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(name, _)| matches!(name.as_str(), "cpu" | "memory"))
                .filter_map(|(name, q)| {
                    let n = match q {
                        Value::String(s) => quantity_nanos(s),
                        Value::Number(n) => n.as_i64().map(|n| i128::from(n) * 1_000_000_000),
                        _ => None,
                    }?;
                    (n > 0).then(|| (name.clone(), n))
                })
                .collect()
        };
        for (name, n) in positive("requests") {
            *requests.entry(name).or_default() += n;
        }
        let found = positive("limits");
        if !(found.iter().any(|(n, _)| n == "cpu") && found.iter().any(|(n, _)| n == "memory")) {
            guaranteed = false;
        }
        for (name, n) in found {
            *limits.entry(name).or_default() += n;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_are_exact() {
        assert_eq!(quantity_nanos("100m"), Some(100_000_000));
        assert_eq!(quantity_nanos("0.1"), Some(100_000_000));
        assert_eq!(quantity_nanos("1"), Some(1_000_000_000));
        assert_eq!(
            quantity_nanos("128Mi"),
            Some(128 * (1 << 20) * 1_000_000_000)
        );
        assert_eq!(quantity_nanos("1e3"), quantity_nanos("1k"));
        assert_eq!(quantity_nanos("1E"), Some(10i128.pow(27)));
        assert_eq!(quantity_nanos("-2"), Some(-2_000_000_000));
        assert_eq!(quantity_nanos("abc"), None);
        assert_eq!(quantity_nanos(""), None);
        assert_eq!(quantity_nanos("1Xi"), None);
        assert_eq!(quantity_nanos("1.2.3"), None);
        assert_eq!(quantity_nanos("."), None);
        assert_eq!(quantity_nanos("1e99"), None);
    }

    #[test]
    fn qos_classes() {
        let pod = |containers: Value| json!({"spec": {"containers": containers}});
        assert_eq!(qos_class(&pod(json!([{"name": "a"}]))), "BestEffort");
        let guaranteed = json!([{"resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1024Mi"}}}]);
        assert_eq!(qos_class(&pod(guaranteed)), "Guaranteed");
        let cpu_only = json!([{"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]);
        assert_eq!(qos_class(&pod(cpu_only)), "Burstable");
        let lower = json!([{"resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "500m", "memory": "1Gi"}}}]);
        assert_eq!(qos_class(&pod(lower)), "Burstable");
        let zero = json!([{"resources": {"requests": {"cpu": "0"}, "limits": {"ephemeral-storage": "1Gi"}}}]);
        assert_eq!(qos_class(&pod(zero)), "BestEffort");
    }
}

//! Parsing of Kubernetes quantities and human durations.

/// Parses a CPU quantity (`500m`, `1`, `0.25`, `2000m`) into millicores.
pub fn parse_cpu_millis(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (number, scale) = match s.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (s, 1000.0),
    };
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "\"{s}\" is not a CPU quantity; use cores (\"1\", \"0.5\") or millicores (\"500m\")"
        )
    })?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("CPU quantity \"{s}\" must be greater than zero"));
    }
    let millis = (value * scale).round();
    if millis < 1.0 {
        return Err(format!(
            "CPU quantity \"{s}\" is below 1m, the smallest unit"
        ));
    }
    Ok(millis as u64)
}

/// Parses a memory quantity (`128Mi`, `1G`, `512k`, `1e6`, `1048576`) into bytes.
pub fn parse_memory_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, scale) = SUFFIXES
        .iter()
        .find_map(|(suffix, scale)| s.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((s, 1.0));
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "\"{s}\" is not a memory quantity; use bytes with a suffix such as \"256Mi\" or \"1G\""
        )
    })?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("memory quantity \"{s}\" must be greater than zero"));
    }
    let bytes = (value * scale).round();
    if bytes > u64::MAX as f64 {
        return Err(format!("memory quantity \"{s}\" is too large"));
    }
    Ok(bytes as u64)
}

/// Parses a duration such as `30s`, `5m`, `1h30m`, `2d` or a bare number of seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; use a value such as \"30s\", \"5m\" or \"1h\"".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => {
                return Err(format!(
                    "\"{s}\" is not a duration: unknown unit '{c}'; use s, m, h or d (\"1h30m\")"
                ));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("\"{s}\" is not a duration: a number must come before '{c}'"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "\"{s}\" is not a duration: \"{digits}\" has no unit; use s, m, h or d"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_cpu_millis("500m"), Ok(500));
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        assert_eq!(parse_cpu_millis("0.25"), Ok(250));
        assert!(parse_cpu_millis("lots").is_err());
        assert!(parse_cpu_millis("0").is_err());
        assert!(parse_cpu_millis("-1").is_err());
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(parse_memory_bytes("128Mi"), Ok(128 * 1024 * 1024));
        assert_eq!(parse_memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory_bytes("1e6"), Ok(1_000_000));
        assert_eq!(parse_memory_bytes("4096"), Ok(4096));
        assert!(parse_memory_bytes("12 parsecs").is_err());
        assert!(parse_memory_bytes("Mi").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("30s"), Ok(30));
        assert_eq!(parse_duration_secs("1h30m"), Ok(5400));
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert!(parse_duration_secs("5x").is_err());
        assert!(parse_duration_secs("10m5").is_err());
    }
}

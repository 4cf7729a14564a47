//! A rate: N calls per period, as the config writes it ("10/s", "600/m", "100/10s").
use std::{fmt, str::FromStr, time::Duration};

/// The longest period a rate may name; far beyond any useful limit, and it keeps
/// every period well inside governor's u64-nanosecond arithmetic.
pub const MAX_PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);

const SHAPE: &str = "rate must look like 10/s, 600/m or 100/10s";

/// A rate: N calls per period, e.g. parsed from "10/s", "600/m", "5000/h", "100/10s".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub calls: u32,
    pub per: Duration,
}

// === impl Rate ===

impl FromStr for Rate {
    type Err = String;

    /// `<calls>/<period>`, period = optional count + unit (`ms`, `s`, `m`, `h`, `d`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (calls, period) = s.trim().split_once('/').ok_or_else(|| format!("{SHAPE}, got {s:?}"))?;
        let calls = calls.trim();
        if calls.is_empty() || !calls.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{SHAPE}: {calls:?} is not a whole number of calls"));
        }
        let calls: u32 = calls.parse().map_err(|_| format!("{SHAPE}: {calls:?} calls is too many"))?;
        if calls == 0 {
            return Err("rate must allow at least 1 call per period".to_owned());
        }
        let per = parse_period(period.trim())?;
        Ok(Rate { calls, per })
    }
}

fn parse_period(p: &str) -> Result<Duration, String> {
    let split = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
    let (count, unit) = p.split_at(split);
    // "s" alone means "1s"; "10s" means ten seconds.
    let count: u64 =
        if count.is_empty() { 1 } else { count.parse().map_err(|_| format!("{SHAPE}: period {p:?} is too long"))? };
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{SHAPE}: unknown period unit {unit:?} (use ms, s, m, h or d)")),
    };
    if count == 0 {
        return Err(format!("{SHAPE}: the period must be longer than zero"));
    }
    match count.checked_mul(unit_ms).map(Duration::from_millis) {
        Some(per) if per <= MAX_PERIOD => Ok(per),
        _ => Err(format!("{SHAPE}: period {p:?} is longer than 30 days")),
    }
}

impl fmt::Display for Rate {
    /// The shortest form that parses back to the same rate ("10/s", "600/m", "100/10s", "5/250ms").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.per.as_millis();
        let units: [(u128, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
        if self.per.subsec_nanos().is_multiple_of(1_000_000) {
            for (size, unit) in units {
                if ms == size {
                    return write!(f, "{}/{unit}", self.calls);
                }
            }
            for (size, unit) in units {
                if ms > 0 && ms.is_multiple_of(size) {
                    return write!(f, "{}/{}{unit}", self.calls, ms / size);
                }
            }
            return write!(f, "{}/{ms}ms", self.calls);
        }
        // Only reachable with a hand-built `Rate`; shown precisely even though it does not parse.
        write!(f, "{}/{:?}", self.calls, self.per)
    }
}

#[cfg(test)]
mod tests;

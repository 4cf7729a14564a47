//! Rate limits: a parsed [`Rate`] and a keyed token-bucket [`Limiter`]. The only module that touches `governor`.
use std::{fmt, num::NonZeroU32, str::FromStr, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};

/// The longest period a rate may name; far beyond any useful limit, and it keeps
/// every period well inside governor's u64-nanosecond arithmetic.
const MAX_PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);

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

thread_local! {
    static KEY_BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Keyed limiters: one token bucket per key, created on first use; keys idle longer than
/// their period are evicted by `retain_recent()` so memory stays bounded.
pub struct Limiter {
    rate: Rate,
    inner: DefaultKeyedRateLimiter<String>,
}

// === impl Limiter ===

impl Limiter {
    /// A bucket of `calls` tokens refilled one every `per / calls`, so a key may burst its
    /// whole allowance and then proceeds at the steady rate. A hand-built `Rate` with zero
    /// calls or a zero period is clamped to 1 call / 1 ns rather than panicking.
    pub fn new(rate: Rate) -> Self {
        let burst = NonZeroU32::new(rate.calls).unwrap_or(NonZeroU32::MIN);
        let cell = (rate.per.min(MAX_PERIOD) / burst.get()).max(Duration::from_nanos(1));
        // `with_period` is only `None` for a zero duration, which the clamp above rules out.
        let quota = Quota::with_period(cell).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
        Limiter { rate, inner: RateLimiter::dashmap(quota) }
    }

    /// The rate this limiter enforces (for messages such as "over 10/s").
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Ok, or Err(retry_after) when the key is over its rate.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        // governor looks keys up by `&String`; a per-thread buffer avoids an allocation per call
        // (the map clones the key only when it inserts a new one).
        let outcome = KEY_BUF.with_borrow_mut(|buf| {
            buf.clear();
            buf.push_str(key);
            self.inner.check_key(buf)
        });
        outcome.map_err(|not_until| not_until.wait_time_from(self.inner.clock().now()))
    }

    /// Drops keys whose bucket has refilled completely (indistinguishable from a new key);
    /// call it periodically so keys seen once do not accumulate.
    pub fn retain_recent(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter").field("rate", &self.rate).field("keys", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests;

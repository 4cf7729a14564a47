//! Rate limits: keyed token-bucket [`Limiter`]s for the config's [`Rate`]s. The only module that touches `governor`.
use std::{fmt, num::NonZeroU32, time::Duration};

pub use mcpd_config::rate::{MAX_PERIOD, Rate};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};

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

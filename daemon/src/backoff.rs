//! Reconnect policy: jittered exponential backoff and the crash-loop breaker. The only module that touches the `backoff` crate.
use std::{collections::VecDeque, time::Duration};

use backoff::backoff::Backoff as _;
use tokio::time::Instant;

use crate::config::{BackoffConfig, CrashLoopConfig};

/// Bounds that make no sense (zero initial delay, max below initial, shrinking multiplier).
#[derive(Debug, thiserror::Error)]
#[error("invalid backoff: {0}")]
pub struct InvalidBackoff(&'static str);

/// Jittered exponential delay between reconnect attempts.
#[derive(Debug)]
pub struct Backoff {
    inner: backoff::ExponentialBackoff,
    max: Duration,
}

// === impl Backoff ===

impl Backoff {
    pub fn try_new(cfg: &BackoffConfig) -> Result<Self, InvalidBackoff> {
        if cfg.initial.is_zero() {
            return Err(InvalidBackoff("initial delay must be above zero"));
        }
        if cfg.max < cfg.initial {
            return Err(InvalidBackoff("max delay must be at least the initial delay"));
        }
        if cfg.multiplier.is_nan() || cfg.multiplier < 1.0 {
            return Err(InvalidBackoff("multiplier must be at least 1.0"));
        }
        if !(0.0..=1.0).contains(&cfg.jitter) {
            return Err(InvalidBackoff("jitter must be between 0 and 1"));
        }
        let inner = backoff::ExponentialBackoff {
            current_interval: cfg.initial,
            initial_interval: cfg.initial,
            randomization_factor: cfg.jitter,
            multiplier: cfg.multiplier,
            max_interval: cfg.max,
            // mcpd retries forever; giving up is the crash-loop breaker's job.
            max_elapsed_time: None,
            ..Default::default()
        };
        Ok(Self { inner, max: cfg.max })
    }

    /// The delay before the next attempt; grows until `max` (jitter may add up to `jitter * max`).
    pub fn next_delay(&mut self) -> Duration {
        self.inner.next_backoff().unwrap_or(self.max)
    }

    /// Back to the initial delay, after a session that stayed up long enough.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

/// Opens the circuit when a server fails too often within a window, so a
/// crash-looping server costs one attempt per `open_for` instead of one per backoff step.
#[derive(Debug)]
pub struct CrashLoopBreaker {
    failures: VecDeque<Instant>,
    max_failures: usize,
    window: Duration,
    open_for: Duration,
}

// === impl CrashLoopBreaker ===

impl CrashLoopBreaker {
    pub fn new(cfg: &CrashLoopConfig) -> Self {
        Self {
            failures: VecDeque::new(),
            max_failures: cfg.max_failures.max(1) as usize,
            window: cfg.window,
            open_for: cfg.open_for,
        }
    }

    /// Records a failure at `now`; returns how long the circuit stays open when this failure trips it.
    pub fn record_failure(&mut self, now: Instant) -> Option<Duration> {
        self.failures.push_back(now);
        while let Some(first) = self.failures.front() {
            if now.duration_since(*first) > self.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        if self.failures.len() >= self.max_failures {
            self.failures.clear();
            Some(self.open_for)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;

//! Tests for rate parsing and the keyed limiter.
use std::time::Instant;

use super::*;

fn rate(calls: u32, per_ms: u64) -> Rate {
    Rate { calls, per: Duration::from_millis(per_ms) }
}

#[test]
fn allows_the_burst_then_refuses_with_retry_after() {
    let limiter = Limiter::new("3/s".parse().unwrap());
    for i in 0..3 {
        assert_eq!(limiter.check("a"), Ok(()), "call {i}");
    }
    let wait = limiter.check("a").expect_err("fourth call in the same second");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "retry_after {wait:?}");
}

#[test]
fn keys_are_independent() {
    let limiter = Limiter::new("1/m".parse().unwrap());
    assert!(limiter.check("alpha").is_ok());
    assert!(limiter.check("alpha").is_err());
    assert!(limiter.check("beta").is_ok(), "another key has its own bucket");
    assert!(limiter.check("beta").is_err());
    assert_eq!(limiter.len(), 2);
}

#[test]
fn retain_recent_evicts_idle_keys() {
    let limiter = Limiter::new("2/50ms".parse().unwrap());
    for i in 0..100 {
        let _ = limiter.check(&format!("k{i}"));
        let _ = limiter.check(&format!("k{i}"));
    }
    assert_eq!(limiter.len(), 100);
    limiter.retain_recent();
    assert_eq!(limiter.len(), 100, "buckets still refilling are kept");
    // A bucket is indistinguishable from a fresh one once its period (+ one cell) has passed.
    std::thread::sleep(Duration::from_millis(150));
    limiter.check("fresh").unwrap();
    limiter.retain_recent();
    assert_eq!(limiter.len(), 1, "only the key used just now stays");
    assert!(!limiter.is_empty());
}

#[test]
fn degenerate_hand_built_rates_do_not_panic() {
    for r in [rate(0, 1_000), rate(5, 0), rate(0, 0), Rate { calls: u32::MAX, per: Duration::from_nanos(1) }] {
        let limiter = Limiter::new(r);
        let _ = limiter.check("k");
        let _ = limiter.check("k");
        let _ = r.to_string();
    }
    let huge = Limiter::new(Rate { calls: 1, per: Duration::MAX });
    assert!(huge.check("k").is_ok());
    assert!(huge.check("k").is_err());
}

#[test]
fn check_is_cheap() {
    let limiter = Limiter::new("1000000000/s".parse().unwrap());
    let keys: Vec<String> = (0..64).map(|i| format!("server{i}.tool")).collect();
    const CALLS: usize = 100_000;
    const BATCH: usize = 1_000;
    // Median of per-batch means: robust against a scheduler hiccup in one batch.
    let mut per_call = Vec::with_capacity(CALLS / BATCH);
    for b in 0..CALLS / BATCH {
        let start = Instant::now();
        for i in 0..BATCH {
            let _ = std::hint::black_box(limiter.check(&keys[(b + i) % keys.len()]));
        }
        per_call.push(start.elapsed() / BATCH as u32);
    }
    per_call.sort();
    let median = per_call[per_call.len() / 2];
    println!("limit::check median cost: {median:?} per call ({CALLS} calls, {} keys)", keys.len());
    assert!(median < Duration::from_micros(20), "median {median:?}");
}

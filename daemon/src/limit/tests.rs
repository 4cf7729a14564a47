//! Tests for rate parsing and the keyed limiter.
use std::time::Instant;

use super::*;

fn rate(calls: u32, per_ms: u64) -> Rate {
    Rate { calls, per: Duration::from_millis(per_ms) }
}

#[test]
fn parses_good_rates() {
    let cases = [
        ("10/s", rate(10, 1_000)),
        ("600/m", rate(600, 60_000)),
        ("5000/h", rate(5000, 3_600_000)),
        ("100/10s", rate(100, 10_000)),
        ("2/50ms", rate(2, 50)),
        ("1/d", rate(1, 86_400_000)),
        (" 7 / 2m ", rate(7, 120_000)),
        ("1/1s", rate(1, 1_000)),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<Rate>(), Ok(want), "{text}");
    }
}

#[test]
fn rejects_bad_rates_with_clear_messages() {
    let cases = [
        ("", "rate must look like 10/s, 600/m or 100/10s"),
        ("10", "rate must look like 10/s, 600/m or 100/10s"),
        ("/s", "is not a whole number of calls"),
        ("-1/s", "is not a whole number of calls"),
        ("1.5/s", "is not a whole number of calls"),
        ("0/s", "at least 1 call"),
        ("99999999999/s", "too many"),
        ("10/0s", "longer than zero"),
        ("10/x", "unknown period unit \"x\""),
        ("10/", "unknown period unit \"\""),
        ("10/s/", "unknown period unit"),
        ("10/sec", "unknown period unit"),
        ("10/31d", "longer than 30 days"),
        ("10/99999999999999999999h", "too long"),
        ("10/18446744073709551615h", "longer than 30 days"),
    ];
    for (text, want) in cases {
        let err = text.parse::<Rate>().expect_err(text);
        assert!(err.contains(want), "{text:?}: {err:?} should mention {want:?}");
    }
}

#[test]
fn displays_the_shortest_parseable_form() {
    for (r, want) in [
        (rate(10, 1_000), "10/s"),
        (rate(600, 60_000), "600/m"),
        (rate(5000, 3_600_000), "5000/h"),
        (rate(100, 10_000), "100/10s"),
        (rate(5, 120_000), "5/2m"),
        (rate(2, 50), "2/50ms"),
        (rate(3, 1_500), "3/1500ms"),
    ] {
        assert_eq!(r.to_string(), want);
        assert_eq!(want.parse::<Rate>(), Ok(r), "round trip {want}");
    }
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

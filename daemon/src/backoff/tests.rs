//! Tests for the reconnect policy.
use super::*;

fn cfg(initial: u64, max: u64) -> BackoffConfig {
    BackoffConfig {
        initial: Duration::from_millis(initial),
        max: Duration::from_millis(max),
        multiplier: 2.0,
        jitter: 0.0,
    }
}

#[test]
fn grows_then_caps() {
    let mut b = Backoff::try_new(&cfg(100, 1000)).unwrap();
    let delays: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_millis(100));
}

#[test]
fn jitter_stays_in_bounds() {
    let mut c = cfg(1000, 1000);
    c.jitter = 0.5;
    let mut b = Backoff::try_new(&c).unwrap();
    for _ in 0..100 {
        let d = b.next_delay().as_millis();
        assert!((500..=1500).contains(&d), "{d}");
    }
}

#[test]
fn rejects_bad_bounds() {
    assert!(Backoff::try_new(&cfg(0, 10)).is_err());
    assert!(Backoff::try_new(&cfg(100, 10)).is_err());
    let mut c = cfg(1, 10);
    c.multiplier = 0.5;
    assert!(Backoff::try_new(&c).is_err());
}

#[tokio::test(start_paused = true)]
async fn breaker_trips_within_window_only() {
    let mut br = CrashLoopBreaker::new(&CrashLoopConfig {
        max_failures: 3,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(60),
    });
    let t0 = Instant::now();
    assert_eq!(br.record_failure(t0), None);
    assert_eq!(br.record_failure(t0 + Duration::from_secs(20)), None);
    assert_eq!(br.record_failure(t0 + Duration::from_secs(21)), None);
    assert_eq!(br.record_failure(t0 + Duration::from_secs(22)), Some(Duration::from_secs(60)));
}

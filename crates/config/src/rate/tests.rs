//! Tests for rate parsing and display.
use std::time::Duration;

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

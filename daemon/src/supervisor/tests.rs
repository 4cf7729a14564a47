//! Tests for the supervisor's diff: which servers start, restart, stop or stay untouched.
use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::{event::EventBus, testing};

/// Servers that are configured but disabled: their sessions end at once, so the diff runs
/// without any process.
fn servers(entries: &[(&str, &str)]) -> crate::config::Config {
    let mut text = String::new();
    for (name, extra) in entries {
        text.push_str(&format!("[servers.{name}]\ncommand = \"x\"\nenabled = false\n{extra}\n"));
    }
    testing::config(&text)
}

#[tokio::test]
async fn apply_starts_restarts_stops_and_leaves_the_rest() {
    let first = servers(&[("a", ""), ("b", ""), ("c", "")]);
    let (ctx, _live) = testing::context(&first);
    let sup = Supervisor::new(ctx, EventBus::default(), CancellationToken::new());

    let r = sup.apply(&first).await;
    assert_eq!((r.added.as_slice(), r.changed.len(), r.removed.len()), (&["a", "b", "c"].map(String::from)[..], 0, 0));
    let (a, b) = (sup.upstream("a").unwrap(), sup.upstream("b").unwrap());

    // b changes, c goes, d comes; a is untouched.
    let second = servers(&[("a", ""), ("b", "call_timeout = \"5s\""), ("d", "")]);
    let r = sup.apply(&second).await;
    assert_eq!(r.added, ["d"]);
    assert_eq!(r.changed, ["b"]);
    assert_eq!(r.removed, ["c"]);
    assert!(Arc::ptr_eq(&a, &sup.upstream("a").unwrap()), "an unchanged server keeps its session");
    assert!(!Arc::ptr_eq(&b, &sup.upstream("b").unwrap()), "a changed server restarts");
    assert!(sup.upstream("c").is_none());
    let names: Vec<String> = sup.upstreams().iter().map(|u| u.name.clone()).collect();
    assert_eq!(names, ["a", "b", "d"]);

    // The same config again changes nothing.
    let r = sup.apply(&second).await;
    assert!(r.added.is_empty() && r.changed.is_empty() && r.removed.is_empty(), "{r:?}");

    // Only the roots change: reported as changed, but the session is not restarted.
    let b = sup.upstream("b").unwrap();
    let third = servers(&[("a", ""), ("b", "call_timeout = \"5s\"\nroots = [\"/tmp\"]"), ("d", "")]);
    let r = sup.apply(&third).await;
    assert_eq!(r.changed, ["b"]);
    assert!(Arc::ptr_eq(&b, &sup.upstream("b").unwrap()), "a roots change is sent, not a restart");
    assert_eq!(b.roots().len(), 1, "the new roots are in place: {:?}", b.roots());

    sup.shutdown(Duration::from_secs(1)).await;
}

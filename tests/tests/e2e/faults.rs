//! Faults a real server won't produce on demand: hangs, garbage, oversized lines,
//! crash loops, silent servers. The daemon and the other servers must not notice.
use std::time::Duration;

use mcpd_tests::*;
use tonic::Code;

const READY: Duration = Duration::from_secs(30);

async fn cancelled_ids(c: &mut Client, server: &str) -> Vec<serde_json::Value> {
    let r = c.call_tool(&format!("{server}.cancelled_count"), "{}", None).await.unwrap();
    let s: serde_json::Value = serde_json::from_str(&r.structured_content_json).unwrap();
    s["requestIds"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_gets_deadline_exceeded_and_is_cancelled() {
    let d = TestDaemon::start(&fault_server("f", &[], ""));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    for _ in 0..3 {
        let e = c.call_tool("f.hang", "{}", Some(Duration::from_millis(300))).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::DeadlineExceeded), "{e}");
        assert!(e.to_string().contains("f.hang did not answer within"), "{e}");
    }
    // Each abandoned request was cancelled upstream and none is pending any more.
    let ids = cancelled_ids(&mut c, "f").await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    let st = c.status().await.unwrap();
    assert_eq!(st.servers[0].in_flight, 0);
    assert_eq!(st.servers[0].state, proto::ServerState::Ready as i32, "a slow call does not reset the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_is_cancelled_upstream() {
    let d = TestDaemon::start(&fault_server("f", &[], ""));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let mut c2 = c.clone();
    let call = c2.call_tool_with_progress("f.hang", "{}", Some(Duration::from_secs(60)), |_| {});
    assert!(tokio::time::timeout(Duration::from_millis(500), call).await.is_err());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if cancelled_ids(&mut c, "f").await.len() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the server never saw notifications/cancelled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.status().await.unwrap().servers[0].in_flight != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the abandoned call still holds a slot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_stdout_resets_only_that_server() {
    let d = TestDaemon::start(&format!("{}{}", fault_server("bad", &[], ""), fault_server("good", &[], "")));
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    let e = c.call_tool("bad.garbage", "{}", Some(Duration::from_secs(10))).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::Unavailable), "{e}");
    let r = c.call_tool("good.echo", r#"{"text":"still here"}"#, None).await.unwrap();
    assert_eq!(first_text(&r), "still here");
    // It comes back by itself, and status says why it was reset.
    let deadline = tokio::time::Instant::now() + READY;
    loop {
        let st = c.status().await.unwrap();
        let bad = st.servers.iter().find(|s| s.name == "bad").unwrap();
        if bad.state == proto::ServerState::Ready as i32 && bad.connects >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bad did not come back: {bad:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d.log_text().contains("non-JSON output"), "the reset reason is logged");
    let good = c.status().await.unwrap().servers.into_iter().find(|s| s.name == "good").unwrap();
    assert_eq!(good.connects, 1, "the other server was never touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_line_resets_the_session_and_is_reported() {
    let d = TestDaemon::start(&fault_server("big", &[], "max_message_bytes = \"1MiB\""));
    d.wait_state("big", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let mut events = c.watch_events(Some("big")).await.unwrap();
    let e = c.call_tool("big.huge", r#"{"bytes":10000000}"#, Some(Duration::from_secs(20))).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::Unavailable), "{e}");
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(ev)) = events.message().await {
            if ev.kind == "message_too_large" {
                return ev;
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("a message_too_large event");
    assert!(found.message.contains("1048576"), "{}", found.message);
    let deadline = tokio::time::Instant::now() + READY;
    loop {
        let s = &c.status().await.unwrap().servers[0];
        if s.state == proto::ServerState::Ready as i32 && s.connects >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "big did not come back: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A result under the limit still works.
    let r = c.call_tool("big.huge", r#"{"bytes":1000}"#, None).await.unwrap();
    assert!(!r.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_line_at_startup_and_silent_servers_back_off() {
    let d = TestDaemon::start(&format!(
        "{}{}",
        fault_server("spew", &["--mode", "huge-start"], "max_message_bytes = \"1MiB\""),
        fault_server("mute", &["--mode", "silent"], "connect_timeout = \"500ms\"")
    ));
    let spew = d.wait_state("spew", proto::ServerState::Backoff, READY).await;
    assert!(spew.last_error.contains("larger than 1048576 bytes"), "{spew:?}");
    let mute = d.wait_state("mute", proto::ServerState::Backoff, READY).await;
    assert!(mute.last_error.contains("no answer within"), "{mute:?}");
    assert!(mute.next_retry_unix_ms > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_server_opens_the_circuit() {
    let d = TestDaemon::start(&fault_server(
        "loop",
        &["--mode", "exit-now"],
        "crash_loop = { max_failures = 3, window = \"60s\", open_for = \"1h\" }",
    ));
    let st = d.wait_state("loop", proto::ServerState::CircuitOpen, READY).await;
    assert!(st.last_error.contains("status 3"), "{st:?}");
    let mut c = d.client().await;
    let e = c.call_tool("loop.echo", r#"{"text":"x"}"#, None).await.unwrap_err();
    // Its tools were never listed, so the name is unknown rather than unavailable.
    assert_eq!(e.code(), Some(Code::NotFound), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_are_rejected_before_they_leave_mcpd() {
    let d = TestDaemon::start(&fault_server("f", &[], "max_concurrency = 1"));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let e = c.call_tool("f.echo", r#"{"text": 5}"#, None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument));
    assert!(e.to_string().contains("inputSchema"), "{e}");
    let e = c.call_tool("f.echo", "[1]", None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument));
    let e = c.call_tool("f.ecko", "{}", None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::NotFound));
    assert!(e.to_string().contains("did you mean \"f.echo\""), "{e}");
    let e = c.call_tool("echo", "{}", None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument));
    // With max_concurrency = 1 a second call waits for the slot until its deadline.
    let mut c2 = c.clone();
    let blocker = tokio::spawn(async move { c2.call_tool("f.slow", r#"{"ms":1500}"#, None).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = c.call_tool("f.echo", r#"{"text":"x"}"#, Some(Duration::from_millis(200))).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::ResourceExhausted), "{e}");
    assert!(blocker.await.unwrap().is_ok());
    // None of the rejected calls reached the server.
    assert!(cancelled_ids(&mut c, "f").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_results_are_truncated_with_a_marker() {
    let d = TestDaemon::start_with("max_result_bytes = \"2KiB\"", &fault_server("f", &[], ""));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let r = c.call_tool("f.huge", r#"{"bytes":100000}"#, None).await.unwrap();
    assert!(r.truncated);
    assert!(r.original_bytes >= 90_000, "{}", r.original_bytes);
    assert!(r.content_json.len() < 4096, "{}", r.content_json.len());
    let blocks = content(&r);
    let marker = blocks.as_array().unwrap().last().unwrap()["text"].as_str().unwrap().to_owned();
    assert!(marker.contains("truncated") && marker.contains(&r.original_bytes.to_string()), "{marker}");
    let r = c.call_tool("f.echo", r#"{"text":"small"}"#, None).await.unwrap();
    assert!(!r.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_flood_is_read_at_its_budget_and_neighbours_keep_answering() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("flooded");
    let count_arg = count.display().to_string();
    let d = TestDaemon::start(&format!(
        "{}{}",
        fault_server(
            "flood",
            &["--mode", "flood", "--flood-rate", "0", "--flood-count-file", &count_arg],
            "notification_rate = 200"
        ),
        fault_server("good", &[], "")
    ));
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    // The flood starts with the session; from then on the neighbour answers as ever.
    let read = || -> u64 { std::fs::read_to_string(&count).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0) };
    let (before, started) = (read(), tokio::time::Instant::now());
    for i in 0..20 {
        let r = c.call_tool("good.echo", &format!(r#"{{"text":"{i}"}}"#), Some(Duration::from_secs(5))).await.unwrap();
        assert!(r.content_json.contains(&i.to_string()), "{r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = read() - before;
    // While it was timed, the flooder got out what mcpd read at 200/s, plus at most what
    // the pipe and the flooder's own queue hold (about 1,700 lines) and the count file's
    // lag: without the budget the daemon reads tens of thousands a second.
    let bound = (200.0 * (elapsed + 1.0)) as u64 + 2_500;
    assert!(sent <= bound, "the flooder wrote {sent} lines in {elapsed:.1} s (bound {bound})");
    assert!(read() > 0, "the flood ran");
    assert!(d.log_text().contains("reading it slower"), "the throttle is logged");
    let st = c.status().await.unwrap();
    assert!(st.servers.iter().all(|s| s.state == proto::ServerState::Ready as i32), "{st:?}");
}

//! Tasks (the `io.modelcontextprotocol/tasks` extension) through mcpd, against a server on
//! the official Python SDK (tests/servers/py_tasks_server.py): in the 2026-07-28 era a long
//! call runs as a task that mcpd polls to its result, with its states as progress, in status
//! while it runs, answered when it asks for input, and cancelled when the caller goes away
//! or the deadline passes; in the session era (where the SDK has no tasks) the same call is
//! a plain one.
use std::time::Duration;

use mcpd_tests::*;

const READY: Duration = Duration::from_secs(60);

fn tasks_server(name: &str, protocol: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\nprotocol = {}\n",
        q(python().display().to_string()),
        q(repo_root().join("tests/servers/py_tasks_server.py").display().to_string()),
        q(protocol)
    )
}

async fn task_log(c: &mut Client, server: &str) -> serde_json::Map<String, serde_json::Value> {
    let r = c.call_tool(&format!("{server}.task_log"), "{}", None).await.unwrap();
    serde_json::from_str(&first_text(&r)).unwrap()
}

async fn a_long_call_runs_as_a_task(protocol: &str) {
    let d = TestDaemon::start(&tasks_server("t", protocol));
    d.wait_state("t", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;

    // A long call: one result, the task's states on the way as progress, and the task in
    // status while it runs.
    let mut watcher = c.clone();
    let call = tokio::spawn(async move {
        let mut seen = Vec::new();
        let r = watcher
            .call_tool_with_progress("t.long_job", r#"{"steps":4,"step_ms":300}"#, Some(Duration::from_secs(30)), |p| {
                seen.push(p.message)
            })
            .await;
        (r, seen)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let running = loop {
        let st = c.status().await.unwrap();
        if let Some(t) = st.servers[0].tasks.first() {
            break t.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "the task never showed in status");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(running.tool, "t.long_job");
    assert!(running.status == "working", "{running:?}");
    let (r, seen) = call.await.unwrap();
    let r = r.unwrap();
    assert!(!r.is_error, "{}", r.content_json);
    assert_eq!(first_text(&r), "finished 4 steps");
    assert!(seen.iter().any(|m| m.contains("step 2 of 4")), "{seen:?}");
    assert!(seen.iter().all(|m| m.starts_with(&format!("task {}", running.task_id))), "{seen:?}");
    assert!(c.status().await.unwrap().servers[0].tasks.is_empty(), "a finished task leaves status");

    // The task asks for input: the attached app answers, the task goes on.
    let mut app = c
        .attach(proto::AttachHello { app: "app".into(), servers: vec!["t".into()], elicitation: true, sampling: false })
        .await
        .unwrap();
    let answering = tokio::spawn(async move {
        let req = app.next_request().await.unwrap().unwrap();
        assert_eq!(req.method, "elicitation/create");
        app.reply(&req.id, Ok(serde_json::json!({"action": "accept", "content": {"go": true}}))).await.unwrap();
        app
    });
    let r =
        c.call_tool("t.long_job", r#"{"steps":1,"step_ms":50,"confirm":true}"#, Some(Duration::from_secs(30))).await;
    let r = r.unwrap();
    assert_eq!(first_text(&r), "finished 1 steps", "{}", r.content_json);
    drop(answering.await.unwrap());

    // The caller goes away: mcpd cancels the task at the server.
    let mut dropper = c.clone();
    let gone = tokio::spawn(async move {
        dropper.call_tool("t.long_job", r#"{"steps":100,"step_ms":100}"#, Some(Duration::from_secs(60))).await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.status().await.unwrap().servers[0].tasks.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gone.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = task_log(&mut c, "t").await;
        if log.values().filter(|s| *s == "cancelled").count() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the abandoned task was not cancelled: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = task_log(&mut c, "t").await;
    assert_eq!(log.values().filter(|s| *s == "completed").count(), 2, "{log:?}");
    assert!(c.status().await.unwrap().servers[0].tasks.is_empty());

    // A deadline shorter than the task: DEADLINE_EXCEEDED, and the task is cancelled too.
    let e = c.call_tool("t.long_job", r#"{"steps":100,"step_ms":100}"#, Some(Duration::from_millis(700))).await;
    assert_eq!(e.unwrap_err().code(), Some(tonic::Code::DeadlineExceeded));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while task_log(&mut c, "t").await.values().filter(|s| *s == "cancelled").count() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "the timed-out task was not cancelled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_call_runs_as_a_task_in_the_stateless_era() {
    a_long_call_runs_as_a_task("auto").await;
}

/// The SDK serves the tasks extension in the 2026-07-28 era only; pinned to the session
/// era the same server runs the job inline, and the call through mcpd is the same call:
/// one result, no task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_long_call_in_the_session_era_is_a_plain_call() {
    let d = TestDaemon::start(&tasks_server("t", "2025-11-25"));
    let st = d.wait_state("t", proto::ServerState::Ready, READY).await;
    assert_eq!(st.era, "session");
    let mut c = d.client().await;
    let r = c.call_tool("t.long_job", r#"{"steps":3,"step_ms":100}"#, Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(first_text(&r), "finished 3 steps", "{}", r.content_json);
    assert!(task_log(&mut c, "t").await.is_empty(), "no task in the session era");
}

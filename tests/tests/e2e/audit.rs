//! Every call goes through the call core and leaves one audit record naming the tool, the
//! caller (the app, and the agent or pipeline run it was a step of) and the outcome, and is
//! counted in the per-tool metrics: calls from agents and pipelines as much as direct ones.
//! Both eras: `f` is the session-era fault server, `p` a Python SDK server that negotiates
//! 2026-07-28.
use std::time::Duration;

use mcpd_tests::*;
use serde_json::json;

const READY: Duration = Duration::from_secs(60);

fn servers() -> String {
    format!(
        "{}[servers.p]\ncommand = {}\nargs = [{}]\n",
        fault_server("f", &[], ""),
        q(python().display().to_string()),
        q(py_server_script().display().to_string())
    )
}

const PIPELINE: &str = r#"
[[pipelines]]
name = "both"
description = "echo on one server, add on the other"
input_schema = { type = "object", properties = { word = { type = "string" } }, required = ["word"] }
[[pipelines.steps]]
id = "say"
tool = "f.echo"
args = { text = "{{input.word}}" }
[[pipelines.steps]]
id = "sum"
tool = "p.add"
args = { a = 2, b = 3 }
"#;

/// The newest `n` audit records, once the writer (which batches every 100 ms) has them.
async fn audit(c: &mut Client, n: usize) -> Vec<proto::AuditRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = c.audit(100, None).await.expect("Audit answers");
        if records.len() >= n || tokio::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls of `server.tool` as the metrics count them.
async fn counted(c: &mut Client, server: &str, tool: &str) -> u64 {
    let st = c.status().await.expect("Status answers");
    let s = st.servers.iter().find(|s| s.name == server).expect("server in status");
    s.tool_stats.iter().find(|t| t.tool == tool).map(|t| t.calls).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_tool_calls_are_audited_and_counted() {
    let fake = FakeLlm::start(json!([
        {"tool_calls": [{"name": "f__echo", "arguments": {"text": "ping"}}, {"name": "p__add", "arguments": {"a": 2, "b": 3}}]},
        {"text": "ping and 5"}
    ]));
    let llm = format!(
        "[llm.local]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-model\"\ntimeout = \"20s\"\n",
        fake.openai_base_url()
    );
    let d = TestDaemon::start(&format!("{llm}{}", servers()));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    d.wait_state("p", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let era = c.list_servers().await.unwrap().into_iter().find(|s| s.name == "p").unwrap().protocol_version;
    assert_eq!(era, "2026-07-28", "the Python SDK server should negotiate the stateless era");

    let mut stream =
        c.run_agent(proto::RunAgentRequest { task: "ping, then add".into(), ..Default::default() }).await.unwrap();
    let mut run_id = String::new();
    let mut answer = None;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(60), stream.message()).await.unwrap().unwrap() {
        run_id = ev.run_id.clone();
        if let Some(proto::agent_event::Event::FinalAnswer(t)) = ev.event {
            answer = Some(t);
        }
    }
    assert_eq!(answer.as_deref(), Some("ping and 5"));
    assert_eq!(run_id.len(), 32);

    let records = audit(&mut c, 2).await;
    let steps: Vec<&proto::AuditRecord> = records.iter().filter(|r| r.run_id == run_id).collect();
    assert_eq!(steps.len(), 2, "one record per tool call of the run: {records:#?}");
    let mut tools: Vec<&str> = steps.iter().map(|r| r.tool.as_str()).collect();
    tools.sort_unstable();
    assert_eq!(tools, ["f.echo", "p.add"]);
    for r in &steps {
        assert_eq!(r.via, "agent", "{r:?}");
        assert_eq!(r.outcome, "ok", "{r:?}");
        // The app is the one that asked for the run, as the kernel vouches for it.
        assert!(r.app.starts_with("uid:") && r.app.contains(&format!("pid:{}", std::process::id())), "{r:?}");
        assert!(r.arguments_sha256.starts_with("sha256:"), "{r:?}");
    }
    assert_eq!(counted(&mut c, "f", "echo").await, 1);
    assert_eq!(counted(&mut c, "p", "add").await, 1);

    // The CLI shows who asked.
    let out = std::process::Command::new(mcpd_bin())
        .args(["--socket", &d.socket.display().to_string(), "audit", "--json"])
        .output()
        .expect("run mcpd audit");
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.iter().filter(|r| r["run_id"] == run_id.as_str() && r["via"] == "agent").count(), 2, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_steps_are_audited_and_counted() {
    let d = TestDaemon::start(&format!("{}{PIPELINE}", servers()));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    d.wait_state("p", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;

    // RunPipeline (streamed) and CallTool of the virtual tool both go through the core.
    let mut stream = c.run_pipeline("both", r#"{"word":"hi"}"#).await.unwrap();
    let mut result = None;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(60), stream.message()).await.unwrap().unwrap() {
        if let Some(proto::pipeline_event::Event::Result(r)) = ev.event {
            result = Some(r);
        }
    }
    let result = result.expect("the run ends with a result");
    assert!(!result.is_error, "{}", result.content_json);
    let called = c.call_tool("pipeline.both", r#"{"word":"ho"}"#, None).await.unwrap();
    assert!(!called.is_error, "{}", called.content_json);

    let records = audit(&mut c, 6).await;
    assert_eq!(records.len(), 6, "two pipeline calls and four steps: {records:#?}");
    let whole: Vec<&proto::AuditRecord> = records.iter().filter(|r| r.tool == "pipeline.both").collect();
    assert_eq!(whole.len(), 2, "{records:#?}");
    assert!(whole.iter().all(|r| r.via.is_empty() && r.run_id.is_empty() && r.outcome == "ok"), "{whole:#?}");
    let steps: Vec<&proto::AuditRecord> = records.iter().filter(|r| r.via == "pipeline.both").collect();
    assert_eq!(steps.len(), 4, "{records:#?}");
    assert!(steps.iter().all(|r| r.outcome == "ok" && r.app.starts_with("uid:")), "{steps:#?}");
    // One id per run, shared by its steps; the two runs have different ids.
    let mut runs: Vec<&str> = steps.iter().map(|r| r.run_id.as_str()).collect();
    runs.sort_unstable();
    runs.dedup();
    assert_eq!(runs.len(), 2, "{steps:#?}");
    for id in runs {
        let mut tools: Vec<&str> = steps.iter().filter(|r| r.run_id == id).map(|r| r.tool.as_str()).collect();
        tools.sort_unstable();
        assert_eq!(tools, ["f.echo", "p.add"], "run {id}");
    }
    assert_eq!(counted(&mut c, "f", "echo").await, 2);
    assert_eq!(counted(&mut c, "p", "add").await, 2);
}

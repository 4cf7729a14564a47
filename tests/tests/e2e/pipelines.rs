//! Pipelines from the config: a virtual tool `pipeline.NAME` that apps and agents call like
//! any tool, and a streamed RunPipeline; failures name their step and keep earlier results.
use std::time::Duration;

use mcpd_tests::*;
use serde_json::Value;

const PIPELINES: &str = r#"
[[pipelines]]
name = "chain"
description = "echo, then a step that fails, then one that never runs"
input_schema = { type = "object", properties = { word = { type = "string" } }, required = ["word"] }
[[pipelines.steps]]
id = "first"
tool = "f.echo"
args = { text = "{{input.word}}" }
[[pipelines.steps]]
id = "second"
tool = "f.echo"
args = { text = 42 }
[[pipelines.steps]]
id = "third"
tool = "f.echo"
args = { text = "never" }

[[pipelines]]
name = "fan"
[[pipelines.steps]]
id = "both"
parallel = [
  { id = "good", tool = "f.echo", args = { text = "ok" } },
  { id = "bad", tool = "f.nosuch", args = {} },
]
[[pipelines.steps]]
id = "after"
tool = "f.echo"
args = { text = "good said {{steps.both.good.text}}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_report_the_failing_step_and_keep_branch_results() {
    let d = TestDaemon::start(&format!("{}{PIPELINES}", fault_server("f", &[], "")));
    d.wait_state("f", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let mut c = d.client().await;
    let tools = c.list_tools(Some("pipeline")).await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.qualified_name.as_str()).collect();
    assert_eq!(names, vec!["pipeline.chain", "pipeline.fan"]);
    assert!(tools.iter().all(|t| !t.quarantined));

    // A middle step fails: the result names it and why, and keeps the first step's output.
    let r = c.call_tool("pipeline.chain", r#"{"word":"hi"}"#, None).await.unwrap();
    assert!(r.is_error, "{}", r.content_json);
    let text = first_text(&r);
    assert!(text.contains("step \"second\"") && text.contains("f.echo"), "{text}");
    let s: Value = serde_json::from_str(&r.structured_content_json).unwrap();
    assert_eq!(s["steps"]["first"]["text"], "hi", "{s}");
    assert!(s["steps"].get("third").is_none(), "a later step ran: {s}");
    // Bad input is the caller's to fix.
    let e = c.call_tool("pipeline.chain", r#"{"nope":1}"#, None).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument));

    // A failing parallel branch does not lose the other's result, and the run goes on.
    let r = c.call_tool("pipeline.fan", "{}", None).await.unwrap();
    assert!(!r.is_error, "{}", r.content_json);
    assert_eq!(first_text(&r), "good said ok");
    let s: Value = serde_json::from_str(&r.structured_content_json).unwrap();
    assert_eq!(s["steps"]["both"]["good"]["text"], "ok", "{s}");
    assert!(s["steps"]["both"]["bad"]["error"].as_str().is_some_and(|e| e.contains("nosuch")), "{s}");

    // The streamed form shows every step as it happens.
    let mut stream = c.run_pipeline("chain", r#"{"word":"yo"}"#).await.unwrap();
    let mut steps = Vec::new();
    let mut result = None;
    while let Some(ev) = stream.message().await.unwrap() {
        match ev.event {
            Some(proto::pipeline_event::Event::Step(s)) => steps.push(format!("{} {} {}", s.kind, s.step, s.ok)),
            Some(proto::pipeline_event::Event::Result(r)) => result = Some(r),
            None => {}
        }
    }
    assert_eq!(
        steps,
        vec![
            "started first true",
            "finished first true",
            "started second true",
            "finished second false",
            "skipped third false"
        ]
    );
    assert!(result.expect("a result").is_error);
    let e = c.run_pipeline("nosuch", "{}").await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::NotFound));
}

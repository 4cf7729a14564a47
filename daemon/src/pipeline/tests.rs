//! Engine tests with a fake tool caller: templating, failures, fan-out,
//! routing, depth limits, runtime reference errors and bounds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Barrier, mpsc};

use super::*;
use crate::config::{PipelineConfig, StepKind};

/// Pipelines from TOML (validated by the real loader) over one server `t`.
fn load(src: &str) -> BTreeMap<String, PipelineConfig> {
    let full = format!("[servers.t]\ncommand = \"x\"\n{src}");
    match crate::config::load_str(&full, Path::new("/etc/mcpd/mcpd.toml"), &|_| None) {
        Ok(c) => c.pipelines,
        Err(e) => panic!("{e}"),
    }
}

type Handler = dyn Fn(&str, &Value) -> Result<StepOutput, String> + Send + Sync;

/// Records every call; `t.slow*` tools wait at the barrier, so they only
/// finish when called concurrently.
struct Fake {
    calls: Mutex<Vec<(String, Value, u32)>>,
    handler: Box<Handler>,
    barrier: Barrier,
}

impl Fake {
    fn new(handler: impl Fn(&str, &Value) -> Result<StepOutput, String> + Send + Sync + 'static) -> Self {
        Self { calls: Mutex::new(Vec::new()), handler: Box::new(handler), barrier: Barrier::new(2) }
    }

    fn calls(&self) -> Vec<(String, Value, u32)> {
        self.calls.lock().unwrap().clone()
    }

    fn tools(&self) -> Vec<String> {
        self.calls().into_iter().map(|(t, _, _)| t).collect()
    }
}

impl ToolCaller for Fake {
    fn call<'a>(&'a self, tool: &'a str, args: Value, depth: u32) -> CallFuture<'a> {
        Box::pin(async move {
            self.calls.lock().unwrap().push((tool.to_owned(), args.clone(), depth));
            if tool.starts_with("t.slow") {
                self.barrier.wait().await;
            }
            (self.handler)(tool, &args)
        })
    }
}

fn text(s: &str) -> StepOutput {
    StepOutput { content: json!([{ "type": "text", "text": s }]), structured: None, is_error: false }
}

fn with_structured(s: &str, v: Value) -> StepOutput {
    StepOutput { structured: Some(v), ..text(s) }
}

fn failed(s: &str) -> StepOutput {
    StepOutput { is_error: true, ..text(s) }
}

async fn go(
    all: &BTreeMap<String, PipelineConfig>,
    name: &str,
    input: Value,
    fake: &Fake,
) -> Result<PipelineRun, PipelineError> {
    run(&all[name], all, input, fake, 0, None).await
}

fn drain(rx: &mut mpsc::Receiver<StepEvent>) -> Vec<StepEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn sequential_templates_with_structured_fields_and_typed_substitution() {
    let all = load(
        r#"
[[pipelines]]
name = "weather"
input_schema = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
[[pipelines.steps]]
id = "geo"
tool = "t.geocode"
args = { query = "{{input.city}}", limit = 2 }
[[pipelines.steps]]
id = "now"
tool = "t.current"
args = { lat = "{{steps.geo.structured.lat}}", where = "{{steps.geo.structured.items.0.name}} at {{ steps.geo.structured.lat }}", all = "{{steps.geo.structured}}", note = "{{steps.geo.text}}!", nested = { list = ["{{input.city}}", 3] }, no_error = "{{steps.geo.error}}", empty = "[{{steps.geo.error}}]" }
"#,
    );
    let fake = Fake::new(|tool, _| match tool {
        "t.geocode" => Ok(with_structured("found", json!({ "lat": 59.9, "items": [{ "name": "Oslo" }] }))),
        "t.current" => Ok(text("sunny")),
        other => Err(format!("unexpected {other}")),
    });
    let (tx, mut rx) = mpsc::channel(64);
    let run = run(&all["weather"], &all, json!({ "city": "Oslo" }), &fake, 0, Some(tx)).await.unwrap();

    let calls = fake.calls();
    assert_eq!(calls[0], ("t.geocode".to_owned(), json!({ "query": "Oslo", "limit": 2 }), 0));
    assert_eq!(
        calls[1].1,
        json!({
            "lat": 59.9,
            "where": "Oslo at 59.9",
            "all": { "lat": 59.9, "items": [{ "name": "Oslo" }] },
            "note": "found!",
            "nested": { "list": ["Oslo", 3] },
            "no_error": null,
            "empty": "[]",
        })
    );
    assert_eq!(run.output, text("sunny"));
    assert_eq!(run.steps["geo"]["structured"]["lat"], 59.9);
    assert_eq!(
        run.steps["now"],
        json!({ "tool": "t.current", "text": "sunny", "structured": null, "is_error": false, "error": null })
    );
    assert_eq!(
        drain(&mut rx),
        [
            StepEvent::Started { step: "geo".into(), tool: "t.geocode".into() },
            StepEvent::Finished { step: "geo".into(), ok: true, detail: "found".into() },
            StepEvent::Started { step: "now".into(), tool: "t.current".into() },
            StepEvent::Finished { step: "now".into(), ok: true, detail: "sunny".into() },
        ]
    );
}

const THREE_STEPS: &str = r#"
[[pipelines]]
name = "three"
[[pipelines.steps]]
id = "first"
tool = "t.a"
[[pipelines.steps]]
id = "middle"
tool = "t.b"
args = { x = "{{steps.first.text}}" }
[[pipelines.steps]]
id = "last"
tool = "t.c"
"#;

#[tokio::test]
async fn a_failing_middle_step_is_named_and_stops_the_pipeline() {
    let all = load(THREE_STEPS);
    let fake = Fake::new(|tool, _| match tool {
        "t.b" => Ok(failed("disk full")),
        _ => Ok(text("ok")),
    });
    let (tx, mut rx) = mpsc::channel(64);
    let err = run(&all["three"], &all, json!({}), &fake, 0, Some(tx)).await.unwrap_err();
    assert_eq!(err.to_string(), "pipeline.three: step \"middle\" (t.b) failed: the tool returned an error: disk full");
    match &err {
        PipelineError::StepFailed { step, tool, .. } => assert_eq!((step.as_str(), tool.as_str()), ("middle", "t.b")),
        other => panic!("{other:?}"),
    }
    let steps = err.steps().unwrap();
    assert_eq!(steps["first"]["text"], "ok");
    assert_eq!(steps["middle"]["text"], "disk full");
    assert_eq!(steps["middle"]["is_error"], true);
    assert!(steps.get("last").is_none());
    assert_eq!(fake.tools(), ["t.a", "t.b"]);
    let events = drain(&mut rx);
    assert_eq!(events.last(), Some(&StepEvent::Skipped { step: "last".into(), why: "step \"middle\" failed".into() }));

    // A call that fails outright (no result) is named the same way.
    let fake =
        Fake::new(|tool, _| if tool == "t.b" { Err("server \"t\" is not connected".into()) } else { Ok(text("ok")) });
    let err = go(&all, "three", json!({}), &fake).await.unwrap_err();
    assert_eq!(err.to_string(), "pipeline.three: step \"middle\" (t.b) failed: server \"t\" is not connected");
    assert_eq!(err.steps().unwrap()["middle"]["error"], "server \"t\" is not connected");
}

const FAN_OUT: &str = r#"
[[pipelines]]
name = "fan"
[[pipelines.steps]]
id = "both"
parallel = [
  { id = "one", tool = "t.slow1" },
  { id = "two", tool = "t.slow2" },
  { id = "bad", tool = "t.bad", args = { v = 1 } },
]
[[pipelines.steps]]
id = "after"
tool = "t.after"
args = { one = "{{steps.both.one.text}}", two = "{{steps.both.two.structured.n}}" }
[[pipelines.steps]]
id = "report"
branch = [{ when = { path = "steps.both.bad.error", exists = true }, tool = "t.partial" }]
default = { tool = "t.complete" }
"#;

#[tokio::test]
async fn a_failing_parallel_branch_keeps_the_other_results() {
    let all = load(FAN_OUT);
    let fake = Fake::new(|tool, _| match tool {
        "t.slow1" => Ok(text("one done")),
        "t.slow2" => Ok(with_structured("two done", json!({ "n": 2 }))),
        "t.bad" => Err("timed out after 60s".into()),
        _ => Ok(text("ok")),
    });
    // The slow branches meet at a barrier: this only finishes if they run concurrently.
    let run = tokio::time::timeout(Duration::from_secs(10), go(&all, "fan", json!({}), &fake))
        .await
        .expect("parallel branches did not run concurrently")
        .unwrap();
    let both = &run.steps["both"];
    assert_eq!(both["one"]["text"], "one done");
    assert_eq!(both["two"]["structured"], json!({ "n": 2 }));
    assert_eq!(both["bad"]["error"], "timed out after 60s");
    assert_eq!(both["bad"]["is_error"], true);
    let after = fake.calls().into_iter().find(|(t, _, _)| t == "t.after").unwrap();
    assert_eq!(after.1, json!({ "one": "one done", "two": 2 }));
    assert_eq!(run.steps["report"]["tool"], "t.partial");
}

#[tokio::test]
async fn parallel_fails_only_when_every_branch_failed() {
    let all = load(FAN_OUT);
    let fake = Fake::new(|tool, _| match tool {
        "t.slow1" => Err("down".into()),
        "t.slow2" => Ok(failed("no data")),
        _ => Err("refused".into()),
    });
    let err =
        tokio::time::timeout(Duration::from_secs(10), go(&all, "fan", json!({}), &fake)).await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline.fan: step \"both\" failed: every parallel branch failed: one: down; two: the tool returned an error: no data; bad: refused"
    );
    assert_eq!(err.steps().unwrap()["both"]["two"]["text"], "no data");
    assert!(!fake.tools().contains(&"t.after".to_owned()));
}

#[tokio::test]
async fn a_final_parallel_step_outputs_an_object_of_branches() {
    let all = load(
        "[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nid = \"s\"\nparallel = [{ id = \"a\", tool = \"t.a\" }, { id = \"b\", tool = \"t.b\" }]\n",
    );
    let fake = Fake::new(|tool, _| if tool == "t.a" { Ok(text("A")) } else { Err("nope".into()) });
    let (tx, mut rx) = mpsc::channel(64);
    let run = run(&all["p"], &all, json!({}), &fake, 0, Some(tx)).await.unwrap();
    let out = run.output.structured.unwrap();
    assert_eq!(out["a"]["text"], "A");
    assert_eq!(out["b"]["error"], "nope");
    let text: Value = serde_json::from_str(run.output.content[0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, out);
    let events = drain(&mut rx);
    assert!(
        events.contains(&StepEvent::Finished { step: "s.b".into(), ok: false, detail: "nope".into() }),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&StepEvent::Finished { step: "s".into(), ok: true, detail: "1 of 2 branches succeeded".into() })
    );
}

#[tokio::test]
async fn branch_takes_the_first_matching_route_else_the_default() {
    let all = load(
        r#"
[[pipelines]]
name = "route"
[[pipelines.steps]]
id = "pick"
branch = [
  { when = { path = "input.kind", equals = "a" }, tool = "t.kind_a", args = { k = "{{input.kind}}" } },
  { when = { path = "input.tags", contains = "x" }, tool = "t.tagged" },
  { when = { path = "input.name", matches = "^z" }, tool = "t.zed" },
  { when = { path = "input.n", equals = 1 }, tool = "t.one" },
  { when = { path = "input.kind", not_equals = "b" }, tool = "t.not_b" },
  { when = { path = "input.also", contains = "needle" }, tool = "t.substring" },
]
default = { tool = "t.default" }
"#,
    );
    let cases = [
        (json!({ "kind": "a", "tags": ["x"] }), "t.kind_a", json!(0)),
        (json!({ "kind": "b", "tags": ["y", "x"] }), "t.tagged", json!(1)),
        (json!({ "kind": "b", "name": "zed" }), "t.zed", json!(2)),
        (json!({ "kind": "b", "n": 1.0 }), "t.one", json!(3)),
        (json!({}), "t.not_b", json!(4)),
        (json!({ "kind": "b", "also": "a needle here" }), "t.substring", json!(5)),
        (json!({ "kind": "b", "name": "abc", "n": 2, "tags": "y" }), "t.default", json!("default")),
        (json!({ "kind": null }), "t.not_b", json!(4)),
    ];
    for (input, tool, route) in cases {
        let fake = Fake::new(|_, _| Ok(text("ok")));
        let run = go(&all, "route", input.clone(), &fake).await.unwrap();
        assert_eq!(fake.tools(), [tool], "{input}");
        assert_eq!(run.steps["pick"]["route"], route, "{input}");
        assert_eq!(run.steps["pick"]["tool"], tool, "{input}");
    }
    let fake = Fake::new(|_, _| Ok(text("ok")));
    go(&all, "route", json!({ "kind": "a" }), &fake).await.unwrap();
    assert_eq!(fake.calls()[0].1, json!({ "k": "a" }));
}

const CHAIN: &str = r#"
[[pipelines]]
name = "outer"
max_depth = 1
[[pipelines.steps]]
id = "call_mid"
tool = "pipeline.mid"
args = { x = "from outer" }
[[pipelines]]
name = "mid"
[[pipelines.steps]]
id = "call_inner"
tool = "pipeline.inner"
args = { x = "{{input.x}}" }
[[pipelines]]
name = "inner"
[[pipelines.steps]]
id = "leaf"
tool = "t.leaf"
args = { x = "{{input.x}}" }
"#;

#[tokio::test]
async fn nested_pipelines_stop_at_max_depth() {
    let all = load(CHAIN);
    let fake = Fake::new(|_, _| Ok(text("leaf")));
    // outer allows one level below it: mid runs, inner would be the second.
    let err = go(&all, "outer", json!({}), &fake).await.unwrap_err();
    assert!(fake.calls().is_empty());
    match err.innermost() {
        PipelineError::DepthLimit { pipeline, depth, max } => {
            assert_eq!((pipeline.as_str(), *depth, *max), ("inner", 2, 1))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().starts_with("pipeline.outer: step \"call_mid\" (pipeline.mid) failed: pipeline.mid: step \"call_inner\" (pipeline.inner) failed: pipeline.inner would run 2 pipelines deep, more than the max_depth of 1"),
        "{err}"
    );

    // Within the cap, leaf tools see the depth of the pipeline that calls them.
    let (tx, mut rx) = mpsc::channel(64);
    let run = run(&all["mid"], &all, json!({ "x": "hi" }), &fake, 0, Some(tx)).await.unwrap();
    assert_eq!(fake.calls(), [("t.leaf".to_owned(), json!({ "x": "hi" }), 1)]);
    assert_eq!(run.output, text("leaf"));
    let names: Vec<String> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            StepEvent::Started { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["call_inner", "call_inner/leaf"]);

    // A cycle slipped past validation (built by hand) still ends at the hard cap.
    let mut cyclic = all.clone();
    if let Some(inner) = cyclic.get_mut("inner") {
        let args = json!({ "x": "{{input.x}}" }).as_object().cloned().unwrap();
        inner.steps[0].kind = StepKind::Call(crate::config::ToolCall { tool: "pipeline.mid".into(), args });
    }
    let err = go(&cyclic, "mid", json!({ "x": "loop" }), &fake).await.unwrap_err();
    assert!(matches!(err.innermost(), PipelineError::DepthLimit { depth: 5, max: 4, .. }), "{err:?}");
}

#[tokio::test]
async fn runtime_template_errors_name_the_step_and_reference() {
    let all = load(
        r#"
[[pipelines]]
name = "refs"
[[pipelines.steps]]
id = "a"
tool = "t.a"
[[pipelines.steps]]
id = "b"
tool = "t.b"
args = { lat = "{{steps.a.structured.lat}}" }
[[pipelines]]
name = "opt"
[[pipelines.steps]]
id = "a"
tool = "t.a"
args = { city = "in {{input.city}}" }
[[pipelines]]
name = "index"
[[pipelines.steps]]
id = "a"
tool = "t.a"
[[pipelines.steps]]
id = "b"
tool = "t.b"
args = { v = "{{steps.a.structured.items.3}}", w = "{{steps.a.structured.items.x}}" }
"#,
    );
    let fake = Fake::new(|_, _| Ok(text("no structured content")));
    let err = go(&all, "refs", json!({}), &fake).await.unwrap_err();
    match &err {
        PipelineError::Template { step, reference, why, steps, .. } => {
            assert_eq!((step.as_str(), reference.as_str()), ("b", "steps.a.structured.lat"));
            assert!(why.contains("no structuredContent"), "{why}");
            assert_eq!(steps["a"]["text"], "no structured content");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.tools(), ["t.a"]);

    let err = go(&all, "opt", json!({ "town": "x" }), &fake).await.unwrap_err();
    assert_eq!(err.to_string(), "pipeline.opt: step \"a\": cannot resolve {{input.city}}: input has no \"city\"");

    let fake = Fake::new(|_, _| Ok(with_structured("", json!({ "items": [1, 2] }))));
    let err = go(&all, "index", json!({}), &fake).await.unwrap_err();
    assert!(
        err.to_string().ends_with("{{steps.a.structured.items.3}}: steps.a.structured.items has no index 3 (length 2)"),
        "{err}"
    );
}

#[tokio::test]
async fn input_is_checked_against_the_schema() {
    let all = load(
        "[[pipelines]]\nname = \"p\"\ninput_schema = { type = \"object\", required = [\"city\"] }\n[[pipelines.steps]]\nid = \"s\"\ntool = \"t.a\"\n",
    );
    let fake = Fake::new(|_, _| Ok(text("ok")));
    let err = go(&all, "p", json!({}), &fake).await.unwrap_err();
    assert!(matches!(&err, PipelineError::InvalidInput { why, .. } if why.contains("city")), "{err:?}");
    assert!(fake.calls().is_empty());
    // Null input (a call without arguments) is an empty object.
    let all = load("[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nid = \"s\"\ntool = \"t.a\"\n");
    go(&all, "p", Value::Null, &fake).await.unwrap();
}

#[tokio::test]
async fn recorded_text_is_capped_but_the_output_is_whole() {
    let all = load("[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nid = \"s\"\ntool = \"t.a\"\n");
    let big = "é".repeat(MAX_STEP_TEXT); // two bytes each: twice the cap
    let out = text(&big);
    let fake = Fake::new(move |_, _| Ok(out.clone()));
    let run = go(&all, "p", json!({}), &fake).await.unwrap();
    let kept = run.steps["s"]["text"].as_str().unwrap();
    assert!(kept.len() < MAX_STEP_TEXT + 100, "{}", kept.len());
    assert!(kept.ends_with(&format!("[mcpd: step text cut at {MAX_STEP_TEXT} of {} bytes]", big.len())));
    assert_eq!(run.output.text(), big);
}

#[tokio::test]
async fn events_never_block_the_run() {
    let all = load(THREE_STEPS);
    let fake = Fake::new(|_, _| Ok(text("ok")));
    // Capacity 1 and nobody reading: later events are dropped, the run goes on.
    let (tx, mut rx) = mpsc::channel(1);
    let run = tokio::time::timeout(Duration::from_secs(5), run(&all["three"], &all, json!({}), &fake, 0, Some(tx)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.output, text("ok"));
    assert_eq!(drain(&mut rx).len(), 1);
}

#[test]
fn tool_definition_is_mcp_tool_json() {
    let all = load(CHAIN);
    let def = tool_definition(&all["outer"]);
    assert_eq!(
        def,
        json!({
            "name": "outer",
            "description": "Pipeline: call_mid (pipeline.mid)",
            "inputSchema": { "type": "object" },
        })
    );
    let all = load(FAN_OUT);
    assert_eq!(
        tool_definition(&all["fan"])["description"],
        "Pipeline: both (parallel: t.slow1, t.slow2, t.bad) → after (t.after) → report (one of: t.partial, else t.complete)"
    );
    let all = load(
        "[[pipelines]]\nname = \"d\"\ndescription = \"Does d\"\ninput_schema = { type = \"object\", properties = { q = { type = \"string\" } } }\n[[pipelines.steps]]\nid = \"s\"\ntool = \"t.a\"\n",
    );
    let def = tool_definition(&all["d"]);
    assert_eq!(def["description"], "Does d");
    assert_eq!(def["inputSchema"]["properties"]["q"]["type"], "string");
}

//! Composed pipelines: runs a `[[pipelines]]` entry over a [`ToolCaller`].
//!
//! - Steps run in order. Each step's arguments are resolved from `{{...}}`
//!   templates over the pipeline's input and the earlier steps' results: a
//!   string that is exactly one template takes the referenced JSON value
//!   (with its type); otherwise each template is interpolated as text (strings
//!   as they are, `null` as nothing, anything else as compact JSON).
//! - A step whose tool fails (the caller's error, or `isError`) stops the
//!   pipeline with [`PipelineError::StepFailed`], naming the step, its tool and
//!   why; the results recorded so far travel in the error.
//! - A `parallel` step runs its branches concurrently. A failing branch is
//!   recorded (`error` set) without disturbing the others; the step fails
//!   only when **every** branch failed ([`PipelineError::AllBranchesFailed`]).
//!   A branch whose arguments cannot be resolved counts as a failed branch.
//!   Later steps may test `steps.ID.BRANCH.error` to react to a partial failure.
//! - A `branch` step calls the tool of the first route whose condition holds,
//!   else the `default` tool.
//! - `pipeline.NAME` steps run the named pipeline directly (not through the
//!   caller) one level deeper; past `max_depth` (the smallest along the chain,
//!   never more than [`PIPELINE_MAX_DEPTH`]) the run fails with
//!   [`PipelineError::DepthLimit`]. The caller never sees `pipeline.*` tools.
//! - Cancellation is by dropping the future returned by [`run`]: every call in
//!   flight is dropped with it (the call path sends `notifications/cancelled`).
//!
//! What is kept per step is bounded: text at [`MAX_STEP_TEXT`] (cut with a
//! marker), structured content at [`MAX_STEP_STRUCTURED`] serialized bytes
//! (larger values are not kept, and references to them fail with a reason).
//! Only the last step's full output is kept, as the pipeline's output.

/// Puts every pipeline in the registry as the virtual tool `pipeline.NAME`.
pub async fn publish(registry: &crate::registry::Registry, cfg: &crate::config::Config) {
    let tools: Vec<rmcp::model::Tool> = cfg
        .pipelines
        .values()
        .filter_map(|p| serde_json::from_value(crate::pipeline::tool_definition(p)).ok())
        .collect();
    if tools.is_empty() {
        registry.remove(crate::config::PIPELINE_SERVER);
        return;
    }
    let built = tokio::task::spawn_blocking(move || {
        crate::registry::build_server_tools(
            crate::config::PIPELINE_SERVER,
            "pipeline|config",
            tools,
            &crate::config::ToolFilter::default(),
            &[],
            false,
        )
    })
    .await;
    if let Ok((st, warnings)) = built {
        for w in warnings {
            tracing::warn!(server = "pipeline", "{w}");
        }
        registry.publish(crate::config::PIPELINE_SERVER, st);
    }
}

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::config::{
    Condition, ConditionTest, PIPELINE_MAX_DEPTH, PIPELINE_SERVER, Piece, PipelineConfig, StepKind, ToolCall,
    parse_template, split_path,
};

/// Text kept per step (and per parallel branch) for templates and records.
pub const MAX_STEP_TEXT: usize = 64 * 1024;
/// Serialized structured content kept per step (and per parallel branch).
pub const MAX_STEP_STRUCTURED: usize = 1024 * 1024;
/// Length of a tool's error text or a result preview in messages and events.
const MAX_EXCERPT: usize = 1024;
const MAX_PREVIEW: usize = 200;

/// What a step's tool returned, in MCP terms.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// The `content` array of content blocks.
    pub content: Value,
    /// `structuredContent`.
    pub structured: Option<Value>,
    /// `isError`.
    pub is_error: bool,
}

impl StepOutput {
    /// The text of every `text` content block, joined by newlines.
    pub fn text(&self) -> String {
        let Some(blocks) = self.content.as_array() else {
            return String::new();
        };
        let texts: Vec<&str> = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        texts.join("\n")
    }
}

/// The future a [`ToolCaller`] returns.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<StepOutput, String>> + Send + 'a>>;

/// How the engine calls tools (the daemon implements it over its call path,
/// with the pipeline's depth). `Err` is why the call failed (unknown tool,
/// server unavailable, refused, timed out...).
pub trait ToolCaller: Send + Sync {
    fn call<'a>(&'a self, tool: &'a str, args: Value, depth: u32) -> CallFuture<'a>;
}

/// A step event for RunPipeline streams and logs. Parallel branches are named
/// `STEP.BRANCH`; steps of a nested pipeline `STEP/INNER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEvent {
    Started {
        step: String,
        tool: String,
    },
    /// `detail`: a preview of the result's text, or why it failed.
    Finished {
        step: String,
        ok: bool,
        detail: String,
    },
    /// A step that did not run because an earlier one failed.
    Skipped {
        step: String,
        why: String,
    },
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    /// The last step's output; for a final parallel step, the branches' records
    /// as a JSON object (in `structured`, and as JSON text in `content`).
    pub output: StepOutput,
    /// Every step's record by id: `{tool, text, structured, is_error, error}`
    /// (`is_error` is true exactly when `error`, why it failed, is set)
    /// (branch steps add `route`: the route's index or `"default"`); a parallel
    /// step's entry is an object of such records by branch id.
    pub steps: Value,
}

/// Why a run failed. Variants that carry `steps` hold the records of the
/// steps that ran, the failed one included.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid input for pipeline.{pipeline}: {why}")]
    InvalidInput { pipeline: String, why: String },
    #[error("pipeline.{pipeline}: step \"{step}\" ({tool}) failed: {why}")]
    StepFailed { pipeline: String, step: String, tool: String, why: String, steps: Value },
    #[error("pipeline.{pipeline}: step \"{step}\" failed: every parallel branch failed: {why}")]
    AllBranchesFailed { pipeline: String, step: String, why: String, steps: Value },
    #[error("pipeline.{pipeline}: step \"{step}\": cannot resolve {{{{{reference}}}}}: {why}")]
    Template { pipeline: String, step: String, reference: String, why: String, steps: Value },
    /// A `pipeline.NAME` step whose pipeline failed; `source` says how.
    #[error("pipeline.{pipeline}: step \"{step}\" ({tool}) failed: {source}")]
    Nested { pipeline: String, step: String, tool: String, source: Box<PipelineError>, steps: Value },
    #[error(
        "pipeline.{pipeline} would run {depth} pipelines deep, more than the max_depth of {max}: raise max_depth (at most {}) or nest fewer pipelines",
        PIPELINE_MAX_DEPTH
    )]
    DepthLimit { pipeline: String, depth: u32, max: u32 },
    #[error("unknown pipeline \"pipeline.{name}\" (is it still in the config?)")]
    UnknownPipeline { name: String },
}

impl PipelineError {
    /// The step records up to the failure, when the run got that far.
    pub fn steps(&self) -> Option<&Value> {
        match self {
            PipelineError::StepFailed { steps, .. }
            | PipelineError::AllBranchesFailed { steps, .. }
            | PipelineError::Template { steps, .. }
            | PipelineError::Nested { steps, .. } => Some(steps),
            PipelineError::InvalidInput { .. }
            | PipelineError::DepthLimit { .. }
            | PipelineError::UnknownPipeline { .. } => None,
        }
    }

    /// The root cause through nested pipelines (e.g. to pick a status code).
    pub fn innermost(&self) -> &PipelineError {
        match self {
            PipelineError::Nested { source, .. } => source.innermost(),
            other => other,
        }
    }
}

/// Runs `p` with `input` at nesting `depth` (0 for a call from an app or agent).
/// `all` resolves `pipeline.NAME` steps. Events are sent with `try_send`: a
/// slow or gone listener loses events, never stalls the run.
pub async fn run(
    p: &PipelineConfig,
    all: &BTreeMap<String, PipelineConfig>,
    input: Value,
    caller: &dyn ToolCaller,
    depth: u32,
    events: Option<mpsc::Sender<StepEvent>>,
) -> Result<PipelineRun, PipelineError> {
    let sink = Sink { tx: events, prefix: String::new() };
    run_at(p, all, input, caller, depth, PIPELINE_MAX_DEPTH, sink).await
}

/// The virtual tool's definition (name `NAME`, description, inputSchema) as
/// MCP tool JSON; the registry serves it as `pipeline.NAME`.
pub fn tool_definition(p: &PipelineConfig) -> Value {
    let description = if p.description.is_empty() { default_description(p) } else { p.description.clone() };
    json!({ "name": p.name, "description": description, "inputSchema": p.input_schema.json() })
}

/// "Pipeline: geo (maps.geocode) → both (parallel: ...) → ...", so agents
/// can still tell what an undocumented pipeline does.
fn default_description(p: &PipelineConfig) -> String {
    let steps: Vec<String> = p
        .steps
        .iter()
        .map(|s| match &s.kind {
            StepKind::Call(c) => format!("{} ({})", s.id, c.tool),
            StepKind::Parallel(bs) => {
                let tools: Vec<&str> = bs.iter().map(|b| b.call.tool.as_str()).collect();
                format!("{} (parallel: {})", s.id, tools.join(", "))
            }
            StepKind::Branch { routes, default } => {
                let tools: Vec<&str> = routes.iter().map(|r| r.call.tool.as_str()).collect();
                format!("{} (one of: {}, else {})", s.id, tools.join(", "), default.tool)
            }
        })
        .collect();
    format!("Pipeline: {}", steps.join(" → "))
}

/// Where events go, with the name prefix of a nested pipeline's steps.
#[derive(Clone)]
struct Sink {
    tx: Option<mpsc::Sender<StepEvent>>,
    prefix: String,
}

impl Sink {
    fn send(&self, event: StepEvent) {
        let Some(tx) = &self.tx else { return };
        let event = match event {
            StepEvent::Started { step, tool } => StepEvent::Started { step: self.name(&step), tool },
            StepEvent::Finished { step, ok, detail } => StepEvent::Finished { step: self.name(&step), ok, detail },
            StepEvent::Skipped { step, why } => StepEvent::Skipped { step: self.name(&step), why },
        };
        // Full or closed: events are advisory, the run goes on.
        let _ = tx.try_send(event);
    }

    fn name(&self, step: &str) -> String {
        format!("{}{step}", self.prefix)
    }

    fn nested(&self, step: &str) -> Sink {
        Sink { tx: self.tx.clone(), prefix: format!("{}{step}/", self.prefix) }
    }
}

type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<PipelineRun, PipelineError>> + Send + 'a>>;

/// [`run`] with the depth cap inherited from the calling pipelines; boxed
/// because nested pipelines recurse.
fn run_at<'a>(
    p: &'a PipelineConfig,
    all: &'a BTreeMap<String, PipelineConfig>,
    input: Value,
    caller: &'a dyn ToolCaller,
    depth: u32,
    limit: u32,
    sink: Sink,
) -> RunFuture<'a> {
    Box::pin(async move {
        let limit = limit.min(p.max_depth).min(PIPELINE_MAX_DEPTH);
        if depth > limit {
            return Err(PipelineError::DepthLimit { pipeline: p.name.clone(), depth, max: limit });
        }
        // Calls without arguments may arrive as null.
        let input = if input.is_null() { Value::Object(Map::new()) } else { input };
        p.input_schema.check(&input).map_err(|why| PipelineError::InvalidInput { pipeline: p.name.clone(), why })?;
        let mut r = Run { p, all, caller, depth, limit, sink, input, steps: Map::new() };
        let mut last = None;
        for (i, step) in p.steps.iter().enumerate() {
            let result = match &step.kind {
                StepKind::Call(call) => r.call_step(&step.id, call, None).await,
                StepKind::Branch { routes, default } => {
                    let chosen = routes.iter().position(|route| r.holds(&route.when));
                    match chosen {
                        Some(n) => r.call_step(&step.id, &routes[n].call, Some(json!(n))).await,
                        None => r.call_step(&step.id, default, Some(json!("default"))).await,
                    }
                }
                StepKind::Parallel(branches) => r.parallel_step(&step.id, branches).await,
            };
            match result {
                Ok(out) => last = Some(out),
                Err(e) => {
                    for later in &p.steps[i + 1..] {
                        let why = format!("step \"{}\" failed", step.id);
                        r.sink.send(StepEvent::Skipped { step: later.id.clone(), why });
                    }
                    return Err(e);
                }
            }
        }
        let output = last.unwrap_or(StepOutput { content: json!([]), structured: None, is_error: false });
        Ok(PipelineRun { output, steps: Value::Object(r.steps) })
    })
}

/// One run of one pipeline.
struct Run<'a> {
    p: &'a PipelineConfig,
    all: &'a BTreeMap<String, PipelineConfig>,
    caller: &'a dyn ToolCaller,
    depth: u32,
    limit: u32,
    sink: Sink,
    input: Value,
    /// Records by step id, as templates see them under `steps`.
    steps: Map<String, Value>,
}

/// Why one tool call failed.
enum Failure {
    /// The caller's error or the tool's `isError` text.
    Tool(String),
    /// A nested pipeline's error, kept whole for [`PipelineError::Nested`].
    Nested(PipelineError),
}

impl Failure {
    fn why(&self) -> String {
        match self {
            Failure::Tool(why) => why.clone(),
            Failure::Nested(e) => excerpt(&e.to_string(), MAX_EXCERPT),
        }
    }
}

impl Run<'_> {
    /// A `tool` step, or the chosen call of a `branch` step (`route` set).
    async fn call_step(
        &mut self,
        id: &str,
        call: &ToolCall,
        route: Option<Value>,
    ) -> Result<StepOutput, PipelineError> {
        let args = match self.resolve_args(&call.args) {
            Ok(args) => args,
            Err((reference, why)) => {
                self.sink.send(StepEvent::Skipped {
                    step: id.to_owned(),
                    why: format!("cannot resolve {{{{{reference}}}}}: {why}"),
                });
                return Err(PipelineError::Template {
                    pipeline: self.p.name.clone(),
                    step: id.to_owned(),
                    reference,
                    why,
                    steps: Value::Object(self.steps.clone()),
                });
            }
        };
        self.sink.send(StepEvent::Started { step: id.to_owned(), tool: call.tool.clone() });
        let (output, failure) = self.invoke(id, call, args).await;
        let why = failure.as_ref().map(Failure::why);
        let mut rec = record(&call.tool, output.as_ref(), why.as_deref());
        let detail = match (&why, &output) {
            (Some(why), _) => why.clone(),
            (None, Some(out)) => excerpt(&out.text(), MAX_PREVIEW),
            (None, None) => String::new(),
        };
        let detail = match &route {
            Some(Value::String(_)) => format!("default route: {detail}"),
            Some(n) => format!("route {n}: {detail}"),
            None => detail,
        };
        if let (Some(route), Value::Object(m)) = (route, &mut rec) {
            m.insert("route".to_owned(), route);
        }
        self.steps.insert(id.to_owned(), rec);
        self.sink.send(StepEvent::Finished { step: id.to_owned(), ok: failure.is_none(), detail });
        let steps = || Value::Object(self.steps.clone());
        match (output, failure) {
            (Some(out), None) => Ok(out),
            (_, Some(Failure::Nested(source))) => Err(PipelineError::Nested {
                pipeline: self.p.name.clone(),
                step: id.to_owned(),
                tool: call.tool.clone(),
                source: Box::new(source),
                steps: steps(),
            }),
            (_, failure) => Err(PipelineError::StepFailed {
                pipeline: self.p.name.clone(),
                step: id.to_owned(),
                tool: call.tool.clone(),
                why: failure.map_or_else(|| "no result".to_owned(), |f| f.why()),
                steps: steps(),
            }),
        }
    }

    /// Runs every branch concurrently; fails only when all of them failed.
    async fn parallel_step(
        &mut self,
        id: &str,
        branches: &[crate::config::ParallelBranch],
    ) -> Result<StepOutput, PipelineError> {
        let this = &*self;
        let runs = branches.iter().map(|b| async move {
            let name = format!("{id}.{}", b.id);
            let args = match this.resolve_args(&b.call.args) {
                Ok(args) => args,
                Err((reference, why)) => {
                    let why = format!("cannot resolve {{{{{reference}}}}}: {why}");
                    this.sink.send(StepEvent::Skipped { step: name, why: why.clone() });
                    return (record(&b.call.tool, None, Some(&why)), Some(why));
                }
            };
            this.sink.send(StepEvent::Started { step: name.clone(), tool: b.call.tool.clone() });
            let (output, failure) = this.invoke(&name, &b.call, args).await;
            let why = failure.as_ref().map(Failure::why);
            let detail = match (&why, &output) {
                (Some(why), _) => why.clone(),
                (None, Some(out)) => excerpt(&out.text(), MAX_PREVIEW),
                (None, None) => String::new(),
            };
            this.sink.send(StepEvent::Finished { step: name, ok: why.is_none(), detail });
            (record(&b.call.tool, output.as_ref(), why.as_deref()), why)
        });
        let results = futures::future::join_all(runs).await;

        let mut recs = Map::new();
        let mut failures = Vec::new();
        for (b, (rec, why)) in branches.iter().zip(results) {
            if let Some(why) = why {
                failures.push(format!("{}: {why}", b.id));
            }
            recs.insert(b.id.clone(), rec);
        }
        let all_failed = failures.len() == branches.len();
        let ok_count = branches.len() - failures.len();
        let detail = format!("{ok_count} of {} branches succeeded", branches.len());
        let value = Value::Object(recs);
        self.steps.insert(id.to_owned(), value.clone());
        self.sink.send(StepEvent::Finished { step: id.to_owned(), ok: !all_failed, detail });
        if all_failed {
            return Err(PipelineError::AllBranchesFailed {
                pipeline: self.p.name.clone(),
                step: id.to_owned(),
                why: failures.join("; "),
                steps: Value::Object(self.steps.clone()),
            });
        }
        let text = serde_json::to_string(&value).unwrap_or_default();
        Ok(StepOutput { content: json!([{ "type": "text", "text": text }]), structured: Some(value), is_error: false })
    }

    /// Calls one tool (or nested pipeline): the output when there is one, and
    /// why it failed when it did (an `isError` result has both).
    async fn invoke(&self, name: &str, call: &ToolCall, args: Value) -> (Option<StepOutput>, Option<Failure>) {
        if let Some((PIPELINE_SERVER, nested)) = call.tool.split_once('.') {
            let Some(child) = self.all.get(nested) else {
                return (None, Some(Failure::Nested(PipelineError::UnknownPipeline { name: nested.to_owned() })));
            };
            let sink = self.sink.nested(name);
            return match run_at(child, self.all, args, self.caller, self.depth + 1, self.limit, sink).await {
                Ok(run) => (Some(run.output), None),
                Err(e) => (None, Some(Failure::Nested(e))),
            };
        }
        match self.caller.call(&call.tool, args, self.depth).await {
            Ok(out) if out.is_error => {
                let text = out.text();
                let why = match text.trim() {
                    "" => "the tool returned an error without text".to_owned(),
                    t => format!("the tool returned an error: {}", excerpt(t, MAX_EXCERPT)),
                };
                (Some(out), Some(Failure::Tool(why)))
            }
            Ok(out) => (Some(out), None),
            Err(why) => (None, Some(Failure::Tool(excerpt(&why, MAX_EXCERPT)))),
        }
    }

    /// The arguments with every template resolved; the error is (reference, why).
    fn resolve_args(&self, args: &Map<String, Value>) -> Result<Value, (String, String)> {
        let mut out = Map::new();
        for (k, v) in args {
            out.insert(k.clone(), self.resolve(v)?);
        }
        Ok(Value::Object(out))
    }

    fn resolve(&self, v: &Value) -> Result<Value, (String, String)> {
        Ok(match v {
            Value::String(s) => self.resolve_string(s)?,
            Value::Array(items) => Value::Array(items.iter().map(|i| self.resolve(i)).collect::<Result<_, _>>()?),
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, item) in m {
                    out.insert(k.clone(), self.resolve(item)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn resolve_string(&self, s: &str) -> Result<Value, (String, String)> {
        if !s.contains("{{") {
            return Ok(Value::String(s.to_owned()));
        }
        // Checked at load; a hand-built config may still hold bad syntax.
        let pieces = parse_template(s).map_err(|why| (s.to_owned(), why))?;
        if let [Piece::Ref(r)] = pieces[..] {
            return self.lookup(r).cloned().map_err(|why| (r.to_owned(), why));
        }
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Ref(r) => match self.lookup(r).map_err(|why| (r.to_owned(), why))? {
                    Value::String(text) => out.push_str(text),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(Value::String(out))
    }

    /// The value a reference names; the error says which part is missing.
    fn lookup(&self, reference: &str) -> Result<&Value, String> {
        let segments = split_path(reference)?;
        let (root, rest) = match segments.split_first() {
            Some((&"input", rest)) => (&self.input, rest),
            Some((&"steps", [id, rest @ ..])) => match self.steps.get(*id) {
                Some(rec) => (rec, rest),
                None => return Err(format!("step \"{id}\" has no result (it has not run)")),
            },
            _ => return Err("references start with input.NAME or steps.ID".to_owned()),
        };
        let mut here = root;
        let mut at = segments[..segments.len() - rest.len()].join(".");
        let mut previous = "";
        for seg in rest {
            here = match here {
                Value::Object(m) => match m.get(*seg) {
                    Some(v) => v,
                    None => return Err(format!("{at} has no \"{seg}\"")),
                },
                Value::Array(items) => match seg.parse::<usize>() {
                    Ok(i) => match items.get(i) {
                        Some(v) => v,
                        None => return Err(format!("{at} has no index {i} (length {})", items.len())),
                    },
                    Err(_) => return Err(format!("{at} is an array: \"{seg}\" is not an index")),
                },
                Value::Null if previous == "structured" => {
                    return Err(format!(
                        "{at} is absent (the tool returned no structuredContent, or more than {MAX_STEP_STRUCTURED} bytes of it)"
                    ));
                }
                other => return Err(format!("{at} is {}, it has no \"{seg}\"", a_type(other))),
            };
            at.push('.');
            at.push_str(seg);
            previous = seg;
        }
        Ok(here)
    }

    /// Whether a route's condition holds; a path without a (non-null) value
    /// fails every test except `not_equals` and `exists = false`.
    fn holds(&self, cond: &Condition) -> bool {
        let value = self.lookup(&cond.path).ok().filter(|v| !v.is_null());
        match &cond.test {
            ConditionTest::Exists(want) => value.is_some() == *want,
            ConditionTest::Equals(x) => value.is_some_and(|v| json_eq(v, x)),
            ConditionTest::NotEquals(x) => !value.is_some_and(|v| json_eq(v, x)),
            ConditionTest::Contains(x) => match value {
                Some(Value::String(s)) => x.as_str().is_some_and(|n| s.contains(n)),
                Some(Value::Array(items)) => items.iter().any(|i| json_eq(i, x)),
                Some(Value::Object(m)) => x.as_str().is_some_and(|k| m.contains_key(k)),
                _ => false,
            },
            ConditionTest::Matches(p) => value.and_then(Value::as_str).is_some_and(|s| p.is_match(s)),
        }
    }
}

/// A step's record: what templates, conditions and callers see.
fn record(tool: &str, output: Option<&StepOutput>, error: Option<&str>) -> Value {
    let text = output.map(|o| cap_text(o.text())).unwrap_or_default();
    let structured = output.and_then(|o| o.structured.clone()).filter(|s| json_size(s) <= MAX_STEP_STRUCTURED);
    json!({
        "tool": tool,
        "text": text,
        "structured": structured,
        "is_error": error.is_some(),
        "error": error,
    })
}

/// `text` cut to [`MAX_STEP_TEXT`] bytes (on a character boundary) with a marker.
fn cap_text(mut text: String) -> String {
    if text.len() <= MAX_STEP_TEXT {
        return text;
    }
    let total = text.len();
    let mut end = MAX_STEP_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("\n[mcpd: step text cut at {end} of {total} bytes]"));
    text
}

/// The first `max` bytes of `text` (on a character boundary), with "…" when cut.
fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Serialized size of `v` without building the string.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value into a counter cannot fail; on failure count what we saw.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// JSON equality where numbers compare by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y),
            },
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn a_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

//! Pipelines through the call core: `pipeline.NAME` runs the engine, and every step is its
//! own call through the core (trust, policy, schema, deadline, redaction, audit).
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock};
use tokio::sync::mpsc;

use super::{CallEnv, CallOutcome, CallRequest, Caller, parse_arguments, result::bound_result};
use crate::{
    error::CallError,
    pipeline::{CallFuture, PipelineError, StepEvent, StepOutput, ToolCaller},
};

/// Calls the engine's leaf tools through the normal call path (trust, policy, validation,
/// deadlines, redaction) on behalf of a pipeline.
struct PipelineCaller<'e> {
    env: &'e CallEnv<'e>,
    /// The app that asked, with this pipeline and the run's id: what each step's audit
    /// record names.
    caller: Caller,
    deadline: tokio::time::Instant,
}

impl ToolCaller for PipelineCaller<'_> {
    fn call<'a>(&'a self, tool: &'a str, args: serde_json::Value, _depth: u32) -> CallFuture<'a> {
        Box::pin(async move {
            let remaining = self.deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err("the pipeline's deadline passed".to_owned());
            }
            let args = args.to_string();
            let req = CallRequest { name: tool, arguments_json: &args, timeout: Some(remaining), confirm: false };
            match Box::pin(self.env.call_recorded(&self.caller, req, None)).await {
                Ok(o) => Ok(StepOutput {
                    content: serde_json::to_value(&o.result.content).unwrap_or(serde_json::Value::Null),
                    structured: o.result.structured_content.clone(),
                    is_error: o.result.is_error.unwrap_or(false),
                }),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Runs `pipeline.NAME` as a tool call: its result is the last step's output, with every
/// step's record under `structuredContent.steps`.
pub(super) async fn call_pipeline(
    env: &CallEnv<'_>,
    caller: &Caller,
    req: CallRequest<'_>,
    name: &str,
    events: Option<mpsc::Sender<StepEvent>>,
) -> Result<CallOutcome, CallError> {
    let started = tokio::time::Instant::now();
    let Some(p) = env.live.pipelines().get(name) else {
        return Err(CallError::NoSuchTool { name: req.name.to_owned(), suggestion: None });
    };
    let input = serde_json::Value::Object(parse_arguments(req.arguments_json)?);
    let timeout = req.timeout.unwrap_or(PIPELINE_TIMEOUT);
    // A run that is already part of one (an agent's, or an outer pipeline's) keeps its id, so
    // one id follows every call a run makes.
    let id = caller.run.as_ref().map(|r| r.id.clone()).unwrap_or_else(super::run_id);
    let caller =
        PipelineCaller { env, caller: caller.in_run(format!("pipeline.{name}"), id), deadline: started + timeout };
    let run = tokio::time::timeout(timeout, crate::pipeline::run(p, env.live.pipelines(), input, &caller, 0, events))
        .await
        .map_err(|_| CallError::Deadline { tool: req.name.to_owned(), timeout })?;
    match run {
        Ok(done) => {
            let mut structured = match done.output.structured {
                Some(serde_json::Value::Object(m)) => m,
                Some(other) => {
                    let mut m = serde_json::Map::new();
                    m.insert("output".into(), other);
                    m
                }
                None => serde_json::Map::new(),
            };
            structured.insert("steps".into(), done.steps);
            let content: Vec<ContentBlock> = serde_json::from_value(done.output.content).unwrap_or_default();
            let mut result = CallToolResult::success(content);
            result.structured_content = Some(serde_json::Value::Object(structured));
            result.is_error = Some(done.output.is_error);
            let (result, truncated, original_bytes) = bound_result(result, env.live.max_result_bytes());
            Ok(CallOutcome { result, truncated, original_bytes, duration: started.elapsed(), redactions: 0 })
        }
        // A step's failure is the pipeline's answer, not a transport error: callers (and
        // models) read which step failed and why, with what the earlier steps produced.
        Err(e) => {
            let mut result = CallToolResult::error(vec![ContentBlock::text(e.to_string())]);
            if let Some(steps) = e.steps() {
                result.structured_content = Some(serde_json::json!({ "steps": steps }));
            }
            if matches!(e.innermost(), PipelineError::InvalidInput { .. }) {
                return Err(CallError::InvalidArguments { tool: req.name.to_owned(), details: e.to_string() });
            }
            let (result, truncated, original_bytes) = bound_result(result, env.live.max_result_bytes());
            Ok(CallOutcome { result, truncated, original_bytes, duration: started.elapsed(), redactions: 0 })
        }
    }
}

/// A pipeline without a caller deadline gets this long in all.
pub(super) const PIPELINE_TIMEOUT: Duration = Duration::from_secs(300);

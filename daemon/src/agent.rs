//! Bounded agent loops (`RunAgent`): a model from a configured provider plans, mcpd runs the
//! tools it picks through the normal call path, until a final answer or a limit.
//!
//! Limits: iterations, tool calls, tokens and a deadline. When a limit is near, the last model
//! turn is asked with tool use forbidden (`tool_choice: none`), so a run always ends with an
//! answer. Tool calls of one turn run in parallel and fail in isolation (a failure becomes an
//! error result the model reads). Tool names are mapped to LLM-safe aliases and back. The
//! run stops, and its in-flight calls are cancelled upstream, when `cancel` fires (the caller
//! went away).
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    call::{Caller, ToolRunner},
    config::glob_match,
    discovery::{self, Meta},
    llm::{ChatRequest, ChatResponse, Message, Part, Provider, Role, ToolChoice, ToolSpec},
    registry::ToolEntry,
};

/// Hard caps whatever the caller asks, so one run cannot monopolise a provider.
pub const MAX_ITERATIONS: u32 = 50;
pub const MAX_TOOL_CALLS: u32 = 200;
const DEFAULT_ITERATIONS: u32 = 10;
const DEFAULT_TOOL_CALLS: u32 = 50;
const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);
/// Most text of one tool result handed back to the model.
const MAX_RESULT_CHARS: usize = 32 * 1024;
/// Events queued for a slow caller before the run waits for it.
pub const EVENT_QUEUE: usize = 64;

/// What the caller asked for.
#[derive(Debug, Clone, Default)]
pub struct AgentSpec {
    pub task: String,
    /// `[llm.NAME]`; empty = the only (or first) configured provider.
    pub provider: String,
    /// Overrides the provider's model.
    pub model: String,
    pub system: String,
    /// Only tools of these servers (empty = all).
    pub servers: Vec<String>,
    /// Only tools whose `server.tool` name matches one of these globs (empty = all).
    pub tools: Vec<String>,
    pub max_iterations: u32,
    pub max_tool_calls: u32,
    /// Input + output tokens over the whole run (0 = no limit).
    pub max_tokens: u64,
    pub deadline: Option<Duration>,
    pub discovery: Discovery,
}

/// How a run offers its tools to the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Discovery {
    /// Every tool while they are at most the provider's `max_tools`, else [`Discovery::Search`].
    #[default]
    Auto,
    /// Every tool, however many.
    Full,
    /// Only the meta-tools of [`crate::discovery`]: the model searches the run's tools.
    Search,
}

/// One step of a run, streamed to the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    ModelTurn { iteration: u32, text: String, tool_calls: u32, input_tokens: u64, output_tokens: u64 },
    ToolCall { iteration: u32, id: String, tool: String, arguments: Value },
    ToolResult { iteration: u32, id: String, tool: String, is_error: bool, text: String },
    FinalAnswer { iteration: u32, text: String },
    LimitReached { limit: &'static str, detail: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no LLM provider named {0:?} is configured ([llm.NAME] in the config)")]
    NoSuchProvider(String),
    #[error("no LLM provider is configured: add an [llm.NAME] table to the config")]
    NoProvider,
    #[error("the task is empty")]
    EmptyTask,
    #[error("the LLM provider failed: {0}")]
    Llm(#[from] crate::llm::LlmError),
    #[error("the run was cancelled")]
    Cancelled,
}

/// Reversible, collision-free mapping between `server.tool` names and names LLM APIs accept
/// (`^[a-zA-Z0-9_-]{1,64}$`).
#[derive(Debug, Default, Clone)]
pub struct Aliases {
    to_alias: HashMap<String, String>,
    to_name: HashMap<String, String>,
}

impl Aliases {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut a = Aliases::default();
        for name in names {
            a.insert(name);
        }
        a
    }

    fn insert(&mut self, name: &str) {
        if self.to_alias.contains_key(name) {
            return;
        }
        // `.` separates server and tool; `__` keeps that visible to the model.
        let mut base: String = name
            .replacen('.', "__", 1)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect();
        let hash = hex8(name);
        if base.len() > 64 {
            base.truncate(55);
            base.push('_');
            base.push_str(&hash);
        }
        let mut alias = base.clone();
        let mut n = 2;
        while self.to_name.contains_key(&alias) {
            // Two names sanitised to the same alias: suffix until unique, still within 64.
            let suffix = format!("_{n}");
            alias = format!("{}{suffix}", &base[..base.len().min(64 - suffix.len())]);
            n += 1;
        }
        self.to_alias.insert(name.to_owned(), alias.clone());
        self.to_name.insert(alias, name.to_owned());
    }

    pub fn alias(&self, name: &str) -> Option<&str> {
        self.to_alias.get(name).map(String::as_str)
    }

    pub fn name(&self, alias: &str) -> Option<&str> {
        self.to_name.get(alias).map(String::as_str)
    }
}

/// The first 8 hex digits of the name's SHA-256.
fn hex8(s: &str) -> String {
    let hex = crate::integrity::fingerprint::sha256_hex(s.as_bytes());
    hex.strip_prefix("sha256:").unwrap_or(&hex).chars().take(8).collect()
}

/// Picks the provider: by name, else the only/first configured one.
pub fn pick_provider(providers: &BTreeMap<String, Provider>, name: &str) -> Result<Provider, AgentError> {
    if !name.is_empty() {
        return providers.get(name).cloned().ok_or_else(|| AgentError::NoSuchProvider(name.to_owned()));
    }
    providers.values().next().cloned().ok_or(AgentError::NoProvider)
}

/// The tools a run may use: the runner's model tools (trusted, model-visible, not stale),
/// selected by server and glob, by qualified name.
fn select_tools(runner: &dyn ToolRunner, spec: &AgentSpec) -> BTreeMap<String, Arc<ToolEntry>> {
    let mut out = BTreeMap::new();
    for t in runner.model_tools() {
        let q = t.qualified_name();
        if !spec.servers.is_empty() && !spec.servers.iter().any(|s| *s == t.server) {
            continue;
        }
        if !spec.tools.is_empty() && !spec.tools.iter().any(|g| glob_match(g, &q)) {
            continue;
        }
        out.insert(q, t);
    }
    out
}

/// The run's tools as the model is offered them, each under an LLM-safe alias.
fn full_specs(offered: &BTreeMap<String, Arc<ToolEntry>>) -> (Vec<ToolSpec>, Aliases) {
    let aliases = Aliases::new(offered.keys().map(String::as_str));
    let tools = offered
        .values()
        .filter_map(|t| {
            let alias = aliases.alias(&t.qualified_name())?.to_owned();
            Some(ToolSpec {
                name: alias,
                // The sanitised description: what a model may read.
                description: t.display.description.as_deref().unwrap_or_default().to_owned(),
                input_schema: Value::Object((*t.display.input_schema).clone()),
            })
        })
        .collect();
    (tools, aliases)
}

/// Runs the loop with `provider`, calling tools through `runner` as `caller` (the app, with
/// this run), streaming events to `events`; returns the final answer.
pub async fn run(
    runner: &dyn ToolRunner,
    provider: Provider,
    caller: &Caller,
    spec: AgentSpec,
    events: mpsc::Sender<AgentEvent>,
    cancel: CancellationToken,
) -> Result<String, AgentError> {
    if spec.task.trim().is_empty() {
        return Err(AgentError::EmptyTask);
    }
    let max_iterations = clamp(spec.max_iterations, DEFAULT_ITERATIONS, MAX_ITERATIONS);
    let max_tool_calls = clamp(spec.max_tool_calls, DEFAULT_TOOL_CALLS, MAX_TOOL_CALLS);
    let deadline = tokio::time::Instant::now() + spec.deadline.unwrap_or(DEFAULT_DEADLINE);
    let offered = select_tools(runner, &spec);
    let search = match spec.discovery {
        Discovery::Full => false,
        Discovery::Search => true,
        Discovery::Auto => offered.len() > provider.max_tools(),
    };
    let (tools, aliases) = if search { (meta_specs(), Aliases::default()) } else { full_specs(&offered) };
    let emit = |e: AgentEvent| {
        let events = events.clone();
        async move {
            // A caller that stopped reading is also a caller that went away.
            let _ = events.send(e).await;
        }
    };

    let mut messages = vec![Message::user_text(spec.task.clone())];
    let mut calls_used = 0u32;
    let mut tokens_used = 0u64;
    let mut forced_final: Option<(&'static str, String)> = None;
    for iteration in 1..=max_iterations {
        let last = iteration == max_iterations || forced_final.is_some();
        let req = ChatRequest {
            model: (!spec.model.is_empty()).then(|| spec.model.clone()),
            system: (!spec.system.is_empty()).then(|| spec.system.clone()),
            messages: messages.clone(),
            tools: tools.clone(),
            // The last turn forbids tool use so the run ends with an answer.
            tool_choice: if last { ToolChoice::None } else { ToolChoice::Auto },
            max_tokens: 4096,
            temperature: None,
            stop: Vec::new(),
        };
        let turn = tokio::select! {
            _ = cancel.cancelled() => return Err(AgentError::Cancelled),
            r = tokio::time::timeout_at(deadline, provider.chat(&req)) => r,
        };
        let resp: ChatResponse = match turn {
            Ok(r) => r?,
            Err(_) => {
                let detail = "the deadline passed while the model was answering".to_owned();
                emit(AgentEvent::LimitReached { limit: "deadline", detail }).await;
                return Ok(String::new());
            }
        };
        tokens_used += resp.usage.input_tokens + resp.usage.output_tokens;
        let uses: Vec<(String, String, Value)> =
            resp.tool_uses().map(|(id, name, input)| (id.to_owned(), name.to_owned(), input.clone())).collect();
        emit(AgentEvent::ModelTurn {
            iteration,
            text: resp.text(),
            tool_calls: if last { 0 } else { uses.len() as u32 },
            input_tokens: resp.usage.input_tokens,
            output_tokens: resp.usage.output_tokens,
        })
        .await;
        if last || uses.is_empty() {
            let text = resp.text();
            emit(AgentEvent::FinalAnswer { iteration, text: text.clone() }).await;
            let (limit, detail) = match forced_final {
                Some(f) => f,
                None if !uses.is_empty() => {
                    ("iterations", format!("{max_iterations} iterations; the last turn was asked without tools"))
                }
                None => return Ok(text),
            };
            emit(AgentEvent::LimitReached { limit, detail }).await;
            return Ok(text);
        }
        messages.push(Message { role: Role::Assistant, content: resp.content.clone() });

        // Run this turn's calls in parallel; calls past the budget are answered, not run.
        let mut results = Vec::new();
        let mut runs = Vec::new();
        for (id, alias, input) in uses {
            let step = if search {
                meta_step(runner, &offered, &alias, &input)
            } else {
                match aliases.name(&alias) {
                    Some(tool) => Step::Run { tool: tool.to_owned(), input },
                    None => Step::Answer {
                        tool: alias.clone(),
                        input,
                        is_error: true,
                        text: "no such tool; use one of the tools offered".to_owned(),
                    },
                }
            };
            let (tool, input) = match step {
                Step::Answer { tool, input, is_error, text } => {
                    emit(AgentEvent::ToolCall { iteration, id: id.clone(), tool: tool.clone(), arguments: input })
                        .await;
                    results.push((id, tool, is_error, text));
                    continue;
                }
                Step::Run { tool, input } => (tool, input),
            };
            emit(AgentEvent::ToolCall { iteration, id: id.clone(), tool: tool.clone(), arguments: input.clone() })
                .await;
            if calls_used >= max_tool_calls {
                results.push((id, tool, true, format!("not run: the tool call limit ({max_tool_calls}) is reached")));
                continue;
            }
            calls_used += 1;
            runs.push(async move {
                let args = if input.is_null() { "{}".to_owned() } else { input.to_string() };
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let timeout = remaining.max(Duration::from_millis(1));
                match runner.run(caller, &tool, &args, timeout).await {
                    Ok(o) => {
                        let text = content_text(&o.result.content, o.result.structured_content.as_ref());
                        (id, tool.clone(), o.result.is_error.unwrap_or(false), text)
                    }
                    Err(e) => (id, tool.clone(), true, e.to_string()),
                }
            });
        }
        let ran = tokio::select! {
            _ = cancel.cancelled() => return Err(AgentError::Cancelled),
            r = tokio::time::timeout_at(deadline, futures::future::join_all(runs)) => r,
        };
        match ran {
            Ok(done) => results.extend(done),
            Err(_) => {
                let detail = "the deadline passed while tools were running (they were cancelled)".to_owned();
                emit(AgentEvent::LimitReached { limit: "deadline", detail }).await;
                return Ok(String::new());
            }
        }
        let mut parts = Vec::new();
        for (id, tool, is_error, text) in results {
            emit(AgentEvent::ToolResult { iteration, id: id.clone(), tool, is_error, text: text.clone() }).await;
            parts.push(Part::ToolResult { tool_use_id: id, content: vec![Part::Text(text)], is_error });
        }
        messages.push(Message { role: Role::User, content: parts });
        if calls_used >= max_tool_calls {
            forced_final = Some(("tool_calls", format!("{max_tool_calls} tool calls")));
        } else if spec.max_tokens > 0 && tokens_used >= spec.max_tokens {
            forced_final = Some(("tokens", format!("{tokens_used} of {} tokens used", spec.max_tokens)));
        }
    }
    // Unreachable in practice: the last iteration always returns above.
    Ok(String::new())
}

/// What one tool use of the model comes to.
enum Step {
    /// A tool call through the call path (`tool` is `server.tool`).
    Run { tool: String, input: Value },
    /// Answered without calling anything: a search, a description, or a mistake.
    Answer { tool: String, input: Value, is_error: bool, text: String },
}

/// The meta-tools as a model is offered them.
fn meta_specs() -> Vec<ToolSpec> {
    discovery::meta_tools()
        .into_iter()
        .map(|m| ToolSpec {
            name: m.name.to_owned(),
            description: m.description.to_owned(),
            input_schema: Value::Object(m.input_schema),
        })
        .collect()
}

/// One meta-tool use of a search run, over the run's `offered` tools (named `server.tool`).
fn meta_step(runner: &dyn ToolRunner, offered: &BTreeMap<String, Arc<ToolEntry>>, alias: &str, input: &Value) -> Step {
    let answer = |tool: &str, is_error: bool, text: String| Step::Answer {
        tool: tool.to_owned(),
        input: input.clone(),
        is_error,
        text,
    };
    let args = input.as_object().cloned().unwrap_or_default();
    // Models also write the alias form `server__tool`.
    let resolve = |name: &str| {
        offered
            .get_key_value(name)
            .or_else(|| offered.get_key_value(&name.replacen("__", ".", 1)))
            .ok_or_else(|| format!("no tool {name:?} is offered: search_tools finds the tools there are"))
    };
    match discovery::parse(alias, &args) {
        None => answer(
            alias,
            true,
            format!("no such tool; use {} to find tools, then {} to call one", discovery::SEARCH, discovery::CALL),
        ),
        Some(Err(why)) => answer(alias, true, why),
        Some(Ok(Meta::Search { query, k })) => {
            let visible = |server: &str, name: &str| offered.contains_key(&format!("{server}.{name}"));
            let hits = runner.search(&query, k, &visible);
            let found = hits.iter().filter_map(|h| {
                let (q, t) = offered.get_key_value(&format!("{}.{}", h.server, h.name))?;
                Some((q.clone(), t.as_ref(), h.score))
            });
            answer(discovery::SEARCH, false, discovery::search_result(&query, found).to_string())
        }
        Some(Ok(Meta::Describe { name })) => match resolve(&name) {
            Ok((q, t)) => answer(discovery::DESCRIBE, false, discovery::describe_result(q, t).to_string()),
            Err(why) => answer(discovery::DESCRIBE, true, why),
        },
        Some(Ok(Meta::Call { name, arguments })) => match resolve(&name) {
            Ok((q, _)) => Step::Run { tool: q.clone(), input: Value::Object(arguments) },
            Err(why) => answer(discovery::CALL, true, why),
        },
    }
}

fn clamp(asked: u32, default: u32, max: u32) -> u32 {
    if asked == 0 { default } else { asked.min(max) }
}

/// What the model reads of a tool result: its text blocks (others summarised), else the
/// structured content, cut to a bound.
fn content_text(content: &[rmcp::model::ContentBlock], structured: Option<&Value>) -> String {
    let mut out = String::new();
    for block in content {
        match block.as_text() {
            Some(t) => out.push_str(&t.text),
            None => out.push_str(&format!("[{} content omitted]", block_kind(block))),
        }
        out.push('\n');
    }
    if out.trim().is_empty()
        && let Some(s) = structured
    {
        out = s.to_string();
    }
    if out.len() > MAX_RESULT_CHARS {
        let mut cut = MAX_RESULT_CHARS;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n[mcpd: tool result truncated for the model]");
    }
    out.trim_end().to_owned()
}

fn block_kind(block: &rmcp::model::ContentBlock) -> String {
    serde_json::to_value(block)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_owned)))
        .unwrap_or_else(|| "non-text".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_llm_safe_reversible_and_unique() {
        let long = format!("srv.{}", "x".repeat(120));
        let names = ["files.read_file", "files.read.file", "git.status", long.as_str(), "a.b-c"];
        let a = Aliases::new(names);
        let re = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        let mut seen = std::collections::HashSet::new();
        for n in names {
            let alias = a.alias(n).unwrap();
            assert!(re(alias), "{alias}");
            assert!(seen.insert(alias.to_owned()), "duplicate alias {alias}");
            assert_eq!(a.name(alias), Some(n));
        }
        assert_eq!(a.alias("files.read_file"), Some("files__read_file"));
    }

    #[test]
    fn run_ids_are_random_128_bit() {
        let (a, b) = (crate::call::run_id(), crate::call::run_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}

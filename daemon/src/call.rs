//! The call path: resolve `server.tool`, validate arguments against the inputSchema,
//! send with a deadline and a concurrency bound, cancel upstream when abandoned, and
//! bound the result handed back to the app.
use std::{sync::Arc, time::Duration};

use rmcp::{
    model::{
        CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock, ProgressNotificationParam,
        ServerResult,
    },
    service::{PeerRequestOptions, RoleClient, ServiceError},
};
use tokio::sync::mpsc;

use std::collections::BTreeMap;

use crate::{
    config::PipelineConfig,
    error::CallError,
    pipeline::{CallFuture, PipelineError, StepEvent, StepOutput, ToolCaller},
    policy::{Policy, Refusal},
    registry::{Registry, ToolEntry},
    supervisor::Supervisor,
    trust::{Trust, Verdict},
    upstream::Upstream,
    util::unix_ms,
};

/// How many schema violations a message lists before "and N more".
const MAX_LISTED_VIOLATIONS: usize = 5;

/// A tool result as mcpd hands it to apps.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub result: CallToolResult,
    pub truncated: bool,
    pub original_bytes: usize,
    pub duration: Duration,
    /// Secrets removed from the result.
    pub redactions: u32,
}

/// Sends `notifications/cancelled` if the call is dropped before its answer arrives
/// (the app went away), so the server stops working for nobody.
struct CancelOnDrop {
    peer: Arc<rmcp::Peer<RoleClient>>,
    id: Option<rmcp::model::RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let peer = self.peer.clone();
            // Drop cannot await; the notification is best-effort by nature.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let n = rmcp::model::CancelledNotification::new(rmcp::model::CancelledNotificationParam::new(
                        Some(id),
                        Some("the caller went away".into()),
                    ));
                    let _ = peer.send_notification(n.into()).await;
                });
            }
        }
    }
}

/// What a call needs from the daemon.
pub struct CallEnv<'a> {
    pub registry: &'a Registry,
    /// Answers what a stateless-era server asks for mid-call (`input_required`).
    pub requests: &'a crate::requests::ServerRequests,
    /// `[[pipelines]]`, callable as `pipeline.NAME`.
    pub pipelines: &'a BTreeMap<String, PipelineConfig>,
    pub supervisor: &'a Supervisor,
    pub trust: &'a Trust,
    pub policy: &'a Policy,
    pub max_result_bytes: usize,
    /// Step-up re-authorization when a server answers 403 `insufficient_scope`.
    pub oauth: &'a Arc<crate::oauth::OAuth>,
}

/// One call as an app asked for it.
#[derive(Debug, Clone, Copy)]
pub struct CallRequest<'a> {
    pub name: &'a str,
    pub arguments_json: &'a str,
    pub timeout: Option<Duration>,
    /// The caller confirmed a destructive tool.
    pub confirm: bool,
    /// Who is calling ("uid:U pid:P"), for per-app limits and the audit log.
    pub app: &'a str,
}

/// A call that passed every check and may be sent.
pub struct Authorized {
    pub upstream: Arc<Upstream>,
    pub entry: Arc<ToolEntry>,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// Everything mcpd checks before a call leaves it, in order: the name resolves (or is
/// denied by the server's filter), the definition is trusted (its fingerprint checked
/// against the pin on every call, not only at refresh), a destructive tool is confirmed
/// when the config asks for it, rate limits, and the arguments match the inputSchema.
pub fn authorize(env: &CallEnv<'_>, req: &CallRequest<'_>) -> Result<Authorized, CallError> {
    let qualified = req.name;
    let snapshot = env.registry.snapshot();
    let Some((server, tool)) = qualified.split_once('.') else {
        return Err(CallError::Unqualified(qualified.to_owned()));
    };
    let upstream = env.supervisor.upstream(server).ok_or_else(|| CallError::NoSuchServer(server.to_owned()))?;
    let Some((_, entry)) = snapshot.resolve(qualified) else {
        if !upstream.config.tools.allows(tool) {
            return Err(CallError::Denied {
                tool: qualified.to_owned(),
                why: format!("the tools filter of [servers.{server}] does not allow it"),
            });
        }
        return Err(CallError::NoSuchTool { name: qualified.to_owned(), suggestion: snapshot.suggest(qualified) });
    };
    if let Verdict::Quarantined(reason) = env.trust.verdict(&upstream.config, &upstream.identity, entry) {
        return Err(CallError::Quarantined { tool: qualified.to_owned(), reason });
    }
    let destructive = entry.tool.annotations.as_ref().and_then(|a| a.destructive_hint).unwrap_or(false);
    if destructive && upstream.config.confirm_destructive && !req.confirm {
        return Err(CallError::Denied {
            tool: qualified.to_owned(),
            why: format!(
                "it is annotated destructive and [servers.{server}] sets confirm_destructive: repeat the call with confirmation (`mcpd call --yes`, or `confirm` in CallToolRequest)"
            ),
        });
    }
    env.policy.check(req.app, server, qualified).map_err(|Refusal::RateLimited { scope, rate, retry_after }| {
        CallError::RateLimited { scope, rate: rate.to_string(), retry_after }
    })?;
    let arguments = parse_arguments(req.arguments_json)?;
    if let Some(v) = &entry.validator {
        let value = serde_json::Value::Object(arguments.clone());
        let errors: Vec<String> = v
            .iter_errors(&value)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{e} (at {at})") }
            })
            .collect();
        if !errors.is_empty() {
            let mut details = errors.iter().take(MAX_LISTED_VIOLATIONS).cloned().collect::<Vec<_>>().join("; ");
            if errors.len() > MAX_LISTED_VIOLATIONS {
                details.push_str(&format!("; and {} more", errors.len() - MAX_LISTED_VIOLATIONS));
            }
            return Err(CallError::InvalidArguments { tool: qualified.to_owned(), details });
        }
    }
    Ok(Authorized { upstream, entry: entry.clone(), arguments })
}

pub async fn call_tool(
    env: &CallEnv<'_>,
    req: CallRequest<'_>,
    progress: Option<mpsc::Sender<ProgressNotificationParam>>,
) -> Result<CallOutcome, CallError> {
    if let Some(name) = req.name.strip_prefix("pipeline.") {
        return call_pipeline(env, req, name, None).await;
    }
    let started = tokio::time::Instant::now();
    let Authorized { upstream, entry, arguments } = authorize(env, &req)?;
    let attempt = |arguments, progress| call_authorized(env, &req, &upstream, &entry, arguments, started, progress);
    match attempt(arguments.clone(), progress.clone()).await {
        Ok(o) => Ok(o),
        Err(Failed::Call(e)) => Err(e),
        // Re-authorized for the scope the server asked for: the call was never run, so it is
        // safe to send again, once.
        Err(Failed::SteppedUp) => match Box::pin(attempt(arguments, progress)).await {
            Ok(o) => Ok(o),
            Err(Failed::Call(e)) => Err(e),
            Err(Failed::SteppedUp) => Err(CallError::Unauthorized {
                server: upstream.name.clone(),
                why: "the server asked for more scope again after a step-up login; mcpd authorized it, call again"
                    .to_owned(),
            }),
        },
    }
}

/// How one attempt at a call ended without a result.
enum Failed {
    Call(CallError),
    /// Refused for its scope (403), and a step-up login for it completed: worth one retry.
    SteppedUp,
}

impl From<CallError> for Failed {
    fn from(e: CallError) -> Self {
        Failed::Call(e)
    }
}

async fn call_authorized(
    env: &CallEnv<'_>,
    req: &CallRequest<'_>,
    upstream: &Arc<Upstream>,
    entry: &ToolEntry,
    arguments: serde_json::Map<String, serde_json::Value>,
    started: tokio::time::Instant,
    progress: Option<mpsc::Sender<ProgressNotificationParam>>,
) -> Result<CallOutcome, Failed> {
    let qualified = req.name;
    let server = upstream.name.as_str();
    let unavailable = || unavailable(server, upstream);
    let peer = upstream.peer().ok_or_else(unavailable)?;
    let timeout = req.timeout.unwrap_or(upstream.config.call_timeout);
    let deadline = started + timeout;

    let _permit = tokio::time::timeout_at(deadline, upstream.permits.acquire())
        .await
        .map_err(|_| CallError::Busy { server: server.to_owned(), limit: upstream.config.max_concurrency })?
        .map_err(|_| unavailable())?;

    let mut params = CallToolRequestParams::new(entry.tool.name.clone()).with_arguments(arguments);
    // Stateless era (MRTR): the server may answer `input_required` with requests to fulfil
    // (sampling, elicitation, roots); mcpd answers them like their session-era forms and
    // retries with the answers and the server's opaque state, a bounded number of rounds.
    let mut rounds = 0usize;
    let result = loop {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params.clone()));
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        // rmcp sends notifications/cancelled itself when this timeout fires.
        let handle = match peer.send_request_with_option(request, PeerRequestOptions::with_timeout(remaining)).await {
            Ok(h) => h,
            Err(e) => return Err(refused_or_lost(env, upstream, e, deadline).await),
        };
        let token = handle.progress_token.clone();
        if let Some(tx) = &progress {
            upstream.watch_progress(token.clone(), tx.clone());
        }
        let mut guard = CancelOnDrop { peer: peer.clone(), id: Some(handle.id.clone()) };
        let response = handle.await_response().await;
        guard.id = None;
        upstream.unwatch_progress(&token);

        match response {
            Ok(ServerResult::CallToolResult(r)) => break r,
            Ok(ServerResult::InputRequiredResult(ir)) => {
                rounds += 1;
                if rounds > crate::requests::MAX_MRTR_ROUNDS {
                    return Err(Failed::Call(CallError::Protocol {
                        server: server.to_owned(),
                        what: format!(
                            "the server kept asking for input after {} rounds",
                            crate::requests::MAX_MRTR_ROUNDS
                        ),
                    }));
                }
                let asked = serde_json::to_value(&ir.input_requests).unwrap_or(serde_json::Value::Null);
                let answers = tokio::time::timeout_at(deadline, env.requests.fulfil(upstream, &asked))
                    .await
                    .map_err(|_| CallError::Deadline { tool: qualified.to_owned(), timeout })?
                    .map_err(|e| CallError::InputRefused {
                        tool: qualified.to_owned(),
                        reason: e.message.to_string(),
                    })?;
                params.input_responses = (!answers.is_empty()).then_some(answers);
                // Opaque and untrusted: echoed verbatim, never inspected.
                params.request_state = ir.request_state;
            }
            Ok(other) => {
                return Err(Failed::Call(CallError::Protocol {
                    server: server.to_owned(),
                    what: format!("expected a tool result, got {}", result_kind(&other)),
                }));
            }
            Err(ServiceError::Timeout { .. }) => {
                return Err(Failed::Call(CallError::Deadline { tool: qualified.to_owned(), timeout }));
            }
            Err(ServiceError::McpError(e)) => {
                return Err(Failed::Call(CallError::Upstream {
                    server: server.to_owned(),
                    code: e.code.0,
                    message: e.message.to_string(),
                }));
            }
            Err(e) => return Err(refused_or_lost(env, upstream, e, deadline).await),
        }
    };
    env.oauth.call_succeeded(server);
    let (mut result, truncated, original_bytes) = bound_result(result, env.max_result_bytes);
    let redactions = if upstream.config.redact_secrets { redact_result(&mut result) } else { 0 };
    Ok(CallOutcome { result, truncated, original_bytes, duration: started.elapsed(), redactions })
}

/// Calls the engine's leaf tools through the normal call path (trust, policy, validation,
/// deadlines, redaction) on behalf of a pipeline.
struct PipelineCaller<'e> {
    env: &'e CallEnv<'e>,
    app: String,
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
            let req = CallRequest {
                name: tool,
                arguments_json: &args,
                timeout: Some(remaining),
                confirm: false,
                app: &self.app,
            };
            match Box::pin(call_tool(self.env, req, None)).await {
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
pub async fn call_pipeline(
    env: &CallEnv<'_>,
    req: CallRequest<'_>,
    name: &str,
    events: Option<mpsc::Sender<StepEvent>>,
) -> Result<CallOutcome, CallError> {
    let started = tokio::time::Instant::now();
    let Some(p) = env.pipelines.get(name) else {
        return Err(CallError::NoSuchTool { name: req.name.to_owned(), suggestion: None });
    };
    let input = serde_json::Value::Object(parse_arguments(req.arguments_json)?);
    let timeout = req.timeout.unwrap_or(PIPELINE_TIMEOUT);
    let caller = PipelineCaller { env, app: format!("{} via pipeline.{name}", req.app), deadline: started + timeout };
    let run = tokio::time::timeout(timeout, crate::pipeline::run(p, env.pipelines, input, &caller, 0, events))
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
            let (result, truncated, original_bytes) = bound_result(result, env.max_result_bytes);
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
            let (result, truncated, original_bytes) = bound_result(result, env.max_result_bytes);
            Ok(CallOutcome { result, truncated, original_bytes, duration: started.elapsed(), redactions: 0 })
        }
    }
}

/// A pipeline without a caller deadline gets this long in all.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(300);

/// Replaces secrets in text blocks and structured content; returns how many were removed.
fn redact_result(result: &mut CallToolResult) -> u32 {
    let mut count = 0usize;
    for block in result.content.iter_mut() {
        let Some(text) = block.as_text() else { continue };
        let (clean, found) = crate::redact::redact_text(&text.text);
        if !found.is_empty() {
            count += found.iter().map(|r| r.count).sum::<usize>();
            *block = ContentBlock::text(clean.into_owned());
        }
    }
    if let Some(sc) = result.structured_content.as_mut() {
        count += crate::redact::redact_json(sc).iter().map(|r| r.count).sum::<usize>();
    }
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Why a server cannot take a request now, with its state and next retry.
pub(crate) fn unavailable(server: &str, upstream: &Upstream) -> CallError {
    let st = upstream.status();
    CallError::Unavailable {
        server: server.to_owned(),
        state: st.state.as_str(),
        next_retry_ms: (st.next_retry_unix_ms > 0).then(|| st.next_retry_unix_ms.saturating_sub(unix_ms())),
        last_error: st.last_error,
    }
}

/// Maps a failed request other than `tools/call` (whose deadline rmcp enforces itself).
pub(crate) fn service_error(server: &str, what: &str, e: ServiceError) -> CallError {
    match e {
        ServiceError::McpError(e) => {
            CallError::Upstream { server: server.to_owned(), code: e.code.0, message: e.message.to_string() }
        }
        ServiceError::UnexpectedResponse => {
            CallError::Protocol { server: server.to_owned(), what: format!("unexpected answer to {what}") }
        }
        other => lost(server, other),
    }
}

/// A failed send: a 401/403 from an OAuth server becomes a re-authorization (a step-up for
/// `insufficient_scope`, through the login hook when one is configured), anything else a
/// lost connection.
async fn refused_or_lost(
    env: &CallEnv<'_>,
    upstream: &Arc<Upstream>,
    e: ServiceError,
    deadline: tokio::time::Instant,
) -> Failed {
    let server = upstream.name.as_str();
    let unauthorized = |why: String| Failed::Call(CallError::Unauthorized { server: server.to_owned(), why });
    let oauth = upstream.config.oauth.as_ref().filter(|o| o.grant == crate::config::OAuthGrant::AuthorizationCode);
    if oauth.is_some() && crate::oauth::is_invalid_client(&e) {
        return unauthorized(env.oauth.registration_rejected(upstream).await);
    }
    let Some(challenge) = e.auth_challenge().map(str::to_owned) else { return lost(server, e).into() };
    let Some(oauth) = oauth else {
        return unauthorized(format!(
            "HTTP 401/403 ({challenge}); configure [servers.{server}.oauth] or its credentials"
        ));
    };
    if !crate::oauth::is_insufficient_scope(&challenge) {
        // The token was revoked or expired beyond refresh: the session reconnects and
        // shows `needs-auth` (starting the login hook, if any).
        upstream.auth_changed.notify_one();
        return unauthorized(format!("the server no longer accepts mcpd's token; run `mcpd auth login {server}`"));
    }
    let scope = crate::oauth::challenge_scope(&challenge).unwrap_or_default();
    let Some(attempt) = env.oauth.step_up(server, &challenge) else {
        return unauthorized(format!(
            "the server still asks for scope \"{scope}\" after {} authorizations; mcpd stopped asking (check the scopes the authorization server grants)",
            crate::oauth::MAX_STEP_UPS
        ));
    };
    if oauth.login_command.is_empty() {
        return unauthorized(format!(
            "the server needs scope \"{scope}\": run `mcpd auth login {server}` to grant it (step-up {attempt}/{})",
            crate::oauth::MAX_STEP_UPS
        ));
    }
    let before = upstream.status().connects;
    let login = match env.oauth.login(upstream.clone(), true, false).await {
        Ok(l) => l,
        Err(e) => return unauthorized(format!("the step-up login for scope \"{scope}\" failed: {e}")),
    };
    let mut phase = login.phase;
    let done = tokio::time::timeout_at(deadline, async {
        phase.wait_for(|p| *p != crate::oauth::LoginPhase::Pending).await.map(|p| p.clone())
    })
    .await;
    match done {
        Ok(Ok(crate::oauth::LoginPhase::Done)) => {}
        Ok(Ok(crate::oauth::LoginPhase::Failed(why))) => {
            return unauthorized(format!("the step-up login for scope \"{scope}\" failed: {why}"));
        }
        _ => return unauthorized(format!("the step-up login for scope \"{scope}\" did not finish in time")),
    }
    // The session reconnects with the new token; wait for it before the retry.
    while !(upstream.status().connects > before && upstream.status().state.is_connected()) {
        if tokio::time::Instant::now() >= deadline {
            return unauthorized("the server did not reconnect after the step-up login".to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Failed::SteppedUp
}

fn lost(server: &str, e: ServiceError) -> CallError {
    CallError::ConnectionLost { server: server.to_owned(), reason: e.to_string() }
}

fn result_kind(r: &ServerResult) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().take(3).cloned().collect::<Vec<_>>().join(",")))
        .unwrap_or_else(|| "an unknown result".into())
}

fn parse_arguments(json: &str) -> Result<serde_json::Map<String, serde_json::Value>, CallError> {
    if json.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(CallError::BadJson(format!("got {}", type_name(&other)))),
        Err(e) => Err(CallError::BadJson(e.to_string())),
    }
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Cuts a result to `max` bytes of serialized content: text is cut at a character
/// boundary, blocks that do not fit are dropped, and a final text block states the
/// original size so neither an app nor a model mistakes the cut for the whole.
pub fn bound_result(mut result: CallToolResult, max: usize) -> (CallToolResult, bool, usize) {
    let original = serde_json::to_vec(&result).map(|v| v.len()).unwrap_or(0);
    if original <= max {
        return (result, false, original);
    }
    let mut budget = max;
    let mut kept = Vec::new();
    for block in std::mem::take(&mut result.content) {
        let size = serde_json::to_vec(&block).map(|v| v.len()).unwrap_or(usize::MAX);
        if size <= budget {
            budget -= size;
            kept.push(block);
            continue;
        }
        if let Some(text) = block.as_text() {
            let mut cut = budget.min(text.text.len());
            while cut > 0 && !text.text.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut > 0 {
                kept.push(ContentBlock::text(text.text[..cut].to_owned()));
            }
        }
        budget = 0;
    }
    if result.structured_content.as_ref().and_then(|s| serde_json::to_vec(s).ok()).is_some_and(|v| v.len() > budget) {
        result.structured_content = None;
    }
    kept.push(ContentBlock::text(format!(
        "[mcpd: result truncated: the server sent {original} bytes, the limit is {max} bytes]"
    )));
    result.content = kept;
    (result, true, original)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_results_pass_untouched() {
        let r = CallToolResult::success(vec![ContentBlock::text("hello")]);
        let (out, cut, _) = bound_result(r.clone(), 1000);
        assert!(!cut);
        assert_eq!(out, r);
    }

    #[test]
    fn big_results_are_cut_with_a_marker() {
        let r = CallToolResult::success(vec![ContentBlock::text("é".repeat(10_000))]);
        let (out, cut, original) = bound_result(r, 1000);
        assert!(cut);
        assert!(original > 20_000);
        let last = out.content.last().and_then(|c| c.as_text()).unwrap();
        assert!(last.text.contains(&original.to_string()), "{}", last.text);
        let first = out.content[0].as_text().unwrap();
        assert!(first.text.len() <= 1000);
    }

    #[test]
    fn arguments_must_be_objects() {
        assert!(parse_arguments("").unwrap().is_empty());
        assert!(matches!(parse_arguments("[1]"), Err(CallError::BadJson(m)) if m.contains("array")));
        assert!(parse_arguments("{").is_err());
    }
}

//! Sending an authorized call: the concurrency permit within the deadline, the request with
//! rmcp's timeout, progress routing, `notifications/cancelled` when the caller goes away, MRTR
//! `input_required` rounds (stateless era), and OAuth step-up on 403 `insufficient_scope`.
use std::sync::Arc;

use rmcp::{
    model::{CallToolRequest, CallToolRequestParams, ClientRequest, ProgressNotificationParam, ServerResult},
    service::{PeerRequestOptions, RoleClient, ServiceError},
};
use tokio::sync::mpsc;

use super::{
    CallEnv, CallOutcome, CallRequest,
    result::{bound_result, redact_result},
};
use crate::{
    error::{CallError, lost, unavailable},
    registry::ToolEntry,
    upstream::Upstream,
};

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

/// How one attempt at a call ended without a result.
pub(super) enum Failed {
    Call(CallError),
    /// Refused for its scope (403), and a step-up login for it completed: worth one retry.
    SteppedUp,
}

impl From<CallError> for Failed {
    fn from(e: CallError) -> Self {
        Failed::Call(e)
    }
}

/// One attempt at sending an authorized call.
pub(super) struct Attempt<'a> {
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// When the call started: its deadline counts from here, across attempts.
    pub started: tokio::time::Instant,
    pub progress: Option<mpsc::Sender<ProgressNotificationParam>>,
    /// The MCP host making the call, asked what the server asks meanwhile.
    pub host: Option<&'a crate::host::HostHandle>,
}

pub(super) async fn call_authorized(
    env: &CallEnv<'_>,
    req: &CallRequest<'_>,
    upstream: &Arc<Upstream>,
    entry: &ToolEntry,
    attempt: Attempt<'_>,
) -> Result<CallOutcome, Failed> {
    let Attempt { arguments, started, progress, host } = attempt;
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

    // Session era: what the server asks during the call reaches the session's handler, not
    // this future; the upstream keeps the hosts of calls in flight so the handler finds it.
    let _host = host.map(|h| upstream.enter_host(h.clone()));
    let mut params = CallToolRequestParams::new(entry.tool.name.clone()).with_arguments(arguments);
    if let Some(level) = host.and_then(|h| h.0.log_level()) {
        // The host opted in to log lines for its call; a 2026-07-28 server sends them only to
        // a request that carries the same opt-in.
        let mut meta = rmcp::model::RequestMetaObject::new();
        meta.0.insert("io.modelcontextprotocol/logLevel".to_owned(), level);
        params.meta = Some(meta);
    }
    // Stateless era (MRTR): the server may answer `input_required` with requests to fulfil
    // (sampling, elicitation, roots); mcpd answers them like their session-era forms and
    // retries with the answers and the server's opaque state, a bounded number of rounds.
    if let Some(r) = host.and_then(|h| h.0.take_resume()) {
        // Opaque and untrusted, like the server's own state: passed on, never inspected.
        params.input_responses = r.input_responses;
        params.request_state = r.request_state;
    }
    let stateless = peer.peer_info().is_some_and(|i| !i.protocol_version.has_initialize());
    let mut rounds = 0usize;
    let result = loop {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params.clone()));
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        // rmcp sends notifications/cancelled itself when this timeout fires.
        let mut options = PeerRequestOptions::with_timeout(remaining);
        if let Some(h) = host
            && stateless
        {
            // Overrides the capabilities rmcp stamps on every 2026-07-28 request.
            let caps = crate::requests::client_capabilities_for(&env.core.requests.sampler, server, h);
            let mut meta = rmcp::model::RequestMetaObject::new();
            meta.set_client_capabilities(caps);
            options = options.with_meta(meta);
        }
        let handle = match peer.send_request_with_option(request, options).await {
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
        if progress.is_some() {
            // rmcp hands notifications to their handler on tasks of their own, so the last
            // update sent before the answer may still be on its way to the router: let it
            // land before the route goes.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        upstream.unwatch_progress(&token);

        match response {
            Ok(ServerResult::CallToolResult(r)) => break r,
            // The server runs the call as a task (SEP-2663): poll it to its result.
            Ok(ServerResult::CreateTaskResult(created)) => {
                let call = super::task::TaskCall {
                    peer: peer.clone(),
                    upstream,
                    env,
                    host,
                    tool: qualified,
                    deadline,
                    timeout,
                    progress: progress.as_ref(),
                };
                break super::task::drive(call, created).await.map_err(Failed::Call)?;
            }
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
                let answers = tokio::time::timeout_at(deadline, env.core.requests.fulfil(upstream, &asked, host))
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
                    data: e.data,
                }));
            }
            Err(e) => return Err(refused_or_lost(env, upstream, e, deadline).await),
        }
    };
    env.core.oauth.call_succeeded(server);
    env.core.trust.note_use(upstream).await;
    let (mut result, truncated, original_bytes) = bound_result(result, env.live.max_result_bytes());
    let redactions = if upstream.config.redact_secrets { redact_result(&mut result) } else { 0 };
    Ok(CallOutcome { result, truncated, original_bytes, duration: started.elapsed(), redactions })
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
        return unauthorized(env.core.oauth.registration_rejected(upstream).await);
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
    let Some(attempt) = env.core.oauth.step_up(server, &challenge) else {
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
    let login = match env.core.oauth.login(upstream.clone(), true, false).await {
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

fn result_kind(r: &ServerResult) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().take(3).cloned().collect::<Vec<_>>().join(",")))
        .unwrap_or_else(|| "an unknown result".into())
}

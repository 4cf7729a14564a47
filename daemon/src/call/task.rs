//! Driving a task (the `io.modelcontextprotocol/tasks` extension, SEP-2663): a server may
//! answer `tools/call` with a task instead of a result. mcpd polls `tasks/get` at the
//! server's `pollIntervalMs` (bounded) until the task ends, answers what it asks meanwhile
//! (`input_required` → `tasks/update`, through the same fulfilment as MRTR rounds), reports
//! each new status to the caller as progress, shows the task in `mcpd status`, and cancels
//! it (`tasks/cancel`) when the caller goes away or the deadline passes. The caller sees one
//! call with one result, as if the server had answered it directly.
use std::{sync::Arc, time::Duration};

use rmcp::{
    model::{
        CallToolResult, CancelTaskParams, CreateTaskResult, GetTaskParams, NumberOrString, ProgressNotificationParam,
        ProgressToken, TaskPayload, TaskStatus, UpdateTaskParams,
    },
    service::{RoleClient, ServiceError},
};
use tokio::sync::mpsc;

use crate::{error::CallError, upstream::Upstream};

/// Polling bounds: a server asking for less than this is polled at this; more, at most this.
const MIN_POLL: Duration = Duration::from_millis(50);
const MAX_POLL: Duration = Duration::from_secs(5);
/// When the server names no interval.
const DEFAULT_POLL: Duration = Duration::from_millis(500);
/// `input_required` rounds answered for one task before mcpd gives up on it.
const MAX_INPUT_ROUNDS: usize = 32;

/// What the task driver needs from the call it belongs to.
pub(super) struct TaskCall<'a> {
    pub peer: Arc<rmcp::Peer<RoleClient>>,
    pub upstream: &'a Arc<Upstream>,
    pub env: &'a super::CallEnv<'a>,
    pub host: Option<&'a crate::host::HostHandle>,
    pub tool: &'a str,
    pub deadline: tokio::time::Instant,
    pub timeout: Duration,
    pub progress: Option<&'a mpsc::Sender<ProgressNotificationParam>>,
}

/// Cancels the task at the server and forgets it in status when the call ends before the
/// task did (the caller went away, the deadline passed, polling failed).
struct Running {
    peer: Arc<rmcp::Peer<RoleClient>>,
    upstream: Arc<Upstream>,
    id: String,
    live: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.upstream.task_ended(&self.id);
        if !self.live {
            return;
        }
        let (peer, id) = (self.peer.clone(), self.id.clone());
        // Drop cannot await; cancellation is cooperative and best-effort by nature.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), peer.cancel_task(CancelTaskParams::new(id))).await;
            });
        }
    }
}

fn status_name(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Working => "working",
        TaskStatus::InputRequired => "input_required",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
        _ => "unknown",
    }
}

fn poll_interval(ms: Option<u64>) -> Duration {
    ms.map(Duration::from_millis).unwrap_or(DEFAULT_POLL).clamp(MIN_POLL, MAX_POLL)
}

/// Polls the task `created` to its end; the tool result, or why there is none.
pub(super) async fn drive(call: TaskCall<'_>, created: CreateTaskResult) -> Result<CallToolResult, CallError> {
    let TaskCall { peer, upstream, env, host, tool, deadline, timeout, progress } = call;
    let server = upstream.name.as_str();
    let protocol = |what: String| CallError::Protocol { server: server.to_owned(), what };
    let id = created.task.task_id.clone();
    if id.is_empty() || id.len() > 1024 {
        return Err(protocol("the server created a task without a usable taskId".into()));
    }
    let mut guard = Running { peer: peer.clone(), upstream: upstream.clone(), id: id.clone(), live: true };
    let mut interval = poll_interval(created.task.poll_interval_ms);
    let mut last = (created.task.status, created.task.status_message.clone().unwrap_or_default());
    upstream.task_seen(&id, tool, status_name(last.0), &last.1);
    let mut reported = 0u32;
    let mut report = |status: TaskStatus, message: &str| {
        let Some(tx) = progress else { return };
        reported += 1;
        let text = if message.is_empty() {
            format!("task {id}: {}", status_name(status))
        } else {
            format!("task {id}: {}: {message}", status_name(status))
        };
        // The token is the caller's concern; the stream carries the update, not the token.
        let token = ProgressToken(NumberOrString::String(id.clone().into()));
        let _ = tx.try_send(ProgressNotificationParam::new(token, f64::from(reported)).with_message(text));
    };
    report(last.0, &last.1);
    let mut rounds = 0usize;
    loop {
        let next = tokio::time::Instant::now() + interval;
        if next >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(CallError::Deadline { tool: tool.to_owned(), timeout });
        }
        tokio::time::sleep_until(next).await;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = match tokio::time::timeout(remaining, peer.get_task(GetTaskParams::new(id.clone()))).await {
            Err(_) => return Err(CallError::Deadline { tool: tool.to_owned(), timeout }),
            Ok(Err(ServiceError::McpError(e))) => {
                return Err(CallError::Upstream {
                    server: server.to_owned(),
                    code: e.code.0,
                    message: format!("tasks/get for task {id}: {}", e.message),
                    data: e.data,
                });
            }
            Ok(Err(e)) => return Err(crate::error::lost(server, e)),
            Ok(Ok(g)) => g.task,
        };
        interval = poll_interval(got.task.poll_interval_ms);
        let now = (got.task.status, got.task.status_message.clone().unwrap_or_default());
        if now != last {
            upstream.task_seen(&id, tool, status_name(now.0), &now.1);
            report(now.0, &now.1);
            last = now;
        }
        match got.payload {
            TaskPayload::Working => {}
            TaskPayload::InputRequired { input_requests } => {
                rounds += 1;
                if rounds > MAX_INPUT_ROUNDS {
                    return Err(protocol(format!("task {id} kept asking for input after {MAX_INPUT_ROUNDS} rounds")));
                }
                let asked = serde_json::to_value(&input_requests).unwrap_or(serde_json::Value::Null);
                let answers = tokio::time::timeout_at(deadline, env.core.requests.fulfil(upstream, &asked, host))
                    .await
                    .map_err(|_| CallError::Deadline { tool: tool.to_owned(), timeout })?
                    .map_err(|e| CallError::InputRefused { tool: tool.to_owned(), reason: e.message.to_string() })?;
                let update = peer.update_task(UpdateTaskParams::new(id.clone(), answers));
                match tokio::time::timeout_at(deadline, update).await {
                    Err(_) => return Err(CallError::Deadline { tool: tool.to_owned(), timeout }),
                    Ok(Err(e)) => return Err(crate::error::lost(server, e)),
                    Ok(Ok(())) => {}
                }
            }
            TaskPayload::Completed { result } => {
                guard.live = false;
                return serde_json::from_value(serde_json::Value::Object(result)).map_err(|e| {
                    protocol(format!("task {id} completed with a result that is not a tool result: {e}"))
                });
            }
            TaskPayload::Failed { error } => {
                guard.live = false;
                let code = error.get("code").and_then(serde_json::Value::as_i64).unwrap_or(-32603);
                let message = error.get("message").and_then(serde_json::Value::as_str).unwrap_or("the task failed");
                return Err(CallError::Upstream {
                    server: server.to_owned(),
                    code: i32::try_from(code).unwrap_or(-32603),
                    message: format!("task {id} failed: {message}"),
                    data: error.get("data").cloned(),
                });
            }
            TaskPayload::Cancelled => {
                guard.live = false;
                return Err(protocol(format!("the server cancelled task {id}")));
            }
            _ => return Err(protocol(format!("task {id} is in a status mcpd does not know"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_interval_is_the_servers_within_bounds() {
        assert_eq!(poll_interval(None), DEFAULT_POLL);
        assert_eq!(poll_interval(Some(0)), MIN_POLL);
        assert_eq!(poll_interval(Some(200)), Duration::from_millis(200));
        assert_eq!(poll_interval(Some(u64::MAX)), MAX_POLL);
    }
}

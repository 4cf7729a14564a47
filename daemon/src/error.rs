//! Errors of the call path and their kinds. Each error has one [`ErrorKind`]; front ends map
//! kinds to their own codes (gRPC statuses only in `api::status`), and the audit log names it.
use std::time::Duration;

use rmcp::service::ServiceError;

use crate::{upstream::Upstream, util::unix_ms};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no tool named {name:?}{}", hint(.suggestion))]
    NoSuchTool { name: String, suggestion: Option<String> },
    #[error("tool names are qualified as server.tool; {0:?} has no server part")]
    Unqualified(String),
    #[error("no server named {0:?}")]
    NoSuchServer(String),
    #[error("arguments must be a JSON object: {0}")]
    BadJson(String),
    #[error("arguments do not match the inputSchema of {tool}: {details}")]
    InvalidArguments { tool: String, details: String },
    #[error("server {server:?} is not connected (state: {state}{}){}", retry(.next_retry_ms), last(.last_error))]
    Unavailable { server: String, state: &'static str, next_retry_ms: Option<u64>, last_error: String },
    #[error("server {server:?} has {limit} calls in flight (max_concurrency); none finished within the deadline")]
    Busy { server: String, limit: usize },
    #[error("{tool} did not answer within {timeout:?}; the call was cancelled upstream")]
    Deadline { tool: String, timeout: Duration },
    #[error("server {server:?} answered with error {code}: {message}")]
    Upstream {
        server: String,
        code: i32,
        message: String,
        /// The error's `data`, kept for front ends that pass the error on (MCP hosts).
        data: Option<serde_json::Value>,
    },
    #[error("the connection to server {server:?} failed during the call: {reason}")]
    ConnectionLost { server: String, reason: String },
    #[error("server {server:?} sent an unexpected answer: {what}")]
    Protocol { server: String, what: String },
    #[error("server {server:?} does not offer {what}")]
    Unsupported { server: String, what: &'static str },
    #[error("{0}")]
    BadRequest(String),
    #[error("{tool} is quarantined: {reason}")]
    Quarantined { tool: String, reason: String },
    #[error("{tool} is denied: {why}")]
    Denied { tool: String, why: String },
    #[error("{tool} needed input that mcpd refused to give: {reason}")]
    InputRefused { tool: String, reason: String },
    /// The server refused mcpd's OAuth token (401) or its scope (403), and no automatic
    /// re-authorization could fix it.
    #[error("server {server:?} refused the call's authorization: {why}")]
    Unauthorized { server: String, why: String },
    #[error("rate limit {rate} for {scope} exceeded; retry in {}ms", .retry_after.as_millis().max(1))]
    RateLimited { scope: String, rate: String, retry_after: Duration },
}

/// What kind of failure an error is, named like the gRPC codes it becomes (the audit log
/// records this name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Unavailable,
    ResourceExhausted,
    FailedPrecondition,
    PermissionDenied,
    DeadlineExceeded,
    Cancelled,
    Internal,
    Unknown,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NotFound",
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::Unavailable => "Unavailable",
            ErrorKind::ResourceExhausted => "ResourceExhausted",
            ErrorKind::FailedPrecondition => "FailedPrecondition",
            ErrorKind::PermissionDenied => "PermissionDenied",
            ErrorKind::DeadlineExceeded => "DeadlineExceeded",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Internal => "Internal",
            ErrorKind::Unknown => "Unknown",
        }
    }
}

// === impl CallError ===

impl CallError {
    /// The one classification of call-path errors.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::NoSuchTool { .. } | CallError::NoSuchServer(_) => ErrorKind::NotFound,
            CallError::Unqualified(_)
            | CallError::BadJson(_)
            | CallError::InvalidArguments { .. }
            | CallError::BadRequest(_) => ErrorKind::InvalidArgument,
            CallError::Unavailable { .. } | CallError::ConnectionLost { .. } => ErrorKind::Unavailable,
            CallError::Busy { .. } | CallError::RateLimited { .. } => ErrorKind::ResourceExhausted,
            CallError::Unsupported { .. } | CallError::Quarantined { .. } | CallError::Unauthorized { .. } => {
                ErrorKind::FailedPrecondition
            }
            CallError::Denied { .. } | CallError::InputRefused { .. } => ErrorKind::PermissionDenied,
            CallError::Deadline { .. } => ErrorKind::DeadlineExceeded,
            // The server answered, but with a JSON-RPC error: invalid params is the
            // caller's to fix; anything else is the server's.
            CallError::Upstream { code, .. } if *code == -32602 => ErrorKind::InvalidArgument,
            CallError::Upstream { code, .. } if *code == -32601 => ErrorKind::NotFound,
            CallError::Upstream { .. } | CallError::Protocol { .. } => ErrorKind::Unknown,
        }
    }
}

fn hint(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default()
}

fn retry(ms: &Option<u64>) -> String {
    ms.map(|ms| format!(", next retry in {:.1}s", ms as f64 / 1000.0)).unwrap_or_default()
}

fn last(e: &str) -> String {
    if e.is_empty() { String::new() } else { format!("; last error: {e}") }
}

/// Why a server cannot take a request now, with its state and next retry.
pub fn unavailable(server: &str, upstream: &Upstream) -> CallError {
    let st = upstream.status();
    CallError::Unavailable {
        server: server.to_owned(),
        state: st.state.as_str(),
        next_retry_ms: (st.next_retry_unix_ms > 0).then(|| st.next_retry_unix_ms.saturating_sub(unix_ms())),
        last_error: st.last_error,
    }
}

/// Maps a failed request other than `tools/call` (whose deadline rmcp enforces itself).
pub fn service_error(server: &str, what: &str, e: ServiceError) -> CallError {
    match e {
        ServiceError::McpError(e) => CallError::Upstream {
            server: server.to_owned(),
            code: e.code.0,
            message: e.message.to_string(),
            data: e.data,
        },
        ServiceError::UnexpectedResponse => {
            CallError::Protocol { server: server.to_owned(), what: format!("unexpected answer to {what}") }
        }
        other => lost(server, other),
    }
}

pub fn lost(server: &str, e: ServiceError) -> CallError {
    CallError::ConnectionLost { server: server.to_owned(), reason: e.to_string() }
}

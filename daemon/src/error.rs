//! Errors of the call path. Each maps to exactly one gRPC code in `api::status`.
use std::time::Duration;

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
    Upstream { server: String, code: i32, message: String },
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

fn hint(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default()
}

fn retry(ms: &Option<u64>) -> String {
    ms.map(|ms| format!(", next retry in {:.1}s", ms as f64 / 1000.0)).unwrap_or_default()
}

fn last(e: &str) -> String {
    if e.is_empty() { String::new() } else { format!("; last error: {e}") }
}

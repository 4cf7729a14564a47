//! A downstream MCP host that can answer what servers ask (sampling, elicitation) during the
//! calls it makes. The MCP front end implements it; the call path and the session's request
//! handler only carry it, so this module depends on nothing else in the crate.
use std::sync::Arc;

use serde_json::Value;

/// The future of a [`Host`] answer.
pub type HostAnswer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>>;

/// A downstream MCP host (on the MCP front end) that answers what servers ask during the
/// calls it makes: the host's own user and model, rather than mcpd's configured routes.
pub trait Host: Send + Sync {
    /// Whether the host declared the capability for `method` with these params (URL-mode
    /// elicitation is a capability of its own).
    fn accepts(&self, method: &str, params: &Value) -> bool;
    /// Asks the host; `Err` says why it could not answer.
    fn ask(&self, method: &'static str, params: Value) -> HostAnswer;
    /// A log message (`notifications/message` params) the server sent during the call;
    /// hosts that did not ask for logs drop it.
    fn log(&self, _params: Value) {}
    /// The log level the host asked for on this call (`_meta`
    /// `io.modelcontextprotocol/logLevel`, e.g. `"info"`), passed on to the server so that a
    /// 2026-07-28 server sends its log lines at all.
    fn log_level(&self) -> Option<Value> {
        None
    }
}

/// A [`Host`] as callers carry it (compared by identity).
#[derive(Clone)]
pub struct HostHandle(pub Arc<dyn Host>);

impl std::fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostHandle")
    }
}

impl PartialEq for HostHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for HostHandle {}

impl HostHandle {
    /// The host, if it takes `method` (with `params`).
    pub fn taking(h: Option<&HostHandle>, method: &str, params: &Value) -> Option<Arc<dyn Host>> {
        h.filter(|h| h.0.accepts(method, params)).map(|h| h.0.clone())
    }
}

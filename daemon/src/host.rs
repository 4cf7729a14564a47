//! A downstream MCP host that can answer what servers ask (sampling, elicitation) during the
//! calls it makes. The MCP front end implements it; the call path and the session's request
//! handler only carry it, so this module depends on nothing else in the crate.
use std::{collections::BTreeMap, sync::Arc};

use serde_json::Value;

/// The future of a [`Host`] answer.
pub type HostAnswer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>>;
/// The future of a [`Host::ask_all`] round.
pub type HostAnswers =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<BTreeMap<String, Value>, String>> + Send>>;

/// One question of a round: the server's key, the method, its params.
pub type Question = (String, &'static str, Value);

/// A downstream MCP host (on the MCP front end) that answers what servers ask during the
/// calls it makes: the host's own user and model, rather than mcpd's configured routes.
pub trait Host: Send + Sync {
    /// Whether the host declared the capability for `method` with these params (URL-mode
    /// elicitation is a capability of its own).
    fn accepts(&self, method: &str, params: &Value) -> bool;
    /// Asks the host; `Err` says why it could not answer.
    fn ask(&self, method: &'static str, params: Value) -> HostAnswer;
    /// Asks one round of questions at once, keyed as the server keyed them (a 2026-07-28
    /// server's `inputRequests`); a key the host left unanswered is missing from the answer.
    /// By default each is asked on its own, all at once; an unanswered elicitation is
    /// declined, and any other failure fails the round.
    fn ask_all(&self, questions: Vec<Question>) -> HostAnswers {
        let asks: Vec<_> =
            questions.into_iter().map(|(key, method, params)| (key, method, self.ask(method, params))).collect();
        Box::pin(async move {
            let (keys, futures): (Vec<_>, Vec<_>) = asks.into_iter().map(|(k, m, f)| ((k, m), f)).unzip();
            let mut out = BTreeMap::new();
            for ((key, method), answer) in keys.into_iter().zip(futures::future::join_all(futures).await) {
                match answer {
                    Ok(v) => {
                        out.insert(key, v);
                    }
                    Err(_) if method == "elicitation/create" => {
                        out.insert(key, serde_json::json!({"action": "decline"}));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }
    /// A log message (`notifications/message` params) the server sent during the call;
    /// hosts that did not ask for logs drop it.
    fn log(&self, _params: Value) {}
    /// The log level the host asked for on this call (`_meta`
    /// `io.modelcontextprotocol/logLevel`, e.g. `"info"`), passed on to the server so that a
    /// 2026-07-28 server sends its log lines at all.
    fn log_level(&self) -> Option<Value> {
        None
    }
    /// Input the host sent with its call that mcpd did not ask for (`inputResponses`, and a
    /// `requestState` that is not mcpd's): the server's own earlier questions, answered.
    /// Taken once, for the first request to the server.
    fn take_resume(&self) -> Option<Resume> {
        None
    }
}

/// A 2026-07-28 retry's `inputResponses` and `requestState`, passed on as they came.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    pub input_responses: Option<BTreeMap<String, Value>>,
    pub request_state: Option<String>,
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

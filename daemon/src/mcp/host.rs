//! What upstream servers ask during a host's call (sampling, elicitation) goes to that host
//! when it declared the capability, in the host's own era:
//! - a session-era host is asked with a request on its session ([`SessionHost`]);
//! - a 2026-07-28 host cannot be sent requests, so its `tools/call` answers
//!   `input_required` with the questions, and the host's retry (its answers and our
//!   `requestState`) resumes the same upstream call, which was kept waiting ([`Parked`]).
use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

#[allow(deprecated)]
use rmcp::model::CreateMessageRequestParams;
use rmcp::{
    Peer, RoleServer,
    model::{ClientCapabilities, ElicitRequestParams, InputRequest, ProgressNotificationParam},
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::{
    call::CallOutcome,
    error::CallError,
    host::{Host, HostAnswer, HostAnswers, Question, Resume},
};

/// How long a call waits for its host's retry after asking (then it is cancelled).
pub const PARK_FOR: Duration = Duration::from_secs(300);
/// Calls waiting for their hosts' answers at once; the oldest goes first when full.
const MAX_PARKED: usize = 256;
/// Questions of one call queued before the host has seen them.
const ASK_QUEUE: usize = 16;

/// Whether a host with `caps` takes `method` with `params`.
fn accepts(caps: &ClientCapabilities, method: &str, params: &Value) -> bool {
    match method {
        "sampling/createMessage" => match &caps.sampling {
            // Tools in a sampling request need the host's `sampling.tools`.
            Some(s) => params.get("tools").is_none() || s.tools.is_some(),
            None => false,
        },
        "elicitation/create" => {
            let url = params.get("mode").and_then(Value::as_str) == Some("url");
            match &caps.elicitation {
                Some(e) if url => e.url.is_some(),
                // An empty `elicitation: {}` means form mode (the spec's default).
                Some(e) => e.form.is_some() || e.url.is_none(),
                None => false,
            }
        }
        "roots/list" => caps.roots.is_some(),
        _ => false,
    }
}

/// A session-era host, asked over its session.
pub struct SessionHost {
    pub peer: Peer<RoleServer>,
    pub caps: ClientCapabilities,
    /// Passed on to a 2026-07-28 server, which logs only to requests that opt in.
    pub log_level: Option<Value>,
    /// Log lines for the call, sent by the request's handler in order with its progress.
    pub logs: mpsc::Sender<Value>,
}

impl Host for SessionHost {
    fn accepts(&self, method: &str, params: &Value) -> bool {
        accepts(&self.caps, method, params)
    }

    fn ask(&self, method: &'static str, params: Value) -> HostAnswer {
        let peer = self.peer.clone();
        Box::pin(async move {
            let answer = match method {
                // Sampling is deprecated in 2026-07-28, and still what session-era hosts do.
                #[allow(deprecated)]
                "sampling/createMessage" => {
                    let p: CreateMessageRequestParams = serde_json::from_value(params).map_err(|e| e.to_string())?;
                    let r = peer.create_message(p).await.map_err(|e| e.to_string())?;
                    serde_json::to_value(r)
                }
                "elicitation/create" => {
                    let p: ElicitRequestParams = serde_json::from_value(params).map_err(|e| e.to_string())?;
                    let r = peer.create_elicitation(p).await.map_err(|e| e.to_string())?;
                    serde_json::to_value(r)
                }
                #[allow(deprecated)]
                "roots/list" => {
                    let r = peer.list_roots().await.map_err(|e| e.to_string())?;
                    serde_json::to_value(r)
                }
                other => return Err(format!("mcpd does not forward {other:?} to hosts")),
            };
            answer.map_err(|e| e.to_string())
        })
    }

    fn log(&self, params: Value) {
        // Advisory: a full queue drops the line rather than hold back the server.
        let _ = self.logs.try_send(params);
    }

    fn log_level(&self) -> Option<Value> {
        self.log_level.clone()
    }
}

/// Where a round's answers go.
pub type Reply = oneshot::Sender<Result<BTreeMap<String, Value>, String>>;

/// One round of questions for a stateless-era host, and where the answers go.
pub struct Ask {
    pub questions: Vec<Question>,
    pub reply: Reply,
}

/// A 2026-07-28 host: questions are queued for the `tools/call` handler, which returns them
/// as `input_required`.
pub struct RoundHost {
    pub caps: ClientCapabilities,
    pub asks: mpsc::Sender<Ask>,
    /// Numbers the keys of single questions (a session-era server's requests), unique within
    /// the call.
    pub next_key: std::sync::atomic::AtomicU64,
    /// Log lines for the request being served (forwarded only if it asked for them).
    pub logs: mpsc::Sender<Value>,
    /// The level the host's request asked for.
    pub log_level: Option<Value>,
    /// What the host's request carried for the server itself (see [`Host::take_resume`]).
    pub resume: std::sync::Mutex<Option<Resume>>,
}

impl Host for RoundHost {
    fn accepts(&self, method: &str, params: &Value) -> bool {
        accepts(&self.caps, method, params)
    }

    fn ask(&self, method: &'static str, params: Value) -> HostAnswer {
        let n = self.next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("mcpd-{n}");
        let round = self.ask_all(vec![(key.clone(), method, params)]);
        Box::pin(async move {
            let mut answers = round.await?;
            answers.remove(&key).ok_or_else(|| "the host sent no answer".to_owned())
        })
    }

    fn ask_all(&self, questions: Vec<Question>) -> HostAnswers {
        let asks = self.asks.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            asks.send(Ask { questions, reply }).await.map_err(|_| "the host's call ended".to_owned())?;
            answer.await.map_err(|_| "the host did not answer".to_owned())?
        })
    }

    fn log(&self, params: Value) {
        // Advisory: a full queue drops the line rather than hold back the server.
        let _ = self.logs.try_send(params);
    }

    fn log_level(&self) -> Option<Value> {
        self.log_level.clone()
    }

    fn take_resume(&self) -> Option<Resume> {
        self.resume.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What a host's request ends with.
pub enum Finished {
    Call(Result<CallOutcome, CallError>),
    Prompt(Result<rmcp::model::GetPromptResult, CallError>),
}

/// A call (or a prompt request) running on behalf of a host, between the host's requests.
pub struct Running {
    pub result: oneshot::Receiver<Finished>,
    pub asks: mpsc::Receiver<Ask>,
    pub progress: mpsc::Receiver<ProgressNotificationParam>,
    /// Log lines the server sent during the call, for the host's request.
    pub logs: mpsc::Receiver<Value>,
    /// The call's task; dropping it (a host that never came back, or cancelled) cancels the
    /// call upstream, and the call core records it as cancelled.
    pub task: AbortOnDrop,
}

/// Aborts a task when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The new asks channel for a [`RoundHost`].
pub fn ask_channel() -> (mpsc::Sender<Ask>, mpsc::Receiver<Ask>) {
    mpsc::channel(ASK_QUEUE)
}

/// A running call waiting for its host's answers, under the `requestState` it was given.
pub struct Parked {
    pub running: Running,
    /// Answers owed: each round's keys, and where its answers go.
    pub waiting: Vec<(Vec<String>, Reply)>,
    parked_at: tokio::time::Instant,
}

/// Calls parked between a host's rounds.
#[derive(Default)]
pub struct ParkedCalls {
    calls: std::sync::Mutex<HashMap<String, Parked>>,
}

impl ParkedCalls {
    /// Parks `running` with the questions asked so far; returns the `requestState` and the
    /// input requests to send the host.
    pub fn park(&self, running: Running, asks: Vec<Ask>) -> (String, BTreeMap<String, InputRequest>) {
        let mut requests = BTreeMap::new();
        let mut waiting = Vec::new();
        'rounds: for ask in asks {
            let mut keys = Vec::new();
            for (key, method, params) in ask.questions {
                let wire = serde_json::json!({"method": method, "params": params});
                match serde_json::from_value::<InputRequest>(wire) {
                    Ok(r) => {
                        requests.insert(key.clone(), r);
                        keys.push(key);
                    }
                    Err(e) => {
                        let _ = ask.reply.send(Err(format!("the request cannot be sent to the host: {e}")));
                        continue 'rounds;
                    }
                }
            }
            waiting.push((keys, ask.reply));
        }
        let state = crate::call::run_id();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        calls.retain(|_, p| now.duration_since(p.parked_at) < PARK_FOR);
        if calls.len() >= MAX_PARKED
            && let Some(oldest) = calls.iter().min_by_key(|(_, p)| p.parked_at).map(|(k, _)| k.clone())
        {
            calls.remove(&oldest);
        }
        calls.insert(state.clone(), Parked { running, waiting, parked_at: now });
        (state, requests)
    }

    /// The call parked under `state`, with the host's answers delivered to it.
    pub fn resume(&self, state: &str, answers: BTreeMap<String, Value>) -> Option<Running> {
        let parked = self.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(state)?;
        if tokio::time::Instant::now().duration_since(parked.parked_at) >= PARK_FOR {
            return None;
        }
        let mut answers = answers;
        // Keys the host left out stay out: the server asks again, or decides without them.
        for (keys, reply) in parked.waiting {
            let round = keys.iter().filter_map(|k| answers.remove_entry(k)).collect();
            let _ = reply.send(Ok(round));
        }
        Some(parked.running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: Value) -> ClientCapabilities {
        serde_json::from_value(v).expect("capabilities")
    }

    #[test]
    fn a_host_takes_only_what_it_declared() {
        let none = caps(serde_json::json!({}));
        assert!(!accepts(&none, "sampling/createMessage", &serde_json::json!({})));
        assert!(!accepts(&none, "elicitation/create", &serde_json::json!({})));
        let some = caps(serde_json::json!({"sampling": {}, "elicitation": {}}));
        assert!(accepts(&some, "sampling/createMessage", &serde_json::json!({"messages": []})));
        assert!(
            !accepts(&some, "sampling/createMessage", &serde_json::json!({"tools": []})),
            "tools need sampling.tools"
        );
        assert!(accepts(&some, "elicitation/create", &serde_json::json!({"message": "m"})));
        assert!(
            !accepts(&some, "elicitation/create", &serde_json::json!({"mode": "url"})),
            "URL mode is its own capability"
        );
        let url = caps(serde_json::json!({"elicitation": {"url": {}}}));
        assert!(accepts(&url, "elicitation/create", &serde_json::json!({"mode": "url"})));
        assert!(!accepts(&url, "elicitation/create", &serde_json::json!({"message": "m"})), "URL only");
        assert!(!accepts(&some, "roots/list", &serde_json::json!({})));
        assert!(accepts(&caps(serde_json::json!({"roots": {}})), "roots/list", &serde_json::json!({})));
    }

    #[tokio::test]
    async fn a_parked_call_gets_its_answers_once() {
        let parked = ParkedCalls::default();
        let (_rtx, result) = oneshot::channel();
        let (_atx, asks) = ask_channel();
        let (_ptx, progress) = mpsc::channel(1);
        let (_ltx, logs) = mpsc::channel(1);
        let running = Running { result, asks, progress, logs, task: AbortOnDrop(tokio::spawn(async {})) };
        let (reply, answer) = oneshot::channel();
        let form = serde_json::json!({"message": "name?", "requestedSchema": {"type": "object", "properties": {}}});
        let roots = serde_json::json!({});
        let ask = Ask {
            questions: vec![("user_name".into(), "elicitation/create", form), ("where".into(), "roots/list", roots)],
            reply,
        };
        let (state, requests) = parked.park(running, vec![ask]);
        // The server's keys go to the host as they are.
        assert_eq!(requests.keys().collect::<Vec<_>>(), ["user_name", "where"]);
        let answers =
            BTreeMap::from([("user_name".to_owned(), serde_json::json!({"action": "accept", "content": {}}))]);
        assert!(parked.resume(&state, answers.clone()).is_some());
        let got = answer.await.expect("answered").expect("ok");
        assert_eq!(got["user_name"]["action"], "accept");
        assert!(!got.contains_key("where"), "an unanswered key stays unanswered");
        // The state is spent: a replay finds nothing.
        assert!(parked.resume(&state, answers).is_none());
        assert!(parked.resume("made-up", BTreeMap::new()).is_none());
    }
}

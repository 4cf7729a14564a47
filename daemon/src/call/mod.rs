//! The call core: the one home of the call path, shared by every front end (gRPC today, MCP
//! next), by agents and by pipelines.
//!
//! A call is resolved, given its trust verdict, checked against policy and the inputSchema
//! ([`authorize`]), sent with a deadline and a concurrency bound, cancelled upstream when
//! abandoned ([`send`]), bounded and redacted ([`result`]), and then recorded: one audit record
//! naming the caller (the app, and the agent or pipeline run it belongs to) and the outcome,
//! plus the per-tool metrics. A call dropped before it ends (the caller went away) is recorded
//! as cancelled, so nothing a caller starts escapes the audit log.
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use rmcp::model::{CallToolResult, ProgressNotificationParam};
use tokio::sync::mpsc;

use crate::{
    error::CallError,
    live::{Live, LiveHandle},
    metrics::Metrics,
    oauth::OAuth,
    pipeline::StepEvent,
    registry::{Registry, ToolEntry},
    requests::ServerRequests,
    store::{AuditEntry, AuditLog},
    supervisor::Supervisor,
    trust::{Trust, Verdict},
};

mod authorize;
mod pipeline;
mod result;
mod send;
mod task;
#[cfg(test)]
mod tests;

pub use authorize::Authorized;
pub use result::bound_result;

/// A tool result as mcpd hands it to callers.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub result: CallToolResult,
    pub truncated: bool,
    pub original_bytes: usize,
    pub duration: Duration,
    /// Secrets removed from the result.
    pub redactions: u32,
}

/// One call as a caller asked for it.
#[derive(Debug, Clone, Copy)]
pub struct CallRequest<'a> {
    pub name: &'a str,
    pub arguments_json: &'a str,
    pub timeout: Option<Duration>,
    /// The caller confirmed a destructive tool.
    pub confirm: bool,
}

/// Who asked for a call: what per-app limits key on and what the audit log names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The application as the kernel vouches for it ("uid:U pid:P", the socket's peer
    /// credentials), or how a front end names its host.
    pub app: String,
    /// The agent or pipeline run the call is a step of.
    pub run: Option<Run>,
    /// The MCP host making the call, when it can answer what the server asks meanwhile
    /// (sampling, elicitation).
    pub host: Option<crate::host::HostHandle>,
}

/// An agent or pipeline run on whose behalf a call is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// `agent` or `pipeline.NAME`: what made the call.
    pub via: String,
    /// The run's random id (128 bits, no credential).
    pub id: String,
}

impl Caller {
    pub fn app(app: impl Into<String>) -> Self {
        Caller { app: app.into(), run: None, host: None }
    }

    /// The same app, for a step of `run`.
    pub fn in_run(&self, via: impl Into<String>, id: impl Into<String>) -> Self {
        Caller { app: self.app.clone(), run: Some(Run { via: via.into(), id: id.into() }), host: self.host.clone() }
    }
}

/// A random run id (128 bits, no credential).
pub fn run_id() -> String {
    let v: u128 = rand::random();
    format!("{v:032x}")
}

/// The call core. Cheap to share (`Arc`); every part it holds is itself shared.
pub struct CallCore {
    pub registry: Arc<Registry>,
    pub supervisor: Arc<Supervisor>,
    pub trust: Arc<Trust>,
    /// Answers what a stateless-era server asks for mid-call (`input_required`).
    pub requests: Arc<ServerRequests>,
    /// Step-up re-authorization when a server answers 403 `insufficient_scope`.
    pub oauth: Arc<OAuth>,
    pub metrics: Arc<Metrics>,
    pub audit: Option<AuditLog>,
    /// Config, policy, pipelines and providers, swapped whole on reload.
    pub live: LiveHandle,
}

/// One call's view: the core and the live snapshot the call started with (a reload during
/// a pipeline does not change its rules half-way).
struct CallEnv<'a> {
    core: &'a CallCore,
    live: &'a Live,
}

// === impl CallCore ===

impl CallCore {
    /// What a model may be offered: connected, trusted now, and not only for an app's UI.
    /// Agents' tool lists and tool search share this one rule.
    pub fn model_may_call(&self, st: &crate::registry::ServerTools, t: &ToolEntry) -> bool {
        !st.stale && !t.app_only() && self.verdict(t).is_trusted()
    }

    /// Runs one call and records it (audit and metrics).
    pub async fn call(
        &self,
        caller: &Caller,
        req: CallRequest<'_>,
        progress: Option<mpsc::Sender<ProgressNotificationParam>>,
    ) -> Result<CallOutcome, CallError> {
        let live = self.live.load_full();
        CallEnv { core: self, live: &live }.call_recorded(caller, req, progress).await
    }

    /// Runs `pipeline.NAME` with its step events, recorded like any call (and each step too).
    pub async fn run_pipeline(
        &self,
        caller: &Caller,
        name: &str,
        arguments_json: &str,
        timeout: Option<Duration>,
        events: mpsc::Sender<StepEvent>,
    ) -> Result<CallOutcome, CallError> {
        let live = self.live.load_full();
        let env = CallEnv { core: self, live: &live };
        let qualified = format!("pipeline.{name}");
        let req = CallRequest { name: &qualified, arguments_json, timeout, confirm: false };
        let pending = Pending::new(self, caller, req);
        let res = pipeline::call_pipeline(&env, caller, req, name, Some(events)).await;
        pending.finish(&res);
        res
    }

    /// Whether a registry entry may be called (ListTools, agents): pipelines are the admin's
    /// own config and trusted by definition; server tools need their pin.
    pub fn verdict(&self, t: &ToolEntry) -> Verdict {
        if t.server == crate::config::PIPELINE_SERVER {
            return Verdict::Trusted;
        }
        match self.supervisor.upstream(&t.server) {
            Some(u) => self.trust.verdict(&u.config, &u.identity, t),
            None => Verdict::Quarantined("its server is no longer configured".into()),
        }
    }

    /// Whether `name` is a configured server or the virtual `pipeline` server.
    pub fn knows_server(&self, name: &str) -> bool {
        name == crate::config::PIPELINE_SERVER || self.supervisor.upstream(name).is_some()
    }

    /// Appends a finished (or abandoned) call to the audit log and counts it in the metrics,
    /// for tools that resolved (a made-up name must not create a series).
    fn record(
        &self,
        caller: &Caller,
        req: &CallRequest<'_>,
        elapsed: Duration,
        res: Result<&CallOutcome, Abandon<'_>>,
    ) {
        let (outcome, message, redactions, failed) = match res {
            Ok(o) if o.result.is_error.unwrap_or(false) => ("tool_error".to_owned(), String::new(), o.redactions, true),
            Ok(o) => ("ok".to_owned(), String::new(), o.redactions, false),
            Err(Abandon::Failed(e)) => {
                (e.kind().as_str().to_owned(), crate::known::scrub(&e.to_string()).into_owned(), 0, true)
            }
            Err(Abandon::Cancelled) => {
                ("Cancelled".to_owned(), "the caller went away before the call ended".to_owned(), 0, true)
            }
        };
        if let Some(audit) = &self.audit {
            let args: serde_json::Value = serde_json::from_str(req.arguments_json).unwrap_or(serde_json::Value::Null);
            let canonical = crate::integrity::fingerprint::canonical_json(&args);
            audit.append(AuditEntry {
                unix_ms: crate::util::unix_ms(),
                app: caller.app.clone(),
                tool: req.name.to_owned(),
                arguments_sha256: crate::integrity::fingerprint::sha256_hex(canonical.as_bytes()),
                outcome,
                message,
                duration_us: elapsed.as_micros() as u64,
                redactions,
                via: caller.run.as_ref().map(|r| r.via.clone()).unwrap_or_default(),
                run_id: caller.run.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
            });
        }
        let unresolved = matches!(
            res,
            Err(Abandon::Failed(CallError::NoSuchTool { .. } | CallError::Unqualified(_) | CallError::NoSuchServer(_)))
        );
        if let (false, Some((server, tool))) = (unresolved, req.name.split_once('.')) {
            self.metrics.record_call(server, tool, elapsed, failed);
        }
    }
}

/// How a call ended without a result.
enum Abandon<'a> {
    Failed(&'a CallError),
    /// Dropped before it ended.
    Cancelled,
}

/// Records a call when it ends, or as cancelled when its future is dropped first.
struct Pending<'a> {
    core: &'a CallCore,
    caller: &'a Caller,
    req: CallRequest<'a>,
    started: tokio::time::Instant,
    done: bool,
}

impl<'a> Pending<'a> {
    fn new(core: &'a CallCore, caller: &'a Caller, req: CallRequest<'a>) -> Self {
        Pending { core, caller, req, started: tokio::time::Instant::now(), done: false }
    }

    fn finish(mut self, res: &Result<CallOutcome, CallError>) {
        self.done = true;
        self.core.record(self.caller, &self.req, self.started.elapsed(), res.as_ref().map_err(Abandon::Failed));
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.core.record(self.caller, &self.req, self.started.elapsed(), Err(Abandon::Cancelled));
        }
    }
}

// === impl CallEnv ===

impl CallEnv<'_> {
    /// One call, recorded.
    async fn call_recorded(
        &self,
        caller: &Caller,
        req: CallRequest<'_>,
        progress: Option<mpsc::Sender<ProgressNotificationParam>>,
    ) -> Result<CallOutcome, CallError> {
        let pending = Pending::new(self.core, caller, req);
        let res = self.call_unrecorded(caller, req, progress).await;
        pending.finish(&res);
        res
    }

    async fn call_unrecorded(
        &self,
        caller: &Caller,
        req: CallRequest<'_>,
        progress: Option<mpsc::Sender<ProgressNotificationParam>>,
    ) -> Result<CallOutcome, CallError> {
        if let Some(name) = req.name.strip_prefix("pipeline.") {
            return pipeline::call_pipeline(self, caller, req, name, None).await;
        }
        let started = tokio::time::Instant::now();
        let Authorized { upstream, entry, arguments } = authorize::authorize(self, &req, &caller.app)?;
        let host = caller.host.as_ref();
        let attempt = |arguments, progress| {
            let a = send::Attempt { arguments, started, progress, host };
            send::call_authorized(self, &req, &upstream, &entry, a)
        };
        match attempt(arguments.clone(), progress.clone()).await {
            Ok(o) => Ok(o),
            Err(send::Failed::Call(e)) => Err(e),
            // Re-authorized for the scope the server asked for: the call was never run, so it is
            // safe to send again, once.
            Err(send::Failed::SteppedUp) => match Box::pin(attempt(arguments, progress)).await {
                Ok(o) => Ok(o),
                Err(send::Failed::Call(e)) => Err(e),
                Err(send::Failed::SteppedUp) => Err(CallError::Unauthorized {
                    server: upstream.name.clone(),
                    why: "the server asked for more scope again after a step-up login; mcpd authorized it, call again"
                        .to_owned(),
                }),
            },
        }
    }
}

/// The future of a [`ToolRunner`] call.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<CallOutcome, CallError>> + Send + 'a>>;

/// The narrow interface an agent loop gets: the tools it may offer a model, and calls through
/// the core on behalf of its run.
pub trait ToolRunner: Send + Sync {
    /// Tools a model may be offered: trusted, not app-only, from servers that are connected.
    fn model_tools(&self) -> Vec<Arc<ToolEntry>>;

    /// The `k` best tools for `query` that `visible(server, tool)` admits, best first.
    fn search(&self, query: &str, k: usize, visible: &dyn Fn(&str, &str) -> bool) -> Vec<mcpd_search::Hit>;

    fn run<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        arguments_json: &'a str,
        timeout: Duration,
    ) -> RunFuture<'a>;
}

impl ToolRunner for CallCore {
    fn model_tools(&self) -> Vec<Arc<ToolEntry>> {
        let snap = self.registry.snapshot();
        snap.iter().filter(|(st, t)| self.model_may_call(st, t)).map(|(_, t)| t.clone()).collect()
    }

    fn search(&self, query: &str, k: usize, visible: &dyn Fn(&str, &str) -> bool) -> Vec<mcpd_search::Hit> {
        self.registry.search(query, k, visible)
    }

    fn run<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        arguments_json: &'a str,
        timeout: Duration,
    ) -> RunFuture<'a> {
        Box::pin(async move {
            let req = CallRequest { name, arguments_json, timeout: Some(timeout), confirm: false };
            self.call(caller, req, None).await
        })
    }
}

pub(crate) fn parse_arguments(json: &str) -> Result<serde_json::Map<String, serde_json::Value>, CallError> {
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

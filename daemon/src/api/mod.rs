//! The gRPC API (`mcpd.v1.Mcpd`): status, tools, calls, events; served on a Unix socket.
use std::{pin::Pin, sync::Arc, time::Duration};

use mcpd_proto::v1::{self as pb, mcpd_server::Mcpd};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use crate::{
    agent,
    attach::Hello,
    call::{self, CallOutcome, Caller},
    daemon::Daemon,
    oauth,
    resource::{self, Checker, CompleteRef},
    state::ServerState,
    trust::Verdict,
    upstream::Upstream,
};

pub mod server;
mod status;

use status::ApiError;

pub struct Api {
    pub daemon: Arc<Daemon>,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How much of a server's stderr `Status` shows.
const STDERR_TAIL_LINES: usize = 5;

/// Queue between a streamed call and its gRPC stream; progress beyond it is dropped.
const PROGRESS_QUEUE: usize = 64;

fn state_pb(s: ServerState) -> pb::ServerState {
    match s {
        ServerState::Starting => pb::ServerState::Starting,
        ServerState::Ready => pb::ServerState::Ready,
        ServerState::Degraded => pb::ServerState::Degraded,
        ServerState::Backoff => pb::ServerState::Backoff,
        ServerState::CircuitOpen => pb::ServerState::CircuitOpen,
        ServerState::NeedsAuth => pb::ServerState::NeedsAuth,
        ServerState::Disabled => pb::ServerState::Disabled,
        ServerState::Stopped => pb::ServerState::Stopped,
    }
}

fn server_pb(d: &Daemon, u: &Upstream) -> pb::ServerStatus {
    let s = u.status();
    let snap = d.core.registry.snapshot();
    let tool_stats = snap
        .servers
        .get(&u.name)
        .map(|st| {
            st.tools
                .keys()
                .filter_map(|tool| {
                    d.core.metrics.tool(&u.name, tool).map(|m| pb::ToolStats {
                        tool: tool.clone(),
                        calls: m.calls,
                        errors: m.errors,
                        mean_latency_us: m.mean_latency.as_micros() as u64,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    pb::ServerStatus {
        name: u.name.clone(),
        transport: u.transport_name().into(),
        state: state_pb(s.state) as i32,
        protocol_version: s.protocol_version,
        era: s.era.into(),
        tool_count: s.tool_count as u32,
        last_error: scrub(s.last_error),
        next_retry_unix_ms: s.next_retry_unix_ms,
        uptime_ms: s.ready_since.map(|t| t.elapsed().as_millis() as u64).unwrap_or(0),
        connects: s.connects,
        server_name: s.server_name,
        server_version: s.server_version,
        pid: s.pid,
        stale: s.stale,
        target: scrub(u.target()),
        in_flight: u.in_flight() as u32,
        stderr_tail: u.stderr_tail(STDERR_TAIL_LINES).into_iter().map(scrub).collect(),
        reconnects: d.core.metrics.reconnects(&u.name),
        tool_stats,
        waiting_for_start_slot: s.waiting_for_slot,
        tasks: u
            .tasks()
            .into_iter()
            .map(|(id, t)| pb::RunningTask {
                task_id: scrub(id),
                tool: t.tool,
                status: t.status.into(),
                status_message: scrub(t.message),
                age_ms: t.since.elapsed().as_millis() as u64,
            })
            .collect(),
    }
}

fn agent_event_pb(run_id: &str, ev: agent::AgentEvent) -> pb::AgentEvent {
    use pb::agent_event::Event;
    let (iteration, event) = match ev {
        agent::AgentEvent::ModelTurn { iteration, text, tool_calls, input_tokens, output_tokens } => {
            (iteration, Event::ModelTurn(pb::AgentModelTurn { text, tool_calls, input_tokens, output_tokens }))
        }
        agent::AgentEvent::ToolCall { iteration, id, tool, arguments } => {
            (iteration, Event::ToolCall(pb::AgentToolCall { id, tool, arguments_json: arguments.to_string() }))
        }
        agent::AgentEvent::ToolResult { iteration, id, tool, is_error, text } => {
            (iteration, Event::ToolResult(pb::AgentToolResult { id, tool, is_error, text }))
        }
        agent::AgentEvent::FinalAnswer { iteration, text } => (iteration, Event::FinalAnswer(text)),
        agent::AgentEvent::LimitReached { limit, detail } => {
            (0, Event::LimitReached(pb::AgentLimit { limit: limit.into(), detail }))
        }
    };
    pb::AgentEvent { run_id: run_id.to_owned(), iteration, event: Some(event) }
}

fn pipeline_event_pb(ev: crate::pipeline::StepEvent) -> pb::PipelineEvent {
    use crate::pipeline::StepEvent;
    let step = match ev {
        StepEvent::Started { step, tool } => {
            pb::PipelineStep { step, kind: "started".into(), tool, ok: true, detail: String::new() }
        }
        StepEvent::Finished { step, ok, detail } => {
            pb::PipelineStep { step, kind: "finished".into(), tool: String::new(), ok, detail }
        }
        StepEvent::Skipped { step, why } => {
            pb::PipelineStep { step, kind: "skipped".into(), tool: String::new(), ok: false, detail: why }
        }
    };
    pb::PipelineEvent { event: Some(pb::pipeline_event::Event::Step(step)) }
}

fn call_request(r: &pb::CallToolRequest) -> call::CallRequest<'_> {
    call::CallRequest {
        name: &r.name,
        arguments_json: &r.arguments_json,
        timeout: timeout_of(r.timeout_ms),
        confirm: r.confirm,
    }
}

/// The calling application as the kernel vouches for it: the Unix socket's peer credentials.
fn app_of<T>(req: &Request<T>) -> String {
    req.extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()
        .and_then(|i| i.peer_cred)
        .map(|c| match c.pid() {
            Some(pid) => format!("uid:{} pid:{pid}", c.uid()),
            None => format!("uid:{}", c.uid()),
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Whether a listed prompt or resource template is quarantined, and why.
fn item_state(d: &Daemon, server: &str, item: &crate::registry::PinItem) -> (bool, String) {
    match d.core.supervisor.upstream(server) {
        Some(u) => match d.core.trust.item_verdict(&u.config, &u.identity, item) {
            Verdict::Trusted => (false, String::new()),
            Verdict::Quarantined(why) => (true, why),
        },
        None => (true, "its server is no longer configured".into()),
    }
}

/// Text the daemon got from elsewhere (a server's stderr, an error from a library, a status
/// message), with the config's secret values replaced, as everything leaving the API is.
fn scrub(text: String) -> String {
    match crate::known::scrub(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn outcome_pb(o: CallOutcome) -> pb::CallToolResponse {
    pb::CallToolResponse {
        is_error: o.result.is_error.unwrap_or(false),
        content_json: json_text(&o.result.content),
        structured_content_json: o.result.structured_content.as_ref().map(json_text).unwrap_or_default(),
        meta_json: o.result.meta.as_ref().map(json_text).unwrap_or_default(),
        truncated: o.truncated,
        original_bytes: o.original_bytes as u64,
        duration_us: o.duration.as_micros() as u64,
        redactions: o.redactions,
    }
}

fn timeout_of(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl Api {
    /// The upstream named `server`, which must have an `[oauth]` table.
    fn oauth_upstream(&self, server: &str) -> Result<Arc<Upstream>, Status> {
        let u = self
            .daemon
            .core
            .supervisor
            .upstream(server)
            .ok_or_else(|| ApiError::from(oauth::OAuthError::UnknownServer(server.to_owned())))?;
        if u.config.oauth.is_none() {
            return Err(ApiError::from(oauth::OAuthError::NotOAuth(server.to_owned())).into());
        }
        Ok(u)
    }

    /// Approves or revokes `server.tool` or every tool of `server`.
    async fn trust_change(&self, target: &str, approve: bool) -> Result<Vec<String>, Status> {
        let d = &self.daemon;
        let (server, tool) = match target.split_once('.') {
            Some((s, t)) => (s, Some(t)),
            None => (target, None),
        };
        let u = d.core.supervisor.upstream(server).ok_or_else(|| status::no_such_server(server))?;
        let snap = d.core.registry.snapshot();
        let empty = crate::registry::ServerTools::default();
        let tools = snap.servers.get(server).map(|st| st.as_ref()).unwrap_or(&empty);
        let res = if approve {
            d.core.trust.approve(&u, tools, tool).await
        } else {
            d.core.trust.revoke(&u, tools, tool).await
        };
        // Approving a server approves its prompts and resource templates too; `server.NAME`
        // that names no tool may name one of those.
        let items: Vec<crate::registry::PinItem> =
            u.items().into_iter().filter(|i| tool.is_none_or(|t| i.name == t)).collect();
        let mut changed = match res {
            Err(crate::trust::TrustError::NoSuchTool { .. }) if approve && !items.is_empty() => Vec::new(),
            other => other.map_err(|e| Status::from(ApiError::from(e)))?,
        };
        if approve && !items.is_empty() {
            d.core.trust.approve_items(&u, &items).await.map_err(|e| Status::from(ApiError::from(e)))?;
            changed.extend(items.iter().map(|i| format!("{server}.{} ({})", i.name, i.kind)));
        }
        let what = if approve { "approved" } else { "revoked" };
        for t in &changed {
            tracing::info!(tool = %t, "trust {what}");
            d.events.emit(server, crate::event::EventKind::TrustChanged, None, format!("{t} {what}"));
        }
        Ok(changed)
    }
}

#[tonic::async_trait]
impl Mcpd for Api {
    async fn status(&self, _: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let d = &self.daemon;
        let (cache_entries, cache_bytes) = d.cache.stats();
        let mcp = d.mcp.get().cloned().unwrap_or_default();
        let mcp_profiles = {
            let live = d.core.live.load();
            let mut names: Vec<String> = live.config.profiles.keys().cloned().collect();
            if !names.iter().any(|n| n == crate::config::DEFAULT_PROFILE) {
                names.insert(0, crate::config::DEFAULT_PROFILE.to_owned());
            }
            names
        };
        Ok(Response::new(pb::StatusResponse {
            daemon: Some(pb::DaemonStatus {
                version: env!("CARGO_PKG_VERSION").into(),
                pid: std::process::id(),
                uptime_ms: d.started.elapsed().as_millis() as u64,
                config_path: d.config_path.display().to_string(),
                socket_path: d.socket_path.display().to_string(),
                state_dir: d.state_dir.display().to_string(),
                cache_entries,
                cache_bytes,
                cache_max_bytes: d.cache.max_bytes(),
                mcp_socket: mcp.socket.display().to_string(),
                mcp_listen: mcp.listen.map(|a| a.to_string()).unwrap_or_default(),
                mcp_auth: if mcp.listen.is_some() { mcp.auth.to_owned() } else { String::new() },
                mcp_token_file: mcp.token_file.map(|p| p.display().to_string()).unwrap_or_default(),
                mcp_profiles,
                mcp_tls: mcp.tls,
                containment: d.containment.clone(),
            }),
            servers: d.core.supervisor.upstreams().iter().map(|u| server_pb(d, u)).collect(),
        }))
    }

    async fn list_servers(
        &self,
        _: Request<pb::ListServersRequest>,
    ) -> Result<Response<pb::ListServersResponse>, Status> {
        Ok(Response::new(pb::ListServersResponse {
            servers: self.daemon.core.supervisor.upstreams().iter().map(|u| server_pb(&self.daemon, u)).collect(),
        }))
    }

    async fn list_tools(&self, req: Request<pb::ListToolsRequest>) -> Result<Response<pb::ListToolsResponse>, Status> {
        let filter = req.into_inner().server;
        let d = &self.daemon;
        if !filter.is_empty() && !d.core.knows_server(&filter) {
            return Err(status::no_such_server(&filter));
        }
        let snap = d.core.registry.snapshot();
        let tools = snap
            .iter()
            .filter(|(_, t)| filter.is_empty() || t.server == filter)
            .map(|(st, t)| (st, t, d.core.verdict(t)))
            .map(|(st, t, verdict)| tool_pb(st, t, verdict))
            .collect();
        Ok(Response::new(pb::ListToolsResponse { tools }))
    }

    async fn search_tools(
        &self,
        req: Request<pb::SearchToolsRequest>,
    ) -> Result<Response<pb::SearchToolsResponse>, Status> {
        let r = req.into_inner();
        let d = &self.daemon;
        if let Some(unknown) = r.servers.iter().find(|s| !d.core.knows_server(s)) {
            return Err(status::no_such_server(unknown));
        }
        if r.query.trim().is_empty() {
            return Err(Status::invalid_argument("query is empty: say what the tool should do"));
        }
        let k = match r.k {
            0 => 10,
            k => k.min(100) as usize,
        };
        let snap = d.core.registry.snapshot();
        // Only what a model may call (the agents' rule), of the asked servers.
        let visible = |server: &str, name: &str| {
            (r.servers.is_empty() || r.servers.iter().any(|s| s == server))
                && snap
                    .servers
                    .get(server)
                    .is_some_and(|st| st.tools.get(name).is_some_and(|t| d.core.model_may_call(st, t)))
        };
        let hits = d.core.registry.search(&r.query, k, &visible);
        let hits = hits
            .into_iter()
            .filter_map(|h| {
                let st = snap.servers.get(&h.server)?;
                let t = st.tools.get(&h.name)?;
                Some(pb::ToolHit {
                    tool: Some(tool_pb(st, t, d.core.verdict(t))),
                    score: f64::from(h.score),
                    matched_fields: h.matched.iter().map(|f| f.as_str().to_owned()).collect(),
                })
            })
            .collect();
        Ok(Response::new(pb::SearchToolsResponse { hits }))
    }

    async fn call_tool(&self, req: Request<pb::CallToolRequest>) -> Result<Response<pb::CallToolResponse>, Status> {
        let caller = Caller::app(app_of(&req));
        let r = req.into_inner();
        let outcome = self.daemon.core.call(&caller, call_request(&r), None).await?;
        Ok(Response::new(outcome_pb(outcome)))
    }

    type CallToolStreamStream = EventStream<pb::CallToolEvent>;

    async fn call_tool_stream(
        &self,
        req: Request<pb::CallToolRequest>,
    ) -> Result<Response<Self::CallToolStreamStream>, Status> {
        let caller = Caller::app(app_of(&req));
        let r = req.into_inner();
        let daemon = self.daemon.clone();
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::CallToolEvent, Status>>(PROGRESS_QUEUE);
        let (p_tx, mut p_rx) = mpsc::channel(PROGRESS_QUEUE);
        tokio::spawn(async move {
            let call = daemon.core.call(&caller, call_request(&r), Some(p_tx));
            let mut call = std::pin::pin!(call);
            loop {
                tokio::select! {
                    // The app dropped the stream: dropping the call future cancels it upstream.
                    _ = out_tx.closed() => return,
                    Some(p) = p_rx.recv() => {
                        let ev = pb::CallToolEvent {
                            event: Some(pb::call_tool_event::Event::Progress(pb::Progress {
                                progress: p.progress,
                                total: p.total,
                                message: p.message.unwrap_or_default(),
                            })),
                        };
                        let _ = out_tx.try_send(Ok(ev));
                    }
                    res = &mut call => {
                        let msg = res.map(|o| pb::CallToolEvent {
                            event: Some(pb::call_tool_event::Event::Result(outcome_pb(o))),
                        }).map_err(Status::from);
                        let _ = out_tx.send(msg).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn reload(&self, _: Request<pb::ReloadRequest>) -> Result<Response<pb::ReloadResponse>, Status> {
        let o = self.daemon.reload().await;
        Ok(Response::new(pb::ReloadResponse {
            applied: o.applied,
            problems: o.problems,
            added: o.report.added,
            changed: o.report.changed,
            removed: o.report.removed,
            needs_restart: o.needs_restart,
        }))
    }

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<pb::LogsResponse>, Status> {
        let r = req.into_inner();
        let up = self.daemon.core.supervisor.upstream(&r.server).ok_or_else(|| status::no_such_server(&r.server))?;
        let n = if r.lines == 0 { usize::MAX } else { r.lines as usize };
        Ok(Response::new(pb::LogsResponse { lines: up.stderr_tail(n).into_iter().map(scrub).collect() }))
    }

    async fn list_resources(
        &self,
        req: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourcesResponse>, Status> {
        let server = req.into_inner().server;
        let l = resource::list_resources(&self.daemon.core.supervisor, &server).await?;
        let resources = l
            .items
            .into_iter()
            .map(|(server, r)| pb::Resource {
                server,
                uri: r.uri.clone(),
                name: r.name.clone(),
                title: r.title.clone().unwrap_or_default(),
                description: r.description.clone().unwrap_or_default(),
                mime_type: r.mime_type.clone().unwrap_or_default(),
                json: json_text(&r),
            })
            .collect();
        Ok(Response::new(pb::ListResourcesResponse { resources, errors: l.errors }))
    }

    async fn list_resource_templates(
        &self,
        req: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourceTemplatesResponse>, Status> {
        let server = req.into_inner().server;
        let l = resource::list_resource_templates(&self.daemon.core.supervisor, &server).await?;
        let d = self.daemon.clone();
        let templates = tokio::task::spawn_blocking(move || {
            let mut checker = Checker::new(&d.core.registry, &d.core.supervisor);
            l.items
                .into_iter()
                .map(|(server, t)| {
                    let checked = checker.check(&server, "resource-template", &t);
                    let (quarantined, quarantine_reason) = item_state(&d, &server, &checked.item);
                    pb::ResourceTemplate {
                        quarantined,
                        quarantine_reason,
                        server,
                        uri_template: t.uri_template.clone(),
                        name: t.name.clone(),
                        description: checked.text("description"),
                        json: checked.sanitized.to_string(),
                        fingerprint: checked.fingerprint,
                        findings: checked.findings,
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("listing templates failed: {e}")))?;
        Ok(Response::new(pb::ListResourceTemplatesResponse { templates, errors: l.errors }))
    }

    async fn read_resource(
        &self,
        req: Request<pb::ReadResourceRequest>,
    ) -> Result<Response<pb::ReadResourceResponse>, Status> {
        let r = req.into_inner();
        let d = &self.daemon;
        let ttl = d.core.live.load().resource_ttl();
        let read = resource::read(&d.core.supervisor, &d.cache, ttl, &r.server, &r.uri, r.fresh).await?;
        Ok(Response::new(pb::ReadResourceResponse {
            contents_json: scrub(read.entry.contents_json.clone()),
            meta_json: read.entry.meta_json.clone(),
            from_cache: read.from_cache,
            ttl_ms: read.entry.ttl.as_millis() as u64,
        }))
    }

    async fn subscribe_resource(
        &self,
        req: Request<pb::SubscribeResourceRequest>,
    ) -> Result<Response<pb::SubscribeResourceResponse>, Status> {
        let r = req.into_inner();
        resource::subscribe(&self.daemon.core.supervisor, &r.server, &r.uri).await?;
        Ok(Response::new(pb::SubscribeResourceResponse {}))
    }

    async fn list_prompts(
        &self,
        req: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        let server = req.into_inner().server;
        let l = resource::list_prompts(&self.daemon.core.supervisor, &server).await?;
        let d = self.daemon.clone();
        let prompts = tokio::task::spawn_blocking(move || {
            let mut checker = Checker::new(&d.core.registry, &d.core.supervisor);
            l.items
                .into_iter()
                .map(|(server, p)| {
                    let checked = checker.check(&server, "prompt", &p);
                    let (quarantined, quarantine_reason) = item_state(&d, &server, &checked.item);
                    pb::Prompt {
                        quarantined,
                        quarantine_reason,
                        qualified_name: format!("{server}.{}", p.name),
                        name: p.name.clone(),
                        title: checked.text("title"),
                        description: checked.text("description"),
                        arguments_json: checked
                            .sanitized
                            .get("arguments")
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "[]".into()),
                        fingerprint: checked.fingerprint,
                        findings: checked.findings,
                        server,
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("listing prompts failed: {e}")))?;
        Ok(Response::new(pb::ListPromptsResponse { prompts, errors: l.errors }))
    }

    async fn get_prompt(&self, req: Request<pb::GetPromptRequest>) -> Result<Response<pb::GetPromptResponse>, Status> {
        let r = req.into_inner();
        let res = resource::get_prompt(
            &self.daemon.core.supervisor,
            &self.daemon.core.trust,
            &r.name,
            r.arguments.into_iter().collect(),
            resource::Asked { requests: &self.daemon.core.requests, host: None },
        )
        .await?;
        Ok(Response::new(pb::GetPromptResponse {
            description: res.description.clone().unwrap_or_default(),
            messages_json: scrub(json_text(&res.messages)),
        }))
    }

    async fn complete(&self, req: Request<pb::CompleteRequest>) -> Result<Response<pb::CompleteResponse>, Status> {
        let r = req.into_inner();
        let target = match (r.prompt.is_empty(), r.resource_template.is_empty()) {
            (false, true) => CompleteRef::Prompt(r.prompt),
            (true, false) => CompleteRef::ResourceTemplate(r.resource_template),
            _ => {
                return Err(ApiError::BadRequest("give exactly one of `prompt` and `resource_template`".into()).into());
            }
        };
        let info = resource::complete(
            &self.daemon.core.supervisor,
            &r.server,
            target,
            &r.argument,
            &r.value,
            r.context.into_iter().collect(),
        )
        .await?;
        Ok(Response::new(pb::CompleteResponse {
            total: info.total.unwrap_or(info.values.len() as u32),
            has_more: info.has_more.unwrap_or(false),
            values: info.values,
        }))
    }

    async fn trust_list(&self, req: Request<pb::TrustListRequest>) -> Result<Response<pb::TrustListResponse>, Status> {
        let server = req.into_inner().server;
        let d = &self.daemon;
        if !server.is_empty() && d.core.supervisor.upstream(&server).is_none() {
            return Err(status::no_such_server(&server));
        }
        let snap = d.core.registry.snapshot();
        let mut entries = Vec::new();
        for (_, t) in snap.iter().filter(|(_, t)| server.is_empty() || t.server == server) {
            let Some(u) = d.core.supervisor.upstream(&t.server) else { continue };
            let info = d.core.trust.describe(&u, t);
            let (state, reason) = match info.verdict {
                Verdict::Trusted => ("trusted", String::new()),
                Verdict::Quarantined(why) => ("quarantined", why),
            };
            entries.push(pb::TrustEntry {
                qualified_name: t.qualified_name(),
                server: t.server.clone(),
                tool: t.tool.name.to_string(),
                state: state.into(),
                reason,
                fingerprint: t.fingerprint.clone(),
                pinned_fingerprint: info.pinned_fingerprint,
                approved_by: info.approved_by,
                approved_unix_ms: info.approved_unix_ms,
                findings: t.findings.clone(),
                mode: u.config.trust.as_str().into(),
            });
        }
        Ok(Response::new(pb::TrustListResponse { entries }))
    }

    async fn trust_diff(&self, req: Request<pb::TrustDiffRequest>) -> Result<Response<pb::TrustDiffResponse>, Status> {
        let name = req.into_inner().name;
        let d = &self.daemon;
        let snap = d.core.registry.snapshot();
        let (_, entry) = snap.resolve(&name).ok_or_else(|| ApiError::NoSuchTool(name.clone()))?;
        let u = d.core.supervisor.upstream(&entry.server).ok_or_else(|| status::no_such_server(&entry.server))?;
        let diff = d.core.trust.diff(&u, entry);
        Ok(Response::new(pb::TrustDiffResponse {
            old_json: diff.old_json,
            new_json: diff.new_json,
            diff: diff.diff,
            changed_fields: diff.changed_fields,
        }))
    }

    async fn trust_approve(&self, req: Request<pb::TrustTarget>) -> Result<Response<pb::TrustChangeResponse>, Status> {
        let target = req.into_inner().target;
        let tools = self.trust_change(&target, true).await?;
        Ok(Response::new(pb::TrustChangeResponse { tools }))
    }

    async fn trust_revoke(&self, req: Request<pb::TrustTarget>) -> Result<Response<pb::TrustChangeResponse>, Status> {
        let target = req.into_inner().target;
        let tools = self.trust_change(&target, false).await?;
        Ok(Response::new(pb::TrustChangeResponse { tools }))
    }

    async fn audit(&self, req: Request<pb::AuditRequest>) -> Result<Response<pb::AuditResponse>, Status> {
        let r = req.into_inner();
        let Some(store) = &self.daemon.store else {
            return Ok(Response::new(pb::AuditResponse { records: Vec::new() }));
        };
        let limit = if r.limit == 0 { 100 } else { r.limit.min(100_000) as usize };
        let server = (!r.server.is_empty()).then_some(r.server);
        let records = store
            .read_audit(limit, server)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot read the audit log: {e}")))?
            .into_iter()
            .map(|e| pb::AuditRecord {
                unix_ms: e.unix_ms,
                app: e.app,
                tool: e.tool,
                arguments_sha256: e.arguments_sha256,
                outcome: e.outcome,
                message: e.message,
                duration_us: e.duration_us,
                redactions: e.redactions,
                via: e.via,
                run_id: e.run_id,
            })
            .collect();
        Ok(Response::new(pb::AuditResponse { records }))
    }

    type RunAgentStream = EventStream<pb::AgentEvent>;

    async fn run_agent(&self, req: Request<pb::RunAgentRequest>) -> Result<Response<Self::RunAgentStream>, Status> {
        let app = app_of(&req);
        let r = req.into_inner();
        let d = self.daemon.clone();
        // Refuse up front what cannot run, so the caller gets a status rather than a stream.
        if r.task.trim().is_empty() {
            return Err(ApiError::BadRequest("the task is empty".into()).into());
        }
        let provider = agent::pick_provider(&d.core.live.load().providers, &r.provider).map_err(ApiError::from)?;
        let spec = agent::AgentSpec {
            task: r.task,
            provider: r.provider,
            model: r.model,
            system: r.system,
            servers: r.servers,
            tools: r.tools,
            max_iterations: r.max_iterations,
            max_tool_calls: r.max_tool_calls,
            max_tokens: r.max_tokens,
            deadline: timeout_of(r.deadline_ms),
            discovery: match pb::AgentDiscovery::try_from(r.discovery) {
                Ok(pb::AgentDiscovery::Full) => agent::Discovery::Full,
                Ok(pb::AgentDiscovery::Search) => agent::Discovery::Search,
                _ => agent::Discovery::Auto,
            },
        };
        let run_id = call::run_id();
        // Every tool call of the run is audited with the app that asked and this run.
        let caller = Caller::app(app).in_run("agent", run_id.clone());
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::AgentEvent, Status>>(agent::EVENT_QUEUE);
        let (ev_tx, mut ev_rx) = mpsc::channel(agent::EVENT_QUEUE);
        let cancel = d.stopping.child_token();
        tracing::info!(run = %run_id, "agent run started");
        tokio::spawn(async move {
            let run = agent::run(d.core.as_ref(), provider, &caller, spec, ev_tx, cancel.clone());
            let mut run = std::pin::pin!(run);
            let result = loop {
                tokio::select! {
                    // The caller went away: stop the run; dropping it cancels its calls upstream.
                    _ = out_tx.closed() => {
                        cancel.cancel();
                        tracing::info!(run = %run_id, "agent run cancelled: the caller went away");
                        return;
                    }
                    Some(ev) = ev_rx.recv() => {
                        if out_tx.send(Ok(agent_event_pb(&run_id, ev))).await.is_err() {
                            cancel.cancel();
                            return;
                        }
                    }
                    res = &mut run => break res,
                }
            };
            // Events sent just before the run returned.
            while let Ok(ev) = ev_rx.try_recv() {
                let _ = out_tx.send(Ok(agent_event_pb(&run_id, ev))).await;
            }
            if let Err(e) = result {
                let _ = out_tx.send(Err(ApiError::from(e).into())).await;
            }
            tracing::info!(run = %run_id, "agent run finished");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    type AuthLoginStream = EventStream<pb::AuthLoginEvent>;

    async fn auth_login(&self, req: Request<pb::AuthLoginRequest>) -> Result<Response<Self::AuthLoginStream>, Status> {
        let server = req.into_inner().server;
        let upstream = self.oauth_upstream(&server)?;
        let login = self.daemon.core.oauth.login(upstream, false, true).await.map_err(ApiError::from)?;
        let (tx, rx) = mpsc::channel::<Result<pb::AuthLoginEvent, Status>>(4);
        let ev = |e| Ok(pb::AuthLoginEvent { event: Some(e) });
        let _ = tx.send(ev(pb::auth_login_event::Event::AuthorizationUrl(login.url))).await;
        let mut phase = login.phase;
        tokio::spawn(async move {
            let outcome = phase.wait_for(|p| *p != oauth::LoginPhase::Pending).await.map(|p| p.clone());
            let last = match outcome {
                Ok(oauth::LoginPhase::Failed(why)) => pb::auth_login_event::Event::Failed(why),
                Ok(_) => pb::auth_login_event::Event::Done(true),
                Err(_) => pb::auth_login_event::Event::Failed("the daemon stopped the login".into()),
            };
            let _ = tx.send(ev(last)).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn auth_status(
        &self,
        req: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let server = req.into_inner().server;
        let upstreams = if server.is_empty() {
            self.daemon.core.supervisor.upstreams().into_iter().filter(|u| u.config.oauth.is_some()).collect()
        } else {
            vec![self.oauth_upstream(&server)?]
        };
        let mut servers = Vec::with_capacity(upstreams.len());
        for u in upstreams {
            let i = self.daemon.core.oauth.info(&u).await;
            servers.push(pb::AuthServerStatus {
                server: i.server,
                grant: i.grant.to_owned(),
                logged_in: i.logged_in,
                client_id: i.client_id,
                scopes: i.scopes,
                issuer: i.issuer,
                expires_unix_ms: i.expires_unix_ms,
                refreshable: i.refreshable,
                login_pending: i.login_pending,
                state: u.status().state.as_str().to_owned(),
            });
        }
        Ok(Response::new(pb::AuthStatusResponse { servers }))
    }

    async fn auth_logout(
        &self,
        req: Request<pb::AuthLogoutRequest>,
    ) -> Result<Response<pb::AuthLogoutResponse>, Status> {
        let upstream = self.oauth_upstream(&req.into_inner().server)?;
        let (removed, revocation) = self.daemon.core.oauth.logout(&upstream).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::AuthLogoutResponse { removed, revocation }))
    }

    type RunPipelineStream = EventStream<pb::PipelineEvent>;

    async fn run_pipeline(
        &self,
        req: Request<pb::RunPipelineRequest>,
    ) -> Result<Response<Self::RunPipelineStream>, Status> {
        let caller = Caller::app(app_of(&req));
        let r = req.into_inner();
        let d = self.daemon.clone();
        if !d.core.live.load().pipelines().contains_key(&r.name) {
            return Err(ApiError::NoSuchPipeline(r.name).into());
        }
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::PipelineEvent, Status>>(PROGRESS_QUEUE);
        let (ev_tx, mut ev_rx) = mpsc::channel(PROGRESS_QUEUE);
        tokio::spawn(async move {
            let run = d.core.run_pipeline(&caller, &r.name, &r.arguments_json, timeout_of(r.timeout_ms), ev_tx);
            let mut run = std::pin::pin!(run);
            let res = loop {
                tokio::select! {
                    // The caller went away: dropping the run cancels its calls upstream.
                    _ = out_tx.closed() => return,
                    Some(ev) = ev_rx.recv() => {
                        let _ = out_tx.send(Ok(pipeline_event_pb(ev))).await;
                    }
                    res = &mut run => break res,
                }
            };
            while let Ok(ev) = ev_rx.try_recv() {
                let _ = out_tx.send(Ok(pipeline_event_pb(ev))).await;
            }
            let msg = res
                .map(|o| pb::PipelineEvent { event: Some(pb::pipeline_event::Event::Result(outcome_pb(o))) })
                .map_err(Status::from);
            let _ = out_tx.send(msg).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    type AttachStream = EventStream<pb::AttachServerMessage>;

    async fn attach(
        &self,
        req: Request<tonic::Streaming<pb::AttachClientMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = req.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::AttachClientMessage { msg: Some(pb::attach_client_message::Msg::Hello(h)) }) => h,
            _ => return Err(ApiError::BadRequest("the first Attach message must be `hello`".into()).into()),
        };
        if !hello.elicitation && !hello.sampling {
            return Err(ApiError::BadRequest("hello must ask for elicitation and/or sampling requests".into()).into());
        }
        for s in &hello.servers {
            if self.daemon.core.supervisor.upstream(s).is_none() {
                return Err(status::no_such_server(s));
            }
        }
        let mut attachment = self.daemon.attachments.attach(Hello {
            app: hello.app,
            servers: hello.servers,
            elicitation: hello.elicitation,
            sampling: hello.sampling,
        });
        let stopping = self.daemon.stopping.clone();
        let (tx, out) = mpsc::channel(64);
        let ready = pb::AttachServerMessage {
            msg: Some(pb::attach_server_message::Msg::Ready(pb::AttachReady {
                attach_id: attachment.attach_id.clone(),
            })),
        };
        let _ = tx.send(Ok(ready)).await;
        tokio::spawn(async move {
            // The attachment lives as long as this task: when the app goes away (either
            // direction closes) it is dropped, which detaches and declines what is pending.
            loop {
                tokio::select! {
                    _ = stopping.cancelled() => return,
                    _ = tx.closed() => return,
                    routed = attachment.requests.recv() => {
                        let Some(r) = routed else { return };
                        let msg = pb::AttachServerMessage {
                            msg: Some(pb::attach_server_message::Msg::Request(pb::ServerRequest {
                                id: r.id,
                                server: r.server,
                                method: r.kind.method().into(),
                                params_json: r.params.to_string(),
                                timeout_ms: r.timeout.as_millis() as u64,
                            })),
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                    incoming = inbound.message() => {
                        let reply = match incoming {
                            Ok(Some(pb::AttachClientMessage { msg: Some(pb::attach_client_message::Msg::Reply(r)) })) => r,
                            Ok(Some(_)) => continue,
                            Ok(None) | Err(_) => return,
                        };
                        let outcome = match reply.outcome {
                            Some(pb::server_request_reply::Outcome::ResultJson(j)) => {
                                serde_json::from_str(&j).map_err(|e| format!("reply is not valid JSON: {e}"))
                            }
                            Some(pb::server_request_reply::Outcome::Error(e)) => Err(e),
                            None => Err("empty reply".to_owned()),
                        };
                        attachment.reply(&reply.id, outcome);
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    type WatchEventsStream = EventStream<pb::Event>;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let filter = req.into_inner().server;
        let mut rx = self.daemon.events.subscribe();
        let stopping = self.daemon.stopping.clone();
        let (tx, out) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = tx.closed() => return,
                    _ = stopping.cancelled() => return,
                    ev = rx.recv() => ev,
                };
                let msg = match ev {
                    Ok(ev) if filter.is_empty() || ev.server == filter => pb::Event {
                        unix_ms: ev.unix_ms,
                        server: ev.server,
                        kind: ev.kind.as_str().into(),
                        state: ev.state.map(state_pb).unwrap_or(pb::ServerState::Unspecified) as i32,
                        message: scrub(ev.message),
                    },
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => pb::Event {
                        unix_ms: crate::util::unix_ms(),
                        server: String::new(),
                        kind: "lagged".into(),
                        state: 0,
                        message: format!("{n} events were dropped because this watcher fell behind"),
                    },
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

/// A registry entry as the API shows it; `verdict` is the tool's trust verdict now.
fn tool_pb(st: &crate::registry::ServerTools, t: &crate::registry::ToolEntry, verdict: Verdict) -> pb::Tool {
    pb::Tool {
        qualified_name: t.qualified_name(),
        server: t.server.clone(),
        name: t.tool.name.to_string(),
        title: t.display.title.clone().unwrap_or_default(),
        description: t.display.description.as_deref().unwrap_or_default().to_owned(),
        input_schema_json: json_text(&t.display.input_schema),
        output_schema_json: t.display.output_schema.as_ref().map(json_text).unwrap_or_default(),
        annotations_json: t.display.annotations.as_ref().map(json_text).unwrap_or_default(),
        meta_json: t.display.meta.as_ref().map(json_text).unwrap_or_default(),
        stale: st.stale,
        ui_resource_uri: t.ui_resource_uri().unwrap_or_default().to_owned(),
        visibility: t.visibility(),
        fingerprint: t.fingerprint.clone(),
        quarantined: !verdict.is_trusted(),
        quarantine_reason: match verdict {
            Verdict::Trusted => String::new(),
            Verdict::Quarantined(why) => why,
        },
        findings: t.findings.clone(),
    }
}

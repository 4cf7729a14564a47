//! The MCP front end: mcpd as an MCP server, for every MCP host (Claude Code, Claude Desktop,
//! Cursor, VS Code, the Inspector, agent frameworks).
//!
//! One handler ([`Front`], on rmcp's server side) serves both transports: the Unix socket
//! that `mcpd mcp` bridges to a host's stdio ([`socket`]), and the loopback Streamable HTTP
//! endpoint ([`http`]). Both protocol eras are served as rmcp negotiates them per host. The
//! handler only translates: every tool call goes through the call core (trust, policy,
//! schema, audit naming the host), and a profile ([`view`]) decides what the host sees.
use std::{collections::HashMap, sync::Arc, time::Duration};

#[allow(deprecated)]
use rmcp::model::SetLevelRequestParams;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
        CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
        InputRequiredResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
        PaginatedRequestParams, ProgressNotificationParam, Prompt, ProtocolVersion, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Reference, ResourceContents, ResourceTemplate, ResultType,
        ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
    },
    service::{NotificationContext, RequestContext, SubscriptionContext},
};
use tokio::sync::mpsc;

use crate::{
    call::{CallRequest, Caller},
    config::{DEFAULT_PROFILE, Discovery, ProfileConfig},
    daemon::Daemon,
    discovery::{self, Meta},
    error::{CallError, ErrorKind},
    event::EventKind,
    host::HostHandle,
    resource::{self, CompleteRef},
};

pub mod host;
pub mod http;
pub mod socket;
pub mod view;

/// How long a host may treat a listing as fresh (`ttlMs`, 2026-07-28). Changes are also
/// announced (`list_changed`), so this only bounds how stale a host that ignores them gets.
const LIST_TTL_MS: u64 = 30_000;
/// Progress updates queued per call before the oldest are dropped (a slow host must not
/// hold back the upstream server).
const PROGRESS_QUEUE: usize = 64;
/// URIs remembered with the server that listed them (reads are routed by them).
const MAX_OWNERS: usize = 10_000;

/// What the MCP front ends share: the daemon, and which server owns which resource URI.
pub struct Shared {
    pub daemon: Arc<Daemon>,
    owners: std::sync::Mutex<HashMap<String, String>>,
    /// Calls of 2026-07-28 hosts waiting for the answers the hosts were asked for.
    parked: host::ParkedCalls,
}

impl Shared {
    pub fn new(daemon: Arc<Daemon>) -> Arc<Self> {
        Arc::new(Shared { daemon, owners: std::sync::Mutex::new(HashMap::new()), parked: Default::default() })
    }

    fn remember(&self, items: impl Iterator<Item = (String, String)>) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        for (uri, server) in items {
            // Bounded: a server listing endless URIs resets the map rather than growing it.
            if owners.len() >= MAX_OWNERS && !owners.contains_key(&uri) {
                owners.clear();
            }
            owners.insert(uri, server);
        }
    }

    fn owner(&self, uri: &str) -> Option<String> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).get(uri).cloned()
    }
}

/// One host's connection (a session, or one stateless request) to the front end.
#[derive(Clone)]
pub struct Front {
    shared: Arc<Shared>,
    /// The `[profiles.NAME]` this host gets; read from the live config on every request, so
    /// a reload applies to connected hosts too.
    profile: String,
    /// How the audit names the transport: `stdio pid:P` (the bridge's peer credentials) or
    /// `http`.
    transport: String,
    /// The level a session-era host chose with `logging/setLevel` (shared by the clones rmcp
    /// makes for one session).
    log_level: Arc<std::sync::Mutex<Option<serde_json::Value>>>,
}

impl Front {
    pub fn new(shared: Arc<Shared>, profile: impl Into<String>, transport: impl Into<String>) -> Self {
        Front { shared, profile: profile.into(), transport: transport.into(), log_level: Default::default() }
    }

    fn daemon(&self) -> &Daemon {
        &self.shared.daemon
    }

    fn profile(&self) -> Result<ProfileConfig, McpError> {
        profile_of(self.daemon(), &self.profile).ok_or_else(|| {
            McpError::invalid_request(format!("profile {:?} is no longer configured", self.profile), None)
        })
    }

    /// The host as the audit log and per-app rate limits name it.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Caller {
        let client = ctx.client_info().map(|i| i.name).unwrap_or_else(|| "unknown".into());
        // The host's self-reported name is display-only: keep it short and printable.
        let client: String = client.chars().filter(|c| !c.is_control()).take(64).collect();
        Caller::app(format!("mcp:{client} ({}, profile {})", self.transport, self.profile))
    }

    /// Starts a call through the core as its own task, so it can outlive one request of a
    /// stateless-era host (which answers questions by retrying).
    fn start_call(
        &self,
        request: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<host::Running, McpError> {
        let profile = self.profile()?;
        let Some(qualified) = view::qualified(&profile, &request.name) else {
            return Err(McpError::invalid_params(format!("unknown tool {:?}", request.name), None));
        };
        // The profile's own filter is a refusal like any other; a tool hidden only because it
        // is app-only stays callable (an MCP Apps view calls it through its host).
        if !profile.tools.allows(&qualified) {
            return Err(McpError::invalid_params(format!("unknown tool {:?}", request.name), None));
        }
        let mut caller = self.caller(ctx);
        let resume = resume_of(request.input_responses.clone(), request.request_state.clone());
        let (handle, asks, logs) = self.host_for(ctx, resume);
        caller.host = Some(handle);
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default()).to_string();
        let (p_tx, progress) = mpsc::channel::<ProgressNotificationParam>(PROGRESS_QUEUE);
        let (r_tx, result) = tokio::sync::oneshot::channel();
        let core = self.shared.daemon.core.clone();
        let task = tokio::spawn(async move {
            let req = CallRequest { name: &qualified, arguments_json: &arguments, timeout: None, confirm: false };
            let _ = r_tx.send(host::Finished::Call(core.call(&caller, req, Some(p_tx)).await));
        });
        Ok(host::Running { result, asks, progress, logs, task: host::AbortOnDrop(task) })
    }

    /// Starts `prompts/get` as its own task, like a tool call (its server may ask questions).
    fn start_prompt(
        &self,
        qualified: String,
        request: GetPromptRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> host::Running {
        let args: std::collections::HashMap<String, String> = request
            .arguments
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
            .collect();
        let resume = resume_of(request.input_responses, request.request_state);
        let (handle, asks, logs) = self.host_for(ctx, resume);
        let (_p_tx, progress) = mpsc::channel::<ProgressNotificationParam>(1);
        let (r_tx, result) = tokio::sync::oneshot::channel();
        let d = self.shared.daemon.clone();
        let task = tokio::spawn(async move {
            let asked = resource::Asked { requests: &d.core.requests, host: Some(&handle) };
            let res = resource::get_prompt(&d.core.supervisor, &d.core.trust, &qualified, args, asked).await;
            let _ = r_tx.send(host::Finished::Prompt(res));
        });
        host::Running { result, asks, progress, logs, task: host::AbortOnDrop(task) }
    }

    /// The host as the call path carries it, in the host's era, and the channels its
    /// questions and the servers' log lines come back on.
    fn host_for(
        &self,
        ctx: &RequestContext<RoleServer>,
        resume: Option<crate::host::Resume>,
    ) -> (HostHandle, mpsc::Receiver<host::Ask>, mpsc::Receiver<serde_json::Value>) {
        let caps = ctx.client_capabilities().unwrap_or_default();
        let (asks_tx, asks) = host::ask_channel();
        let (logs_tx, logs) = mpsc::channel(PROGRESS_QUEUE);
        let stateless = ctx.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let handle = HostHandle(if stateless {
            let log_level = ctx.meta.0.get("io.modelcontextprotocol/logLevel").cloned();
            Arc::new(host::RoundHost {
                caps,
                asks: asks_tx,
                next_key: Default::default(),
                logs: logs_tx,
                log_level,
                resume: std::sync::Mutex::new(resume),
            })
        } else {
            // Session-era servers log without asking; a 2026-07-28 server needs the opt-in,
            // at the host's level (everything until it chose one).
            let log_level = self.log_level.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let log_level = Some(log_level.unwrap_or_else(|| serde_json::Value::from("debug")));
            Arc::new(host::SessionHost { peer: ctx.peer.clone(), caps, log_level, logs: logs_tx })
        });
        (handle, asks, logs)
    }

    /// Forwards progress and log lines until the call ends, the host cancels, or the server
    /// asks something a stateless-era host must answer in a round of its own.
    async fn drive(&self, mut running: host::Running, ctx: &RequestContext<RoleServer>) -> Result<Driven, McpError> {
        let token = ctx.meta.get_progress_token();
        let forward = |mut p: ProgressNotificationParam| {
            let token = token.clone();
            async move {
                if let Some(token) = token {
                    p.progress_token = token;
                    let _ = ctx.peer.notify_progress(p).await;
                }
            }
        };
        loop {
            tokio::select! {
                // The host cancelled: dropping the call cancels it upstream and audits it.
                _ = ctx.ct.cancelled() => {
                    return Err(McpError::internal_error("the call was cancelled", None));
                }
                Some(p) = running.progress.recv() => forward(p).await,
                Some(line) = running.logs.recv() => self.forward_log(ctx, line).await,
                Some(ask) = running.asks.recv() => {
                    let mut asks = vec![ask];
                    while let Ok(a) = running.asks.try_recv() {
                        asks.push(a);
                    }
                    let (state, requests) = self.shared.parked.park(running, asks);
                    return Ok(Driven::Input(InputRequiredResult::new(Some(requests), Some(state))));
                }
                res = &mut running.result => {
                    // Updates sent just before the result still go out, and before it.
                    while let Ok(p) = running.progress.try_recv() {
                        forward(p).await;
                    }
                    while let Ok(line) = running.logs.try_recv() {
                        self.forward_log(ctx, line).await;
                    }
                    return res.map(Driven::Done).map_err(|_| McpError::internal_error("the call ended without a result", None));
                }
            }
        }
    }

    /// A server's log line for the host's request, at or above the level the host wants: a
    /// 2026-07-28 host opts in per request (`_meta` `io.modelcontextprotocol/logLevel`; none,
    /// no lines), a session-era one with `logging/setLevel` (until then, every line).
    #[allow(deprecated)]
    async fn forward_log(&self, ctx: &RequestContext<RoleServer>, line: serde_json::Value) {
        use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
        let stateless = ctx.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let wanted = if stateless {
            ctx.meta.log_level()
        } else {
            let chosen = self.log_level.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Some(chosen.and_then(|v| serde_json::from_value(v).ok()).unwrap_or(LoggingLevel::Debug))
        };
        let Some(wanted) = wanted else { return };
        // A server's log text is its own: the config's secrets never leave in it.
        let mut line = line;
        crate::known::scrub_json(&mut line);
        let Ok(p) = serde_json::from_value::<LoggingMessageNotificationParam>(line) else { return };
        if (p.level as u8) >= (wanted as u8) {
            let _ = ctx.peer.notify_logging_message(p).await;
        }
    }

    /// `search_tools` for this host: what its profile serves and a model may call, under
    /// the names the host knows.
    fn search(&self, profile: &ProfileConfig, query: &str, k: usize) -> serde_json::Value {
        let core = &self.daemon().core;
        let snap = core.registry.snapshot();
        let visible = |server: &str, name: &str| {
            profile.serves(server)
                && profile.tools.allows(&format!("{server}.{name}"))
                && snap
                    .servers
                    .get(server)
                    .is_some_and(|st| st.tools.get(name).is_some_and(|t| core.model_may_call(st, t)))
        };
        let hits = core.registry.search(query, k, &visible);
        let found = hits.iter().filter_map(|h| {
            let t = snap.servers.get(&h.server)?.tools.get(&h.name)?;
            Some((view::exposed(profile.names, &h.server, &h.name), t.as_ref(), h.score))
        });
        discovery::search_result(query, found)
    }

    /// The tool a host's name stands for, if search could offer it to this host.
    fn offered(&self, profile: &ProfileConfig, name: &str) -> Result<Arc<crate::registry::ToolEntry>, String> {
        let core = &self.daemon().core;
        let snap = core.registry.snapshot();
        view::qualified(profile, name)
            .filter(|q| profile.tools.allows(q))
            .and_then(|q| snap.resolve(&q).filter(|(st, t)| core.model_may_call(st, t)).map(|(_, t)| t.clone()))
            .ok_or_else(|| format!("no tool {name:?} is offered: search_tools finds the tools there are"))
    }

    /// Why `call_tool` may not call `name`, when the call path would not say it itself: a
    /// tool for an MCP App's view only is not the model's to call.
    fn refused_via_meta(&self, profile: &ProfileConfig, name: &str) -> Option<String> {
        let snap = self.daemon().core.registry.snapshot();
        let q = view::qualified(profile, name)?;
        let (_, t) = snap.resolve(&q)?;
        t.app_only().then(|| format!("{name:?} is for an MCP App's view only, not for a model to call"))
    }

    /// The server behind a resource URI: the one that listed it, else the one with a
    /// template it fits, else the first served server that can read it.
    async fn owner_of(&self, profile: &ProfileConfig, uri: &str) -> Result<String, McpError> {
        if let Some(s) = self.shared.owner(uri).filter(|s| profile.serves(s)) {
            return Ok(s);
        }
        let sup = &self.daemon().core.supervisor;
        if let Ok(l) = resource::list_resources(sup, "").await {
            self.shared
                .remember(l.items.into_iter().filter(|(s, _)| profile.serves(s)).map(|(s, r)| (r.uri.clone(), s)));
            if let Some(s) = self.shared.owner(uri).filter(|s| profile.serves(s)) {
                return Ok(s);
            }
        }
        if let Ok(l) = resource::list_resource_templates(sup, "").await
            && let Some((s, _)) = l.items.iter().find(|(s, t)| profile.serves(s) && template_fits(&t.uri_template, uri))
        {
            return Ok(s.clone());
        }
        Err(McpError::resource_not_found(
            format!("no served server lists the resource {uri:?}"),
            Some(serde_json::json!({ "uri": uri })),
        ))
    }
}

/// The profile called `name`; `default` is every server when no table defines it.
pub fn profile_of(daemon: &Daemon, name: &str) -> Option<ProfileConfig> {
    let live = daemon.core.live.load();
    match live.config.profiles.get(name) {
        Some(p) => Some(p.clone()),
        None if name == DEFAULT_PROFILE => Some(ProfileConfig::everything()),
        None => None,
    }
}

/// The host talks to mcpd: an upstream's word on who answered is not passed on as mcpd's.
fn own_result_meta(meta: &mut Option<rmcp::model::MetaObject>) {
    if let Some(m) = meta {
        m.0.remove("io.modelcontextprotocol/serverInfo");
        if m.0.is_empty() {
            *meta = None;
        }
    }
}

/// Whether `uri` could be an instance of the RFC 6570 `template`: the literal text before
/// the first expression must match (a cheap routing hint, not a full expansion).
fn template_fits(template: &str, uri: &str) -> bool {
    let literal = template.split('{').next().unwrap_or(template);
    !literal.is_empty() && uri.starts_with(literal)
}

/// A call-path error as the host sees it: a name that resolves to no tool is a protocol
/// error (-32602, as the spec asks for unknown tools); every other failure is a tool result
/// with `isError`, so the host shows the reason to its user.
fn call_failure(e: CallError) -> Result<CallToolResult, McpError> {
    // The server's own JSON-RPC error stays one, with its code: the host talks to it
    // through mcpd, and a code such as -32602 (a stale requestState) means the same to it.
    if let CallError::Upstream { code, message, data, .. } = e {
        return Err(passed_on(code, &message, data));
    }
    let text = crate::known::scrub(&e.to_string()).into_owned();
    match e.kind() {
        ErrorKind::NotFound if matches!(e, CallError::NoSuchTool { .. } | CallError::NoSuchServer(_)) => {
            Err(McpError::invalid_params(text, None))
        }
        _ => Ok(CallToolResult::error(vec![ContentBlock::text(text)])),
    }
}

/// A tool result a host's model reads as a failure.
fn tool_error(why: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(crate::known::scrub(&why).into_owned())])
}

/// A finished call as a 2026-07-28 host requires it (rmcp clears `resultType` again for
/// session-era hosts).
fn complete(mut result: CallToolResult) -> CallToolResponse {
    result.result_type = Some(ResultType::COMPLETE);
    CallToolResponse::Complete(result)
}

/// How driving a host's request ended.
enum Driven {
    Done(host::Finished),
    /// The server asked questions a 2026-07-28 host answers in a round of its own.
    Input(InputRequiredResult),
}

/// What a host's request carried for the server itself, if anything.
fn resume_of(
    input_responses: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    request_state: Option<String>,
) -> Option<crate::host::Resume> {
    (input_responses.is_some() || request_state.is_some())
        .then_some(crate::host::Resume { input_responses, request_state })
}

/// A server's JSON-RPC error as the host gets it: its code and data as they came, the
/// config's secrets replaced.
fn passed_on(code: i32, message: &str, data: Option<serde_json::Value>) -> McpError {
    let data = data.map(|mut d| {
        crate::known::scrub_json(&mut d);
        d
    });
    McpError::new(rmcp::model::ErrorCode(code), crate::known::scrub(message).into_owned(), data)
}

/// A failure outside tool calls (resources, prompts, completion) as a JSON-RPC error.
fn request_failure(e: CallError) -> McpError {
    if let CallError::Upstream { code, message, data, .. } = e {
        return passed_on(code, &message, data);
    }
    let text = crate::known::scrub(&e.to_string()).into_owned();
    match e.kind() {
        ErrorKind::NotFound => McpError::invalid_params(text, None),
        ErrorKind::InvalidArgument | ErrorKind::FailedPrecondition | ErrorKind::PermissionDenied => {
            McpError::invalid_params(text, None)
        }
        _ => McpError::internal_error(text, None),
    }
}

// Logging is deprecated in 2026-07-28 but still part of the session era that hosts speak.
#[allow(deprecated)]
fn caps() -> ServerCapabilities {
    ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_resources_list_changed()
        .enable_prompts()
        .enable_prompts_list_changed()
        .enable_completions()
        .enable_logging()
        .build()
}

// === impl ServerHandler for Front ===

impl ServerHandler for Front {
    fn get_info(&self) -> ServerConfig {
        let mut info = Implementation::new("mcpd", env!("CARGO_PKG_VERSION"));
        info.title = Some("mcpd".into());
        ServerConfig::new(caps()).with_server_info(info).with_instructions(
            "mcpd serves the tools, resources and prompts of the MCP servers configured behind it, checked by its \
             trust and policy rules.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let profile = self.profile()?;
        if profile.discovery == Discovery::Search {
            return Ok(ListToolsResult::with_all_items(view::meta_tools())
                .with_ttl_ms(LIST_TTL_MS)
                .with_cache_scope(CacheScope::Private));
        }
        let core = &self.daemon().core;
        let snap = core.registry.snapshot();
        let tools = view::tools(&profile, &snap, &|t| core.verdict(t))
            .into_iter()
            .map(|(name, t)| {
                // The sanitised copy: what hosts and their models are shown.
                let mut tool: Tool = t.display.clone();
                tool.name = name.into();
                tool
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools).with_ttl_ms(LIST_TTL_MS).with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // A 2026-07-28 host's retry with the answers mcpd asked for resumes its parked call;
        // any other input (the server's own state, or answers without state) goes to the
        // server with a new call, which judges it.
        let parked = request
            .request_state
            .as_deref()
            .and_then(|state| self.shared.parked.resume(state, request.input_responses.clone().unwrap_or_default()));
        // A call through the `call_tool` meta-tool: failures are the model's to read, so
        // they are tool results rather than protocol errors.
        let mut via_meta = false;
        let running = match parked {
            Some(running) => running,
            None => {
                let mut request = request;
                let profile = self.profile()?;
                if profile.discovery == Discovery::Search {
                    let args = request.arguments.clone().unwrap_or_default();
                    match discovery::parse(&request.name, &args) {
                        None => {}
                        Some(Err(why)) => return Ok(complete(tool_error(why))),
                        Some(Ok(Meta::Search { query, k })) => {
                            return Ok(complete(CallToolResult::structured(self.search(&profile, &query, k))));
                        }
                        Some(Ok(Meta::Describe { name })) => {
                            let r = match self.offered(&profile, &name) {
                                Ok(t) => CallToolResult::structured(discovery::describe_result(&name, &t)),
                                Err(why) => tool_error(why),
                            };
                            return Ok(complete(r));
                        }
                        Some(Ok(Meta::Call { name, arguments })) => {
                            if let Some(why) = self.refused_via_meta(&profile, &name) {
                                return Ok(complete(tool_error(why)));
                            }
                            request.name = name.into();
                            request.arguments = Some(arguments);
                            via_meta = true;
                        }
                    }
                }
                match self.start_call(request, &ctx) {
                    Ok(running) => running,
                    Err(e) if via_meta => return Ok(complete(tool_error(e.message.into_owned()))),
                    Err(e) => return Err(e),
                }
            }
        };
        let res = match self.drive(running, &ctx).await? {
            Driven::Input(ir) => return Ok(CallToolResponse::InputRequired(ir)),
            Driven::Done(host::Finished::Call(res)) => res,
            Driven::Done(host::Finished::Prompt(_)) => {
                return Err(McpError::internal_error("a prompt answered a tool call", None));
            }
        };
        let mut result = match res {
            Ok(o) => o.result,
            Err(e) => match call_failure(e) {
                Ok(r) => r,
                Err(e) if via_meta => tool_error(e.message.into_owned()),
                Err(e) => return Err(e),
            },
        };
        // A session-era server's result has no `resultType`; a 2026-07-28 host requires one
        // (rmcp clears it again for session-era hosts).
        result.result_type = Some(ResultType::COMPLETE);
        own_result_meta(&mut result.meta);
        Ok(CallToolResponse::Complete(result))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let profile = self.profile()?;
        let l = resource::list_resources(&self.daemon().core.supervisor, "").await.map_err(request_failure)?;
        let items: Vec<_> = l.items.into_iter().filter(|(s, _)| profile.serves(s)).collect();
        self.shared.remember(items.iter().map(|(s, r)| (r.uri.clone(), s.clone())));
        let resources = items.into_iter().map(|(_, r)| r).collect();
        Ok(ListResourcesResult::with_all_items(resources)
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Private))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let profile = self.profile()?;
        let d = self.shared.daemon.clone();
        let l = resource::list_resource_templates(&d.core.supervisor, "").await.map_err(request_failure)?;
        let templates =
            trusted_items(d, profile, l.items, "resource-template", |_, _, t: ResourceTemplate| Some(t)).await?;
        Ok(ListResourceTemplatesResult::with_all_items(templates)
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Private))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let profile = self.profile()?;
        let server = self.owner_of(&profile, &request.uri).await?;
        let d = self.daemon();
        let ttl = d.core.live.load().resource_ttl();
        let read = resource::read(&d.core.supervisor, &d.cache, ttl, &server, &request.uri, false)
            .await
            .map_err(request_failure)?;
        let contents: Vec<ResourceContents> =
            serde_json::from_str(&crate::known::scrub(&read.entry.contents_json)).unwrap_or_default();
        let mut result = ReadResourceResult::new(contents);
        result.result_type = Some(ResultType::COMPLETE);
        result.ttl_ms = Some(read.entry.ttl.as_millis() as u64);
        if !read.entry.meta_json.is_empty() {
            result.meta = serde_json::from_str(&read.entry.meta_json).ok();
        }
        Ok(ReadResourceResponse::Complete(result))
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let profile = self.profile()?;
        let server = self.owner_of(&profile, &request.uri).await?;
        resource::subscribe(&self.daemon().core.supervisor, &server, &request.uri).await.map_err(request_failure)
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // Upstream subscriptions are shared by every caller of the daemon; this host simply
        // stops being told (its notifier filters on what it still wants).
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let profile = self.profile()?;
        let d = self.shared.daemon.clone();
        let l = resource::list_prompts(&d.core.supervisor, "").await.map_err(request_failure)?;
        let prompts = trusted_items(d, profile, l.items, "prompt", |profile, server, mut p: Prompt| {
            p.name = view::exposed(profile.names, server, &p.name);
            Some(p)
        })
        .await?;
        Ok(ListPromptsResult::with_all_items(prompts).with_ttl_ms(LIST_TTL_MS).with_cache_scope(CacheScope::Private))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let profile = self.profile()?;
        let Some(qualified) = view::qualified(&profile, &request.name) else {
            return Err(McpError::invalid_params(format!("unknown prompt {:?}", request.name), None));
        };
        let parked = request
            .request_state
            .as_deref()
            .and_then(|state| self.shared.parked.resume(state, request.input_responses.clone().unwrap_or_default()));
        let running = match parked {
            Some(running) => running,
            None => self.start_prompt(qualified, request, &ctx),
        };
        let res = match self.drive(running, &ctx).await? {
            Driven::Input(ir) => return Ok(GetPromptResponse::InputRequired(ir)),
            Driven::Done(host::Finished::Prompt(res)) => res.map_err(request_failure)?,
            Driven::Done(host::Finished::Call(_)) => {
                return Err(McpError::internal_error("a tool call answered a prompt request", None));
            }
        };
        // Prompt text comes from elsewhere: the config's secrets never leave in it.
        let mut value = serde_json::to_value(&res).unwrap_or_default();
        let mut res: GetPromptResult = match crate::known::scrub_json(&mut value) {
            0 => res,
            _ => serde_json::from_value(value).unwrap_or(res),
        };
        res.result_type = Some(ResultType::COMPLETE);
        own_result_meta(&mut res.meta);
        Ok(GetPromptResponse::Complete(res))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let profile = self.profile()?;
        let (server, target) = match &request.r#ref {
            Reference::Prompt(p) => {
                let Some(q) = view::qualified(&profile, &p.name) else {
                    return Err(McpError::invalid_params(format!("unknown prompt {:?}", p.name), None));
                };
                let (server, name) = q.split_once('.').unwrap_or_default();
                (server.to_owned(), CompleteRef::Prompt(name.to_owned()))
            }
            Reference::Resource(r) => {
                let sup = &self.daemon().core.supervisor;
                let l = resource::list_resource_templates(sup, "").await.map_err(request_failure)?;
                let Some((server, _)) = l.items.iter().find(|(s, t)| profile.serves(s) && t.uri_template == r.uri)
                else {
                    return Err(McpError::invalid_params(
                        format!("no served server has the template {:?}", r.uri),
                        None,
                    ));
                };
                (server.clone(), CompleteRef::ResourceTemplate(r.uri.clone()))
            }
            _ => return Err(McpError::invalid_params("unknown completion reference", None)),
        };
        let context = request.context.and_then(|c| c.arguments).unwrap_or_default();
        let info: CompletionInfo = resource::complete(
            &self.daemon().core.supervisor,
            &server,
            target,
            &request.argument.name,
            &request.argument.value,
            context.into_iter().collect(),
        )
        .await
        .map_err(request_failure)?;
        Ok(CompleteResult::new(info))
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // mcpd's own log level is the admin's; a host's choice applies to nothing upstream.
        Ok(())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), McpError> {
        // The 2026-07-28 notification stream; the sink drops what the host did not ask for.
        let mut events = self.daemon().events.subscribe();
        loop {
            let changes = tokio::select! {
                _ = ctx.cancelled() => return Ok(()),
                c = next_changes(&mut events, &self.shared.daemon, &self.profile) => c,
            };
            let Some(changes) = changes else { return Ok(()) };
            for change in changes {
                let sink = ctx.sink();
                let sent = match change {
                    Change::Tools => sink.notify_tool_list_changed().await,
                    Change::Prompts => sink.notify_prompt_list_changed().await,
                    Change::Resources => sink.notify_resource_list_changed().await,
                    Change::Updated(uri) => sink.notify_resource_updated(uri).await,
                };
                // A filtered-out notification is refused too; only a closed stream ends us.
                if let Err(e) = sent
                    && ctx.request_context().ct.is_cancelled()
                {
                    tracing::debug!(error = %e, "subscription stream closed");
                    return Ok(());
                }
            }
        }
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        // The session era: the same changes go out as plain notifications for as long as
        // the session lives.
        let peer = ctx.peer.clone();
        let daemon = self.shared.daemon.clone();
        let profile = self.profile.clone();
        tokio::spawn(async move {
            let mut events = daemon.events.subscribe();
            while let Some(changes) = next_changes(&mut events, &daemon, &profile).await {
                for change in changes {
                    let sent = match change {
                        Change::Tools => peer.notify_tool_list_changed().await,
                        Change::Prompts => peer.notify_prompt_list_changed().await,
                        Change::Resources => peer.notify_resource_list_changed().await,
                        Change::Updated(uri) => {
                            peer.notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(uri)).await
                        }
                    };
                    if sent.is_err() || peer.is_transport_closed() {
                        return;
                    }
                }
            }
        });
    }
}

/// A change a host is told about.
enum Change {
    Tools,
    Prompts,
    Resources,
    Updated(String),
}

/// The next changes the daemon's events mean for a host of `profile` (both eras' notifiers
/// share it); `None` when the daemon stops or the bus closes. A notifier that fell behind
/// is told every list may have changed.
async fn next_changes(
    events: &mut tokio::sync::broadcast::Receiver<crate::event::Event>,
    daemon: &Daemon,
    profile: &str,
) -> Option<Vec<Change>> {
    loop {
        let ev = tokio::select! {
            _ = daemon.stopping.cancelled() => return None,
            ev = events.recv() => ev,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                return Some(vec![Change::Tools, Change::Prompts, Change::Resources]);
            }
            Err(_) => return None,
        };
        let change = match ev.kind {
            EventKind::ToolsChanged | EventKind::Quarantined | EventKind::TrustChanged => Change::Tools,
            EventKind::PromptsChanged => Change::Prompts,
            EventKind::ResourcesChanged => Change::Resources,
            EventKind::ResourceUpdated => Change::Updated(ev.message),
            _ => continue,
        };
        if profile_of(daemon, profile).is_some_and(|p| p.serves(&ev.server)) {
            return Some(vec![change]);
        }
    }
}

/// The listed prompts or templates a profile serves, fingerprinted and scanned like tools:
/// only the trusted ones (a changed or new one waits for approval, hidden), in their
/// sanitised form, each passed through `shape` (which may rename it). CPU work, so it runs
/// on the blocking pool.
async fn trusted_items<T>(
    d: Arc<Daemon>,
    profile: ProfileConfig,
    items: Vec<(String, T)>,
    kind: &'static str,
    shape: impl Fn(&ProfileConfig, &str, T) -> Option<T> + Send + 'static,
) -> Result<Vec<T>, McpError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut checker = resource::Checker::new(&d.core.registry, &d.core.supervisor);
        items
            .into_iter()
            .filter(|(s, _)| profile.serves(s))
            .filter_map(|(server, item)| {
                let checked = checker.check(&server, kind, &item);
                if !item_trusted(&d, &server, &checked.item) {
                    return None;
                }
                shape(&profile, &server, serde_json::from_value(checked.sanitized).ok()?)
            })
            .collect()
    })
    .await
    .map_err(|e| McpError::internal_error(format!("listing {kind}s failed: {e}"), None))
}

/// Whether a listed prompt or template is trusted now.
fn item_trusted(d: &Daemon, server: &str, item: &crate::registry::PinItem) -> bool {
    d.core
        .supervisor
        .upstream(server)
        .is_some_and(|u| d.core.trust.item_verdict(&u.config, &u.identity, item).is_trusted())
}

/// How long the HTTP endpoint keeps an idle session-era session.
pub const SESSION_KEEP_ALIVE: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_route_by_their_literal_prefix() {
        assert!(template_fits("file:///{path}", "file:///etc/hosts"));
        assert!(!template_fits("file:///{path}", "git://x"));
        // A template that is all expression says nothing about where a URI lives.
        assert!(!template_fits("{uri}", "anything"));
    }

    #[test]
    fn a_servers_json_rpc_error_reaches_the_host_with_its_code() {
        let e = CallError::Upstream {
            server: "s".into(),
            code: -32602,
            message: "Invalid or expired requestState".into(),
            data: None,
        };
        let err = call_failure(e).expect_err("a protocol error");
        assert_eq!(err.code.0, -32602);
        assert_eq!(err.message, "Invalid or expired requestState");
    }

    #[test]
    fn unknown_tools_are_protocol_errors_and_the_rest_are_tool_errors() {
        let unknown = CallError::NoSuchTool { name: "a.b".into(), suggestion: None };
        assert!(call_failure(unknown).is_err());
        let q = CallError::Quarantined { tool: "a.b".into(), reason: "changed".into() };
        let r = call_failure(q).expect("a tool result");
        assert_eq!(r.is_error, Some(true));
    }
}

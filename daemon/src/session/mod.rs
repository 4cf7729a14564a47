//! One task per upstream server: connect, handshake in the right era, list tools,
//! watch for changes and liveness, and on failure reconnect with backoff behind a
//! crash-loop breaker. A failing server never affects the others.

// Sampling types are deprecated by SEP-2577 but still how session-era servers sample.
#![allow(deprecated)]
use std::{sync::Arc, time::Duration};

use rmcp::{
    ClientHandler, ErrorData,
    model::{
        ClientConfig, ClientRequest, CreateMessageRequestParams, CreateMessageResult, CustomNotification,
        ElicitRequestParams, ElicitResult, ElicitationAction, Implementation, ListRootsResult, PaginatedRequestParams,
        PingRequest, ProgressNotificationParam, ProtocolVersion, ResourceUpdatedNotificationParam, Tool,
    },
    service::{
        ClientLifecycleMode, ClientServiceExt, NotificationContext, RequestContext, RoleClient, RunningService,
        ServiceError,
    },
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    attach::Attachments,
    backoff::{Backoff, CrashLoopBreaker},
    cache::ResourceCache,
    config::{OAuthGrant, ProtocolPref, TransportConfig},
    event::EventKind,
    reaper::Reaper,
    registry::{PinItem, Registry, build_server_tools},
    requests::ServerRequests,
    state::{ServerState, SessionEnd, Transition},
    store::{Store, StoredTools},
    transport::{self, AnyTransport, limit::FaultSlot, stdio::StdioChild},
    upstream::Upstream,
    util::unix_ms,
};

mod subscription;

/// A list_changed burst (servers often send several) becomes one re-list.
const LIST_CHANGED_DEBOUNCE: Duration = Duration::from_millis(250);
/// A session that stayed up this long resets the backoff to its initial delay.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// The shortest gap between two re-lists a server's `ttlMs` can ask for.
const MIN_RELIST: Duration = Duration::from_secs(1);
/// Bounds on `tools/list` pagination, against servers that page forever.
const MAX_TOOL_PAGES: usize = 1000;
const MAX_TOOLS: usize = 10_000;
/// A remembered era is trusted this long before mcpd probes again.
const ERA_MEMORY_MS: u64 = 24 * 3600 * 1000;

/// Everything a session task needs from the daemon.
#[derive(Clone)]
pub struct SessionContext {
    pub registry: Arc<Registry>,
    pub attachments: Arc<Attachments>,
    pub cache: ResourceCache,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub trust: Arc<crate::trust::Trust>,
    pub requests: Arc<ServerRequests>,
    pub store: Option<Store>,
    pub reaper: Option<Reaper>,
    pub oauth: Arc<crate::oauth::OAuth>,
    /// Start slots: a stdio server holds one from its spawn through its handshake.
    pub start_slots: Arc<tokio::sync::Semaphore>,
    /// How server processes are contained (cgroups or the process tree).
    pub containment: Arc<crate::contain::Containment>,
}

/// How many stdio servers may start at once for `[daemon] max_starting` (0: twice the CPUs).
pub fn start_slots(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2).max(2),
        n => n,
    }
}

/// Answers what a server sends to mcpd: progress and list changes go to the registry
/// and waiting calls; elicitation and sampling go to an attached app.
#[derive(Clone)]
pub struct Handler {
    upstream: Arc<Upstream>,
    requests: Arc<ServerRequests>,
    cache: ResourceCache,
    /// The version offered in `initialize` (session era).
    offer: ProtocolVersion,
}

impl ClientHandler for Handler {
    async fn on_progress(&self, params: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        self.upstream.route_progress(params);
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.upstream.tools_changed.notify_one();
    }

    async fn on_resource_updated(&self, params: ResourceUpdatedNotificationParam, _: NotificationContext<RoleClient>) {
        let n = rmcp::model::ResourceUpdatedNotification::new(params);
        subscription::on_notification(&self.upstream, &self.cache, &n.into());
    }

    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        let n = rmcp::model::ResourceListChangedNotification::default();
        subscription::on_notification(&self.upstream, &self.cache, &n.into());
    }

    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        let n = rmcp::model::PromptListChangedNotification::default();
        subscription::on_notification(&self.upstream, &self.cache, &n.into());
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let params = serde_json::to_value(&request).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let host = self.upstream.current_host();
        let answer = self.requests.elicit(&self.upstream, params, host.as_ref()).await;
        Ok(serde_json::from_value(answer).unwrap_or_else(|e| {
            // An app that answers with garbage is treated like one that said no.
            tracing::warn!(server = %self.upstream.name, error = %e, "invalid elicitation answer from the app; declining");
            ElicitResult::new(ElicitationAction::Decline)
        }))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let params = serde_json::to_value(&params).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let host = self.upstream.current_host();
        let v = self.requests.sample(&self.upstream, params, host.as_ref()).await?;
        serde_json::from_value(v)
            .map_err(|e| ErrorData::internal_error(format!("the sampling answer is not a valid result: {e}"), None))
    }

    async fn list_roots(&self, _: RequestContext<RoleClient>) -> Result<ListRootsResult, ErrorData> {
        // The admin's roots for the server come first; without any, the roots of the host
        // whose call is in flight, if it has some.
        let mut roots = self.requests.roots(&self.upstream);
        if self.upstream.roots().is_empty()
            && let Some(h) =
                crate::host::HostHandle::taking(self.upstream.current_host().as_ref(), "roots/list", &roots)
            && let Ok(Ok(v)) =
                tokio::time::timeout(crate::attach::DEFAULT_REPLY_TIMEOUT, h.ask("roots/list", serde_json::json!({})))
                    .await
        {
            roots = v;
        }
        serde_json::from_value(roots).map_err(|e| ErrorData::internal_error(format!("roots: {e}"), None))
    }

    // Logging is deprecated in 2026-07-28, and still what session-era servers send.
    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        // A server's log lines belong to the host whose call is in flight, if any; mcpd keeps
        // none of them (its own log is the admin's).
        if let Some(h) = self.upstream.current_host()
            && let Ok(v) = serde_json::to_value(&params)
        {
            h.0.log(v);
        }
    }

    async fn on_custom_notification(&self, n: CustomNotification, _: NotificationContext<RoleClient>) {
        // URL-mode elicitation: the server says the out-of-band interaction finished.
        if n.method == "notifications/elicitation/complete" {
            let id = n
                .params
                .as_ref()
                .and_then(|p| p.get("elicitationId"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            self.upstream.events.emit(&self.upstream.name, EventKind::ElicitationComplete, None, id);
        }
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = Implementation::new("mcpd", env!("CARGO_PKG_VERSION"));
        info.title = Some("mcpd".into());
        let caps = crate::requests::client_capabilities();
        ClientConfig::new(caps, info).with_protocol_version(self.offer.clone())
    }
}

/// A live session.
struct Connection {
    service: RunningService<RoleClient, Handler>,
    child: Option<StdioChild>,
    fault: FaultSlot,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Setup(String),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("listing tools failed: {0}")]
    ListTools(String),
    /// HTTP 401/403: the `WWW-Authenticate` challenge (possibly empty).
    #[error("the server requires authorization")]
    NeedsAuth(String),
}

/// What status shows for a server that asked for authorization: its scopes and metadata
/// URL when the challenge names them, what to do, never a token.
fn needs_auth_message(upstream: &Upstream, challenge: &str) -> String {
    let server = &upstream.name;
    let mut msg = match upstream.config.oauth {
        Some(_) if challenge.is_empty() => format!("not logged in: run `mcpd auth login {server}`"),
        Some(_) => format!("the server requires authorization (HTTP 401/403): run `mcpd auth login {server}`"),
        None => format!("the server requires authorization (HTTP 401/403); mcpd has no credentials for {server:?}"),
    };
    let base = match &upstream.config.transport {
        TransportConfig::Http { url, .. } | TransportConfig::Sse { url, .. } => url.as_str(),
        TransportConfig::Stdio { .. } => "",
    };
    let params = crate::oauth::challenge(challenge, base);
    if let Some(scope) = params.scope {
        msg.push_str(&format!("; it asks for scope \"{scope}\""));
    }
    if let Some(meta) = params.resource_metadata_url {
        msg.push_str(&format!("; resource metadata at {}", crate::config::redact_url(meta.as_str())));
    }
    if upstream.config.oauth.is_none() {
        msg.push_str("; add [servers.NAME.oauth] or an Authorization header from a secret to the config, then reload");
    }
    msg
}

/// Runs the server's session loop until `cancel` fires.
pub async fn run(upstream: Arc<Upstream>, ctx: SessionContext, cancel: CancellationToken) {
    let cfg = upstream.config.clone();
    if !cfg.enabled {
        upstream.transition(Transition::Disable, |_| {});
        ctx.registry.remove(&upstream.name);
        return;
    }
    let mut backoff = match Backoff::try_new(&cfg.backoff) {
        Ok(b) => b,
        Err(e) => {
            // Config validation rejects these bounds; keep a sane policy if one slips through.
            tracing::error!(server = %upstream.name, error = %e, "invalid backoff, using defaults");
            Backoff::try_new(&crate::config::BackoffConfig::default()).unwrap_or_else(|_| unreachable_backoff())
        }
    };
    let mut breaker = CrashLoopBreaker::new(&cfg.crash_loop);

    loop {
        if cancel.is_cancelled() {
            break;
        }
        upstream.transition(Transition::Start, |s| s.next_retry_unix_ms = 0);
        let started = Instant::now();
        let outcome = match connect(&upstream, &ctx).await {
            Ok(conn) => match serve(&upstream, &ctx, conn, &cancel).await {
                SessionEnd::NeedsAuth(challenge) => Err(challenge),
                end => Ok(end),
            },
            Err(ConnectError::NeedsAuth(challenge)) => Err(challenge),
            Err(e) => Ok(SessionEnd::ConnectFailed(e.to_string())),
        };
        let end = match outcome {
            Ok(end) => end,
            Err(challenge) => {
                // Retrying cannot help until someone authorizes: say so once and wait for
                // a login, a config change (which restarts this task) or shutdown.
                let mut why = needs_auth_message(&upstream, &challenge);
                if let Some(reason) = ctx.oauth.take_reason(&upstream.name) {
                    why = reason;
                }
                let mut refused = ctx.oauth.note_challenge(&upstream.name, &challenge);
                if refused.is_some()
                    && let Some(moved) = ctx.oauth.authorization_server_moved(&upstream, &challenge).await
                {
                    refused = None;
                    why = moved;
                }
                if let Some(r) = &refused {
                    why = format!("{r}; run `mcpd auth login {}` to try again", upstream.name);
                }
                tracing::warn!(server = %upstream.name, "{why}");
                upstream.transition(Transition::NeedAuth, |s| {
                    s.last_error = why.clone();
                    s.next_retry_unix_ms = 0;
                });
                upstream.events.emit(&upstream.name, EventKind::State, Some(ServerState::NeedsAuth), why);
                let auto = cfg
                    .oauth
                    .as_ref()
                    .is_some_and(|o| o.grant == OAuthGrant::AuthorizationCode && !o.login_command.is_empty());
                // A 403 at the handshake asks for more scope: a step-up, within its budget.
                let step_up = crate::oauth::is_insufficient_scope(&challenge);
                let budget = !step_up || ctx.oauth.step_up(&upstream.name, &challenge).is_some();
                if !budget {
                    let why = format!(
                        "the server still asks for more scope after {} authorizations (step-up); run `mcpd auth login {}` after widening the grant",
                        crate::oauth::MAX_STEP_UPS,
                        upstream.name
                    );
                    upstream.update(|s| s.last_error = why);
                }
                if auto
                    && budget
                    && refused.is_none()
                    && ctx.oauth.auto_login_allowed(&upstream.name)
                    && let Err(e) = ctx.oauth.login(upstream.clone(), step_up, false).await
                {
                    let why = format!("the automatic OAuth login failed: {e}");
                    tracing::warn!(server = %upstream.name, "{why}");
                    upstream.update(|s| s.last_error = why);
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = upstream.auth_changed.notified() => continue,
                }
            }
        };
        upstream.set_peer(None);
        // Updates are not seen while disconnected, so nothing cached may outlive the session.
        ctx.cache.invalidate_server(&upstream.name);
        ctx.registry.mark_stale(&upstream.name);
        upstream.update(|s| {
            s.ready_since = None;
            s.stale = true;
            s.pid = 0;
        });
        if cancel.is_cancelled() {
            break;
        }
        if !end.is_failure() {
            if end == SessionEnd::Reauthorized {
                tracing::info!(server = %upstream.name, "reconnecting with new OAuth credentials");
            }
            continue;
        }
        let reason = end.to_string();
        tracing::warn!(server = %upstream.name, reason = %reason, "session ended");
        upstream.events.emit(&upstream.name, EventKind::Error, None, reason.clone());
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let (circuit_open, delay) = match breaker.record_failure(Instant::now()) {
            Some(open_for) => (true, open_for),
            None => (false, backoff.next_delay()),
        };
        upstream.transition(Transition::Failed { circuit_open }, |s| {
            s.last_error = reason;
            s.next_retry_unix_ms = unix_ms() + delay.as_millis() as u64;
        });
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    upstream.transition(Transition::Stop, |s| s.next_retry_unix_ms = 0);
}

fn unreachable_backoff() -> Backoff {
    // The defaults are valid by construction; this only satisfies the type checker
    // without a panic path.
    Backoff::try_new(&crate::config::BackoffConfig {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(60),
        multiplier: 2.0,
        jitter: 0.3,
    })
    .unwrap_or_else(|_| unreachable_backoff())
}

/// Publishes the last-known tool list (marked stale) so `ListTools` answers at once after a restart.
pub async fn load_stale_tools(upstream: &Arc<Upstream>, ctx: &SessionContext) {
    let Some(store) = &ctx.store else { return };
    let rec = match store.load_tools(&upstream.name).await {
        Ok(Some(rec)) if rec.identity == upstream.identity => rec,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(server = %upstream.name, error = %e, "cannot read last-known tools");
            return;
        }
    };
    let tools: Vec<Tool> = rec.tools.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    let filter = upstream.config.tools.clone();
    let name = upstream.name.clone();
    let identity = upstream.identity.clone();
    let others = ctx.registry.snapshot().names_except(&name);
    let built =
        tokio::task::spawn_blocking(move || build_server_tools(&name, &identity, tools, &filter, &others, true));
    if let Ok((st, _)) = built.await {
        let count = st.tools.len();
        ctx.registry.publish(&upstream.name, st);
        upstream.update(|s| {
            s.tool_count = count;
            s.stale = true;
            s.protocol_version = rec.protocol_version;
        });
    }
}

fn lifecycle_for(pref: &ProtocolPref, remembered: Option<&str>) -> ClientLifecycleMode {
    let v2026 = ProtocolVersion::V_2026_07_28;
    match pref {
        ProtocolPref::Auto => match remembered {
            Some(v) if v == v2026.as_str() => ClientLifecycleMode::Discover { preferred_versions: vec![v2026] },
            Some(_) => ClientLifecycleMode::Initialize,
            None => ClientLifecycleMode::Auto {
                preferred_versions: vec![v2026],
                legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
            },
        },
        other => {
            let v = other.as_str();
            if v == v2026.as_str() {
                ClientLifecycleMode::Discover { preferred_versions: vec![v2026] }
            } else {
                ClientLifecycleMode::Initialize
            }
        }
    }
}

async fn remembered_era(upstream: &Upstream, ctx: &SessionContext) -> Option<String> {
    let store = ctx.store.as_ref()?;
    let v = store.load_era(&upstream.identity).await.ok()??;
    let (version, at) = v.split_once('|')?;
    let at: u64 = at.parse().ok()?;
    (unix_ms().saturating_sub(at) < ERA_MEMORY_MS).then(|| version.to_owned())
}

async fn connect(upstream: &Arc<Upstream>, ctx: &SessionContext) -> Result<Connection, ConnectError> {
    let cfg = &upstream.config;
    let mode = if matches!(cfg.transport, TransportConfig::Sse { .. }) {
        // HTTP+SSE servers predate the stateless era.
        ClientLifecycleMode::Initialize
    } else {
        lifecycle_for(&cfg.protocol, remembered_era(upstream, ctx).await.as_deref())
    };
    let probing = !matches!(mode, ClientLifecycleMode::Initialize) && cfg.protocol == ProtocolPref::Auto;
    match connect_with(upstream, ctx, mode).await {
        // Some servers answer the discover probe with something that is neither a
        // discover result nor a "legacy" error (e.g. an empty result), or stopped speaking
        // the era we remembered. With `protocol = "auto"`, try the handshake on a fresh
        // connection before calling the attempt failed.
        Err(ConnectError::Handshake(reason)) if probing => {
            tracing::info!(server = %upstream.name, reason = %reason, "server/discover failed; retrying with initialize");
            connect_with(upstream, ctx, ClientLifecycleMode::Initialize).await
        }
        other => other,
    }
}

async fn connect_with(
    upstream: &Arc<Upstream>,
    ctx: &SessionContext,
    mode: ClientLifecycleMode,
) -> Result<Connection, ConnectError> {
    let cfg = &upstream.config;
    let fault: FaultSlot = Arc::default();
    let max = cfg.max_message_bytes;
    // A stdio server's start costs CPU (an interpreter, a runtime, imports): it waits for a
    // slot first, and its connect timeout starts once it has one, so a start storm converges
    // instead of every server timing out together. Remote servers cost mcpd nothing to start.
    let _slot = match &cfg.transport {
        TransportConfig::Stdio { .. } => {
            let wait = ctx.start_slots.clone().try_acquire_owned();
            Some(match wait {
                Ok(slot) => slot,
                Err(_) => {
                    upstream.update(|s| s.waiting_for_slot = true);
                    let slot = ctx.start_slots.clone().acquire_owned().await;
                    upstream.update(|s| s.waiting_for_slot = false);
                    slot.map_err(|_| ConnectError::Setup("the daemon is stopping".into()))?
                }
            })
        }
        _ => None,
    };
    let (transport, child): (AnyTransport, Option<StdioChild>) = match &cfg.transport {
        TransportConfig::Stdio { command, args, env, cwd } => {
            let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect();
            let (t, c) = transport::stdio::spawn(
                upstream,
                command,
                args,
                &env,
                cwd.as_deref(),
                fault.clone(),
                transport::stdio::Keepers { reaper: ctx.reaper.as_ref(), containment: &ctx.containment },
            )
            .map_err(|e| ConnectError::Setup(e.to_string()))?;
            (t, Some(c))
        }
        TransportConfig::Http { url, headers } => {
            let headers: Vec<(String, String)> =
                headers.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect();
            let setup = |e: &dyn std::fmt::Display| ConnectError::Setup(e.to_string());
            let t = match &cfg.oauth {
                Some(oauth) if oauth.grant == OAuthGrant::ClientCredentials => {
                    let auth = ctx
                        .oauth
                        .client_credentials(url, oauth, cfg.connect_timeout)
                        .await
                        .map_err(|e| ConnectError::Setup(format!("OAuth client credentials failed: {e}")))?;
                    transport::http::connect_authorized(url, &headers, max, auth).map_err(|e| setup(&e))?
                }
                Some(_) => match ctx.oauth.session_client(upstream, cfg.connect_timeout).await {
                    Ok(auth) => transport::http::connect_authorized(url, &headers, max, auth).map_err(|e| setup(&e))?,
                    Err(e) => return Err(ConnectError::Setup(format!("OAuth: {e}"))),
                },
                None => transport::http::connect(url, &headers, max, cfg.connect_timeout).map_err(|e| setup(&e))?,
            };
            (t, None)
        }
        TransportConfig::Sse { url, headers } => {
            let headers: Vec<(String, String)> =
                headers.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect();
            let t = transport::sse::connect(url, &headers, max, cfg.connect_timeout)
                .await
                .map_err(|e| ConnectError::Setup(e.to_string()))?;
            (t, None)
        }
    };
    // A pinned session-era version is what we offer in `initialize`; otherwise the newest.
    let offer = match &cfg.protocol {
        ProtocolPref::Auto => ProtocolVersion::LATEST_WITH_INITIALIZE,
        p => known_version(p.as_str()),
    };
    let handler =
        Handler { upstream: upstream.clone(), requests: ctx.requests.clone(), cache: ctx.cache.clone(), offer };
    let result = tokio::time::timeout(cfg.connect_timeout, handler.serve_with_lifecycle(transport, mode)).await;
    let service = match result {
        Ok(Ok(s)) => s,
        // 401 (no or a rejected token) and 403 (too narrow a scope) both need a login.
        Ok(Err(e)) if e.is_authorization_required() || e.auth_challenge().is_some() => {
            if let Some(c) = child {
                c.shutdown().await;
            }
            return Err(ConnectError::NeedsAuth(e.auth_challenge().unwrap_or_default().to_owned()));
        }
        Ok(Err(e))
            if cfg.oauth.as_ref().is_some_and(|o| o.grant == OAuthGrant::AuthorizationCode)
                && crate::oauth::is_invalid_client(&e) =>
        {
            // A refresh at reconnect found the client registration gone.
            ctx.oauth.registration_rejected(upstream).await;
            return Err(ConnectError::NeedsAuth(String::new()));
        }
        Ok(Err(e)) => {
            let reason = fault_or(&fault, e.to_string());
            return Err(match child {
                Some(c) => ConnectError::Handshake(format!("{reason} (server {})", c.shutdown().await)),
                None => ConnectError::Handshake(reason),
            });
        }
        Err(_) => {
            if let Some(c) = child {
                c.shutdown().await;
            }
            return Err(ConnectError::Timeout(cfg.connect_timeout));
        }
    };
    Ok(Connection { service, child, fault })
}

/// The rmcp constant for a version string the config accepted.
fn known_version(v: &str) -> ProtocolVersion {
    [
        ProtocolVersion::V_2026_07_28,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_03_26,
        ProtocolVersion::V_2024_11_05,
    ]
    .into_iter()
    .find(|k| k.as_str() == v)
    .unwrap_or(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// Prefers the reader's explanation (oversized or non-JSON output) over the generic error it caused.
fn fault_or(fault: &FaultSlot, other: String) -> String {
    match fault.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(f) => f.to_string(),
        None => other,
    }
}

/// Drives a ready connection until it ends or `cancel` fires; returns why it ended.
async fn serve(
    upstream: &Arc<Upstream>,
    ctx: &SessionContext,
    conn: Connection,
    cancel: &CancellationToken,
) -> SessionEnd {
    let Connection { service, mut child, fault } = conn;
    let peer = service.peer().clone();
    let info = peer.peer_info();
    let version = info.as_ref().map(|i| i.protocol_version.as_str().to_owned()).unwrap_or_default();
    let stateless = info.as_ref().is_some_and(|i| !i.protocol_version.has_initialize());
    let (server_name, server_version) = info
        .as_ref()
        .and_then(|i| i.server_info.as_ref())
        .map(|s| (s.name.clone(), s.version.clone()))
        .unwrap_or_default();
    if let Some(store) = &ctx.store
        && let Err(e) = store.save_era(&upstream.identity, &format!("{version}|{}", unix_ms())).await
    {
        tracing::warn!(server = %upstream.name, error = %e, "cannot remember protocol era");
    }
    let cfg = upstream.config.clone();

    // Tools first: a session is ready only once its tools are in the registry.
    let first = tokio::time::timeout(cfg.call_timeout, list_all_tools(&peer)).await;
    let (mut last_tools, mut relist_at) = match first {
        Ok(Ok(listing)) => {
            let at = next_relist(listing.ttl, cfg.tools_refresh);
            (listing.tools, at)
        }
        Ok(Err(ListError::Refused(challenge))) => {
            finish(upstream, service, child.take(), &fault, String::new()).await;
            return SessionEnd::NeedsAuth(challenge);
        }
        Ok(Err(ListError::Failed(e))) => {
            let why = finish(upstream, service, child.take(), &fault, ConnectError::ListTools(e).to_string()).await;
            return SessionEnd::ConnectFailed(why);
        }
        Err(_) => {
            let why =
                finish(upstream, service, child.take(), &fault, ConnectError::Timeout(cfg.call_timeout).to_string())
                    .await;
            return SessionEnd::ConnectFailed(why);
        }
    };
    publish(upstream, ctx, &last_tools, &version).await;
    // Prompts and resource templates are pinned at the same moment as tools (inside the
    // first-use window), so a later change is a change and not a first sight.
    pin_items(upstream, ctx, &peer).await;
    upstream.set_peer(Some(peer.clone()));
    if upstream.status().connects > 0 {
        ctx.metrics.record_reconnect(&upstream.name);
    }
    upstream.transition(Transition::Connected, |s| {
        s.protocol_version = version.clone();
        s.era = if stateless { "stateless" } else { "session" };
        s.server_name = server_name;
        s.server_version = server_version;
        s.connects += 1;
        s.ready_since = Some(Instant::now());
        s.stale = false;
        s.last_error.clear();
    });
    tracing::info!(server = %upstream.name, protocol = %version, tools = last_tools.len(), "ready");

    // In the stateless era list changes and resource updates only arrive on a
    // subscriptions/listen stream; in the session era subscriptions are renewed here.
    let listen_task = if stateless {
        Some(tokio::spawn(subscription::listen_loop(upstream.clone(), peer.clone(), ctx.cache.clone())))
    } else {
        subscription::resubscribe(upstream, &peer).await;
        None
    };

    let ping_every =
        if cfg.liveness_interval.is_zero() { Duration::from_secs(3600 * 24 * 365) } else { cfg.liveness_interval };
    let mut liveness = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut missed_pings = 0u32;
    let ct = service.cancellation_token();
    // Scoped so the futures borrowing `child` end before the child is shut down.
    let end = {
        let mut closed = std::pin::pin!(service.waiting());
        // A completed future must not be polled again.
        let mut closed_done = false;
        let mut child_exit = std::pin::pin!(async {
            match child.as_mut() {
                Some(c) => c.wait().await,
                None => std::future::pending().await,
            }
        });

        let end: SessionEnd = loop {
            tokio::select! {
                _ = cancel.cancelled() => break SessionEnd::Stopped,
                // New credentials (a login, a step-up, a logout): start over with them.
                _ = upstream.auth_changed.notified() => break SessionEnd::Reauthorized,
                _ = &mut closed => {
                closed_done = true;
                break SessionEnd::Lost(fault_or(&fault, "connection closed by the server".to_owned()));
            }
                how = &mut child_exit => break SessionEnd::ProcessExited(fault_or(&fault, format!("server process {how}"))),
                // A list change was announced (debounced: servers often send several), or
                // the listing went stale (its `ttlMs`, or `tools_refresh` for servers that
                // change without saying so).
                _ = async {
                    tokio::select! {
                        _ = upstream.tools_changed.notified() => tokio::time::sleep(LIST_CHANGED_DEBOUNCE).await,
                        _ = sleep_until_or_never(relist_at) => {}
                    }
                } => {
                    match tokio::time::timeout(cfg.call_timeout, list_all_tools(&peer)).await {
                        Ok(Ok(listing)) => {
                            relist_at = next_relist(listing.ttl, cfg.tools_refresh);
                            if listing.tools != last_tools {
                                publish(upstream, ctx, &listing.tools, &version).await;
                                last_tools = listing.tools;
                            }
                            pin_items(upstream, ctx, &peer).await;
                            upstream.transition(Transition::Recover, |_| {});
                        }
                        Ok(Err(e)) => {
                            relist_at = next_relist(None, cfg.tools_refresh);
                            upstream.transition(Transition::Degrade, |s| s.last_error = format!("re-listing tools failed: {e}"));
                        }
                        Err(_) => {
                            relist_at = next_relist(None, cfg.tools_refresh);
                            upstream.transition(Transition::Degrade, |s| s.last_error = "re-listing tools timed out".into());
                        }
                    }
                }
                _ = upstream.items_changed.notified() => {
                    tokio::time::sleep(LIST_CHANGED_DEBOUNCE).await;
                    pin_items(upstream, ctx, &peer).await;
                }
                _ = liveness.tick() => {
                    let timeout = ping_every.min(Duration::from_secs(10));
                    let ping = peer.send_request(ClientRequest::PingRequest(PingRequest::default()));
                    match tokio::time::timeout(timeout, ping).await {
                        // Any answer, even an error, proves the server is alive.
                        Ok(Ok(_)) | Ok(Err(ServiceError::McpError(_))) => {
                            missed_pings = 0;
                            upstream.transition(Transition::Recover, |_| {});
                        }
                        Ok(Err(e)) => break SessionEnd::Unresponsive(format!("liveness check failed: {e}")),
                        Err(_) => {
                            missed_pings += 1;
                            if missed_pings >= 2 {
                                break SessionEnd::Unresponsive(format!("no answer to {missed_pings} liveness pings"));
                            }
                            upstream.transition(Transition::Degrade, |s| s.last_error = "liveness ping timed out".into());
                        }
                    }
                }
            }
        };
        upstream.set_peer(None);
        ct.cancel();
        // The service loop ends promptly once cancelled; bound it anyway.
        if !closed_done {
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut closed).await;
        }
        end
    };
    if let Some(t) = listen_task {
        t.abort();
    }
    if let Some(c) = child.take() {
        let how = c.shutdown().await;
        tracing::debug!(server = %upstream.name, "server process {how}");
    }
    let fault_now = fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(f @ transport::limit::Fault::TooLarge { .. }) = fault_now {
        upstream.events.emit(&upstream.name, EventKind::MessageTooLarge, None, f.to_string());
    }
    end
}

/// Ends a connection that failed before it became ready.
async fn finish(
    upstream: &Upstream,
    service: RunningService<RoleClient, Handler>,
    child: Option<StdioChild>,
    fault: &FaultSlot,
    reason: String,
) -> String {
    let _ = tokio::time::timeout(Duration::from_secs(5), service.cancel()).await;
    if let Some(c) = child {
        let how = c.shutdown().await;
        tracing::debug!(server = %upstream.name, "server process {how}");
    }
    fault_or(fault, reason)
}

/// A whole tool listing, with the freshness the server gave it.
struct ToolListing {
    tools: Vec<Tool>,
    /// The shortest positive `ttlMs` of its pages (2026-07-28). Zero, the Python SDK's
    /// default for every list, is no hint: re-listing every second for it would cost each
    /// stateless server a listing per second forever, and the listen stream and the periodic
    /// re-list already cover announced and silent changes.
    ttl: Option<Duration>,
}

/// Why a tool listing failed; a refusal keeps the server's `WWW-Authenticate` challenge.
enum ListError {
    Refused(String),
    Failed(String),
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListError::Refused(_) => f.write_str("the server refused mcpd's credentials (HTTP 401/403)"),
            ListError::Failed(why) => f.write_str(why),
        }
    }
}

impl From<String> for ListError {
    fn from(s: String) -> Self {
        ListError::Failed(s)
    }
}

/// `tools/list`, following cursors, bounded against servers that page forever.
async fn list_all_tools(peer: &rmcp::Peer<RoleClient>) -> Result<ToolListing, ListError> {
    let mut tools = Vec::new();
    let mut ttl: Option<Duration> = None;
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_TOOL_PAGES {
        let params = cursor.take().map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = peer.list_tools(params).await.map_err(|e| match e.auth_challenge() {
            Some(c) => ListError::Refused(c.to_owned()),
            None if e.is_authorization_required() => ListError::Refused(String::new()),
            None => ListError::Failed(e.to_string()),
        })?;
        tools.extend(page.tools);
        if let Some(ms) = page.ttl_ms.filter(|ms| *ms > 0) {
            let d = Duration::from_millis(ms);
            ttl = Some(ttl.map_or(d, |t| t.min(d)));
        }
        if tools.len() > MAX_TOOLS {
            return Err(format!("server lists more than {MAX_TOOLS} tools").into());
        }
        match page.next_cursor {
            Some(c) if !c.is_empty() => cursor = Some(c),
            _ => return Ok(ToolListing { tools, ttl }),
        }
    }
    Err(format!("tools/list did not end after {MAX_TOOL_PAGES} pages").into())
}

/// Sleeps until `at`, or forever when there is no `at`.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When to list the tools again without being told: when the listing's `ttlMs` runs out
/// (at most once a second), else after `tools_refresh`; never when both are off.
fn next_relist(ttl: Option<Duration>, refresh: Duration) -> Option<Instant> {
    let ttl = ttl.map(|t| t.max(MIN_RELIST));
    let refresh = (!refresh.is_zero()).then_some(refresh.max(MIN_RELIST));
    let after = match (ttl, refresh) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(Instant::now() + after)
}

/// Lists the server's prompts and resource templates (those it offers) and runs them through
/// trust like tools: first sight pins under tofu, a change quarantines (announced once per
/// definition), and `GetPrompt` checks the verdict. A listing that fails keeps the last one.
async fn pin_items(upstream: &Arc<Upstream>, ctx: &SessionContext, peer: &rmcp::Peer<RoleClient>) {
    let Some(caps) = peer.peer_info().map(|i| i.capabilities.clone()) else { return };
    let timeout = upstream.config.call_timeout;
    let mut raw: Vec<(&'static str, Vec<serde_json::Value>)> = Vec::new();
    if caps.prompts.is_some() {
        let list = crate::listing::all_pages(|c| {
            let peer = peer.clone();
            async move { peer.list_prompts(c).await.map(|r| (r.prompts, r.next_cursor)) }
        });
        match tokio::time::timeout(timeout, list).await {
            Ok(Ok(ps)) => raw.push(("prompt", ps.iter().filter_map(|p| serde_json::to_value(p).ok()).collect())),
            Ok(Err(e)) => tracing::warn!(server = %upstream.name, error = %e, "cannot list prompts to pin them"),
            Err(_) => tracing::warn!(server = %upstream.name, "listing prompts to pin them timed out"),
        }
    }
    if caps.resources.is_some() {
        let list = crate::listing::all_pages(|c| {
            let peer = peer.clone();
            async move { peer.list_resource_templates(c).await.map(|r| (r.resource_templates, r.next_cursor)) }
        });
        match tokio::time::timeout(timeout, list).await {
            Ok(Ok(ts)) => {
                raw.push(("resource-template", ts.iter().filter_map(|t| serde_json::to_value(t).ok()).collect()))
            }
            Ok(Err(e)) => {
                tracing::warn!(server = %upstream.name, error = %e, "cannot list resource templates to pin them")
            }
            Err(_) => tracing::warn!(server = %upstream.name, "listing resource templates to pin them timed out"),
        }
    }
    if raw.is_empty() {
        return;
    }
    let identity = upstream.identity.clone();
    let others = ctx.registry.snapshot().names_except(&upstream.name);
    // Fingerprints as `resource::Checker` computes them, so listings and pins agree.
    let built = tokio::task::spawn_blocking(move || {
        let others = crate::integrity::scan::OtherTools::new(&others);
        raw.into_iter()
            .map(|(kind, defs)| {
                let items: Vec<PinItem> = defs
                    .into_iter()
                    .map(|def| {
                        let scan = crate::integrity::scan::scan_definition_with(&def, &others);
                        PinItem {
                            kind,
                            name: def.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_owned(),
                            fingerprint: crate::integrity::fingerprint::fingerprint(&identity, kind, &def),
                            blocks_auto_trust: scan
                                .findings
                                .iter()
                                .any(|f| f.severity >= crate::integrity::scan::Severity::Medium),
                            raw: def,
                        }
                    })
                    .collect();
                (kind, items)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(kinds) = built else { return };
    let before = upstream.items();
    let mut all = Vec::new();
    for (kind, items) in kinds {
        for (name, why) in ctx.trust.observe_items(upstream, kind, &items).await {
            let fingerprint = items.iter().find(|i| i.name == name).map(|i| i.fingerprint.as_str());
            let announced =
                before.iter().any(|b| b.kind == kind && b.name == name && Some(b.fingerprint.as_str()) == fingerprint);
            if !announced {
                tracing::warn!(server = %upstream.name, kind, name = %name, reason = %why, "quarantined");
                ctx.metrics.record_quarantine(&upstream.name);
                upstream.events.emit(
                    &upstream.name,
                    EventKind::Quarantined,
                    None,
                    format!("{}.{name} ({kind}): {why}", upstream.name),
                );
            }
        }
        all.extend(items);
    }
    upstream.set_items(all);
}

/// Puts a fresh tool list into the registry and the store.
async fn publish(upstream: &Arc<Upstream>, ctx: &SessionContext, tools: &[Tool], version: &str) {
    let name = upstream.name.clone();
    let identity = upstream.identity.clone();
    let filter = upstream.config.tools.clone();
    let owned = tools.to_vec();
    let others = ctx.registry.snapshot().names_except(&name);
    let built =
        tokio::task::spawn_blocking(move || build_server_tools(&name, &identity, owned, &filter, &others, false)).await;
    let Ok((st, warnings)) = built else { return };
    for w in warnings {
        tracing::warn!(server = %upstream.name, "{w}");
    }
    // Integrity runs before the list reaches the registry: first-use pins are on disk
    // before any call can use them, and every quarantine is announced.
    let quarantined = ctx.trust.observe(upstream, &st).await;
    let fresh = upstream.set_quarantined(quarantined.iter().map(|(n, _)| (n.clone(), st.tools[n].fingerprint.clone())));
    for (tool, why) in &quarantined {
        if fresh.contains(tool) {
            tracing::warn!(server = %upstream.name, tool = %tool, reason = %why, "tool quarantined");
            ctx.metrics.record_quarantine(&upstream.name);
            upstream.events.emit(
                &upstream.name,
                EventKind::Quarantined,
                None,
                format!("{}.{tool}: {why}", upstream.name),
            );
        }
    }
    let count = st.tools.len();
    ctx.registry.publish(&upstream.name, st);
    upstream.update(|s| s.tool_count = count);
    upstream.events.emit(&upstream.name, EventKind::ToolsChanged, None, format!("{count} tools"));
    if let Some(store) = &ctx.store {
        let rec = StoredTools {
            identity: upstream.identity.clone(),
            tools: tools.iter().filter_map(|t| serde_json::to_value(t).ok()).collect(),
            protocol_version: version.to_owned(),
            saved_unix_ms: unix_ms(),
        };
        if let Err(e) = store.save_tools(&upstream.name, &rec).await {
            tracing::warn!(server = %upstream.name, error = %e, "cannot save last-known tools");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era_choice() {
        assert!(matches!(lifecycle_for(&ProtocolPref::Auto, None), ClientLifecycleMode::Auto { .. }));
        assert!(matches!(lifecycle_for(&ProtocolPref::Auto, Some("2026-07-28")), ClientLifecycleMode::Discover { .. }));
        assert!(matches!(lifecycle_for(&ProtocolPref::Auto, Some("2025-06-18")), ClientLifecycleMode::Initialize));
        assert_eq!(known_version("2024-11-05"), ProtocolVersion::V_2024_11_05);
    }

    #[tokio::test(start_paused = true)]
    async fn relists_follow_ttl_and_refresh_with_a_floor() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(next_relist(None, s(300)), Some(now + s(300)));
        assert_eq!(next_relist(Some(s(10)), s(300)), Some(now + s(10)));
        assert_eq!(next_relist(Some(s(900)), s(300)), Some(now + s(300)));
        // A server cannot make mcpd list more than once a second.
        assert_eq!(next_relist(Some(Duration::from_millis(5)), s(300)), Some(now + MIN_RELIST));
        assert_eq!(next_relist(Some(s(10)), Duration::ZERO), Some(now + s(10)));
        assert_eq!(next_relist(None, Duration::ZERO), None);
    }
}

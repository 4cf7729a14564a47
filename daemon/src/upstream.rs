//! The shared handle of one upstream server: its config, live status, current session peer and call limits.
//!
//! The session task owns the connection and is the only writer of `status` and `peer`;
//! the API reads them without waiting on anything held across I/O.
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
};

use arc_swap::{ArcSwap, ArcSwapOption};
use rmcp::{
    model::{ProgressNotificationParam, ProgressToken},
    service::{Peer, RoleClient},
};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::{
    config::{ServerConfig, TransportConfig},
    event::{EventBus, EventKind},
    registry::PinItem,
    state::{ServerState, Transition},
    util::LineRing,
};

/// Keep this many bytes of a server's stderr.
const STDERR_RING_BYTES: usize = 64 * 1024;
/// Resource subscriptions kept per server.
const MAX_SUBSCRIPTIONS: usize = 1024;

/// What `mcpd status` shows for one server.
#[derive(Debug, Clone)]
pub struct ServerStatus {
    pub state: ServerState,
    pub protocol_version: String,
    pub era: &'static str,
    pub tool_count: usize,
    pub last_error: String,
    pub next_retry_unix_ms: u64,
    pub ready_since: Option<tokio::time::Instant>,
    pub connects: u32,
    pub server_name: String,
    pub server_version: String,
    pub pid: u32,
    pub stale: bool,
    /// Starting, but waiting for a start slot (`[daemon] max_starting`).
    pub waiting_for_slot: bool,
}

impl Default for ServerStatus {
    fn default() -> Self {
        Self {
            state: ServerState::Starting,
            protocol_version: String::new(),
            era: "",
            tool_count: 0,
            last_error: String::new(),
            next_retry_unix_ms: 0,
            ready_since: None,
            connects: 0,
            server_name: String::new(),
            server_version: String::new(),
            pid: 0,
            stale: false,
            waiting_for_slot: false,
        }
    }
}

pub struct Upstream {
    pub name: String,
    pub config: Arc<ServerConfig>,
    /// Stable identity: config key + transport + exact command/args or URL.
    pub identity: String,
    status: Mutex<ServerStatus>,
    peer: ArcSwapOption<Peer<RoleClient>>,
    /// Bounds concurrent calls to this server.
    pub permits: Semaphore,
    stderr: Mutex<LineRing>,
    progress: Mutex<HashMap<ProgressToken, mpsc::Sender<ProgressNotificationParam>>>,
    /// MCP hosts of calls in flight, oldest first, each with its call's number: a session-era
    /// server's requests carry no link to the call that caused them, so the newest call's host
    /// that is still waiting is asked.
    hosts: Mutex<(u64, Vec<(u64, crate::host::HostHandle)>)>,
    /// Poked when an OAuth login or logout changed this server's credentials: the session
    /// reconnects with them (or waits in `needs-auth` for them).
    pub auth_changed: Notify,
    /// Poked by `notifications/tools/list_changed`; the session task debounces and re-lists.
    pub tools_changed: Notify,
    /// Poked by prompt and resource list changes; the session lists and pins them again.
    pub items_changed: Notify,
    /// Prompts and resource templates as the session last listed them (what `GetPrompt`
    /// checks and `trust approve SERVER` pins).
    items: Mutex<Vec<PinItem>>,
    /// Resource URIs apps subscribed to; renewed on every reconnect.
    subscriptions: Mutex<BTreeSet<String>>,
    /// Poked when `subscriptions` grows (the stateless-era listen stream re-opens).
    pub subscriptions_changed: Notify,
    /// Roots offered to the server; replaced in place when only they change on reload.
    roots: ArcSwap<Vec<String>>,
    /// (tool, fingerprint) quarantined at the last refresh, so each quarantine is announced once.
    quarantined: Mutex<HashSet<(String, String)>>,
    /// Tasks (SEP-2663) mcpd is polling for calls in flight, by task id.
    tasks: Mutex<std::collections::BTreeMap<String, RunningTask>>,
    pub events: EventBus,
}

/// A task the server runs for a call through mcpd, as `mcpd status` shows it.
#[derive(Debug, Clone)]
pub struct RunningTask {
    pub tool: String,
    pub status: &'static str,
    pub message: String,
    pub since: std::time::Instant,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("name", &self.name).finish_non_exhaustive()
    }
}

// === impl Upstream ===

impl Upstream {
    pub fn new(config: Arc<ServerConfig>, events: EventBus) -> Self {
        let status = ServerStatus {
            state: if config.enabled { ServerState::Starting } else { ServerState::Disabled },
            ..Default::default()
        };
        let roots = ArcSwap::from_pointee(config.roots.clone());
        Self {
            name: config.name.clone(),
            identity: identity(&config),
            permits: Semaphore::new(config.max_concurrency),
            config,
            status: Mutex::new(status),
            peer: ArcSwapOption::empty(),
            stderr: Mutex::new(LineRing::new(STDERR_RING_BYTES)),
            progress: Mutex::new(HashMap::new()),
            hosts: Mutex::new((0, Vec::new())),
            tools_changed: Notify::new(),
            auth_changed: Notify::new(),
            subscriptions: Mutex::new(BTreeSet::new()),
            subscriptions_changed: Notify::new(),
            items_changed: Notify::new(),
            items: Mutex::new(Vec::new()),
            quarantined: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Default::default()),
            roots,
            events,
        }
    }

    pub fn transport_name(&self) -> &'static str {
        match self.config.transport {
            TransportConfig::Stdio { .. } => "stdio",
            TransportConfig::Http { .. } => "http",
            TransportConfig::Sse { .. } => "sse",
        }
    }

    /// The command line or URL, for display (no secrets: env and headers are not shown).
    /// What status shows as the server's command line or URL: the config's own text, before
    /// `${}` substitution, so a secret passed in an argument or a URL never shows.
    pub fn target(&self) -> String {
        let source = &self.config.source;
        if !source.is_empty() {
            return match &self.config.transport {
                TransportConfig::Stdio { .. } => match serde_json::from_str::<(String, Vec<String>)>(source) {
                    Ok((command, args)) => std::iter::once(command).chain(args).collect::<Vec<_>>().join(" "),
                    Err(_) => source.clone(),
                },
                TransportConfig::Http { .. } | TransportConfig::Sse { .. } => redact_url(source),
            };
        }
        match &self.config.transport {
            TransportConfig::Stdio { command, args, .. } => {
                let mut s = command.clone();
                for a in args {
                    s.push(' ');
                    s.push_str(a);
                }
                s
            }
            TransportConfig::Http { url, .. } | TransportConfig::Sse { url, .. } => redact_url(url),
        }
    }

    pub fn status(&self) -> ServerStatus {
        lock(&self.status).clone()
    }

    /// Updates status fields other than the state (which only [`Upstream::transition`] changes).
    pub fn update(&self, f: impl FnOnce(&mut ServerStatus)) {
        let mut s = lock(&self.status);
        let state = s.state;
        f(&mut s);
        debug_assert_eq!(s.state, state, "the state changes only through Upstream::transition");
        s.state = state;
    }

    /// Applies `t` to the state machine (`ServerState::next`) and `f` to the other fields,
    /// under one lock; emits a state event when the state changed. A transition that does
    /// not apply leaves the state as it is (and still applies `f`).
    pub fn transition(&self, t: Transition, f: impl FnOnce(&mut ServerStatus)) {
        let (old, new, err) = {
            let mut s = lock(&self.status);
            let old = s.state;
            f(&mut s);
            s.state = old.next(t).unwrap_or(old);
            (old, s.state, s.last_error.clone())
        };
        if old != new {
            tracing::info!(server = %self.name, from = old.as_str(), to = new.as_str(), "state");
            let msg = if matches!(
                new,
                ServerState::Backoff | ServerState::CircuitOpen | ServerState::Degraded | ServerState::NeedsAuth
            ) {
                err
            } else {
                String::new()
            };
            self.events.emit(&self.name, EventKind::State, Some(new), msg);
        }
    }

    pub fn peer(&self) -> Option<Arc<Peer<RoleClient>>> {
        self.peer.load_full()
    }

    pub fn set_peer(&self, peer: Option<Peer<RoleClient>>) {
        self.peer.store(peer.map(Arc::new));
    }

    /// Calls sent and not yet answered (or abandoned).
    pub fn in_flight(&self) -> usize {
        self.config.max_concurrency.saturating_sub(self.permits.available_permits())
    }

    pub fn push_stderr(&self, line: &str) {
        lock(&self.stderr).push(line);
    }

    pub fn stderr_tail(&self, n: usize) -> Vec<String> {
        let ring = lock(&self.stderr);
        let all: Vec<&str> = ring.lines().collect();
        all[all.len().saturating_sub(n)..].iter().map(|s| (*s).to_owned()).collect()
    }

    /// Remembers a resource subscription; false if it was already there. Bounded so apps
    /// cannot grow a server's subscription set (and its listen filter) without limit.
    pub fn add_subscription(&self, uri: &str) -> bool {
        let mut subs = lock(&self.subscriptions);
        if subs.len() >= MAX_SUBSCRIPTIONS {
            return false;
        }
        subs.insert(uri.to_owned())
    }

    /// Records the current quarantine set; returns the tools not quarantined (with that
    /// fingerprint) before.
    /// Replaces the last-listed prompts and resource templates; returns the previous ones.
    pub fn set_items(&self, items: Vec<PinItem>) -> Vec<PinItem> {
        std::mem::replace(&mut *lock(&self.items), items)
    }

    pub fn items(&self) -> Vec<PinItem> {
        lock(&self.items).clone()
    }

    pub fn set_quarantined(&self, now: impl Iterator<Item = (String, String)>) -> HashSet<String> {
        let now: HashSet<(String, String)> = now.collect();
        let mut prev = lock(&self.quarantined);
        let fresh = now.difference(&prev).map(|(t, _)| t.clone()).collect();
        *prev = now;
        fresh
    }

    pub fn roots(&self) -> Arc<Vec<String>> {
        self.roots.load_full()
    }

    /// Replaces the roots and tells a connected server (`notifications/roots/list_changed`).
    pub async fn set_roots(&self, roots: Vec<String>) {
        self.roots.store(Arc::new(roots));
        if let Some(peer) = self.peer()
            && let Err(e) = peer.notify_roots_list_changed().await
        {
            tracing::debug!(server = %self.name, error = %e, "cannot send roots/list_changed");
        }
    }

    pub fn subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).iter().cloned().collect()
    }

    /// Registers the host of a call in flight until the guard drops.
    pub fn enter_host(&self, host: crate::host::HostHandle) -> HostGuard<'_> {
        let mut h = lock(&self.hosts);
        h.0 += 1;
        let id = h.0;
        h.1.push((id, host));
        HostGuard { upstream: self, id }
    }

    /// The host of the newest call in flight that has one.
    pub fn current_host(&self) -> Option<crate::host::HostHandle> {
        lock(&self.hosts).1.last().map(|(_, h)| h.clone())
    }

    /// Records (or updates) a task mcpd polls; its id is the server's, bounded like any
    /// server-fed key.
    pub fn task_seen(&self, id: &str, tool: &str, status: &'static str, message: &str) {
        let mut tasks = lock(&self.tasks);
        if let Some(t) = tasks.get_mut(id) {
            t.status = status;
            t.message = message.chars().take(200).collect();
        } else if tasks.len() < self.config.max_concurrency {
            tasks.insert(
                id.chars().take(200).collect(),
                RunningTask {
                    tool: tool.to_owned(),
                    status,
                    message: message.chars().take(200).collect(),
                    since: std::time::Instant::now(),
                },
            );
        }
    }

    pub fn task_ended(&self, id: &str) {
        let id: String = id.chars().take(200).collect();
        lock(&self.tasks).remove(&id);
    }

    pub fn tasks(&self) -> Vec<(String, RunningTask)> {
        lock(&self.tasks).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Routes progress notifications for `token` to `tx` until [`Upstream::unwatch_progress`].
    pub fn watch_progress(&self, token: ProgressToken, tx: mpsc::Sender<ProgressNotificationParam>) {
        lock(&self.progress).insert(token, tx);
    }

    pub fn unwatch_progress(&self, token: &ProgressToken) {
        lock(&self.progress).remove(token);
    }

    pub fn route_progress(&self, p: ProgressNotificationParam) {
        let tx = lock(&self.progress).get(&p.progress_token).cloned();
        if let Some(tx) = tx {
            // A full queue drops the update: progress is advisory and must never block the session.
            let _ = tx.try_send(p);
        }
    }
}

/// The identity integrity and the era cache are bound to.
/// The server's identity: config key + transport + command/args or URL as the config writes
/// them (templates unexpanded, so rotating a `${env:}` secret keeps its pins).
pub fn identity(config: &ServerConfig) -> String {
    if !config.source.is_empty() {
        return format!("{}|{}|{}", config.name, config.transport.kind(), config.source);
    }
    match &config.transport {
        TransportConfig::Stdio { command, args, .. } => {
            let argv = serde_json::to_string(&(command, args)).unwrap_or_default();
            format!("{}|stdio|{argv}", config.name)
        }
        TransportConfig::Http { url, .. } => format!("{}|http|{}", config.name, url),
        TransportConfig::Sse { url, .. } => format!("{}|sse|{}", config.name, url),
    }
}

/// Hides userinfo and query strings, which may carry credentials.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let path = path.split('?').next().unwrap_or(path);
    if scheme.is_empty() { format!("{host}{path}") } else { format!("{scheme}://{host}{path}") }
}

/// Status locks guard plain data and are never held across `.await`; a poisoned
/// lock only means another thread panicked mid-update, and the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps a call's host registered with its upstream (see [`Upstream::enter_host`]).
pub struct HostGuard<'a> {
    upstream: &'a Upstream,
    id: u64,
}

impl Drop for HostGuard<'_> {
    fn drop(&mut self) {
        lock(&self.upstream.hosts).1.retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("https://u:p@host/mcp?key=1"), "https://host/mcp");
        assert_eq!(redact_url("http://127.0.0.1:3000/mcp"), "http://127.0.0.1:3000/mcp");
        assert_eq!(redact_url("http://host/a@b"), "http://host/a@b");
    }
}

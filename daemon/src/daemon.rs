//! The daemon's shared state (what every front end holds) and reload: a new config is
//! loaded, validated and applied as a diff, and the live snapshot is swapped whole.
use std::{path::PathBuf, sync::Arc};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    attach::Attachments,
    cache::ResourceCache,
    call::CallCore,
    config::{self, Config},
    event::EventBus,
    live::Live,
    store::Store,
};

/// State shared by the front ends: the call core and the few things beside it.
pub struct Daemon {
    /// The call path and what it reads: registry, supervisor, trust, metrics, audit and the
    /// live snapshot (config, policy, pipelines, providers).
    pub core: Arc<CallCore>,
    pub events: EventBus,
    pub attachments: Arc<Attachments>,
    pub cache: ResourceCache,
    pub store: Option<Store>,
    pub started: Instant,
    pub config_path: PathBuf,
    pub socket_path: PathBuf,
    pub state_dir: PathBuf,
    /// How server processes are contained, as status says it.
    pub containment: String,
    /// The MCP front end's endpoints, once bound (status shows them).
    pub mcp: std::sync::OnceLock<McpEndpoints>,
    /// Audit records kept; shared with the audit writer thread, which reads it per batch.
    pub(crate) audit_max_entries: Arc<std::sync::atomic::AtomicUsize>,
    /// Serialises reloads (SIGHUP and RPC).
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    /// Fired when the daemon starts shutting down, so endless streams (WatchEvents) end
    /// and the gRPC server can close its connections.
    pub stopping: CancellationToken,
}

/// Where the MCP front end listens.
#[derive(Debug, Clone, Default)]
pub struct McpEndpoints {
    pub socket: PathBuf,
    /// The HTTP endpoint's bound address; `None`: off.
    pub listen: Option<std::net::SocketAddr>,
    pub auth: &'static str,
    pub token_file: Option<PathBuf>,
    pub tls: bool,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    pub applied: bool,
    pub problems: Vec<String>,
    pub report: crate::supervisor::ApplyReport,
    pub needs_restart: Vec<String>,
}

// === impl Daemon ===

impl Daemon {
    /// Loads the config file again and applies it as a diff; a bad file changes nothing.
    pub async fn reload(&self) -> ReloadOutcome {
        let _reloading = self.reload_lock.lock().await;
        // sd_notify(3): RELOADING=1 carries MONOTONIC_USEC= so systemd (253+) can match it
        // to the reload it started; older versions ignore the field.
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => notify_systemd(&[sd_notify::NotifyState::Reloading, now]),
            Err(_) => notify_systemd(&[sd_notify::NotifyState::Reloading]),
        }
        let path = self.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
        let outcome = match loaded {
            Ok(Ok(next)) => {
                let core = &self.core;
                // The new secrets join before the new servers start (and can fail with them);
                // the old ones stay hidden too, since lines about old sessions may still come.
                let old = core.live.load().config.secrets.clone();
                crate::known::set(next.secrets.iter().chain(old.iter()).map(|s| s.expose().to_owned()));
                let needs_restart = restart_only_changes(&core.live.load().config, &next);
                let report = core.supervisor.apply(&next).await;
                core.oauth.prune(&core.supervisor.upstreams()).await;
                self.audit_max_entries.store(next.daemon.audit_max_entries, std::sync::atomic::Ordering::Relaxed);
                core.trust
                    .tofu_window_ms
                    .store(next.daemon.tofu_window.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                core.requests.sampler.apply(&next);
                crate::registry::apply_search_model(&core.registry, next.daemon.search_model.clone()).await;
                tracing::info!(added = ?report.added, changed = ?report.changed, removed = ?report.removed, "config reloaded");
                // One swap: config, limits (which start afresh: a reload is rare, a burst
                // after it is fine), pipelines and providers change together, before the
                // pipelines' tools are republished so a listed tool is always callable.
                core.live.store(Arc::new(Live::new(next.clone())));
                crate::pipeline::publish(&core.registry, &next).await;
                ReloadOutcome { applied: true, problems: Vec::new(), report, needs_restart }
            }
            Ok(Err(e)) => ReloadOutcome {
                applied: false,
                problems: e.problems.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            },
            Err(e) => ReloadOutcome {
                applied: false,
                problems: vec![format!("config loader failed: {e}")],
                ..Default::default()
            },
        };
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        outcome
    }
}

/// `[daemon]` settings that a running daemon cannot change in place.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&old.daemon, &new.daemon);
    let mut out = Vec::new();
    if old.socket_path() != new.socket_path() {
        out.push("daemon.socket".to_owned());
    }
    if old.state_dir() != new.state_dir() {
        out.push("daemon.state_dir".to_owned());
    }
    if a.log_format != b.log_format || a.log_level != b.log_level {
        out.push("daemon.log_format/log_level".to_owned());
    }
    if a.shutdown_grace != b.shutdown_grace {
        out.push("daemon.shutdown_grace".to_owned());
    }
    if a.resource_cache_bytes != b.resource_cache_bytes {
        out.push("daemon.resource_cache_bytes".to_owned());
    }
    if a.metrics_listen != b.metrics_listen {
        out.push("daemon.metrics_listen".to_owned());
    }
    if a.max_starting != b.max_starting {
        out.push("daemon.max_starting".to_owned());
    }
    if a.worker_threads != b.worker_threads {
        out.push("daemon.worker_threads".to_owned());
    }
    out
}

pub(crate) fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

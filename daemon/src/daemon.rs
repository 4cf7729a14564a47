//! Wires the daemon together: store, reaper, supervisor, registry, API socket, signals,
//! systemd notification, and the bounded shutdown sequence.
use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    signal::unix::{SignalKind, signal},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    api::{self, Api},
    attach::Attachments,
    cache::ResourceCache,
    config::{self, Config},
    event::EventBus,
    metrics::Metrics,
    policy::Policy,
    reaper::Reaper,
    registry::Registry,
    requests::ServerRequests,
    sampling::Sampler,
    session::SessionContext,
    store::{Store, StoreError},
    supervisor::Supervisor,
    trust::Trust,
};

/// State shared by the API handlers.
pub struct Daemon {
    pub registry: Arc<Registry>,
    pub supervisor: Supervisor,
    pub events: EventBus,
    pub attachments: Arc<Attachments>,
    pub started: Instant,
    pub config_path: PathBuf,
    pub socket_path: PathBuf,
    pub state_dir: PathBuf,
    /// Live-reloadable: read on every call.
    pub max_result_bytes: std::sync::atomic::AtomicUsize,
    /// Live-reloadable: freshness of resource reads without a server `ttlMs`.
    pub resource_ttl_ms: std::sync::atomic::AtomicU64,
    pub cache: ResourceCache,
    pub metrics: Arc<Metrics>,
    pub trust: Arc<Trust>,
    /// `[llm.NAME]` providers; swapped whole on reload.
    pub providers: Arc<arc_swap::ArcSwap<std::collections::BTreeMap<String, crate::llm::Provider>>>,
    pub requests: Arc<ServerRequests>,
    /// `[[pipelines]]`; swapped whole on reload (and republished as `pipeline.NAME` tools).
    pub pipelines: arc_swap::ArcSwap<std::collections::BTreeMap<String, crate::config::PipelineConfig>>,
    /// Rate limits; swapped whole on reload.
    pub policy: arc_swap::ArcSwap<Policy>,
    pub store: Option<Store>,
    /// OAuth logins and token sources (shared with the sessions).
    pub oauth: Arc<crate::oauth::OAuth>,
    pub audit: Option<crate::store::AuditLog>,
    /// Live-reloadable: audit records kept (shared with the audit writer).
    pub audit_max_entries: Arc<std::sync::atomic::AtomicUsize>,
    /// The running config; the lock also serialises reloads (SIGHUP and RPC).
    pub config: tokio::sync::Mutex<Config>,
    /// Fired when the daemon starts shutting down, so endless streams (WatchEvents) end
    /// and the gRPC server can close its connections.
    pub stopping: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bind(#[from] api::server::BindError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
}

/// Where to put things, after CLI overrides.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config_path: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// The `mcpd` executable, started again as `mcpd __reaper`; `None` disables the reaper.
    pub reaper_exe: Option<PathBuf>,
}

/// Runs until SIGTERM/SIGINT. Only startup errors are returned; a failing server never
/// ends the daemon.
pub async fn serve(config: Config, opts: ServeOptions) -> Result<(), ServeError> {
    let state_dir = opts.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir)).await.map_err(StoreError::from)??;
    let reaper = match &opts.reaper_exe {
        Some(exe) => match Reaper::start(exe) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the reaper; server processes may outlive a crashed daemon");
                None
            }
        },
        None => None,
    };
    let root = CancellationToken::new();
    let registry = Arc::new(Registry::default());
    let events = EventBus::default();
    let attachments = Arc::new(Attachments::default());
    let cache = ResourceCache::new(config.daemon.resource_cache_bytes as u64);
    let audit_max = Arc::new(std::sync::atomic::AtomicUsize::new(config.daemon.audit_max_entries));
    let providers = Arc::new(arc_swap::ArcSwap::from_pointee(build_providers(&config)));
    let sampler = Arc::new(Sampler::new(providers.clone(), attachments.clone(), &config));
    let requests = Arc::new(ServerRequests { attachments: attachments.clone(), sampler });
    let trust_store = store.clone();
    let trust =
        Arc::new(tokio::task::spawn_blocking(move || Trust::load(Some(trust_store))).await.map_err(StoreError::from)??);
    trust.tofu_window_ms.store(config.daemon.tofu_window.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    let metrics = Arc::new(Metrics::default());
    let oauth = Arc::new(crate::oauth::OAuth::new(Some(store.clone())));
    let ctx = SessionContext {
        registry: registry.clone(),
        attachments: attachments.clone(),
        cache: cache.clone(),
        metrics: metrics.clone(),
        trust: trust.clone(),
        requests: requests.clone(),
        store: Some(store.clone()),
        reaper,
        oauth: oauth.clone(),
    };
    let daemon = Arc::new(Daemon {
        registry,
        supervisor: Supervisor::new(ctx, events.clone(), root.child_token()),
        events,
        attachments,
        started: Instant::now(),
        config_path: opts.config_path.clone(),
        socket_path: opts.socket.clone(),
        state_dir: opts.state_dir.clone(),
        max_result_bytes: std::sync::atomic::AtomicUsize::new(config.daemon.max_result_bytes),
        resource_ttl_ms: std::sync::atomic::AtomicU64::new(config.daemon.resource_ttl.as_millis() as u64),
        cache,
        metrics: metrics.clone(),
        trust,
        policy: arc_swap::ArcSwap::from_pointee(Policy::from_config(&config)),
        providers,
        requests,
        pipelines: arc_swap::ArcSwap::from_pointee(config.pipelines.clone()),
        store: Some(store.clone()),
        oauth,
        audit: Some(store.start_audit(audit_max.clone())),
        audit_max_entries: audit_max,
        config: tokio::sync::Mutex::new(config.clone()),
        stopping: CancellationToken::new(),
    });

    let listener = api::server::bind(&opts.socket).await?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;

    let report = daemon.supervisor.apply(&config).await;
    daemon.oauth.prune(&daemon.supervisor.upstreams()).await;
    publish_pipelines(&daemon.registry, &config).await;
    tracing::info!(servers = report.added.len(), socket = %opts.socket.display(), "mcpd serving");

    let api_stop = CancellationToken::new();
    let mut api_task = tokio::spawn(api::server::serve(Api { daemon: daemon.clone() }, listener, api_stop.clone()));
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    let watchdog = spawn_watchdog(root.clone());
    {
        // Idle per-app rate buckets are dropped now and then so apps that come and go
        // cannot grow memory.
        let (d, stop) = (daemon.clone(), root.child_token());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => d.policy.load().retain_recent(),
                }
            }
        });
    }
    if let Some(addr) = config.daemon.metrics_listen {
        let (m, stop) = (metrics.clone(), root.child_token());
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, m, stop).await {
                tracing::error!(%addr, error = %e, "cannot serve metrics");
            }
        });
    }

    let grace = config.daemon.shutdown_grace;
    let api_result = loop {
        tokio::select! {
            _ = sigterm.recv() => break None,
            _ = sigint.recv() => break None,
            _ = sighup.recv() => {
                let outcome = daemon.reload().await;
                if !outcome.applied {
                    tracing::error!("config reload rejected, keeping the running config:\n{}", outcome.problems.join("\n"));
                }
            }
            r = &mut api_task => break Some(r),
        }
    };
    tracing::info!("shutting down");
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    // Order: stop taking RPCs, stop sessions (reaping children), flush the store.
    api_stop.cancel();
    daemon.stopping.cancel();
    let shutdown = async {
        let api_done = async {
            if api_result.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut api_task).await;
            }
        };
        // Sessions stop while the last RPCs drain; calls still running fail as their servers go.
        tokio::join!(api_done, daemon.supervisor.shutdown(grace));
        if let Some(audit) = &daemon.audit {
            audit.close(Duration::from_secs(2)).await;
        }
        if let Err(e) = store.flush().await {
            tracing::warn!(error = %e, "store flush failed");
        }
    };
    // Stopping sessions is bounded per session; this outer bound catches anything else.
    if tokio::time::timeout(grace + Duration::from_secs(5), shutdown).await.is_err() {
        tracing::warn!("shutdown did not finish within {grace:?}; exiting anyway");
    }
    root.cancel();
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = std::fs::remove_file(&opts.socket);
    match api_result {
        Some(Ok(Err(e))) => Err(ServeError::Grpc(e)),
        _ => Ok(()),
    }
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
    /// Whether `name` is a configured server or the virtual `pipeline` server.
    pub fn knows_server(&self, name: &str) -> bool {
        name == crate::config::PIPELINE_SERVER || self.supervisor.upstream(name).is_some()
    }

    /// Whether a registry entry may be called (ListTools, agents): pipelines are the admin's
    /// own config and trusted by definition; server tools need their pin.
    pub fn tool_verdict(&self, t: &crate::registry::ToolEntry) -> crate::trust::Verdict {
        if t.server == crate::config::PIPELINE_SERVER {
            return crate::trust::Verdict::Trusted;
        }
        match self.supervisor.upstream(&t.server) {
            Some(u) => self.trust.verdict(&u.config, &u.identity, t),
            None => crate::trust::Verdict::Quarantined("its server is no longer configured".into()),
        }
    }

    /// Loads the config file again and applies it as a diff; a bad file changes nothing.
    pub async fn reload(&self) -> ReloadOutcome {
        let mut current = self.config.lock().await;
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
                let report = self.supervisor.apply(&next).await;
                self.oauth.prune(&self.supervisor.upstreams()).await;
                self.max_result_bytes.store(next.daemon.max_result_bytes, std::sync::atomic::Ordering::Relaxed);
                self.resource_ttl_ms
                    .store(next.daemon.resource_ttl.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                self.audit_max_entries.store(next.daemon.audit_max_entries, std::sync::atomic::Ordering::Relaxed);
                self.trust
                    .tofu_window_ms
                    .store(next.daemon.tofu_window.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                // Limits start afresh with the new config (a reload is rare; a burst after it is fine).
                self.policy.store(Arc::new(Policy::from_config(&next)));
                self.providers.store(Arc::new(build_providers(&next)));
                self.pipelines.store(Arc::new(next.pipelines.clone()));
                publish_pipelines(&self.registry, &next).await;
                self.requests.sampler.apply(&next);
                let needs_restart = restart_only_changes(&current, &next);
                tracing::info!(added = ?report.added, changed = ?report.changed, removed = ?report.removed, "config reloaded");
                *current = next;
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

/// Puts every pipeline in the registry as the virtual tool `pipeline.NAME`.
async fn publish_pipelines(registry: &Arc<Registry>, cfg: &Config) {
    let tools: Vec<rmcp::model::Tool> = cfg
        .pipelines
        .values()
        .filter_map(|p| serde_json::from_value(crate::pipeline::tool_definition(p)).ok())
        .collect();
    if tools.is_empty() {
        registry.remove(crate::config::PIPELINE_SERVER);
        return;
    }
    let built = tokio::task::spawn_blocking(move || {
        crate::registry::build_server_tools(
            crate::config::PIPELINE_SERVER,
            "pipeline|config",
            tools,
            &crate::config::ToolFilter::default(),
            &[],
            false,
        )
    })
    .await;
    if let Ok((st, warnings)) = built {
        for w in warnings {
            tracing::warn!(server = "pipeline", "{w}");
        }
        registry.publish(crate::config::PIPELINE_SERVER, st);
    }
}

/// Builds the `[llm.NAME]` providers; one that cannot be built is logged and left out
/// (validation already caught what the config can say wrong).
fn build_providers(cfg: &Config) -> std::collections::BTreeMap<String, crate::llm::Provider> {
    let mut out = std::collections::BTreeMap::new();
    for (name, p) in &cfg.llm {
        match crate::llm::Provider::new(p) {
            Ok(provider) => {
                out.insert(name.clone(), provider);
            }
            Err(e) => tracing::error!(provider = %name, error = %e, "cannot set up LLM provider"),
        }
    }
    out
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
    out
}

fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

fn spawn_watchdog(root: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let every = sd_notify::watchdog_enabled()? / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = root.cancelled() => return,
                _ = tick.tick() => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
            }
        }
    }))
}

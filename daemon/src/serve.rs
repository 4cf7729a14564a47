//! Wires the daemon together and runs it: store, reaper, call core, supervisor, the API
//! socket, signals (TERM/INT stop, HUP reload), systemd notification, and the bounded
//! shutdown sequence.
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
    call::CallCore,
    config::Config,
    daemon::{Daemon, notify_systemd},
    event::EventBus,
    live::Live,
    metrics::Metrics,
    reaper::Reaper,
    registry::Registry,
    requests::ServerRequests,
    sampling::Sampler,
    session::SessionContext,
    store::{Store, StoreError},
    supervisor::Supervisor,
    trust::Trust,
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bind(#[from] api::server::BindError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error(transparent)]
    McpHttp(#[from] crate::mcp::http::HttpError),
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
/// Threads for the daemon's runtime from `[daemon] worker_threads` (0: half the CPUs, at
/// least one): the daemon shares a small machine with its clients and servers.
pub fn worker_threads(configured: usize) -> usize {
    match configured {
        0 => (std::thread::available_parallelism().map_or(2, |n| n.get()) / 2).max(1),
        n => n,
    }
}

pub async fn serve(config: Config, opts: ServeOptions) -> Result<(), ServeError> {
    // Before anything can print: the config's secret values never leave the daemon.
    crate::known::set(config.secrets.iter().map(|s| s.expose().to_owned()));
    let state_dir = opts.state_dir.clone();
    // Fails closed: a store whose trust records are not what was last acknowledged stops
    // the start, so nobody resets trust by damaging a file.
    let store =
        tokio::task::spawn_blocking(move || Store::open_verified(&state_dir)).await.map_err(StoreError::from)??;
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
    let reaper_pid = reaper.as_ref().map(Reaper::pid);
    let root = CancellationToken::new();
    let registry = Arc::new(Registry::default());
    crate::registry::apply_search_model(&registry, config.daemon.search_model.clone()).await;
    let events = EventBus::default();
    let attachments = Arc::new(Attachments::default());
    let cache = ResourceCache::new(config.daemon.resource_cache_bytes as u64);
    let audit_max = Arc::new(std::sync::atomic::AtomicUsize::new(config.daemon.audit_max_entries));
    let live = Live::handle(config.clone());
    let sampler = Arc::new(Sampler::new(live.clone(), attachments.clone(), &config));
    let requests = Arc::new(ServerRequests { attachments: attachments.clone(), sampler });
    let trust_store = store.clone();
    let trust =
        Arc::new(tokio::task::spawn_blocking(move || Trust::load(Some(trust_store))).await.map_err(StoreError::from)??);
    trust.tofu_window_ms.store(config.daemon.tofu_window.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    let metrics = Arc::new(Metrics::default());
    let oauth = Arc::new(crate::oauth::OAuth::new(Some(store.clone())));
    let containment =
        Arc::new(crate::contain::Containment::detect(config.daemon.containment, opts.reaper_exe.as_deref()));
    if let (Some(base), Some(r)) = (containment.base(), &reaper) {
        r.register_cgroup(base);
    }
    if let (crate::contain::Containment::ProcessTree, Some(r)) = (containment.as_ref(), reaper.clone()) {
        // Helpers that outlived their server's process and were adopted by us (a subreaper)
        // are handed to the reaper, so a SIGKILLed daemon does not leave them either.
        // Likewise what left a server's group while the server runs (`setsid`): a server
        // whose stdin closes with the daemon may exit before the reaper can look under it.
        let stop = root.child_token();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut told = std::collections::HashSet::new();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                    // A server started: give it a moment to start its helpers, then look.
                    _ = crate::contain::SPAWNED.notified() => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                let leaders = crate::transport::stdio::leader_pids();
                if leaders.is_empty() {
                    continue;
                }
                let r = r.clone();
                let known_told = std::mem::take(&mut told);
                let scan = tokio::task::spawn_blocking(move || {
                    let mut known = leaders.clone();
                    known.insert(r.pid());
                    for p in crate::contain::adopted(&known) {
                        if let Some(g) = crate::contain::group_of(p.pid) {
                            r.register(g);
                        }
                    }
                    let roots: Vec<i32> = leaders.iter().copied().collect();
                    let mut now = std::collections::HashSet::new();
                    for p in crate::contain::descendants_of(&roots) {
                        let strayed = crate::contain::group_of(p.pid).is_some_and(|g| !leaders.contains(&g));
                        if strayed {
                            if !known_told.contains(&p) {
                                r.register_proc(p);
                            }
                            now.insert(p);
                        }
                    }
                    now
                });
                told = scan.await.unwrap_or_default();
            }
        });
    }
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
        start_slots: Arc::new(tokio::sync::Semaphore::new(crate::session::start_slots(config.daemon.max_starting))),
        containment: containment.clone(),
    };
    let core = Arc::new(CallCore {
        registry,
        supervisor: Arc::new(Supervisor::new(ctx, events.clone(), root.child_token())),
        trust,
        requests,
        oauth,
        metrics: metrics.clone(),
        audit: Some(store.start_audit(audit_max.clone())),
        live,
    });
    let daemon = Arc::new(Daemon {
        core,
        events,
        attachments,
        cache,
        store: Some(store.clone()),
        started: Instant::now(),
        config_path: opts.config_path.clone(),
        socket_path: opts.socket.clone(),
        state_dir: opts.state_dir.clone(),
        containment: containment.describe(),
        mcp: std::sync::OnceLock::new(),
        audit_max_entries: audit_max,
        reload_lock: tokio::sync::Mutex::new(()),
        stopping: CancellationToken::new(),
    });

    let listener = api::server::bind(&opts.socket).await?;
    // From here every socket we bound is removed however start-up ends: a client that saw
    // the file must not find a dead socket when a later step (the HTTP bind) fails.
    let mut sockets = SocketFiles(vec![opts.socket.clone()]);
    // The MCP front end: the bridge's socket always, the HTTP endpoint when configured.
    let mcp_stop = CancellationToken::new();
    let mcp_shared = crate::mcp::Shared::new(daemon.clone());
    let mcp_socket = crate::mcp::socket::socket_path(&opts.socket);
    let mcp_listener = api::server::bind(&mcp_socket).await?;
    sockets.0.push(mcp_socket.clone());
    let mut endpoints = crate::daemon::McpEndpoints {
        socket: mcp_socket.clone(),
        listen: None,
        auth: config.daemon.mcp.auth.as_str(),
        token_file: None,
        tls: config.daemon.mcp.tls.is_some(),
    };
    let mcp_http = match config.daemon.mcp.listen {
        Some(addr) => {
            let ep = crate::mcp::http::Endpoint::bind(mcp_shared.clone(), &config.daemon.mcp, addr, mcp_stop.clone())
                .await?;
            endpoints.listen = ep.local_addr();
            if config.daemon.mcp.auth == crate::config::McpAuth::Token {
                endpoints.token_file = Some(
                    config
                        .daemon
                        .mcp
                        .token_file
                        .clone()
                        .unwrap_or_else(|| crate::mcp::http::default_token_path(&opts.state_dir)),
                );
            } else {
                tracing::warn!(%addr, "the MCP endpoint takes no token (mcp_auth = \"none\"): any local process can call tools");
            }
            Some(ep)
        }
        None => None,
    };
    let _ = daemon.mcp.set(endpoints);
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;

    let report = daemon.core.supervisor.apply(&config).await;
    daemon.core.oauth.prune(&daemon.core.supervisor.upstreams()).await;
    crate::pipeline::publish(&daemon.core.registry, &config).await;
    tracing::info!(servers = report.added.len(), socket = %opts.socket.display(), "mcpd serving");

    let api_stop = CancellationToken::new();
    let mut api_task = tokio::spawn(api::server::serve(Api { daemon: daemon.clone() }, listener, api_stop.clone()));
    tokio::spawn(crate::mcp::socket::serve(mcp_shared, mcp_listener, mcp_stop.clone()));
    if let Some(ep) = mcp_http {
        if let Some(addr) = ep.local_addr() {
            tracing::info!(%addr, "MCP endpoint serving");
        }
        tokio::spawn(ep.serve());
    }
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
                    _ = tick.tick() => d.core.live.load().policy.retain_recent(),
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
    mcp_stop.cancel();
    daemon.stopping.cancel();
    let shutdown = async {
        let api_done = async {
            if api_result.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut api_task).await;
            }
        };
        // Sessions stop while the last RPCs drain; calls still running fail as their servers go.
        tokio::join!(api_done, daemon.core.supervisor.shutdown(grace));
        if let Some(audit) = &daemon.core.audit {
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
    // What the servers left behind: orphans we adopted, and our cgroup subtree.
    let mut known = crate::transport::stdio::leader_pids();
    known.extend(reaper_pid);
    let c = containment.clone();
    let _ = tokio::task::spawn_blocking(move || {
        c.sweep_adopted(&known);
        c.close();
    })
    .await;
    root.cancel();
    if let Some(w) = watchdog {
        w.abort();
    }
    drop(sockets);
    match api_result {
        Some(Ok(Err(e))) => Err(ServeError::Grpc(e)),
        _ => Ok(()),
    }
}

/// Socket files this daemon bound; dropping it removes them.
struct SocketFiles(Vec<PathBuf>);

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
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

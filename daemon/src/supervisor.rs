//! Starts one session task per configured server, applies config changes as a diff
//! (only changed servers restart), and stops everything on shutdown.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    event::EventBus,
    session::{self, SessionContext},
    upstream::Upstream,
};

struct Running {
    upstream: Arc<Upstream>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// What `apply` changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

pub struct Supervisor {
    ctx: SessionContext,
    events: EventBus,
    root: CancellationToken,
    /// Read on every call; replaced only when servers are added or removed.
    upstreams: ArcSwap<BTreeMap<String, Arc<Upstream>>>,
    running: Mutex<BTreeMap<String, Running>>,
}

// === impl Supervisor ===

impl Supervisor {
    pub fn new(ctx: SessionContext, events: EventBus, root: CancellationToken) -> Self {
        Self { ctx, events, root, upstreams: ArcSwap::default(), running: Mutex::new(BTreeMap::new()) }
    }

    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams.load().get(name).cloned()
    }

    /// Every server, in name order.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        self.upstreams.load().values().cloned().collect()
    }

    /// Brings the running servers in line with `config`: starts new ones, restarts
    /// those whose config changed, stops removed ones, and leaves the rest untouched.
    pub async fn apply(&self, config: &Config) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut to_stop = Vec::new();
        let mut to_start = Vec::new();
        let mut new_roots = Vec::new();
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let names: Vec<String> = running.keys().cloned().collect();
            for name in names {
                let current = running[&name].upstream.clone();
                let changed = match config.servers.get(&name) {
                    None => false,
                    // Only the roots changed: tell the server instead of restarting it.
                    Some(new) if only_roots_differ(new, &current.config) => {
                        if new.roots != *current.roots() {
                            new_roots.push((current, new.roots.clone()));
                            report.changed.push(name);
                        }
                        continue;
                    }
                    Some(new) if *new != *current.config => true,
                    Some(_) => continue,
                };
                if let Some(r) = running.remove(&name) {
                    to_stop.push(r);
                    if changed { report.changed.push(name) } else { report.removed.push(name) }
                }
            }
            for (name, cfg) in &config.servers {
                if !running.contains_key(name) {
                    if !report.changed.contains(name) {
                        report.added.push(name.clone());
                    }
                    to_start.push(cfg.clone());
                }
            }
        }
        for (upstream, roots) in new_roots {
            tracing::info!(server = %upstream.name, "roots changed; sending roots/list_changed");
            upstream.set_roots(roots).await;
        }
        // Old sessions go first, so a changed server never runs twice at once.
        futures::future::join_all(to_stop.into_iter().map(|r| stop(r, Duration::from_secs(30)))).await;
        for name in &report.removed {
            self.ctx.registry.remove(name);
        }
        // Last-known tools are in the registry before the session starts (and before the
        // API serves), so ListTools answers at once after a restart.
        let mut started = Vec::new();
        for cfg in to_start {
            let upstream = Arc::new(Upstream::new(Arc::new(cfg), self.events.clone()));
            if upstream.config.enabled {
                session::load_stale_tools(&upstream, &self.ctx).await;
            }
            started.push(upstream);
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for upstream in started {
            let cancel = self.root.child_token();
            let task = tokio::spawn(session::run(upstream.clone(), self.ctx.clone(), cancel.clone()));
            running.insert(upstream.name.clone(), Running { upstream, cancel, task });
        }
        let map = running.iter().map(|(k, r)| (k.clone(), r.upstream.clone())).collect();
        self.upstreams.store(Arc::new(map));
        report
    }

    /// Registers an upstream without a session task (unit tests drive its peer themselves).
    #[cfg(test)]
    pub(crate) fn adopt(&self, upstream: Arc<Upstream>) {
        let mut map: BTreeMap<String, Arc<Upstream>> = (**self.upstreams.load()).clone();
        map.insert(upstream.name.clone(), upstream);
        self.upstreams.store(Arc::new(map));
    }

    /// Stops every session (closing stdio children along the shutdown ladder), bounded by `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let all: Vec<Running> = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *running).into_values().collect()
        };
        for r in &all {
            r.cancel.cancel();
        }
        let waits = all.into_iter().map(|r| stop(r, grace));
        futures::future::join_all(waits).await;
    }
}

/// Whether two configs of a server differ in nothing but `roots`.
fn only_roots_differ(new: &crate::config::ServerConfig, old: &crate::config::ServerConfig) -> bool {
    let mut probe = new.clone();
    probe.roots = old.roots.clone();
    probe == *old
}

async fn stop(r: Running, grace: Duration) {
    r.cancel.cancel();
    let Running { upstream, mut task, .. } = r;
    if tokio::time::timeout(grace, &mut task).await.is_err() {
        tracing::warn!(server = %upstream.name, "session did not stop within {grace:?}; aborting it");
        // Aborting drops the StdioChild, whose Drop SIGKILLs the process group.
        task.abort();
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests;

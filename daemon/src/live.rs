//! The live snapshot: everything a reload changes at once (the config, rate limits, pipelines
//! and LLM providers), behind one `ArcSwap` that a reload replaces whole.
//!
//! Readers take one `load()` per operation, so a call sees one consistent config: never
//! the new rate limits with the old pipelines.
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use arc_swap::ArcSwap;

use crate::{
    config::{Config, PipelineConfig},
    llm::Provider,
    policy::Policy,
};

/// One consistent view of the running config and what is built from it.
pub struct Live {
    pub config: Config,
    /// Rate limits per app, server and tool; their buckets start afresh with each snapshot.
    pub policy: Policy,
    /// `[llm.NAME]` providers that could be built.
    pub providers: BTreeMap<String, Provider>,
}

/// The shared handle: cheap to clone, read lock-free.
pub type LiveHandle = Arc<ArcSwap<Live>>;

// === impl Live ===

impl Live {
    /// Builds a snapshot from a validated config.
    pub fn new(config: Config) -> Self {
        Live { policy: Policy::from_config(&config), providers: build_providers(&config), config }
    }

    /// A handle holding `Live::new(config)`.
    pub fn handle(config: Config) -> LiveHandle {
        Arc::new(ArcSwap::from_pointee(Live::new(config)))
    }

    /// `[[pipelines]]`, callable as `pipeline.NAME`.
    pub fn pipelines(&self) -> &BTreeMap<String, PipelineConfig> {
        &self.config.pipelines
    }

    /// Results are cut beyond this many bytes (`daemon.max_result_bytes`).
    pub fn max_result_bytes(&self) -> usize {
        self.config.daemon.max_result_bytes
    }

    /// Freshness of resource reads without a server `ttlMs` (`daemon.resource_ttl`).
    pub fn resource_ttl(&self) -> Duration {
        self.config.daemon.resource_ttl
    }
}

/// Builds the `[llm.NAME]` providers; one that cannot be built is logged and left out
/// (validation already caught what the config can say wrong).
fn build_providers(cfg: &Config) -> BTreeMap<String, Provider> {
    let mut out = BTreeMap::new();
    for (name, p) in &cfg.llm {
        match Provider::new(p) {
            Ok(provider) => {
                out.insert(name.clone(), provider);
            }
            Err(e) => tracing::error!(provider = %name, error = %e, "cannot set up LLM provider"),
        }
    }
    out
}

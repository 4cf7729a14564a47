//! Trust in tool definitions: pins (approved fingerprints) in the store and in memory, the
//! per-mode verdict checked on every call, rug-pull bookkeeping on every tool-list refresh,
//! and the admin verbs (list, diff, approve, revoke).
//!
//! A tool is callable only when its current fingerprint equals a pin that is neither
//! revoked nor marked removed (`tofu`, `approve`), or equals the config's pin (`pinned`).
//! Pins are keyed by server identity (config key + transport + exact command/args or URL),
//! so a changed command or URL starts from nothing. The in-memory map mirrors the store;
//! a pin enters it only after the store has flushed it.
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    config::{ServerConfig, TrustMode},
    integrity::fingerprint::{changed_fields, pretty_canonical},
    registry::{PinItem, ServerTools, ToolEntry},
    store::{PinRecord, Store, StoreError},
    upstream::Upstream,
    util::unix_ms,
};

/// Whether a tool may be called, and if not, why (said to the caller and in events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    Quarantined(String),
}

impl Verdict {
    pub fn is_trusted(&self) -> bool {
        matches!(self, Verdict::Trusted)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("the trust store could not be written, nothing changed: {0}")]
    Store(#[from] StoreError),
    #[error("no server named {0:?}")]
    NoSuchServer(String),
    #[error("server {server:?} lists no tool named {tool:?} (is it connected, and allowed by its tools filter?)")]
    NoSuchTool { server: String, tool: String },
    #[error(
        "server {0:?} uses trust = \"pinned\": trust comes from its `pins` table in the config; copy the fingerprint from `mcpd trust list` there and reload"
    )]
    PinnedByConfig(String),
}

/// Pins in memory, mirroring the store.
pub struct Trust {
    store: Option<Store>,
    pins: RwLock<HashMap<String, Arc<PinRecord>>>,
    /// Identities whose first use has ended: the first call through the core closes the
    /// first-use window early (checked on every call, so a set lookup without allocation).
    used: RwLock<HashSet<String>>,
    /// `daemon.tofu_window` in ms; reloadable.
    pub tofu_window_ms: AtomicU64,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust").finish_non_exhaustive()
    }
}

/// Pin key of the per-identity first-use marker; tool names cannot contain NUL.
const FIRST_USE: &str = "\0first-use";
/// `by` of a first-use marker whose window is still open, and of one closed by a call.
const FIRST_USE_OPEN: &str = "first-use";
const FIRST_USE_ENDED: &str = "first-use-ended";

/// The records `mcpd store reset` keeps: for every configured `tofu` server, the marker of a
/// first use that has ended, so its tools wait for approval instead of being trusted again
/// on sight (after a reset nothing is trusted that an admin did not approve). A server
/// added to the config later starts its first use as usual.
pub fn reset_records(config: &crate::config::Config) -> Vec<(String, PinRecord)> {
    let now = unix_ms();
    config
        .servers
        .values()
        .filter(|s| s.trust == TrustMode::Tofu)
        .map(|s| {
            let marker = PinRecord {
                fingerprint: String::new(),
                definition: serde_json::Value::Null,
                by: FIRST_USE_ENDED.into(),
                unix_ms: now,
                removed: false,
                revoked: false,
            };
            (key(&crate::upstream::identity(s), FIRST_USE), marker)
        })
        .collect()
}

fn key(identity: &str, tool: &str) -> String {
    format!("{identity}\0{tool}")
}

fn lock_read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // The map holds plain data; a panic elsewhere mid-write leaves it usable.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock_write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

// === impl Trust ===

impl Trust {
    /// Loads every pin. Blocking (startup). An unreadable store is an error: the daemon
    /// then does not start, so nothing is ever trusted on a store it cannot read.
    pub fn load(store: Option<Store>) -> Result<Self, StoreError> {
        let mut pins = HashMap::new();
        let mut used = HashSet::new();
        if let Some(s) = &store {
            for (k, rec) in s.load_all_pins()? {
                if rec.by == FIRST_USE_ENDED
                    && let Some(identity) = k.strip_suffix(&key("", FIRST_USE))
                {
                    used.insert(identity.to_owned());
                }
                pins.insert(k, Arc::new(rec));
            }
        }
        Ok(Self { store, pins: RwLock::new(pins), used: RwLock::new(used), tofu_window_ms: AtomicU64::new(30_000) })
    }

    /// An empty trust state with no store (tests and benchmarks).
    pub fn in_memory() -> Self {
        Self {
            store: None,
            pins: RwLock::new(HashMap::new()),
            used: RwLock::new(HashSet::new()),
            tofu_window_ms: AtomicU64::new(30_000),
        }
    }

    /// When this identity was first trusted on first use (a marker record, so later
    /// approvals, which rewrite pins, cannot reopen the first-use window).
    fn first_trusted_ms(&self, identity: &str) -> Option<u64> {
        self.pin(identity, FIRST_USE).map(|p| p.unix_ms)
    }

    fn pin(&self, identity: &str, tool: &str) -> Option<Arc<PinRecord>> {
        lock_read(&self.pins).get(&key(identity, tool)).cloned()
    }

    /// The verdict for a tool definition; runs on every call, so it is a map lookup and a
    /// string comparison.
    pub fn verdict(&self, cfg: &ServerConfig, identity: &str, entry: &ToolEntry) -> Verdict {
        let name = entry.tool.name.as_ref();
        self.judge(
            cfg,
            Judged {
                config_pin: name,
                pin_key: key(identity, name),
                fingerprint: &entry.fingerprint,
                raw: &entry.raw,
                blocked: entry
                    .blocks_auto_trust
                    .then(|| entry.findings.first().map(String::as_str).unwrap_or("see `mcpd trust list`")),
                what: "it",
                review: "review with `mcpd trust diff` and approve",
            },
        )
    }

    /// The rules every pinned definition (a tool, a prompt, a resource template) is judged by.
    fn judge(&self, cfg: &ServerConfig, j: Judged<'_>) -> Verdict {
        if cfg.trust == TrustMode::Pinned {
            let shown = if j.config_pin.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                j.config_pin.to_owned()
            } else {
                format!("\"{}\"", j.config_pin)
            };
            return match cfg.pins.get(j.config_pin) {
                Some(p) if p == j.fingerprint => Verdict::Trusted,
                Some(_) => Verdict::Quarantined(format!(
                    "its definition does not match the pin in the config (now {})",
                    j.fingerprint
                )),
                None => Verdict::Quarantined(format!(
                    "{} is not pinned in the config (trust = \"pinned\"; add pins.{shown} = \"{}\")",
                    j.what, j.fingerprint
                )),
            };
        }
        match lock_read(&self.pins).get(&j.pin_key).cloned() {
            Some(p) if p.revoked => Verdict::Quarantined("an admin revoked trust in it; approve it again".into()),
            Some(p) if p.removed => {
                Verdict::Quarantined(format!("it was removed from the server's list and came back; {} it", j.review))
            }
            Some(p) if p.fingerprint == j.fingerprint => Verdict::Trusted,
            Some(p) => {
                let fields = changed_fields(&p.definition, j.raw);
                Verdict::Quarantined(format!(
                    "its definition changed since it was approved ({} changed); {}",
                    if fields.is_empty() { "fingerprint".to_owned() } else { fields.join(", ") },
                    j.review
                ))
            }
            None if cfg.trust == TrustMode::Approve => {
                Verdict::Quarantined("it awaits approval (trust = \"approve\"): `mcpd trust approve`".into())
            }
            None => match j.blocked {
                Some(finding) => Verdict::Quarantined(format!(
                    "the scanner flagged its definition, which blocks automatic trust: {finding}"
                )),
                None => Verdict::Quarantined(format!(
                    "{} appeared after the server was first trusted; review it and `mcpd trust approve` it",
                    j.what
                )),
            },
        }
    }

    /// Whether `identity` is still in its first use (tofu): no marker yet, or the marker's
    /// window is open and no call has ended it.
    fn in_first_use(&self, identity: &str) -> bool {
        match self.first_trusted_ms(identity) {
            None => true,
            Some(_) if lock_read(&self.used).contains(identity) => false,
            Some(at) => unix_ms().saturating_sub(at) < self.tofu_window_ms.load(Ordering::Relaxed),
        }
    }

    /// Bookkeeping for a fresh tool list of a server (before it is published): in `tofu`
    /// mode first-seen clean tools are pinned; pinned tools missing from the list are marked
    /// removed. Returns the tools that are quarantined now, with why.
    pub async fn observe(&self, upstream: &Upstream, tools: &ServerTools) -> Vec<(String, String)> {
        let cfg = &upstream.config;
        let identity = &upstream.identity;
        let mut writes = Vec::new();
        if cfg.trust != TrustMode::Pinned {
            let now = unix_ms();
            // "First use" is the server's first listing (plus a short window, since servers
            // register more tools right after the handshake); a tool that appears later,
            // such as a rename, needs an approval like any other change.
            let first_use = self.in_first_use(identity);
            // `tofu_new_tools = "trust"`: every unseen clean tool is pinned on sight.
            let pin_unseen = first_use || cfg.tofu_trusts_new_tools;
            if first_use && cfg.trust == TrustMode::Tofu && self.first_trusted_ms(identity).is_none() {
                writes.push((
                    key(identity, FIRST_USE),
                    PinRecord {
                        fingerprint: String::new(),
                        definition: serde_json::Value::Null,
                        by: FIRST_USE_OPEN.into(),
                        unix_ms: now,
                        removed: false,
                        revoked: false,
                    },
                ));
            }
            for (name, entry) in &tools.tools {
                let unseen = self.pin(identity, name).is_none();
                if unseen && pin_unseen && cfg.trust == TrustMode::Tofu && !entry.blocks_auto_trust {
                    writes.push((
                        key(identity, name),
                        PinRecord {
                            fingerprint: entry.fingerprint.clone(),
                            definition: entry.raw.clone(),
                            by: "tofu".into(),
                            unix_ms: now,
                            removed: false,
                            revoked: false,
                        },
                    ));
                }
            }
            // Pins of tools the server no longer lists: remember they went away.
            let listed: HashSet<&str> = tools.tools.keys().map(String::as_str).collect();
            let prefix = key(identity, "");
            let gone: Vec<(String, Arc<PinRecord>)> = lock_read(&self.pins)
                .iter()
                .filter(|(k, p)| {
                    !p.removed
                        && k.strip_prefix(&prefix).is_some_and(|tool| !tool.starts_with('\0') && !listed.contains(tool))
                })
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect();
            for (k, p) in gone {
                // A tool the filter hides is not "removed" by the server.
                let tool = k.strip_prefix(&prefix).unwrap_or_default();
                if !cfg.tools.allows(tool) {
                    continue;
                }
                writes.push((k, PinRecord { removed: true, ..(*p).clone() }));
            }
        }
        if !writes.is_empty()
            && let Err(e) = self.commit(writes).await
        {
            // Fail closed: nothing new is trusted when the store cannot record it.
            tracing::error!(server = %upstream.name, error = %e, "cannot record trust pins; new tools stay quarantined");
        }
        tools
            .tools
            .iter()
            .filter_map(|(name, e)| match self.verdict(cfg, identity, e) {
                Verdict::Trusted => None,
                Verdict::Quarantined(why) => Some((name.clone(), why)),
            })
            .collect()
    }

    /// A call to `upstream`'s server went through: under tofu its first use is over, so a tool
    /// it adds from now on waits for approval (unless `tofu_new_tools = "trust"`). Only the
    /// first call writes (the marker, flushed); later ones are a set lookup.
    pub async fn note_use(&self, upstream: &Upstream) {
        let identity = upstream.identity.as_str();
        if upstream.config.trust != TrustMode::Tofu || lock_read(&self.used).contains(identity) {
            return;
        }
        let Some(marker) = self.pin(identity, FIRST_USE) else { return };
        let ended = PinRecord { by: FIRST_USE_ENDED.into(), ..(*marker).clone() };
        match self.commit(vec![(key(identity, FIRST_USE), ended)]).await {
            Ok(()) => {
                lock_write(&self.used).insert(identity.to_owned());
            }
            // The window still closes when it times out; nothing is trusted that was not.
            Err(e) => tracing::warn!(server = %upstream.name, error = %e, "cannot record the end of first use"),
        }
    }

    /// Writes to the store (flushed), then to memory.
    async fn commit(&self, writes: Vec<(String, PinRecord)>) -> Result<(), StoreError> {
        if let Some(store) = &self.store {
            store.save_pins(writes.clone()).await?;
        }
        let mut pins = lock_write(&self.pins);
        for (k, rec) in writes {
            pins.insert(k, Arc::new(rec));
        }
        Ok(())
    }

    /// Pins the current definitions of `tool` (or every tool) of a server. The pin is on
    /// disk before this returns.
    pub async fn approve(
        &self,
        upstream: &Upstream,
        tools: &ServerTools,
        tool: Option<&str>,
    ) -> Result<Vec<String>, TrustError> {
        self.change(upstream, tools, tool, |e, _, now| PinRecord {
            fingerprint: e.fingerprint.clone(),
            definition: e.raw.clone(),
            by: "admin".into(),
            unix_ms: now,
            removed: false,
            revoked: false,
        })
        .await
    }

    /// Revokes trust in `tool` (or every tool) of a server until approved again.
    pub async fn revoke(
        &self,
        upstream: &Upstream,
        tools: &ServerTools,
        tool: Option<&str>,
    ) -> Result<Vec<String>, TrustError> {
        self.change(upstream, tools, tool, |_, old, now| match old {
            Some(p) => PinRecord { revoked: true, by: "admin".into(), unix_ms: now, ..p.clone() },
            None => PinRecord {
                fingerprint: String::new(),
                definition: serde_json::Value::Null,
                by: "admin".into(),
                unix_ms: now,
                removed: false,
                revoked: true,
            },
        })
        .await
    }

    /// An admin's change to the pins of the selected tools: `record` builds each new pin from
    /// the current definition and the old pin. Written (and flushed) before it is reported.
    async fn change(
        &self,
        upstream: &Upstream,
        tools: &ServerTools,
        tool: Option<&str>,
        record: impl Fn(&ToolEntry, Option<&PinRecord>, u64) -> PinRecord,
    ) -> Result<Vec<String>, TrustError> {
        if upstream.config.trust == TrustMode::Pinned {
            return Err(TrustError::PinnedByConfig(upstream.name.clone()));
        }
        let selected = select(upstream, tools, tool)?;
        let now = unix_ms();
        let writes: Vec<(String, PinRecord)> = selected
            .iter()
            .map(|e| {
                let name = e.tool.name.as_ref();
                let old = self.pin(&upstream.identity, name);
                (key(&upstream.identity, name), record(e, old.as_deref(), now))
            })
            .collect();
        self.commit(writes).await?;
        Ok(selected.iter().map(|e| e.qualified_name()).collect())
    }

    /// One line of `mcpd trust list`.
    pub fn describe(&self, upstream: &Upstream, entry: &ToolEntry) -> TrustInfo {
        let cfg = &upstream.config;
        let verdict = self.verdict(cfg, &upstream.identity, entry);
        let (pinned, by, at) = if cfg.trust == TrustMode::Pinned {
            (cfg.pins.get(entry.tool.name.as_ref()).cloned().unwrap_or_default(), "config".to_owned(), 0)
        } else {
            match self.pin(&upstream.identity, entry.tool.name.as_ref()) {
                Some(p) => (p.fingerprint.clone(), p.by.clone(), p.unix_ms),
                None => (String::new(), String::new(), 0),
            }
        };
        TrustInfo { verdict, pinned_fingerprint: pinned, approved_by: by, approved_unix_ms: at }
    }

    /// The approved definition against the current one.
    pub fn diff(&self, upstream: &Upstream, entry: &ToolEntry) -> TrustDiff {
        let old = self
            .pin(&upstream.identity, entry.tool.name.as_ref())
            .map(|p| p.definition.clone())
            .filter(|d| !d.is_null());
        let new_text = pretty_canonical(&entry.raw);
        let old_text = old.as_ref().map(pretty_canonical).unwrap_or_default();
        let diff = similar::TextDiff::from_lines(&old_text, &new_text)
            .unified_diff()
            .context_radius(3)
            .header("approved", "current")
            .to_string();
        let changed = old.as_ref().map(|o| changed_fields(o, &entry.raw)).unwrap_or_default();
        TrustDiff { old_json: old_text, new_json: new_text, diff, changed_fields: changed }
    }
}

/// One definition to judge (a tool, a prompt, a resource template).
struct Judged<'a> {
    /// Its key under `pins` in the config (`trust = "pinned"`).
    config_pin: &'a str,
    /// Its key in the pin map.
    pin_key: String,
    fingerprint: &'a str,
    raw: &'a serde_json::Value,
    /// When the scanner blocks automatic trust: its first finding.
    blocked: Option<&'a str>,
    /// How messages name it ("it", "this prompt").
    what: &'a str,
    /// What to do about a change.
    review: &'a str,
}

/// The pin key of an item: NUL-prefixed, so tool bookkeeping (which skips such names)
/// never touches it and no tool name can collide with it.
fn item_key(identity: &str, kind: &str, name: &str) -> String {
    key(identity, &format!("\0{kind}\0{name}"))
}

impl Trust {
    /// The verdict for a listed prompt or resource template: the same rules as tools, in
    /// every mode (`pinned` pins items with `pins = { "prompt:NAME" = "sha256:..." }`).
    pub fn item_verdict(&self, cfg: &ServerConfig, identity: &str, item: &PinItem) -> Verdict {
        let what = format!("this {}", item.kind.replace('-', " "));
        self.judge(
            cfg,
            Judged {
                config_pin: &format!("{}:{}", item.kind, item.name),
                pin_key: item_key(identity, item.kind, &item.name),
                fingerprint: &item.fingerprint,
                raw: &item.raw,
                blocked: item.blocks_auto_trust.then_some("see its findings in the listing"),
                what: &what,
                review: "approve it again (`mcpd trust approve`)",
            },
        )
    }

    /// Bookkeeping for a complete listing of one kind of item (like [`Trust::observe`] for
    /// tools): under tofu, first-seen clean items are pinned during first use (or always with
    /// `tofu_new_tools = "trust"`); pinned items missing from the listing are marked removed.
    /// Returns the quarantined ones with why.
    pub async fn observe_items(
        &self,
        upstream: &Upstream,
        kind: &'static str,
        items: &[PinItem],
    ) -> Vec<(String, String)> {
        let cfg = &upstream.config;
        let identity = upstream.identity.as_str();
        let mut writes = Vec::new();
        if cfg.trust == TrustMode::Tofu {
            let first_use = self.in_first_use(identity);
            for item in items {
                let k = item_key(identity, kind, &item.name);
                let unseen = !lock_read(&self.pins).contains_key(&k);
                if unseen && (first_use || cfg.tofu_trusts_new_tools) && !item.blocks_auto_trust {
                    writes.push((k, self.pin_for(item, "tofu")));
                }
            }
        }
        if cfg.trust != TrustMode::Pinned {
            let listed: HashSet<String> = items.iter().map(|i| item_key(identity, kind, &i.name)).collect();
            let prefix = item_key(identity, kind, "");
            let gone: Vec<(String, Arc<PinRecord>)> = lock_read(&self.pins)
                .iter()
                .filter(|(k, p)| !p.removed && k.starts_with(&prefix) && !listed.contains(*k))
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect();
            writes.extend(gone.into_iter().map(|(k, p)| (k, PinRecord { removed: true, ..(*p).clone() })));
        }
        if !writes.is_empty()
            && let Err(e) = self.commit(writes).await
        {
            tracing::error!(server = %upstream.name, error = %e, "cannot record trust pins; new items stay quarantined");
        }
        items
            .iter()
            .filter_map(|i| match self.item_verdict(cfg, identity, i) {
                Verdict::Trusted => None,
                Verdict::Quarantined(why) => Some((i.name.clone(), why)),
            })
            .collect()
    }

    /// Pins the current definitions of `items` (an admin's approval), flushed before it returns.
    pub async fn approve_items(&self, upstream: &Upstream, items: &[PinItem]) -> Result<(), TrustError> {
        if upstream.config.trust == TrustMode::Pinned {
            return Err(TrustError::PinnedByConfig(upstream.name.clone()));
        }
        let writes =
            items.iter().map(|i| (item_key(&upstream.identity, i.kind, &i.name), self.pin_for(i, "admin"))).collect();
        self.commit(writes).await?;
        Ok(())
    }

    fn pin_for(&self, item: &PinItem, by: &str) -> PinRecord {
        PinRecord {
            fingerprint: item.fingerprint.clone(),
            definition: item.raw.clone(),
            by: by.into(),
            unix_ms: unix_ms(),
            removed: false,
            revoked: false,
        }
    }
}

/// What `mcpd trust list` shows for one tool.
#[derive(Debug, Clone)]
pub struct TrustInfo {
    pub verdict: Verdict,
    pub pinned_fingerprint: String,
    pub approved_by: String,
    pub approved_unix_ms: u64,
}

#[derive(Debug, Clone)]
pub struct TrustDiff {
    pub old_json: String,
    pub new_json: String,
    pub diff: String,
    pub changed_fields: Vec<String>,
}

fn select<'a>(
    upstream: &Upstream,
    tools: &'a ServerTools,
    tool: Option<&str>,
) -> Result<Vec<&'a Arc<ToolEntry>>, TrustError> {
    match tool {
        Some(t) => tools
            .tools
            .get(t)
            .map(|e| vec![e])
            .ok_or_else(|| TrustError::NoSuchTool { server: upstream.name.clone(), tool: t.to_owned() }),
        None => Ok(tools.tools.values().collect()),
    }
}

#[cfg(test)]
mod tests;

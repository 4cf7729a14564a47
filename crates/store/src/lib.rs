//! Durable state in sled: last-known tool lists, remembered protocol eras, trust pins, OAuth credentials, the audit log. The only crate that depends on `sled`.
//!
//! Every call runs on the blocking pool so the async runtime never waits on disk.
#![forbid(unsafe_code)]
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use serde::{Serialize, de::DeserializeOwned};

/// Layout version of the trees below; bumped when a stored format changes.
const SCHEMA_VERSION: u32 = 1;
/// sled's default cache is 1 GiB; mcpd stores little, so keep its memory small.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open store in {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("store in {path} has schema version {found}, this mcpd understands {SCHEMA_VERSION}")]
    Schema { path: PathBuf, found: u32 },
    #[error("store i/o: {0}")]
    Io(#[from] sled::Error),
    #[error("store record is corrupt: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The trust records are not what was last acknowledged: the store lost or changed
    /// approvals (a damaged file, a restored copy). mcpd does not start on it.
    #[error(
        "the trust store in {path} is damaged: {what}. mcpd will not start on it, since approvals may be lost; `mcpd store verify` shows the store, `mcpd store reset --yes` starts trust afresh (every tool then needs approval again)"
    )]
    TrustDamaged { path: PathBuf, what: String },
    #[error("cannot write {path}: {source}")]
    Sidecar {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Named trees.
const TOOLS: &str = "tools";
const ERAS: &str = "eras";
const META: &str = "meta";
/// Trust pins: `identity \0 tool` -> [`PinRecord`].
const PINS: &str = "pins";
/// OAuth credentials (rmcp's `StoredCredentials`: client id, tokens, scopes, issuer), by
/// server identity, so a token is only ever loaded for the server it was issued for.
const OAUTH: &str = "oauth";
/// Audit log: big-endian sequence number -> [`AuditEntry`], oldest first.
const AUDIT: &str = "audit";
/// Audit records waiting for the writer; beyond this they are dropped (and counted).
const AUDIT_QUEUE: usize = 8192;
/// How long the writer gathers records before writing them as one batch.
const AUDIT_GATHER: std::time::Duration = std::time::Duration::from_millis(100);
/// The log may exceed its bound by this much before a trim (one walk per step, not per record).
const AUDIT_TRIM_SLACK: usize = 1024;

/// Key of the pins tree's own integrity record ([`TrustSeal`]); pin keys start with a
/// server identity, which is never empty, so none can be this.
const SEAL: &[u8] = b"\0seal";
/// The second place the trust generation is kept: a small file beside the sled directory,
/// written after every trust commit. sled may drop the newest log entries of a damaged
/// file silently; the seal inside it then goes back with them, and this file does not.
const SIDECAR: &str = "trust-generation";

/// What the pins tree holds about itself, written in the same batch as every pin change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrustSeal {
    /// Commits so far.
    pub generation: u64,
    /// XOR of SHA-256(key ‖ 0 ‖ value) over every pin record: order-free, so a commit
    /// updates it from the records it replaces; any damaged, lost or added record shows.
    #[serde(with = "hex32")]
    pub digest: [u8; 32],
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustReport {
    pub records: usize,
    /// The seal in the store (`None`: a store from before seals, or a fresh one).
    pub sealed: Option<TrustSeal>,
    /// The generation the sidecar file names (`None`: no file).
    pub sidecar: Option<u64>,
    /// What is wrong; empty when the records are what was last acknowledged.
    pub damage: Vec<String>,
}

/// Handle to the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    /// The state directory (the sidecar lives here).
    dir: PathBuf,
    /// Serialises trust commits: each reads the seal, updates it and writes it back.
    pins_lock: Arc<std::sync::Mutex<()>>,
    /// Per OAuth identity: the refresh lock and the credentials in memory.
    oauth: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<OAuthSlot>>>>,
}

// === impl Store ===

impl Store {
    /// Opens (or creates) the store in `dir`. Blocking: call before the runtime serves requests.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_owned(), source })?;
        let path = dir.join("db");
        remove_partial_snapshots(&path);
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| StoreError::Open { path: path.clone(), source })?;
        let meta = db.open_tree(META)?;
        match meta.get("schema")? {
            Some(v) => {
                let found = v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { path, found });
                }
            }
            None => {
                meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        Ok(Self { db, dir: dir.to_owned(), pins_lock: Arc::default(), oauth: Arc::default() })
    }

    /// Opens the store and checks its trust records against their seal and the sidecar;
    /// damage is an error ([`StoreError::TrustDamaged`]). A store from before seals is
    /// sealed now. This is how the daemon opens it: it fails closed.
    pub fn open_verified(dir: &Path) -> Result<Self, StoreError> {
        let store = Self::open(dir)?;
        let report = store.verify_trust()?;
        if !report.damage.is_empty() {
            return Err(StoreError::TrustDamaged { path: dir.to_owned(), what: report.damage.join("; ") });
        }
        match (report.sealed, report.sidecar) {
            // First open of an older store (or of a fresh one): seal what is there.
            (None, _) => store.reseal()?,
            // A commit reached the store but not the sidecar (a crash between the two, or a
            // failed write): the store is ahead, which loses nothing; catch the file up.
            (Some(seal), side) if side != Some(seal.generation) => write_sidecar(&store.dir, seal.generation)?,
            _ => {}
        }
        Ok(store)
    }

    /// Checks the trust records: the digest over them against the seal, and the seal's
    /// generation against the sidecar file. Blocking.
    pub fn verify_trust(&self) -> Result<TrustReport, StoreError> {
        let tree = self.db.open_tree(PINS)?;
        let mut digest = [0u8; 32];
        let mut records = 0;
        let mut sealed = None;
        let mut damage = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            if k.as_ref() == SEAL {
                match serde_json::from_slice::<TrustSeal>(&v) {
                    Ok(seal) => sealed = Some(seal),
                    Err(e) => damage.push(format!("its seal record cannot be read ({e})")),
                }
                continue;
            }
            records += 1;
            xor(&mut digest, &record_hash(&k, &v));
            if serde_json::from_slice::<PinRecord>(&v).is_err() {
                damage.push(format!("the record {:?} cannot be read", String::from_utf8_lossy(&k)));
            }
        }
        let sidecar = read_sidecar(&self.dir)?;
        match (sealed, sidecar) {
            (Some(seal), _) if seal.digest != digest => damage.push(format!(
                "its {records} trust records do not match their seal (generation {}): records were lost, changed or added",
                seal.generation
            )),
            _ => {}
        }
        match (sealed, sidecar) {
            (Some(seal), Some(side)) if side > seal.generation => damage.push(format!(
                "it holds trust generation {}, but {} was acknowledged ({SIDECAR} says so): the newest approvals are gone",
                seal.generation, side
            )),
            (None, Some(side)) if side > 0 => damage.push(format!(
                "its trust records carry no seal, but {SIDECAR} names generation {side}: the records were lost"
            )),
            (Some(seal), None) if seal.generation > 0 => damage.push(format!(
                "{SIDECAR} is missing beside it (the store is at trust generation {})",
                seal.generation
            )),
            _ => {}
        }
        Ok(TrustReport { records, sealed, sidecar, damage })
    }

    /// Every trust record removed and a new seal written, one generation past anything
    /// acknowledged before, so the sidecar agrees. Blocking; for `mcpd store reset`.
    pub fn reset_trust(&self, keep: Vec<(String, PinRecord)>) -> Result<(), StoreError> {
        let _guard = self.pins_lock.lock().unwrap_or_else(|p| p.into_inner());
        let tree = self.db.open_tree(PINS)?;
        let before = read_sidecar(&self.dir)?.unwrap_or(0);
        let old = tree.get(SEAL)?.and_then(|v| serde_json::from_slice::<TrustSeal>(&v).ok());
        let mut batch = sled::Batch::default();
        for item in tree.iter() {
            batch.remove(item?.0);
        }
        let mut digest = [0u8; 32];
        for (k, rec) in &keep {
            let v = serde_json::to_vec(rec)?;
            xor(&mut digest, &record_hash(k.as_bytes(), &v));
            batch.insert(k.as_bytes(), v);
        }
        let generation = before.max(old.map_or(0, |s| s.generation)) + 1;
        batch.insert(SEAL, serde_json::to_vec(&TrustSeal { generation, digest })?);
        tree.apply_batch(batch)?;
        self.db.flush()?;
        write_sidecar(&self.dir, generation)
    }

    /// Seals the records as they are (a store from before seals). Blocking.
    fn reseal(&self) -> Result<(), StoreError> {
        let _guard = self.pins_lock.lock().unwrap_or_else(|p| p.into_inner());
        let tree = self.db.open_tree(PINS)?;
        let mut digest = [0u8; 32];
        for item in tree.iter() {
            let (k, v) = item?;
            if k.as_ref() != SEAL {
                xor(&mut digest, &record_hash(&k, &v));
            }
        }
        let generation = read_sidecar(&self.dir)?.unwrap_or(0) + 1;
        tree.insert(SEAL, serde_json::to_vec(&TrustSeal { generation, digest })?)?;
        self.db.flush()?;
        write_sidecar(&self.dir, generation)
    }

    /// Record counts per tree, for `mcpd store verify`.
    pub fn tree_sizes(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut out = Vec::new();
        for name in [TOOLS, ERAS, PINS, OAUTH, AUDIT] {
            let tree = self.db.open_tree(name)?;
            let n = if name == PINS {
                tree.len().saturating_sub(usize::from(tree.contains_key(SEAL)?))
            } else if name == AUDIT {
                audit_count(&tree)?
            } else {
                tree.len()
            };
            out.push((name.to_owned(), n));
        }
        Ok(out)
    }

    /// Stores `value` under `key` in `tree` and flushes before returning, so an acknowledged write survives a crash.
    pub async fn put<T: Serialize>(&self, tree: &'static str, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value)?;
        let db = self.db.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            db.open_tree(tree)?.insert(key.as_bytes(), bytes)?;
            db.flush()?;
            Ok(())
        })
        .await?
    }

    pub async fn get<T: DeserializeOwned + Send + 'static>(
        &self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let db = self.db.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || -> Result<Option<T>, StoreError> {
            match db.open_tree(tree)?.get(key.as_bytes())? {
                Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
                None => Ok(None),
            }
        })
        .await?
    }

    pub async fn remove(&self, tree: &'static str, key: &str) -> Result<(), StoreError> {
        let db = self.db.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            db.open_tree(tree)?.remove(key.as_bytes())?;
            db.flush()?;
            Ok(())
        })
        .await?
    }

    /// rmcp's credential store for one server identity, backed by this store.
    pub fn oauth_credentials(&self, identity: &str) -> OAuthCredentials {
        let slot = {
            let mut slots = self.oauth.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(identity.to_owned()).or_default().clone()
        };
        OAuthCredentials { store: self.clone(), key: identity.to_owned(), slot }
    }

    /// Every identity with stored OAuth credentials, for `mcpd auth status`.
    pub async fn oauth_identities(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<String>, StoreError> {
            let tree = db.open_tree(OAUTH)?;
            let mut out = Vec::new();
            for item in tree.iter() {
                let (k, _) = item?;
                out.push(String::from_utf8_lossy(&k).into_owned());
            }
            Ok(out)
        })
        .await?
    }

    /// Last-known tool list of a server (for fast start).
    pub async fn save_tools(&self, server: &str, record: &StoredTools) -> Result<(), StoreError> {
        self.put(TOOLS, server, record).await
    }

    pub async fn load_tools(&self, server: &str) -> Result<Option<StoredTools>, StoreError> {
        self.get(TOOLS, server).await
    }

    /// The protocol version a server identity negotiated last time, so restarts skip the era probe.
    pub async fn save_era(&self, identity: &str, version: &str) -> Result<(), StoreError> {
        self.put(ERAS, identity, &version).await
    }

    pub async fn load_era(&self, identity: &str) -> Result<Option<String>, StoreError> {
        self.get(ERAS, identity).await
    }

    /// Every pin, keyed `identity \0 tool`. Read at startup; a failure here fails closed
    /// (the daemon does not start, so nothing is trusted on a store it cannot read).
    pub fn load_all_pins(&self) -> Result<Vec<(String, PinRecord)>, StoreError> {
        let tree = self.db.open_tree(PINS)?;
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            if k.as_ref() == SEAL {
                continue;
            }
            out.push((String::from_utf8_lossy(&k).into_owned(), serde_json::from_slice(&v)?));
        }
        Ok(out)
    }

    /// Writes pins as one batch and flushes before returning: an approval is acknowledged
    /// only once it is on disk.
    ///
    /// The same batch moves the seal one generation on (its digest updated from the records
    /// replaced), and the sidecar is written after the flush: an approval is acknowledged
    /// once both places know it.
    pub async fn save_pins(&self, pins: Vec<(String, PinRecord)>) -> Result<(), StoreError> {
        let encoded: Vec<(String, Vec<u8>)> =
            pins.iter().map(|(k, rec)| Ok((k.clone(), serde_json::to_vec(rec)?))).collect::<Result<_, StoreError>>()?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let _guard = store.pins_lock.lock().unwrap_or_else(|p| p.into_inner());
            let tree = store.db.open_tree(PINS)?;
            let mut seal = match tree.get(SEAL)? {
                Some(v) => serde_json::from_slice::<TrustSeal>(&v)?,
                // Not sealed yet (opened without `open_verified`): seal what is there first.
                None => {
                    let mut digest = [0u8; 32];
                    for item in tree.iter() {
                        let (k, v) = item?;
                        xor(&mut digest, &record_hash(&k, &v));
                    }
                    TrustSeal { generation: read_sidecar(&store.dir)?.unwrap_or(0), digest }
                }
            };
            let before = tree.get(SEAL)?;
            let mut batch = sled::Batch::default();
            // What this commit replaces, to put back if it cannot be acknowledged.
            let mut undo = sled::Batch::default();
            for (k, v) in &encoded {
                match tree.get(k.as_bytes())? {
                    Some(old) => {
                        xor(&mut seal.digest, &record_hash(k.as_bytes(), &old));
                        undo.insert(k.as_bytes(), old);
                    }
                    None => undo.remove(k.as_bytes()),
                }
                xor(&mut seal.digest, &record_hash(k.as_bytes(), v));
                batch.insert(k.as_bytes(), v.as_slice());
            }
            seal.generation += 1;
            batch.insert(SEAL, serde_json::to_vec(&seal)?);
            match before {
                Some(b) => undo.insert(SEAL, b),
                None => undo.remove(SEAL),
            }
            tree.apply_batch(batch)?;
            let acknowledged =
                store.db.flush().map_err(StoreError::from).and_then(|_| write_sidecar(&store.dir, seal.generation));
            if let Err(e) = acknowledged {
                // Not acknowledged, so not kept: a full disk must not leave a pin the admin was
                // told failed (best effort: the undo needs the disk too).
                if let Err(undo_err) = tree.apply_batch(undo).and_then(|_| store.db.flush().map(|_| ())) {
                    tracing::error!(error = %undo_err, "cannot undo a trust commit that failed");
                }
                return Err(e);
            }
            Ok(())
        })
        .await?
    }

    /// Starts the audit writer: one thread that takes records from a bounded queue and
    /// writes them in batches, trimming the log to `max` (read on every batch, so a reload
    /// applies). A call never waits for its audit record; if the queue is full (the disk
    /// cannot keep up) records are counted as dropped and the count is written as a record
    /// of its own, so a gap in the log is never silent.
    pub fn start_audit(&self, max: Arc<AtomicUsize>) -> AuditLog {
        let (tx, rx) = std::sync::mpsc::sync_channel::<AuditEntry>(AUDIT_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let db = self.db.clone();
        let (lost, stopping) = (dropped.clone(), stop.clone());
        let spawned = std::thread::Builder::new().name("mcpd-audit".into()).spawn(move || {
            if let Err(e) = audit_writer(&db, &rx, &max, &lost, &stopping) {
                tracing::error!(error = %e, "the audit writer stopped; calls are no longer audited");
            }
        });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audit writer; calls are not audited");
                None
            }
        };
        AuditLog { tx, dropped, stop, thread: Arc::new(std::sync::Mutex::new(thread)) }
    }

    /// The newest `limit` audit records (optionally of one server), newest first.
    pub async fn read_audit(&self, limit: usize, server: Option<String>) -> Result<Vec<AuditEntry>, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<AuditEntry>, StoreError> {
            let tree = db.open_tree(AUDIT)?;
            let mut out = Vec::new();
            for item in tree.iter().rev() {
                let (k, v) = item?;
                // Newest batch first, and within a batch newest first.
                for e in audit_records(&k, &v)?.into_iter().rev() {
                    if server.as_deref().is_none_or(|s| e.tool.split_once('.').is_some_and(|(srv, _)| srv == s)) {
                        out.push(e);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            Ok(out)
        })
        .await?
    }

    /// Flushes everything (shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

/// An approved (or auto-trusted, or revoked) tool definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PinRecord {
    pub fingerprint: String,
    /// The raw definition as approved, for `mcpd trust diff`.
    pub definition: serde_json::Value,
    /// "tofu" or "admin".
    pub by: String,
    pub unix_ms: u64,
    /// The tool disappeared from the server's list after it was pinned; if it comes back
    /// it is quarantined until approved again (hide-then-return is a rug-pull pattern).
    #[serde(default)]
    pub removed: bool,
    /// An admin revoked trust; only a new approval restores it.
    #[serde(default)]
    pub revoked: bool,
}

/// One call, as the audit log keeps it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub unix_ms: u64,
    pub app: String,
    pub tool: String,
    pub arguments_sha256: String,
    pub outcome: String,
    #[serde(default)]
    pub message: String,
    pub duration_us: u64,
    #[serde(default)]
    pub redactions: u32,
    /// `agent` or `pipeline.NAME` for a step of a run; empty for a direct call.
    #[serde(default)]
    pub via: String,
    /// The run's id, for a step of a run.
    #[serde(default)]
    pub run_id: String,
}

/// A server's tools as last seen, bound to the identity they came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredTools {
    pub identity: String,
    pub tools: Vec<serde_json::Value>,
    pub protocol_version: String,
    pub saved_unix_ms: u64,
}

/// Handle of the audit writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: std::sync::mpsc::SyncSender<AuditEntry>,
    dropped: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl AuditLog {
    /// Queues a record; never blocks.
    pub fn append(&self, entry: AuditEntry) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes what is queued and stops the writer (shutdown), waiting at most `within`.
    /// The writer holds the database open, so this comes before the store is closed.
    pub async fn close(&self, within: std::time::Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else { return };
        let deadline = tokio::time::Instant::now() + within;
        while !handle.is_finished() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }
}

fn audit_writer(
    db: &sled::Db,
    rx: &std::sync::mpsc::Receiver<AuditEntry>,
    max: &AtomicUsize,
    dropped: &AtomicU64,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), StoreError> {
    let tree = db.open_tree(AUDIT)?;
    // Counting walks the keys (each batch's key holds its size): once here, then kept.
    let mut count = audit_count(&tree)?;
    loop {
        // Wake on a timer rather than per record: a sleeping receiver costs senders nothing
        // (no futex wake per call), and sled's cost is per write, not per byte, so one batch
        // per interval keeps auditing cheap. A crash can lose this interval's records, as
        // sled's own periodic flush could anyway.
        // Sleep in short slices so a shutdown is not kept waiting a whole interval.
        let woke = std::time::Instant::now();
        while woke.elapsed() < AUDIT_GATHER && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut pending: Vec<AuditEntry> = rx.try_iter().take(AUDIT_QUEUE).collect();
        if pending.is_empty() {
            match rx.try_recv() {
                Ok(e) => pending.push(e),
                Err(std::sync::mpsc::TryRecvError::Empty) if stop.load(Ordering::Relaxed) => return Ok(()),
                Err(std::sync::mpsc::TryRecvError::Empty) => continue,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            pending.push(AuditEntry {
                unix_ms: unix_ms(),
                app: "mcpd".into(),
                tool: String::new(),
                arguments_sha256: String::new(),
                outcome: "dropped".into(),
                message: format!("{lost} audit records were dropped: the audit writer could not keep up"),
                ..Default::default()
            });
        }
        // One value per interval, not a key per record: sled rewrites a leaf for every
        // insert, which made the writer a third of the daemon's CPU under load.
        let n = pending.len();
        tree.insert(audit_key(db.generate_id()?, n), serde_json::to_vec(&pending)?)?;
        count += n;
        let max = max.load(Ordering::Relaxed);
        // Trim in steps, not per record, so a full log costs one range walk per step.
        if count > max + AUDIT_TRIM_SLACK.min(max / 10 + 1) {
            count = audit_trim(&tree, count, max)?;
        }
    }
}

/// An audit key: the batch's id, then how many records its value holds. Keys of one
/// record (8 bytes, the format before batches) still read.
fn audit_key(id: u64, n: usize) -> Vec<u8> {
    let mut k = id.to_be_bytes().to_vec();
    k.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    k
}

fn audit_key_count(key: &[u8]) -> usize {
    match key.get(8..12).and_then(|c| <[u8; 4]>::try_from(c).ok()) {
        Some(c) => u32::from_be_bytes(c) as usize,
        None => 1,
    }
}

fn audit_count(tree: &sled::Tree) -> Result<usize, StoreError> {
    let mut n = 0;
    for key in tree.iter().keys() {
        n += audit_key_count(&key?);
    }
    Ok(n)
}

/// The records under one key, oldest first.
fn audit_records(key: &[u8], value: &[u8]) -> Result<Vec<AuditEntry>, StoreError> {
    Ok(if key.len() == 12 { serde_json::from_slice(value)? } else { vec![serde_json::from_slice(value)?] })
}

/// Drops the oldest records until `max` are left: whole batches, then the older part of
/// the last one (rewritten under its id with its new size). Returns the new count.
fn audit_trim(tree: &sled::Tree, mut count: usize, max: usize) -> Result<usize, StoreError> {
    while count > max {
        let Some((key, value)) = tree.first()? else { break };
        let n = audit_key_count(&key);
        let id = key.get(..8).and_then(|k| <[u8; 8]>::try_from(k).ok()).map(u64::from_be_bytes);
        let (Some(id), true) = (id, count.saturating_sub(n) < max) else {
            tree.remove(&key)?;
            count = count.saturating_sub(n);
            continue;
        };
        let records = audit_records(&key, &value)?;
        let keep = records.len().saturating_sub(count - max);
        let kept: Vec<AuditEntry> = records.into_iter().rev().take(keep).rev().collect();
        // Both at once: a crash between them must not lose the part that stays.
        let mut batch = sled::Batch::default();
        batch.remove(key.as_ref());
        if !kept.is_empty() {
            batch.insert(audit_key(id, kept.len()), serde_json::to_vec(&kept)?);
        }
        tree.apply_batch(batch)?;
        count = count - n + kept.len();
        break;
    }
    Ok(count)
}

fn record_hash(key: &[u8], value: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(key);
    h.update([0u8]);
    h.update(value);
    h.finalize().into()
}

fn xor(acc: &mut [u8; 32], h: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(h) {
        *a ^= b;
    }
}

/// The generation the sidecar names; `None` when there is no file.
fn read_sidecar(dir: &Path) -> Result<Option<u64>, StoreError> {
    let path = dir.join(SIDECAR);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let generation =
                text.lines().find_map(|l| l.strip_prefix("generation ")).and_then(|g| g.trim().parse().ok());
            generation.map(Some).ok_or_else(|| StoreError::TrustDamaged {
                path: dir.to_owned(),
                what: format!("{} cannot be read", path.display()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Sidecar { path, source }),
    }
}

/// Writes the sidecar atomically (a temporary file, fsync, rename, fsync of the directory),
/// so a crash leaves the old generation or the new one, never half a file.
fn write_sidecar(dir: &Path, generation: u64) -> Result<(), StoreError> {
    use std::io::Write;
    let path = dir.join(SIDECAR);
    let tmp = dir.join(format!("{SIDECAR}.tmp"));
    let fail = |source| StoreError::Sidecar { path: path.clone(), source };
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(
        format!(
            "# mcpd: the trust store's generation, kept apart from it (see `mcpd store verify`)
generation {generation}
"
        )
        .as_bytes(),
    )
    .map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)
}

/// `[u8; 32]` as lower-case hex in JSON.
mod hex32 {
    pub(crate) fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| serde::de::Error::custom("the digest is not hex"))?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("the digest is not 32 bytes"))
    }
}

/// sled 0.34.7 writes `snap.<lsn>.generating` and renames it once complete, but its
/// reader does not skip such files: a crash mid-write leaves a store that never opens
/// again. An unrenamed snapshot was never complete and sled replays its log without
/// it, so deleting these files before every open is safe (see FIELD-NOTES.md).
fn remove_partial_snapshots(db_path: &Path) {
    let Ok(entries) = std::fs::read_dir(db_path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove partial sled snapshot");
            } else {
                tracing::info!(file = %entry.path().display(), "removed partial sled snapshot");
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// OAuth credentials of one server identity. Every save is flushed before it returns, so a
/// rotated refresh token is on disk before the new access token is used (a crash then
/// cannot leave only the old, now invalid, refresh token). rmcp loads them before every
/// request, so they are also kept in memory: one disk read per identity, not per request.
pub struct OAuthCredentials {
    store: Store,
    key: String,
    slot: Arc<OAuthSlot>,
}

/// Shared by every `OAuthCredentials` of one identity (a session's and a login's).
#[derive(Debug, Default)]
struct OAuthSlot {
    /// Held across a token refresh and its save: refresh tokens rotate, so two refreshes
    /// racing with the same one would lose the login.
    refresh: Arc<tokio::sync::Mutex<()>>,
    /// `None` until read from disk; held across each disk read or write so the memory copy
    /// never goes stale.
    cached: tokio::sync::Mutex<Option<Option<rmcp::transport::auth::StoredCredentials>>>,
}

fn credential_error(e: StoreError) -> rmcp::transport::auth::AuthError {
    rmcp::transport::auth::AuthError::CredentialStoreError(e.to_string())
}

#[async_trait::async_trait]
impl rmcp::transport::auth::CredentialStore for OAuthCredentials {
    async fn load(&self) -> Result<Option<rmcp::transport::auth::StoredCredentials>, rmcp::transport::auth::AuthError> {
        let mut cached = self.slot.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            return Ok(c.clone());
        }
        let loaded = self.store.get(OAUTH, &self.key).await.map_err(credential_error)?;
        *cached = Some(loaded.clone());
        Ok(loaded)
    }

    async fn save(
        &self,
        credentials: rmcp::transport::auth::StoredCredentials,
    ) -> Result<(), rmcp::transport::auth::AuthError> {
        let mut cached = self.slot.cached.lock().await;
        self.store.put(OAUTH, &self.key, &credentials).await.map_err(credential_error)?;
        *cached = Some(Some(credentials));
        Ok(())
    }

    async fn clear(&self) -> Result<(), rmcp::transport::auth::AuthError> {
        let mut cached = self.slot.cached.lock().await;
        self.store.remove(OAUTH, &self.key).await.map_err(credential_error)?;
        *cached = Some(None);
        Ok(())
    }

    async fn acquire_refresh_guard(
        &self,
    ) -> Result<Option<rmcp::transport::auth::CredentialRefreshGuard>, rmcp::transport::auth::AuthError> {
        let guard = self.slot.refresh.clone().lock_owned().await;
        Ok(Some(rmcp::transport::auth::CredentialRefreshGuard::new(guard)))
    }
}

/// Milliseconds since the Unix epoch (wall clock, for the records' display only).
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

//! Durable state in sled: last-known tool lists, remembered protocol eras. The only module that touches `sled`.
//!
//! Every call runs on the blocking pool so the async runtime never waits on disk.
use std::path::{Path, PathBuf};

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
}

/// Named trees.
const TOOLS: &str = "tools";
const ERAS: &str = "eras";
const META: &str = "meta";

/// Handle to the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
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
        Ok(Self { db })
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

    /// Flushes everything (shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

/// A server's tools as last seen, bound to the identity they came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredTools {
    pub identity: String,
    pub tools: Vec<serde_json::Value>,
    pub protocol_version: String,
    pub saved_unix_ms: u64,
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

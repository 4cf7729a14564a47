//! Tests for the sled store.
use std::sync::{Arc, atomic::AtomicUsize};

use super::*;

/// Opens the store again in this process: sled's flusher thread may hold the previous
/// handle's file lock for a moment after the last `Store` is dropped.
fn reopen(dir: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(dir) {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

#[tokio::test]
async fn roundtrip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let rec = StoredTools {
            identity: "stdio:echo".into(),
            tools: vec![serde_json::json!({"name": "a", "inputSchema": {"type": "object"}})],
            protocol_version: "2025-11-25".into(),
            saved_unix_ms: 1,
        };
        store.save_tools("srv", &rec).await.unwrap();
        store.save_era("stdio:echo", "2026-07-28").await.unwrap();
    }
    let store = reopen(dir.path());
    let rec = store.load_tools("srv").await.unwrap().unwrap();
    assert_eq!(rec.tools.len(), 1);
    assert_eq!(store.load_era("stdio:echo").await.unwrap().as_deref(), Some("2026-07-28"));
    assert!(store.load_tools("other").await.unwrap().is_none());
}

#[test]
fn partial_snapshot_is_removed_before_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let junk = dir.path().join("db").join("snap.0000000000000042.generating");
    std::fs::write(&junk, b"torn").unwrap();
    reopen(dir.path());
    assert!(!junk.exists());
}

#[tokio::test]
async fn pins_survive_reopen_and_audit_is_bounded_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let pin = |fp: &str| PinRecord {
        fingerprint: fp.into(),
        definition: serde_json::json!({"name": "t"}),
        by: "admin".into(),
        unix_ms: 1,
        removed: false,
        revoked: false,
    };
    {
        let store = Store::open(dir.path()).unwrap();
        store.save_pins(vec![("id\0a".into(), pin("sha256:1")), ("id\0b".into(), pin("sha256:2"))]).await.unwrap();
        let audit = store.start_audit(Arc::new(AtomicUsize::new(300)));
        for i in 0..600u64 {
            let e = AuditEntry {
                unix_ms: i,
                app: "uid:0 pid:1".into(),
                tool: if i % 2 == 0 { "a.echo".into() } else { "b.echo".into() },
                arguments_sha256: String::new(),
                outcome: "ok".into(),
                message: String::new(),
                duration_us: 1,
                ..Default::default()
            };
            audit.append(e);
        }
        // Appends are fire-and-forget; closing writes what is queued and releases the database.
        audit.close(std::time::Duration::from_secs(30)).await;
        store.flush().await.unwrap();
    }
    let store = reopen(dir.path());
    let pins = store.load_all_pins().unwrap();
    assert_eq!(pins.len(), 2);
    assert_eq!(pins[0].1.fingerprint, "sha256:1");
    let newest = store.read_audit(5, None).await.unwrap();
    assert_eq!(newest.len(), 5);
    assert!(newest[0].unix_ms > newest[4].unix_ms, "newest first");
    let only_b = store.read_audit(1000, Some("b".into())).await.unwrap();
    assert!(only_b.iter().all(|e| e.tool == "b.echo"));
    let all = store.read_audit(10_000, None).await.unwrap();
    assert!(all.len() <= 300 + 31 && all.len() >= 300, "trimmed to the bound: {}", all.len());
}

#[tokio::test]
async fn oauth_credentials_are_shared_per_identity_and_durable() {
    use rmcp::transport::auth::{CredentialStore, StoredCredentials};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let (session, login) = (store.oauth_credentials("a|http|u"), store.oauth_credentials("a|http|u"));
        assert!(session.load().await.unwrap().is_none());
        // A login's save is what the session's next load sees (memory copy included).
        login.save(StoredCredentials::new("client-1".into(), None, vec!["s".into()], Some(1))).await.unwrap();
        assert_eq!(session.load().await.unwrap().map(|c| c.client_id).as_deref(), Some("client-1"));
        // Another identity never sees them.
        assert!(store.oauth_credentials("b|http|u").load().await.unwrap().is_none());
        assert_eq!(store.oauth_identities().await.unwrap(), vec!["a|http|u".to_owned()]);
        store.flush().await.unwrap();
    }
    // On disk before `save` returned.
    let store = reopen(dir.path());
    let creds = store.oauth_credentials("a|http|u");
    assert_eq!(creds.load().await.unwrap().map(|c| c.granted_scopes), Some(vec!["s".to_owned()]));
    creds.clear().await.unwrap();
    assert!(store.oauth_credentials("a|http|u").load().await.unwrap().is_none());
    assert!(store.oauth_identities().await.unwrap().is_empty());
}

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

fn pin(fp: &str) -> PinRecord {
    PinRecord {
        fingerprint: fp.into(),
        definition: serde_json::json!({"name": "t"}),
        by: "admin".into(),
        unix_ms: 1,
        removed: false,
        revoked: false,
    }
}

/// Opens with verification, retrying only while sled's lock is still held.
fn reopen_verified(dir: &std::path::Path) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open_verified(dir) {
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[tokio::test]
async fn the_trust_seal_follows_commits_and_names_every_kind_of_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_verified(dir.path()).unwrap();
        store.save_pins(vec![("id\0a".into(), pin("sha256:1")), ("id\0b".into(), pin("sha256:2"))]).await.unwrap();
        // Replacing a record updates the digest from the one replaced.
        store.save_pins(vec![("id\0a".into(), pin("sha256:3"))]).await.unwrap();
        let r = store.verify_trust().unwrap();
        assert!(r.damage.is_empty(), "{r:?}");
        assert_eq!((r.records, r.sealed.map(|s| s.generation), r.sidecar), (2, Some(3), Some(3)));
    }
    let sidecar = dir.path().join(SIDECAR);
    let kept = std::fs::read(&sidecar).unwrap();

    // The store went back a generation (sled dropped the newest entries): refused.
    std::fs::write(&sidecar, "generation 9\n").unwrap();
    let e = reopen_verified(dir.path()).expect_err("lost approvals");
    assert!(e.to_string().contains("the newest approvals are gone"), "{e}");
    // The second place gone: refused too.
    std::fs::remove_file(&sidecar).unwrap();
    let e = reopen_verified(dir.path()).expect_err("missing sidecar");
    assert!(e.to_string().contains("trust-generation is missing"), "{e}");
    std::fs::write(&sidecar, &kept).unwrap();

    // A record changed behind the store's back: the digest shows it.
    {
        let store = reopen(dir.path());
        store.db.open_tree(PINS).unwrap().insert("id\0a", serde_json::to_vec(&pin("sha256:evil")).unwrap()).unwrap();
        store.db.flush().unwrap();
    }
    let e = reopen_verified(dir.path()).expect_err("a changed record");
    assert!(e.to_string().contains("do not match their seal"), "{e}");

    // A reset starts afresh, past every generation seen, and verifies again.
    {
        let store = reopen(dir.path());
        store.reset_trust(vec![("id\0\0first-use".into(), pin(""))]).unwrap();
        let r = store.verify_trust().unwrap();
        assert!(r.damage.is_empty() && r.records == 1, "{r:?}");
        assert_eq!(r.sealed.map(|s| s.generation), Some(4));
    }
    let store = reopen_verified(dir.path()).unwrap();
    assert_eq!(store.load_all_pins().unwrap().len(), 1);
}

#[tokio::test]
async fn a_store_from_before_seals_is_sealed_at_its_first_verified_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Written the old way: records, no seal, no sidecar.
        let store = Store::open(dir.path()).unwrap();
        store.db.open_tree(PINS).unwrap().insert("id\0a", serde_json::to_vec(&pin("sha256:1")).unwrap()).unwrap();
        store.db.flush().unwrap();
    }
    let store = reopen_verified(dir.path()).unwrap();
    let r = store.verify_trust().unwrap();
    assert!(r.damage.is_empty(), "{r:?}");
    assert_eq!((r.records, r.sidecar), (1, Some(1)));
}

#[tokio::test]
async fn a_trust_commit_that_cannot_be_acknowledged_leaves_no_pin() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_verified(dir.path()).unwrap();
    store.save_pins(vec![("id\0a".into(), pin("sha256:1"))]).await.unwrap();
    // The second place cannot be written (what a full disk does to it): the rename over a
    // non-empty directory fails.
    let sidecar = dir.path().join(SIDECAR);
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::create_dir_all(sidecar.join("blocked")).unwrap();
    let e = store.save_pins(vec![("id\0b".into(), pin("sha256:2")), ("id\0a".into(), pin("sha256:3"))]).await;
    assert!(matches!(e, Err(StoreError::Sidecar { .. })), "{e:?}");
    // Nothing of the failed commit stayed: b absent, a as it was, the seal as it was.
    let pins = store.load_all_pins().unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].1.fingerprint, "sha256:1");
    std::fs::remove_dir_all(&sidecar).unwrap();
    std::fs::write(&sidecar, "generation 1\n").unwrap();
    let r = store.verify_trust().unwrap();
    assert!(r.damage.is_empty() && r.sealed.map(|s| s.generation) == Some(2), "{r:?}");
}

#[test]
fn audit_trimming_cuts_whole_batches_then_the_older_part_of_one_and_reads_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("db")).unwrap();
    let tree = db.open_tree("audit").unwrap();
    let rec = |i: u64| AuditEntry { unix_ms: i, tool: "a.echo".into(), outcome: "ok".into(), ..Default::default() };
    // Three records in the one-key-per-record format of before, then batches of 5 and 4.
    for i in 0..3u64 {
        tree.insert(i.to_be_bytes(), serde_json::to_vec(&rec(i)).unwrap()).unwrap();
    }
    let five: Vec<AuditEntry> = (3..8).map(rec).collect();
    tree.insert(super::audit_key(10, 5), serde_json::to_vec(&five).unwrap()).unwrap();
    let four: Vec<AuditEntry> = (8..12).map(rec).collect();
    tree.insert(super::audit_key(11, 4), serde_json::to_vec(&four).unwrap()).unwrap();
    assert_eq!(super::audit_count(&tree).unwrap(), 12);
    assert_eq!(super::audit_trim(&tree, 12, 6).unwrap(), 6);
    assert_eq!(super::audit_count(&tree).unwrap(), 6);
    let mut kept = Vec::new();
    for item in tree.iter() {
        let (k, v) = item.unwrap();
        kept.extend(super::audit_records(&k, &v).unwrap().into_iter().map(|e| e.unix_ms));
    }
    assert_eq!(kept, vec![6, 7, 8, 9, 10, 11], "the newest six, in order");
}

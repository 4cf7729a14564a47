//! Tests for the sled store.
use super::*;

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
    let store = Store::open(dir.path()).unwrap();
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
    Store::open(dir.path()).unwrap();
    assert!(!junk.exists());
}

//! The resource read cache: TTL per entry, LRU eviction, a hard memory cap. The only user of `moka`.
//!
//! Entries are keyed by (server, uri) and weighed by the bytes of their JSON form, so the cap
//! bounds what the cache holds however many entries there are. A server's `ttlMs` (2026-07-28)
//! sets an entry's lifetime; otherwise the configured default applies. Update notifications of
//! subscribed resources invalidate entries; a server going away invalidates all of its entries.
use std::{sync::Arc, time::Duration};

use moka::{Expiry, policy::EvictionPolicy, sync::Cache};

/// One cached `resources/read` answer.
#[derive(Debug, Clone)]
pub struct CachedRead {
    /// The `contents` array as JSON text, `_meta` of every item intact.
    pub contents_json: String,
    /// The result's `_meta` as JSON text (empty when absent).
    pub meta_json: String,
    /// How long this entry lives.
    pub ttl: Duration,
}

impl CachedRead {
    /// What the entry counts against the memory cap: its text plus a fixed overhead for the
    /// key, the map slot and the `Arc`, so that many tiny entries are bounded too.
    fn weight(&self, key: &Key) -> u32 {
        const OVERHEAD: usize = 128;
        let n = self.contents_json.len() + self.meta_json.len() + key.0.len() + key.1.len() + OVERHEAD;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

type Key = (String, String);

struct PerEntryTtl;

impl Expiry<Key, Arc<CachedRead>> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, value: &Arc<CachedRead>, _: std::time::Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// See the module docs. Cheap to clone (shared).
#[derive(Clone)]
pub struct ResourceCache {
    inner: Cache<Key, Arc<CachedRead>>,
    max_bytes: u64,
}

impl std::fmt::Debug for ResourceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceCache").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}

// === impl ResourceCache ===

impl ResourceCache {
    /// A cache holding at most `max_bytes` (0 disables caching).
    pub fn new(max_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Key, v: &Arc<CachedRead>| v.weight(k))
            .expire_after(PerEntryTtl)
            .eviction_policy(EvictionPolicy::lru())
            .support_invalidation_closures()
            .build();
        Self { inner, max_bytes }
    }

    pub fn get(&self, server: &str, uri: &str) -> Option<Arc<CachedRead>> {
        if self.max_bytes == 0 {
            return None;
        }
        self.inner.get(&(server.to_owned(), uri.to_owned()))
    }

    /// Stores an entry unless it is too large to be worth caching (over an eighth of the
    /// cap: one huge resource must not flush everything else) or its TTL is zero.
    pub fn insert(&self, server: &str, uri: &str, value: CachedRead) {
        let key = (server.to_owned(), uri.to_owned());
        if value.ttl.is_zero() || u64::from(value.weight(&key)) > self.max_bytes / 8 {
            return;
        }
        self.inner.insert(key, Arc::new(value));
    }

    pub fn invalidate(&self, server: &str, uri: &str) {
        self.inner.invalidate(&(server.to_owned(), uri.to_owned()));
    }

    /// Drops every entry of `server` (it disconnected, or its resource list changed).
    pub fn invalidate_server(&self, server: &str) {
        let server = server.to_owned();
        // Only fails when invalidation closures are not enabled, which `new` does.
        let _ = self.inner.invalidate_entries_if(move |k, _| k.0 == server);
    }

    /// Bytes currently held (as weighed), after pending maintenance.
    pub fn weighted_size(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    /// Entries and bytes held, after one round of pending maintenance (for Status).
    pub fn stats(&self) -> (u64, u64) {
        self.inner.run_pending_tasks();
        (self.inner.entry_count(), self.inner.weighted_size())
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize, ttl: Duration) -> CachedRead {
        CachedRead { contents_json: "x".repeat(bytes), meta_json: String::new(), ttl }
    }

    #[test]
    fn stays_under_its_memory_cap_with_ten_thousand_entries() {
        let cap = 4 * 1024 * 1024;
        let cache = ResourceCache::new(cap);
        for i in 0..10_000 {
            cache.insert("s", &format!("test://r/{i}"), entry(1000, Duration::from_secs(60)));
        }
        let held = cache.weighted_size();
        assert!(held <= cap, "cache holds {held} bytes, cap is {cap}");
        // It evicted, but still holds a useful working set of the most recent entries.
        let count = cache.entry_count();
        assert!(count > 1000 && count < 10_000, "{count} entries");
        assert!(cache.get("s", "test://r/9999").is_some(), "the newest entry was evicted");
        assert!(cache.get("s", "test://r/0").is_none(), "the oldest entry survived");
    }

    #[test]
    fn entries_expire_after_their_own_ttl() {
        let cache = ResourceCache::new(1 << 20);
        cache.insert("s", "short", entry(10, Duration::from_millis(50)));
        cache.insert("s", "long", entry(10, Duration::from_secs(60)));
        assert!(cache.get("s", "short").is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(cache.get("s", "short").is_none());
        assert!(cache.get("s", "long").is_some());
    }

    #[test]
    fn invalidation_by_uri_and_by_server() {
        let cache = ResourceCache::new(1 << 20);
        cache.insert("a", "u1", entry(10, Duration::from_secs(60)));
        cache.insert("a", "u2", entry(10, Duration::from_secs(60)));
        cache.insert("b", "u1", entry(10, Duration::from_secs(60)));
        cache.invalidate("a", "u1");
        assert!(cache.get("a", "u1").is_none());
        assert!(cache.get("a", "u2").is_some());
        cache.invalidate_server("a");
        cache.inner.run_pending_tasks();
        assert!(cache.get("a", "u2").is_none());
        assert!(cache.get("b", "u1").is_some(), "another server's entry was dropped");
    }

    #[test]
    fn oversized_and_zero_ttl_entries_are_not_kept() {
        let cache = ResourceCache::new(8 * 1024);
        cache.insert("s", "big", entry(2000, Duration::from_secs(60)));
        cache.insert("s", "now", entry(10, Duration::ZERO));
        assert!(cache.get("s", "big").is_none());
        assert!(cache.get("s", "now").is_none());
        let off = ResourceCache::new(0);
        off.insert("s", "x", entry(1, Duration::from_secs(60)));
        assert!(off.get("s", "x").is_none());
    }
}

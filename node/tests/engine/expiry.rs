//! Memory and expiry: byte-bounded keyspaces, eviction policies, and which expiry applies.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use distcache::{DataSource, Engine, EngineConfig, Eviction, KeySpace, KeySpaceOverrides};

use crate::support::{TestSource, engine_with, text, wait_until};

const LIMIT: Duration = Duration::from_secs(10);

/// Waits until a get of `key` goes back to the source (the cached entry expired).
async fn wait_refetch(engine: &Engine, source: &Arc<TestSource>, key: &str, fetches: usize) {
    wait_until(LIMIT, "the entry expired and was fetched again", || {
        let (e, s, k) = (engine.clone(), source.clone(), key.to_owned());
        async move {
            let _ = e.get("ks", &k).await;
            s.fetches_of(&k) > fetches
        }
    })
    .await;
}

/// default_ttl expires loaded entries.
#[tokio::test]
async fn default_ttl_expires_entries() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.default_ttl = Some(Duration::from_millis(40))
    })
    .await;
    assert!(engine.get("ks", "a").await.unwrap().is_some());
    wait_refetch(&engine, &source, "a", 1).await;
}

/// A TTL returned by the data source beats the keyspace's default_ttl.
#[tokio::test]
async fn source_ttl_beats_default_ttl() {
    let source = TestSource::new();
    source.set_ttl(Some(Duration::from_millis(40)));
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.default_ttl = Some(Duration::from_secs(3600))
    })
    .await;
    assert!(engine.get("ks", "a").await.unwrap().is_some());
    wait_refetch(&engine, &source, "a", 1).await;
}

struct Expiring {
    source: Arc<TestSource>,
}

impl KeySpace for Expiring {
    fn name(&self) -> &str {
        "ks"
    }
    fn max_bytes(&self) -> u64 {
        1 << 20
    }
    fn data_source(&self) -> Arc<dyn DataSource> {
        self.source.clone()
    }
    fn expires_at(&self, key: &str) -> Option<SystemTime> {
        key.starts_with("short")
            .then(|| SystemTime::now() + Duration::from_millis(40))
    }
}

/// The keyspace's own expires_at (an embedding program's policy) applies before default_ttl,
/// key by key; keys it leaves alone fall back to default_ttl.
#[tokio::test]
async fn keyspace_expiry_policy_applies_per_key() {
    let source = TestSource::new();
    let engine = Engine::builder(EngineConfig::for_test())
        .keyspace(Expiring {
            source: source.clone(),
        })
        .override_keyspace(
            "ks",
            KeySpaceOverrides::new().default_ttl(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    engine.start().await.unwrap();
    assert!(engine.get("ks", "short-1").await.unwrap().is_some());
    assert!(engine.get("ks", "long-1").await.unwrap().is_some());
    wait_refetch(&engine, &source, "short-1", 1).await;
    assert!(engine.get("ks", "long-1").await.unwrap().is_some());
    assert_eq!(
        source.fetches_of("long-1"),
        1,
        "default_ttl of 1h still holds"
    );
}

/// A put's own TTL expires it; without one, default_ttl applies.
#[tokio::test]
async fn put_ttl_and_default_ttl() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.default_ttl = Some(Duration::from_millis(40))
    })
    .await;
    engine
        .put_with_ttl("ks", "own", "x", Duration::from_secs(3600))
        .await
        .unwrap();
    engine.put("ks", "default", "y").await.unwrap();
    wait_until(LIMIT, "the put without TTL expired", || {
        let e = engine.clone();
        async move { text(&e, "ks", "default").await.as_deref() == Some("v:default") }
    })
    .await;
    assert_eq!(text(&engine, "ks", "own").await.as_deref(), Some("x"));
}

/// Without any TTL, entries stay until evicted.
#[tokio::test]
async fn no_ttl_means_no_expiry() {
    let source = TestSource::new();
    source.set_ttl(None);
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |_| {}).await;
    engine.get("ks", "a").await.unwrap();
    // Expire a witness with a short own TTL: once it is gone, time has passed for "a" too.
    engine
        .put_with_ttl("ks", "witness", "w", Duration::from_millis(30))
        .await
        .unwrap();
    wait_until(LIMIT, "the witness expired", || {
        let e = engine.clone();
        async move { text(&e, "ks", "witness").await.as_deref() == Some("v:witness") }
    })
    .await;
    engine.get("ks", "a").await.unwrap();
    assert_eq!(source.fetches_of("a"), 1);
}

/// However many keys are loaded, a keyspace never holds more than its max_bytes.
#[tokio::test]
async fn keyspace_holds_at_most_max_bytes() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.max_bytes = Some(64 * 1024)
    })
    .await;
    for i in 0..2000 {
        engine.get("ks", &format!("key-{i:05}")).await.unwrap();
    }
    engine.put("ks", "direct", vec![7u8; 512]).await.unwrap();
    let snap = engine.keyspace_stats("ks").await.unwrap();
    assert!(
        snap.main_cache_bytes + snap.hot_cache_bytes <= 64 * 1024,
        "holds {} + {} bytes",
        snap.main_cache_bytes,
        snap.hot_cache_bytes
    );
    assert!(snap.main_cache_entries > 100, "the cache is used: {snap:?}");
    assert!(snap.main_cache_entries < 2000);
}

/// A loaded value larger than the keyspace is returned to the caller but not cached.
#[tokio::test]
async fn value_larger_than_the_cache_is_served_not_stored() {
    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.max_bytes = Some(16)
    })
    .await;
    let key = "a-key-whose-value-is-too-big";
    assert!(engine.get("ks", key).await.unwrap().is_some());
    assert!(engine.get("ks", key).await.unwrap().is_some());
    assert_eq!(source.fetches_of(key), 2);
    let snap = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!(snap.main_cache_bytes, 0);
}

/// TinyLFU (the default) keeps a frequently read key through a scan of one-off keys; LRU,
/// selectable per keyspace, evicts it.
#[tokio::test]
async fn eviction_policy_is_selectable() {
    async fn hot_survives_scan(eviction: Option<Eviction>) -> bool {
        let source = TestSource::new();
        let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
            // About 58 entries of key, value and bookkeeping in the main cache.
            s.max_bytes = Some(27_000);
            s.eviction = eviction;
        })
        .await;
        // Fill the cache first: moka starts counting frequencies once it is half full.
        for i in 0..40 {
            engine.get("ks", &format!("fill-{i:06}")).await.unwrap();
        }
        engine.keyspace_stats("ks").await.unwrap();
        for i in 0..50 {
            engine.get("ks", "hot-key-000").await.unwrap();
            if i % 10 == 0 {
                engine.keyspace_stats("ks").await.unwrap();
            }
        }
        for i in 0..400 {
            engine.get("ks", &format!("scan-{i:06}")).await.unwrap();
            if i % 50 == 0 {
                engine.keyspace_stats("ks").await.unwrap();
            }
        }
        engine.keyspace_stats("ks").await.unwrap();
        let before = source.fetches_of("hot-key-000");
        engine.get("ks", "hot-key-000").await.unwrap();
        let snap = engine.keyspace_stats("ks").await.unwrap();
        assert_eq!(snap.eviction, eviction.unwrap_or_default());
        source.fetches_of("hot-key-000") == before
    }
    assert!(hot_survives_scan(None).await, "TinyLFU resists the scan");
    assert!(
        !hot_survives_scan(Some(Eviction::Lru)).await,
        "LRU evicts the hot key"
    );
}

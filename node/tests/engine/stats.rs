//! Counters and the admin snapshot.

use std::time::Duration;

use distcache::EngineConfig;

use crate::support::{TestSource, engine_with};

/// Each counter counts what its name says over a scripted sequence of operations.
#[tokio::test]
async fn counters_follow_operations() {
    let source = TestSource::new();
    let engine = engine_with(source, EngineConfig::for_test(), |_| {}).await;
    engine.get("ks", "a").await.unwrap(); // miss, load
    engine.get("ks", "a").await.unwrap(); // hit
    engine.get("ks", "missing-b").await.unwrap(); // miss, not found
    let _ = engine.get("ks", "fail-c").await; // miss, error
    engine.get_many("ks", &["a", "d"]).await.unwrap(); // hit + miss
    engine.put("ks", "e", "v").await.unwrap();
    engine.delete("ks", "e").await.unwrap(); // removed
    engine.delete("ks", "zzz").await.unwrap(); // nothing to remove
    let s = engine.keyspace_stats("ks").await.unwrap().stats;
    assert_eq!(s.gets, 6);
    assert_eq!(s.cache_hits, 2);
    assert_eq!(s.loads, 4);
    assert_eq!(s.loads_deduped, 4);
    assert_eq!(s.local_loads, 3);
    assert_eq!(s.local_load_errs, 1);
    assert_eq!(s.not_found, 1);
    assert_eq!(s.remove_keys_requests, 2);
    assert_eq!(s.removed_keys, 1);
    assert_eq!((s.peer_loads, s.peer_errors), (0, 0));
}

/// The snapshot serialises to the seed's admin JSON, field for field, durations in humantime.
#[tokio::test]
async fn snapshot_matches_the_seed_admin_json() {
    let source = TestSource::new();
    let engine = engine_with(source, EngineConfig::for_test(), |s| {
        s.max_bytes = Some(67108864);
        s.default_ttl = Some(Duration::from_secs(300));
        s.read_timeout = Some(Duration::from_millis(250));
        s.write_timeout = Some(Duration::from_millis(500));
        s.warm_keys = vec!["user:1".into(), "user:2".into()];
    })
    .await;
    engine.get("ks", "user:1").await.unwrap();
    let snaps = engine.stats().await;
    assert_eq!(snaps.len(), 1);
    let json = serde_json::to_value(&snaps[0]).unwrap();
    assert_eq!(json["name"], "ks");
    assert_eq!(json["max_bytes"], 67108864);
    assert_eq!(json["default_ttl"], "5m");
    assert_eq!(json["read_timeout"], "250ms");
    assert_eq!(json["write_timeout"], "500ms");
    assert_eq!(json["warm_keys"], serde_json::json!(["user:1", "user:2"]));
    // The two warm keys were loaded at start: key, value and bookkeeping bytes each.
    assert_eq!(
        json["main_cache_bytes"],
        2 * (distcache::ENTRY_OVERHEAD + 6 + 8),
        "key + value + bookkeeping bytes"
    );
    assert_eq!(json["hot_cache_bytes"], 0);
    let stats = json["stats"].as_object().unwrap();
    for field in [
        "gets",
        "cache_hits",
        "peer_loads",
        "peer_errors",
        "loads",
        "loads_deduped",
        "local_loads",
        "local_load_errs",
        "remove_keys_requests",
        "removed_keys",
    ] {
        assert!(stats[field].is_u64(), "stats.{field} missing");
    }
    assert_eq!(stats["gets"], 1);
    // And it reads back.
    let back: distcache::KeySpaceSnapshot = serde_json::from_value(json).unwrap();
    assert_eq!(back, snaps[0]);
}

//! Single-flight: one fetch per cold key however many callers, and callers that give up
//! never hurt the others.

use std::sync::Arc;
use std::time::Duration;

use distcache::{EngineConfig, Error};

use crate::support::{TestSource, engine, engine_with, text, wait_until};

const LIMIT: Duration = Duration::from_secs(10);

/// 1000 concurrent gets of one cold key cause exactly one fetch, and all get the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_gets_fetch_once() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let mut callers = Vec::new();
    for _ in 0..1000 {
        let engine = engine.clone();
        callers.push(tokio::spawn(
            async move { engine.get("ks", "slow-hot").await },
        ));
    }
    wait_until(LIMIT, "the fetch started", || {
        let s = source.clone();
        async move { s.fetches() >= 1 }
    })
    .await;
    source.open_gate();
    for caller in callers {
        let value = caller.await.unwrap().unwrap();
        assert_eq!(value.as_deref(), Some(&b"v:slow-hot"[..]));
    }
    assert_eq!(source.fetches(), 1);
    let stats = engine.keyspace_stats("ks").await.unwrap().stats;
    assert_eq!(stats.gets, 1000);
    assert_eq!(stats.loads_deduped, 1);
    assert_eq!(stats.loads + stats.cache_hits, 1000);
}

/// Concurrent callers of a failing key all get the same error; the error is not cached.
#[tokio::test]
async fn errors_are_shared_but_not_cached() {
    let source = TestSource::new();
    source.set_delay(Duration::from_millis(20));
    let engine = engine(source.clone()).await;
    let results = futures::future::join_all((0..10).map(|_| engine.get("ks", "fail-k"))).await;
    for r in &results {
        let err = r.as_ref().unwrap_err();
        assert!(matches!(err, Error::DataSource(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            results[0].as_ref().unwrap_err().to_string()
        );
    }
    assert_eq!(source.fetches(), 1);
    assert!(engine.get("ks", "fail-k").await.is_err());
    assert_eq!(source.fetches(), 2, "a failure is retried by the next get");
}

/// Dropping the caller that started a load neither cancels it nor poisons the key.
#[tokio::test]
async fn dropped_leader_does_not_cancel_the_load() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let leader = tokio::spawn({
        let engine = engine.clone();
        async move { engine.get("ks", "slow-a").await }
    });
    wait_until(LIMIT, "the fetch started", || {
        let s = source.clone();
        async move { s.fetches() == 1 }
    })
    .await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    source.open_gate();
    wait_until(LIMIT, "the abandoned load stored its value", || {
        let e = engine.clone();
        async move {
            e.keyspace_stats("ks")
                .await
                .is_ok_and(|s| s.main_cache_entries == 1)
        }
    })
    .await;
    assert_eq!(
        text(&engine, "ks", "slow-a").await.as_deref(),
        Some("v:slow-a")
    );
    assert_eq!(source.fetches(), 1);
}

/// A waiter whose deadline passes gives up alone; the others and later callers get the value.
#[tokio::test]
async fn waiter_deadline_does_not_poison_the_key() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let patient = tokio::spawn({
        let engine = engine.clone();
        async move { engine.get("ks", "slow-b").await }
    });
    let impatient =
        tokio::time::timeout(Duration::from_millis(30), engine.get("ks", "slow-b")).await;
    assert!(impatient.is_err(), "the impatient caller timed out");
    source.open_gate();
    assert_eq!(
        patient.await.unwrap().unwrap().as_deref(),
        Some(&b"v:slow-b"[..])
    );
    assert_eq!(
        text(&engine, "ks", "slow-b").await.as_deref(),
        Some("v:slow-b")
    );
    assert_eq!(source.fetches(), 1);
}

/// Not-found is remembered for negative_ttl when set, and not at all by default.
#[tokio::test]
async fn not_found_is_cached_only_with_negative_ttl() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    for _ in 0..3 {
        assert_eq!(engine.get("ks", "missing-a").await.unwrap(), None);
    }
    assert_eq!(source.fetches(), 3, "off by default");

    let source = TestSource::new();
    let engine = engine_with(source.clone(), EngineConfig::for_test(), |s| {
        s.negative_ttl = Some(Duration::from_millis(80))
    })
    .await;
    for _ in 0..3 {
        assert_eq!(engine.get("ks", "missing-a").await.unwrap(), None);
    }
    assert_eq!(source.fetches(), 1);
    wait_until(LIMIT, "the negative entry expired", || {
        let (e, s) = (engine.clone(), source.clone());
        async move {
            let _ = e.get("ks", "missing-a").await;
            s.fetches() >= 2
        }
    })
    .await;
    // A put replaces a remembered not-found at once.
    engine.put("ks", "missing-a", "now here").await.unwrap();
    assert_eq!(
        text(&engine, "ks", "missing-a").await.as_deref(),
        Some("now here")
    );
}

/// A put that lands while a load of the same key is in flight wins: the load's older value
/// is returned to its callers but not stored.
#[tokio::test]
async fn put_during_load_is_not_overwritten() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let loading = tokio::spawn({
        let engine = engine.clone();
        async move { engine.get("ks", "slow-c").await }
    });
    wait_until(LIMIT, "the fetch started", || {
        let s = source.clone();
        async move { s.fetches() == 1 }
    })
    .await;
    engine.put("ks", "slow-c", "written").await.unwrap();
    source.open_gate();
    assert_eq!(
        loading.await.unwrap().unwrap().as_deref(),
        Some(&b"v:slow-c"[..])
    );
    assert_eq!(
        text(&engine, "ks", "slow-c").await.as_deref(),
        Some("written")
    );
}

/// A delete while a load is in flight keeps the loaded value out of the cache.
#[tokio::test]
async fn delete_during_load_is_not_undone() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let loading = tokio::spawn({
        let engine = engine.clone();
        async move { engine.get("ks", "slow-d").await }
    });
    wait_until(LIMIT, "the fetch started", || {
        let s = source.clone();
        async move { s.fetches() == 1 }
    })
    .await;
    engine.delete("ks", "slow-d").await.unwrap();
    source.open_gate();
    loading.await.unwrap().unwrap();
    let stats = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!(
        stats.main_cache_entries, 0,
        "the deleted key was not stored"
    );
    // The next get loads afresh.
    assert!(engine.get("ks", "slow-d").await.unwrap().is_some());
    assert_eq!(source.fetches(), 2);
}

/// A data source that panics fails its callers with an error; the key loads fine afterwards.
#[tokio::test]
async fn panicking_source_fails_callers_cleanly() {
    use distcache::{Engine, FetchResult, Fetched, KeySpaceSpec, SourceSpec, source_fn};
    use std::sync::atomic::{AtomicBool, Ordering};
    let panicked = Arc::new(AtomicBool::new(false));
    let flag = panicked.clone();
    let engine = Engine::builder(EngineConfig::for_test())
        .register_source(
            "p",
            source_fn(move |key: String| {
                let first = !flag.swap(true, Ordering::SeqCst);
                async move {
                    if first {
                        panic!("source bug");
                    }
                    FetchResult::Ok(Some(Fetched::new(key)))
                }
            }),
        )
        .keyspace_spec(KeySpaceSpec::new(
            "ks",
            SourceSpec::Registered { name: "p".into() },
        ))
        .build()
        .unwrap();
    engine.start().await.unwrap();
    let err = engine.get("ks", "k").await.unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert_eq!(
        engine.get("ks", "k").await.unwrap().as_deref(),
        Some(&b"k"[..])
    );
}

//! Data operations: put, get, delete and their batch forms, and their input errors.

use std::time::Duration;

use distcache::{Engine, EngineConfig, Entry, Error, Limits};

use crate::support::{TestSource, engine, engine_with, text};

/// A miss loads from the source, stores, and the next get is a hit without a fetch.
#[tokio::test]
async fn read_through_loads_once_then_hits() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    assert_eq!(text(&engine, "ks", "a").await.as_deref(), Some("v:a"));
    assert_eq!(text(&engine, "ks", "a").await.as_deref(), Some("v:a"));
    assert_eq!(source.fetches(), 1);
}

/// Not found is `Ok(None)`, distinct from a failure.
#[tokio::test]
async fn not_found_is_not_an_error() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    assert_eq!(engine.get("ks", "missing-1").await.unwrap(), None);
    let err = engine.get("ks", "fail-1").await.unwrap_err();
    assert!(matches!(err, Error::DataSource(_)), "{err:?}");
    assert!(err.to_string().contains("cannot load fail-1"), "{err}");
}

/// A put is served without asking the source; a delete makes the next get load again.
#[tokio::test]
async fn put_then_delete() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    engine.put("ks", "k", "mine").await.unwrap();
    assert_eq!(text(&engine, "ks", "k").await.as_deref(), Some("mine"));
    assert_eq!(source.fetches(), 0);
    engine.delete("ks", "k").await.unwrap();
    assert_eq!(text(&engine, "ks", "k").await.as_deref(), Some("v:k"));
    assert_eq!(source.fetches(), 1);
    // Deleting a key that is not cached is fine.
    engine.delete("ks", "never-seen").await.unwrap();
}

/// get_many answers per key: values, not found and errors side by side, in order; a repeated
/// key is fetched once.
#[tokio::test]
async fn get_many_answers_per_key() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    engine.put("ks", "cached", "c").await.unwrap();
    let keys = ["cached", "a", "missing-x", "fail-y", "", "a"];
    let results = engine.get_many("ks", &keys).await.unwrap();
    assert_eq!(results.len(), keys.len());
    let keys_back: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys_back, keys);
    assert_eq!(
        results[0].result.as_ref().unwrap().as_deref(),
        Some(&b"c"[..])
    );
    assert_eq!(
        results[1].result.as_ref().unwrap().as_deref(),
        Some(&b"v:a"[..])
    );
    assert_eq!(results[2].result.as_ref().unwrap(), &None);
    assert!(matches!(results[3].result, Err(Error::DataSource(_))));
    assert!(matches!(results[4].result, Err(Error::EmptyKey)));
    assert_eq!(
        results[5].result.as_ref().unwrap().as_deref(),
        Some(&b"v:a"[..])
    );
    assert_eq!(source.fetches_of("a"), 1);
    assert_eq!(source.fetches(), 3, "a, missing-x, fail-y");
}

/// The misses of a get_many reach a batching source in one fetch_many call.
#[tokio::test]
async fn get_many_batches_misses_into_one_fetch_many() {
    let source = TestSource::batching();
    let engine = engine(source.clone()).await;
    let keys: Vec<String> = (0..100).map(|i| format!("key-{i}")).collect();
    let results = engine.get_many("ks", &keys).await.unwrap();
    assert!(
        results
            .iter()
            .all(|r| r.result.as_ref().is_ok_and(|v| v.is_some()))
    );
    assert_eq!(source.batches(), 1);
    assert_eq!(source.fetches(), 100);
    // All hits now: no further batch.
    engine.get_many("ks", &keys).await.unwrap();
    assert_eq!(source.batches(), 1);
}

/// put_many and delete_many answer per entry; an invalid entry fails alone.
#[tokio::test]
async fn put_many_and_delete_many_answer_per_key() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let results = engine
        .put_many(
            "ks",
            vec![
                Entry::new("a", "1"),
                Entry::new("", "2"),
                Entry::with_ttl("c", "3", Duration::from_secs(60)),
            ],
        )
        .await
        .unwrap();
    assert!(results[0].result.is_ok());
    assert!(matches!(results[1].result, Err(Error::EmptyKey)));
    assert!(results[2].result.is_ok());
    assert_eq!(text(&engine, "ks", "a").await.as_deref(), Some("1"));
    assert_eq!(text(&engine, "ks", "c").await.as_deref(), Some("3"));

    let results = engine.delete_many("ks", &["a", "c", ""]).await.unwrap();
    assert!(results[0].result.is_ok() && results[1].result.is_ok());
    assert!(matches!(results[2].result, Err(Error::EmptyKey)));
    assert_eq!(text(&engine, "ks", "a").await.as_deref(), Some("v:a"));
    assert_eq!(text(&engine, "ks", "c").await.as_deref(), Some("v:c"));
}

/// Each kind of bad input has its own error, and none reaches the source.
#[tokio::test]
async fn bad_input_has_distinct_errors() {
    let source = TestSource::new();
    let config = EngineConfig {
        limits: Limits {
            max_key_bytes: 8,
            max_value_bytes: 16,
            max_batch_keys: 3,
        },
        ..EngineConfig::for_test()
    };
    let engine = engine_with(source.clone(), config, |_| {}).await;
    assert!(matches!(
        engine.get("nope", "k").await,
        Err(Error::KeySpaceNotFound(ref n)) if n == "nope"
    ));
    assert!(matches!(engine.get("ks", "").await, Err(Error::EmptyKey)));
    assert!(matches!(
        engine.get("ks", "123456789").await,
        Err(Error::KeyTooLarge { len: 9, max: 8 })
    ));
    assert!(matches!(
        engine.put("ks", "k", vec![0u8; 17]).await,
        Err(Error::ValueTooLarge { len: 17, max: 16 })
    ));
    assert!(matches!(
        engine.put_with_ttl("ks", "k", "v", Duration::ZERO).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        engine.get_many("ks", &["a", "b", "c", "d"]).await,
        Err(Error::BatchTooLarge { len: 4, max: 3 })
    ));
    assert!(matches!(
        engine.delete("nope", "k").await,
        Err(Error::KeySpaceNotFound(_))
    ));
    assert_eq!(source.fetches(), 0);
}

/// A put larger than the keyspace can hold is refused, and the old value stays.
#[tokio::test]
async fn put_larger_than_the_keyspace_is_refused() {
    let source = TestSource::new();
    let engine = engine_with(source, EngineConfig::for_test(), |s| {
        s.max_bytes = Some(1024)
    })
    .await;
    engine.put("ks", "k", "small").await.unwrap();
    let err = engine.put("ks", "k", vec![1u8; 1000]).await.unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { len: 1000, .. }),
        "{err:?}"
    );
    assert_eq!(text(&engine, "ks", "k").await.as_deref(), Some("small"));
}

/// Operations before start and after stop fail with NotRunning; start is idempotent; a stopped
/// engine does not start again.
#[tokio::test]
async fn lifecycle_guards_operations() {
    let source = TestSource::new();
    let engine = Engine::builder(EngineConfig::for_test())
        .register_source("test", source)
        .keyspace_spec(crate::support::spec("ks"))
        .build()
        .unwrap();
    assert!(!engine.is_running());
    assert!(matches!(
        engine.get("ks", "a").await,
        Err(Error::NotRunning)
    ));
    engine.start().await.unwrap();
    engine.start().await.unwrap();
    assert!(engine.is_running());
    assert!(engine.get("ks", "a").await.is_ok());
    engine.stop().await.unwrap();
    engine.stop().await.unwrap();
    assert!(matches!(
        engine.get("ks", "a").await,
        Err(Error::NotRunning)
    ));
    assert!(matches!(
        engine.put("ks", "a", "v").await,
        Err(Error::NotRunning)
    ));
    assert!(matches!(engine.start().await, Err(Error::NotRunning)));
}

/// A slow key does not delay other keys: no lock is held across a fetch.
#[tokio::test]
async fn slow_key_does_not_block_others() {
    let source = TestSource::new();
    let engine = engine(source.clone()).await;
    let slow = tokio::spawn({
        let engine = engine.clone();
        async move { engine.get("ks", "slow-1").await }
    });
    crate::support::wait_until(Duration::from_secs(5), "the slow fetch started", || {
        let s = source.clone();
        async move { s.fetches_of("slow-1") == 1 }
    })
    .await;
    for i in 0..20 {
        let key = format!("fast-{i}");
        let got = tokio::time::timeout(Duration::from_secs(5), engine.get("ks", &key))
            .await
            .expect("fast key answered while the slow one waits");
        assert!(got.unwrap().is_some());
    }
    engine.put("ks", "other", "x").await.unwrap();
    engine.delete("ks", "other").await.unwrap();
    assert!(!slow.is_finished());
    source.open_gate();
    assert!(slow.await.unwrap().unwrap().is_some());
}

//! Warmups on one node: hot keys from reads, demand runs, their limits.

use std::sync::Arc;
use std::time::Duration;

use distcache::{EngineConfig, Error};

use crate::support::{TestSource, engine_with, wait_until};

/// Reads make keys hot, hottest first in the snapshot; a warmup with no keys given re-loads the
/// hot keys the cache lost; a keyspace with nothing to warm leaves no run behind.
#[tokio::test]
async fn hot_keys_come_from_reads_and_feed_warmups() {
    let source = TestSource::new();
    let engine = engine_with(Arc::clone(&source), EngineConfig::for_test(), |_| {}).await;
    assert!(engine.warmup_runs().is_empty(), "nothing to warm at start");
    for (key, reads) in [("a", 6), ("b", 3), ("c", 1)] {
        for _ in 0..reads {
            engine.get("ks", key).await.unwrap();
        }
    }
    let snap = engine.keyspace_stats("ks").await.unwrap();
    let hot: Vec<(&str, u32)> = snap
        .hot_keys
        .iter()
        .map(|h| (h.key.as_str(), h.count))
        .collect();
    assert_eq!(
        hot.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(hot[0].1 >= 6 && hot[1].1 >= 3, "{hot:?}");

    engine.delete_many("ks", &["a", "b", "c"]).await.unwrap();
    let run = engine.warmup("ks", None).await.unwrap();
    wait_until(Duration::from_secs(10), "the warmup finished", || {
        let done = engine.warmup_run(run.id).is_some_and(|r| r.done);
        async move { done }
    })
    .await;
    let run = engine.warmup_run(run.id).unwrap();
    assert_eq!((run.planned, run.warmed, run.failed), (3, 3, 0), "{run:?}");
    for key in ["a", "b", "c"] {
        assert_eq!(
            source.fetches_of(key),
            2,
            "{key}: first read, then the warmup"
        );
    }
    let s = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!((s.stats.warmups, s.stats.warmed_keys), (1, 3));
    assert_eq!(s.last_warmup.map(|r| r.id), Some(run.id));
}

/// Asking for a keyspace's plan while a demand run of it goes returns that run; at most eight
/// demand runs go at once; an empty key list is refused.
#[tokio::test]
async fn demand_runs_are_deduplicated_and_capped() {
    let source = TestSource::new();
    let mut config = EngineConfig::for_test();
    config.warmup.warm_on_start = false;
    config.warmup.timeout = Duration::from_secs(60);
    let engine = engine_with(Arc::clone(&source), config, |s| {
        s.read_timeout = Some(Duration::from_secs(60));
        s.warm_keys = vec!["slow-plan".into()];
    })
    .await;
    // `slow…` keys wait for the gate: every run below stays running until it opens.
    let first = engine.warmup("ks", None).await.unwrap();
    assert_eq!(engine.warmup("ks", None).await.unwrap().id, first.id);
    for i in 0..7 {
        let run = engine
            .warmup("ks", Some(vec![format!("slow-{i}")]))
            .await
            .unwrap();
        assert_ne!(run.id, first.id);
    }
    let refused = engine.warmup("ks", Some(vec!["slow-8".into()])).await;
    assert!(
        matches!(refused, Err(Error::Unavailable(ref m)) if m.contains("8 warmups")),
        "{refused:?}"
    );
    assert!(matches!(
        engine.warmup("ks", Some(Vec::new())).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        engine.warmup("nope", None).await,
        Err(Error::KeySpaceNotFound(_))
    ));

    source.open_gate();
    wait_until(Duration::from_secs(10), "every run finished", || {
        let done = engine.warmup_runs().iter().all(|r| r.done);
        async move { done }
    })
    .await;
    let runs = engine.warmup_runs();
    assert_eq!(runs.len(), 8);
    assert!(
        runs.iter().all(|r| r.warmed == 1 && r.failed == 0),
        "{runs:?}"
    );
    // Now a new run may start.
    engine
        .warmup("ks", Some(vec!["slow-8".into()]))
        .await
        .unwrap();
}

/// A warmup obeys the keyspace's load bound like any read (issue 17): no more data-source
/// calls at once than `max_concurrent_loads`, the keys past the waiting room fail with
/// `OVERLOADED` at once instead of piling up, and the admitted ones warm once the source
/// answers.
#[tokio::test]
async fn issue_17_warmups_obey_the_load_bound() {
    let source = TestSource::new();
    let mut config = EngineConfig::for_test();
    config.warmup.warm_on_start = false;
    config.warmup.timeout = Duration::from_secs(60);
    config.warmup.concurrency = 8;
    let engine = engine_with(Arc::clone(&source), config, |s| {
        s.read_timeout = Some(Duration::from_secs(60));
        s.max_concurrent_loads = Some(2);
        s.max_queued_loads = Some(1);
    })
    .await;
    let keys: Vec<String> = (0..10).map(|i| format!("slow-{i}")).collect();
    let run = engine.warmup("ks", Some(keys)).await.unwrap();
    // The run is written per batch, when the batch ends: the counters show the refusals.
    wait_until(Duration::from_secs(10), "7 keys were refused", || async {
        engine.keyspace_stats("ks").await.unwrap().stats.overloaded == 7
    })
    .await;
    assert_eq!(source.running(), 2, "the source has answered nothing yet");
    let s = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!((s.loads_running, s.loads_queued), (2, 1));

    source.open_gate();
    wait_until(Duration::from_secs(10), "the warmup finished", || {
        let done = engine.warmup_run(run.id).is_some_and(|r| r.done);
        async move { done }
    })
    .await;
    let run = engine.warmup_run(run.id).unwrap();
    assert_eq!((run.planned, run.warmed, run.failed), (10, 3, 7), "{run:?}");
    for f in &run.failures {
        assert!(f.error.starts_with("overloaded: "), "{f:?}");
    }
    assert!(source.most_running() <= 2, "{}", source.most_running());
}

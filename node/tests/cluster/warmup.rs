//! Warmup and hot keys: at start, on join, on leave, after an update, on demand, refresh-ahead,
//! and against failing or rate-limited sources.

use std::time::Duration;

use distcache::{NodeConfig, RateLimitConfig, WarmupTrigger};

use distcache_testkit::{CONVERGE, TestCluster};
use distcache_testkit::{spec, wait_until};

fn fast_sharing(_: usize, c: &mut NodeConfig) {
    c.engine.warmup.share_interval = Duration::from_millis(150);
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Warm keys are loaded when the cluster starts, each once, by its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_warms_each_warm_key_once() {
    let warm = keys("w", 30);
    let mut s = spec("ks");
    s.warm_keys = warm.clone();
    let cluster = TestCluster::builder(3).specs(vec![s]).build().await;
    for key in &warm {
        let owner = cluster.owner_of("ks", key);
        for n in 0..3 {
            assert_eq!(
                cluster.sources[n].fetches_of(key),
                usize::from(n == owner),
                "{key} on node {n}"
            );
        }
    }
    // Served from the owners' caches: no fetch on read.
    for key in &warm {
        cluster.node(0).engine().get("ks", key).await.unwrap();
    }
    assert_eq!(cluster.total_fetches(), 30);
    let run = cluster.node(0).engine().warmup_runs();
    assert!(
        run.iter()
            .any(|r| r.trigger == WarmupTrigger::Start && r.done)
    );
    cluster.shutdown().await;
}

/// Start after start: each of 40 warm keys is fetched once in the whole cluster, by the
/// member that keeps it, because nodes warm only once the ring is agreed and settled (issue
/// 12: in 2 of 4 start-ups 17 keys were fetched twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_every_start_warms_each_key_once() {
    let warm = keys("s", 40);
    for start in 0..4 {
        let mut s = spec("ks");
        s.warm_keys = warm.clone();
        let cluster = TestCluster::builder(3).specs(vec![s]).build().await;
        for key in &warm {
            let fetched: Vec<usize> = (0..3).map(|n| cluster.sources[n].fetches_of(key)).collect();
            assert_eq!(
                fetched.iter().sum::<usize>(),
                1,
                "start {start}: {key} fetched per node {fetched:?}"
            );
            assert_eq!(
                fetched[cluster.owner_of("ks", key)],
                1,
                "start {start}: {key}"
            );
        }
        cluster.shutdown().await;
    }
}

/// A node that joins holds the hot keys it now owns before its first request: taken over
/// from their previous owners, or warmed from what its peers share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_node_warms_the_hot_keys_it_owns() {
    let mut cluster = TestCluster::builder(3)
        .started(2)
        .edit(fast_sharing)
        .build()
        .await;
    let hot = keys("h", 60);
    for _ in 0..3 {
        for key in &hot {
            cluster.node(0).engine().get("ks", key).await.unwrap();
        }
    }
    cluster.start_node(2).await;
    cluster.wait_converged().await;
    let mine: Vec<&String> = hot
        .iter()
        .filter(|k| cluster.owner_of("ks", k) == 2)
        .collect();
    assert!(mine.len() > 5, "node 2 owns {} of the hot keys", mine.len());
    for key in &mine {
        // Taken over from the previous owner (no fetch) or warmed (one fetch).
        assert!(
            cluster.sources[2].fetches_of(key) <= 1,
            "{key} was fetched more than once"
        );
    }
    let before = cluster.sources[2].fetches();
    for key in &mine {
        cluster.node(2).engine().get("ks", key).await.unwrap();
    }
    assert_eq!(
        cluster.sources[2].fetches(),
        before,
        "the first requests were hits"
    );
    cluster.shutdown().await;
}

/// When a node leaves, the hot keys it owned are re-homed: their new owners load them without
/// waiting for a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_node_hot_keys_are_rehomed() {
    let mut cluster = TestCluster::builder(3).edit(fast_sharing).build().await;
    let hot: Vec<String> = (0..300)
        .map(|i| format!("l{i}"))
        .filter(|k| cluster.owner_of("ks", k) == 2)
        .take(20)
        .collect();
    // Read on the owner itself: only node 2 counts these reads; the others learn by sharing.
    for _ in 0..3 {
        for key in &hot {
            cluster.node(2).engine().get("ks", key).await.unwrap();
        }
    }
    wait_until(CONVERGE, "the survivors learned node 2's hot keys", || {
        let plans: Vec<Vec<String>> = (0..2)
            .map(|i| cluster.node(i).engine().warmup_plan("ks").unwrap())
            .collect();
        let known = hot.iter().all(|k| plans.iter().all(|p| p.contains(k)));
        async move { known }
    })
    .await;
    cluster.stop_node(2).await;
    cluster.wait_converged().await;
    wait_until(
        CONVERGE,
        "every re-homed hot key was loaded by its new owner",
        || {
            let done = hot.iter().all(|k| {
                let owner = cluster.owner_of("ks", k);
                cluster.sources[owner].fetches_of(k) == 1
            });
            async move { done }
        },
    )
    .await;
    let before = cluster.sources[0].fetches() + cluster.sources[1].fetches();
    for key in &hot {
        cluster.node(0).engine().get("ks", key).await.unwrap();
    }
    assert_eq!(
        cluster.sources[0].fetches() + cluster.sources[1].fetches(),
        before,
        "hits only"
    );
    cluster.shutdown().await;
}

/// After a keyspace update, its warm keys are loaded again, each once, by its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_warms_the_warm_keys() {
    let cluster = TestCluster::start(3).await;
    cluster.wait_leader().await;
    let warm = keys("u", 12);
    let mut s = spec("ks");
    s.warm_keys = warm.clone();
    let revision = cluster.node(1).engine().update_keyspace(s).await.unwrap();
    cluster.wait_revision(revision).await;
    wait_until(CONVERGE, "every warm key is loaded", || {
        let done = warm
            .iter()
            .all(|k| cluster.sources[cluster.owner_of("ks", k)].fetches_of(k) == 1);
        async move { done }
    })
    .await;
    assert_eq!(cluster.total_fetches(), 12, "each key once, cluster-wide");
    cluster.shutdown().await;
}

/// An on-demand warmup through any node fetches each key once, on its owner, and reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demand_warmup_fetches_each_key_once() {
    let cluster = TestCluster::start(3).await;
    let wanted = keys("d", 100);
    let client = cluster.client(1);
    let started = client.warmup("ks", Some(&wanted)).await.unwrap();
    assert_eq!(started.planned, 100);
    let mut run = started;
    wait_until(CONVERGE, "the warmup finished", || {
        let client = &client;
        let id = run.id;
        async move { client.warmup_run(id).await.is_ok_and(|r| r.done) }
    })
    .await;
    run = client.warmup_run(run.id).await.unwrap();
    assert_eq!(
        (run.warmed, run.failed, run.skipped),
        (100, 0, 0),
        "{run:?}"
    );
    assert_eq!(cluster.total_fetches(), 100);
    for key in &wanted {
        assert_eq!(
            cluster.sources[cluster.owner_of("ks", key)].fetches_of(key),
            1
        );
    }
    // Warming again skips what is cached.
    let again = client.warmup("ks", Some(&wanted)).await.unwrap();
    wait_until(CONVERGE, "the second warmup finished", || {
        let client = &client;
        async move { client.warmup_run(again.id).await.is_ok_and(|r| r.done) }
    })
    .await;
    let again = client.warmup_run(again.id).await.unwrap();
    assert_eq!((again.warmed, again.skipped), (0, 100));
    assert_eq!(cluster.total_fetches(), 100);
    // The run shows in the admin API and in the keyspace's stats.
    let stats = cluster.node(1).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!(stats.last_warmup.map(|r| r.id), Some(again.id));
    cluster.shutdown().await;
}

/// Against failing, slow and rate-limited sources a warmup stays within its timeout and names
/// what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_reports_failures_within_its_timeout() {
    let mut limited = spec("limited");
    limited.rate_limit = Some(RateLimitConfig {
        requests_per_second: 0.001,
        burst: 1,
        wait_timeout: Duration::ZERO,
    });
    let cluster = TestCluster::builder(1)
        .specs(vec![spec("ks"), limited])
        .edit(|_, c| c.engine.warmup.timeout = Duration::from_millis(300))
        .build()
        .await;
    let client = cluster.client(0);
    let started = std::time::Instant::now();
    let run = client
        .warmup(
            "ks",
            Some(&[
                "fail-1".into(),
                "slow-1".into(),
                "ok-1".into(),
                "missing-1".into(),
            ]),
        )
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the warmup finished", || {
        let client = &client;
        async move { client.warmup_run(run.id).await.is_ok_and(|r| r.done) }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the 300ms prefetch timeout"
    );
    let run = client.warmup_run(run.id).await.unwrap();
    assert_eq!((run.warmed, run.failed, run.skipped), (1, 2, 1), "{run:?}");
    let failed: Vec<&str> = run.failures.iter().map(|f| f.key.as_str()).collect();
    assert!(
        failed.contains(&"fail-1") && failed.contains(&"slow-1"),
        "{run:?}"
    );
    assert!(
        run.failures.iter().any(|f| f.error.contains("timed out")),
        "{run:?}"
    );

    let limited_keys = keys("r", 5);
    let run = client.warmup("limited", Some(&limited_keys)).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the limited warmup finished",
        || {
            let client = &client;
            async move { client.warmup_run(run.id).await.is_ok_and(|r| r.done) }
        },
    )
    .await;
    let run = client.warmup_run(run.id).await.unwrap();
    assert_eq!(
        (run.warmed, run.failed),
        (1, 4),
        "the limiter guards warmups too: {run:?}"
    );
    assert!(
        run.failures
            .iter()
            .all(|f| f.error.contains("rate limited")),
        "{run:?}"
    );
    cluster.sources[0].open_gate();
    cluster.shutdown().await;
}

/// Refresh-ahead re-fetches hot keys on their owner only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_runs_on_the_owner_only() {
    let cluster = TestCluster::builder(2)
        .edit(|_, c| c.engine.warmup.refresh_interval = Duration::from_millis(150))
        .build()
        .await;
    let key = cluster.key_owned_by("ks", 1, "hot-");
    // Hot on both: read once on the owner, and often on the other node.
    cluster.node(1).engine().get("ks", &key).await.unwrap();
    for _ in 0..5 {
        cluster.node(0).engine().get("ks", &key).await.unwrap();
    }
    let fetched_by_non_owner = cluster.sources[0].fetches_of(&key);
    let deadline = std::time::Instant::now() + CONVERGE;
    while cluster.sources[1].fetches_of(&key) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the owner did not refresh the hot key twice: fetches {} / {}, owner's hot keys {:?}, runs {:?}",
            cluster.sources[0].fetches_of(&key),
            cluster.sources[1].fetches_of(&key),
            cluster.node(1).engine().hot_keys("ks"),
            cluster.node(1).engine().warmup_runs(),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        cluster.sources[0].fetches_of(&key),
        fetched_by_non_owner,
        "non-owners never refresh"
    );
    let runs = cluster.node(1).engine().warmup_runs();
    assert!(
        runs.iter()
            .any(|r| r.trigger == WarmupTrigger::Refresh && r.warmed >= 1)
    );
    cluster.shutdown().await;
}

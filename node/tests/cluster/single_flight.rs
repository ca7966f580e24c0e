//! Cluster-wide single-flight.

use std::time::Duration;

use distcache_testkit::TestCluster;
use distcache_testkit::wait_until;

/// 1000 concurrent gets of one cold key, spread over 3 nodes, cause exactly one data-source
/// fetch in the whole cluster, and every caller gets the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_gets_over_three_nodes_fetch_once() {
    let cluster = TestCluster::start(3).await;
    let key = "slow-stampede";
    let owner = cluster.owner_of("ks", key);
    let mut callers = Vec::new();
    for i in 0..1000 {
        let engine = cluster.node(i % 3).engine().clone();
        callers.push(tokio::spawn(async move { engine.get("ks", key).await }));
    }
    wait_until(
        Duration::from_secs(10),
        "the owner started fetching",
        || {
            let s = cluster.sources[owner].clone();
            async move { s.fetches() >= 1 }
        },
    )
    .await;
    // Let every caller reach its wait before the value arrives.
    wait_until(Duration::from_secs(10), "all callers are waiting", || {
        let engines: Vec<_> = (0..3).map(|i| cluster.node(i).engine().clone()).collect();
        async move {
            let mut gets = 0;
            for e in engines {
                gets += e.keyspace_stats("ks").await.unwrap().stats.gets;
            }
            // Counted on the node each caller asked (peer requests are not gets).
            gets >= 1000
        }
    })
    .await;
    for s in &cluster.sources {
        s.open_gate();
    }
    for caller in callers {
        let v = caller.await.unwrap().unwrap();
        assert_eq!(v.as_deref(), Some(&b"v:slow-stampede"[..]));
    }
    assert_eq!(cluster.total_fetches(), 1);
    assert_eq!(cluster.sources[owner].fetches(), 1);
    cluster.shutdown().await;
}

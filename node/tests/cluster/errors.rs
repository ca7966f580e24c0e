//! Errors keep their identity across nodes: raised on the owner, they reach the asking node,
//! and its HTTP clients, as the same typed error.

use std::time::Duration;

use distcache::{CircuitBreakerConfig, Error, RateLimitConfig};

use distcache_testkit::TestCluster;
use distcache_testkit::spec;

async fn cluster() -> TestCluster {
    let mut limited = spec("limited");
    limited.rate_limit = Some(RateLimitConfig {
        requests_per_second: 0.001,
        burst: 1,
        wait_timeout: Duration::ZERO,
    });
    let mut breaker = spec("breaker");
    breaker.circuit_breaker = Some(CircuitBreakerConfig {
        failure_threshold: 1,
        reset_timeout: Duration::from_secs(3600),
    });
    let mut slow = spec("slow");
    slow.read_timeout = Some(Duration::from_millis(100));
    TestCluster::builder(2)
        .specs(vec![spec("ks"), limited, breaker, slow])
        .build()
        .await
}

/// Two nodes, each following its own catalog, so that one can lack a keyspace the other has.
async fn split_catalogs() -> TestCluster {
    TestCluster::builder(2).local_catalogs().build().await
}

/// Rate-limited and circuit-open errors from the owner arrive typed, by engine and by HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_errors_cross_nodes() {
    let cluster = cluster().await;
    let asker = cluster.node(0).engine();
    let client = cluster.client(0);

    let first = cluster.key_owned_by("limited", 1, "a");
    let second = cluster.key_owned_by("limited", 1, "b");
    let third = cluster.key_owned_by("limited", 1, "c");
    asker.get("limited", &first).await.unwrap();
    let err = asker.get("limited", &second).await.unwrap_err();
    assert!(
        matches!(err, Error::DataSourceRateLimited(ref k) if k == "limited"),
        "{err:?}"
    );
    let err = client.get("limited", &third).await.unwrap_err();
    assert!(
        matches!(err, Error::DataSourceRateLimited(ref k) if k == "limited"),
        "{err:?}"
    );

    let failing = cluster.key_owned_by("breaker", 1, "fail-");
    let err = asker.get("breaker", &failing).await.unwrap_err();
    assert!(matches!(err, Error::DataSource(_)), "{err:?}");
    assert!(
        err.to_string().contains(&failing),
        "the source's message survives: {err}"
    );
    let next = cluster.key_owned_by("breaker", 1, "ok-");
    let err = asker.get("breaker", &next).await.unwrap_err();
    assert!(
        matches!(err, Error::DataSourceCircuitOpen(ref k) if k == "breaker"),
        "{err:?}"
    );
    let err = client.get("breaker", &next).await.unwrap_err();
    assert!(matches!(err, Error::DataSourceCircuitOpen(_)), "{err:?}");
    cluster.shutdown().await;
}

/// A fetch timeout on the owner arrives as a timeout; not-found arrives as `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_not_found_cross_nodes() {
    let cluster = cluster().await;
    let asker = cluster.node(0).engine();
    let slow = cluster.key_owned_by("slow", 1, "slow-");
    let started = std::time::Instant::now();
    let err = asker.get("slow", &slow).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the read timeout"
    );
    let err = cluster.client(0).get("slow", &slow).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");

    let missing = cluster.key_owned_by("ks", 1, "missing-");
    assert_eq!(asker.get("ks", &missing).await.unwrap(), None);
    assert_eq!(cluster.client(0).get("ks", &missing).await.unwrap(), None);
    cluster.sources[1].open_gate();
    cluster.shutdown().await;
}

/// A keyspace the owner does not serve is reported as KeySpaceNotFound by the asking node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_not_found_on_the_owner_crosses_nodes() {
    let cluster = split_catalogs().await;
    // Only node 0 serves "solo" (each node follows its own catalog in this setup).
    cluster
        .node(0)
        .engine()
        .create_keyspace(spec("solo"))
        .await
        .unwrap();
    let key = cluster.key_owned_by("solo", 1, "k");
    let err = cluster
        .node(0)
        .engine()
        .get("solo", &key)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::KeySpaceNotFound(ref k) if k == "solo"),
        "{err:?}"
    );
    cluster.shutdown().await;
}

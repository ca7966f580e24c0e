//! The routing, hop-limit, invalidation and owner-failure scenarios again, on nodes that
//! talk over the in-memory network: no sockets, faults placed exactly between named nodes,
//! and every call counted. The same scenarios over sockets are in `routing.rs`,
//! `membership.rs` and `errors.rs`.

use std::time::Duration;

use distcache::memnet::{Call, Fault};
use distcache::transport::PeerTransport;
use distcache::{Entry, Error};
use distcache_testkit::{CONVERGE, TestCluster, wait_for};

/// A get on any node loads the key from its owner's source only, once, with one call from
/// each other node to the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_loaded_by_its_owner_only() {
    let cluster = TestCluster::in_memory(3).await;
    let network = cluster.network().unwrap();
    for owner in 0..3 {
        let key = cluster.key_owned_by("ks", owner, "user:");
        for asker in 0..3 {
            let value = cluster.node(asker).engine().get("ks", &key).await.unwrap();
            assert_eq!(value.as_deref(), Some(format!("v:{key}").as_bytes()));
        }
        for n in 0..3 {
            let expected = usize::from(n == owner);
            assert_eq!(cluster.sources[n].fetches_of(&key), expected, "node {n}");
        }
        for asker in (0..3).filter(|a| *a != owner) {
            let calls = network.delivered(&cluster.ids[asker], &cluster.ids[owner], Call::Get);
            assert_eq!(calls, 1, "node {asker} asked owner {owner} once");
        }
    }
    cluster.shutdown().await;
}

/// get_many sends one batch per owner, which loads its misses with one fetch_many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_sends_one_batch_per_owner() {
    let cluster = TestCluster::in_memory(3).await;
    let network = cluster.network().unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("b:{i}")).collect();
    let results = cluster
        .node(0)
        .engine()
        .get_many("ks", &keys)
        .await
        .unwrap();
    for (key, r) in keys.iter().zip(&results) {
        let value = r.result.as_ref().unwrap();
        assert_eq!(value.as_deref(), Some(format!("v:{key}").as_bytes()));
    }
    for n in 0..3 {
        let owned = keys
            .iter()
            .filter(|k| cluster.owner_of("ks", k) == n)
            .count();
        assert_eq!(
            cluster.sources[n].fetches(),
            owned,
            "node {n} fetched its keys"
        );
        assert_eq!(
            cluster.sources[n].batches(),
            1,
            "node {n} fetched one batch"
        );
    }
    for n in 1..3 {
        let batches = network.delivered("node-0", &cluster.ids[n], Call::GetMany);
        assert_eq!(batches, 1, "one batch to node {n}");
        assert_eq!(network.delivered("node-0", &cluster.ids[n], Call::Get), 0);
    }
    cluster.shutdown().await;
}

/// A peer's request for a key the receiver does not own goes on to the owner; it is served
/// where it arrived when the sender is the owner itself (their views differ: it never goes
/// back), or when it has passed through `MAX_HOPS` nodes already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_requests_go_to_the_owner_but_never_back() {
    let cluster = TestCluster::in_memory(2).await;
    let network = cluster.network().unwrap();
    let timeout = Duration::from_secs(2);
    let node_0 = cluster.addrs[0].as_str();
    let passed_on = || network.delivered("node-0", "node-1", Call::Get);

    // From a node whose view is behind: passed on to the owner, node 1.
    let on = cluster.key_owned_by("ks", 1, "on:");
    let stranger = network.transport("node-9");
    let value = stranger.get(node_0, "ks", &on, timeout).await.unwrap();
    assert_eq!(value.unwrap().value, format!("v:{on}").as_bytes());
    assert_eq!(cluster.sources[1].fetches_of(&on), 1, "loaded by the owner");
    assert_eq!(cluster.sources[0].fetches_of(&on), 0);
    assert_eq!(passed_on(), 1);

    // From the owner itself: served here, not sent back.
    let back = cluster.key_owned_by("ks", 1, "back:");
    let owner = network.transport("node-1");
    owner.get(node_0, "ks", &back, timeout).await.unwrap();
    assert_eq!(
        cluster.sources[0].fetches_of(&back),
        1,
        "served where it arrived"
    );
    assert_eq!(cluster.sources[1].fetches_of(&back), 0);
    assert_eq!(passed_on(), 1);

    // Through three nodes already (this call is the third hop): served here.
    let far = cluster.key_owned_by("ks", 1, "far:");
    let late = network.transport("node-9").already_passed(2);
    late.get(node_0, "ks", &far, timeout).await.unwrap();
    assert_eq!(
        cluster.sources[0].fetches_of(&far),
        1,
        "served where it arrived"
    );
    assert_eq!(cluster.sources[1].fetches_of(&far), 0);
    assert_eq!(passed_on(), 1);
    cluster.shutdown().await;
}

/// After a put through any node, no node serves the old value: the owner stores it and sends
/// every other node one invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_invalidates_every_copy() {
    let cluster = TestCluster::in_memory(3).await;
    let network = cluster.network().unwrap();
    let key = cluster.key_owned_by("ks", 2, "p:");
    for i in 0..3 {
        cluster.node(i).engine().get("ks", &key).await.unwrap();
    }
    let engine = cluster.node(0).engine();
    engine
        .put_many("ks", [Entry::new(key.clone(), "new")])
        .await
        .unwrap();
    for i in 0..3 {
        let v = cluster.node(i).engine().get("ks", &key).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"new"[..]), "node {i}");
    }
    assert_eq!(network.delivered("node-0", "node-2", Call::PutMany), 1);
    for i in 0..2 {
        let sent = network.delivered("node-2", &cluster.ids[i], Call::Invalidate);
        assert_eq!(sent, 1, "the owner invalidated node {i}");
    }
    cluster.shutdown().await;
}

/// An invalidation that never arrives is reported: the put is stored on the owner, and the
/// caller hears which node may still hold the old value. Once the network heals, the next
/// put invalidates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_invalidation_is_reported() {
    let cluster = TestCluster::builder(3)
        .in_memory()
        .edit(|_, c| c.engine.write_timeout = Duration::from_millis(300))
        .build()
        .await;
    let network = cluster.network().unwrap();
    let key = cluster.key_owned_by("ks", 2, "lost:");
    cluster.node(1).engine().get("ks", &key).await.unwrap();
    network.set_call_fault("node-2", "node-1", Call::Invalidate, Fault::Drop);

    let err = cluster
        .node(0)
        .engine()
        .put("ks", &key, "new")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("node-1"), "names the node: {err}");
    let owner = cluster.node(2).engine().get("ks", &key).await.unwrap();
    assert_eq!(owner.as_deref(), Some(&b"new"[..]), "stored on the owner");

    network.heal();
    cluster
        .node(0)
        .engine()
        .put("ks", &key, "newer")
        .await
        .unwrap();
    let v = cluster.node(1).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"newer"[..]));
    cluster.shutdown().await;
}

/// An owner that refuses every call (as a crashed node would): the asking node loads the
/// key itself, counts a peer error, keeps the value as a copy, and drops the owner from its
/// ring once probes fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_owner_falls_back_to_a_local_load() {
    let cluster = TestCluster::in_memory(3).await;
    let key = cluster.key_owned_by("ks", 2, "f:");
    cluster.isolate(2, Fault::Refuse);

    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(format!("v:{key}").as_bytes()));
    assert_eq!(
        cluster.sources[0].fetches_of(&key),
        1,
        "loaded by the asker"
    );
    assert_eq!(cluster.sources[2].fetches_of(&key), 0);
    let stats = cluster.node(0).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!(stats.stats.peer_errors, 1);
    assert_eq!(stats.hot_cache_entries, 1, "a copy, not an owned key");

    let ring = |i: usize| cluster.node(i).cluster().ring_ids();
    wait_for(CONVERGE, "nodes 0 and 1 drop node 2", || {
        (0..2).all(|i| ring(i) == ["node-0", "node-1"])
    })
    .await;
    cluster.shutdown().await;
}

/// An owner whose answers are lost: the read fails as a time-out within the read timeout
/// (the owner may be alive, so the key is not loaded beside it); once the network heals,
/// reads succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_behind_a_lossy_link_times_out() {
    let cluster = TestCluster::builder(2)
        .in_memory()
        .edit(|_, c| c.engine.read_timeout = Duration::from_millis(200))
        .build()
        .await;
    let network = cluster.network().unwrap();
    let key = cluster.key_owned_by("ks", 1, "t:");
    network.set_call_fault("node-0", "node-1", Call::Get, Fault::Drop);

    let err = cluster.node(0).engine().get("ks", &key).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(
        cluster.sources[0].fetches_of(&key),
        0,
        "not loaded beside the owner"
    );

    network.heal();
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(format!("v:{key}").as_bytes()));
    assert_eq!(cluster.sources[1].fetches_of(&key), 1);
    cluster.shutdown().await;
}

/// A partition splits the rings; when it heals they agree again, and the copy the cut-off
/// node held from before is never served: the nodes flush each other's caches when they
/// see each other back, so every node answers alike. (Both sides flush, so the owner loses
/// the value written during the partition too and loads the source's again: a put is a
/// cache entry, and a flush drops it like an eviction would.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_serves_no_stale_copy() {
    let cluster = TestCluster::in_memory(3).await;
    let network = cluster.network().unwrap();
    let key = cluster.key_owned_by("ks", 1, "split:");
    cluster
        .node(0)
        .engine()
        .put("ks", &key, "before")
        .await
        .unwrap();
    for i in 0..3 {
        let v = cluster.node(i).engine().get("ks", &key).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"before"[..]), "node {i}");
    }
    network.partition(&["node-0"], &["node-1", "node-2"]);
    let ring = |i: usize| cluster.node(i).cluster().ring_ids();
    wait_for(CONVERGE, "each side drops the other", || {
        ring(0) == ["node-0"] && (1..3).all(|i| ring(i) == ["node-1", "node-2"])
    })
    .await;
    let put = cluster
        .node(1)
        .engine()
        .put("ks", &key, "written apart")
        .await;
    assert!(put.is_ok(), "the majority side takes writes: {put:?}");

    network.heal();
    cluster.wait_converged().await;
    let mut answers = Vec::new();
    for i in 0..3 {
        let v = cluster.node(i).engine().get("ks", &key).await.unwrap();
        assert_ne!(
            v.as_deref(),
            Some(&b"before"[..]),
            "node {i} served its old copy"
        );
        answers.push(v);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    cluster.shutdown().await;
}

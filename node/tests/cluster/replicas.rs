//! `replicas = 2`: every acknowledged put is held by its key's owner and its replica, and
//! survives the loss of either — a failed write, a flush, a restart, a silent owner — and
//! reads that cannot reach the owner answer within their deadline. On the in-memory network,
//! faults placed between named nodes.

use std::time::{Duration, Instant};

use distcache::memnet::{Call, Fault};
use distcache::transport::PeerTransport;
use distcache::{KeySpaceSpec, NodeId, Ring};

use distcache_testkit::{CONVERGE, TestCluster, spec, wait_for, wait_until};

/// Keyspace `ks` with `replicas = 2`.
fn replicated() -> KeySpaceSpec {
    let mut spec = spec("ks");
    spec.replicas = Some(2);
    spec
}

/// Three in-memory nodes serving `ks` with `replicas = 2`.
async fn three() -> TestCluster {
    TestCluster::builder(3)
        .in_memory()
        .specs(vec![replicated()])
        .build()
        .await
}

/// [`three`], and a key put as in [`put_replicated`].
async fn three_with_a_put() -> (TestCluster, String) {
    let cluster = three().await;
    let key = put_replicated(&cluster).await;
    (cluster, key)
}

/// A key that node 2 owns and node 1 holds the replica of, put as `v1` through node 0.
async fn put_replicated(cluster: &TestCluster) -> String {
    let key = key_with(cluster, 2, 1, "r:");
    cluster
        .node(0)
        .engine()
        .put("ks", &key, "v1")
        .await
        .unwrap();
    key
}

/// A key of `ks` that node `owner` owns and node `replica` holds the replica of, among all
/// of `cluster`'s nodes.
fn key_with(cluster: &TestCluster, owner: usize, replica: usize, prefix: &str) -> String {
    let ring = Ring::new(cluster.ids.iter().map(NodeId::new));
    (0..10_000)
        .map(|n| format!("{prefix}{n}"))
        .find(|k| {
            ring.owner("ks", k).map(NodeId::as_str) == Some(cluster.ids[owner].as_str())
                && ring.replica("ks", k).map(NodeId::as_str) == Some(cluster.ids[replica].as_str())
        })
        .unwrap()
}

/// A put sent through the replica to an owner that cannot take it fails, and the replica
/// keeps the value of the put before it: the sender drops its copies of the key, but not
/// the one it holds as the key's replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_put_through_the_replica_keeps_its_value() {
    let (cluster, key) = three_with_a_put().await;
    cluster.isolate(2, Fault::Refuse);

    let failed = cluster.node(1).engine().put("ks", &key, "v2").await;
    assert!(failed.is_err(), "the owner cannot take it: {failed:?}");
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"v1"[..]), "the replica's value");
    assert_eq!(cluster.sources[0].fetches_of(&key), 0, "not loaded");
    cluster.shutdown().await;
}

/// A delete sent through the replica to an owner that does not answer fails, and the replica
/// keeps the value of the put before it (the owner removes it when it applies a delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delete_through_the_replica_keeps_its_value() {
    let cluster = TestCluster::builder(3)
        .in_memory()
        .specs(vec![replicated()])
        .edit(|_, c| c.engine.write_timeout = Duration::from_millis(300))
        .build()
        .await;
    let network = cluster.network().unwrap();
    let key = put_replicated(&cluster).await;
    network.set_call_fault("node-1", "node-2", Call::DeleteMany, Fault::Drop);

    let failed = cluster.node(1).engine().delete("ks", &key).await;
    assert!(failed.is_err(), "the owner does not answer: {failed:?}");
    cluster.isolate(2, Fault::Refuse);
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"v1"[..]), "the replica's value");
    cluster.shutdown().await;
}

/// A put whose replica does not take it fails, and leaves the replica the value of the put
/// before: the owner sends the replica the new value instead of dropping its copy first, so
/// no moment leaves the replica without the last acknowledged put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_the_replica_refuses_leaves_it_the_last_value() {
    let (cluster, key) = three_with_a_put().await;
    let network = cluster.network().unwrap();
    network.set_call_fault("node-2", "node-1", Call::Replicate, Fault::Refuse);

    let failed = cluster.node(2).engine().put("ks", &key, "v2").await;
    assert!(failed.is_err(), "not confirmed by the replica: {failed:?}");
    network.clear_fault("node-2", "node-1");
    cluster.isolate(2, Fault::Refuse);
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"v1"[..]), "the replica's value");
    cluster.shutdown().await;
}

/// Two overlapping puts of a key reach its replica in the order the owner applied them: the
/// second waits for the first one's replica, so the owner and its replica never end up
/// holding different values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_puts_reach_the_replica_in_order() {
    let cluster = three().await;
    let network = cluster.network().unwrap();
    let key = key_with(&cluster, 2, 1, "r:");
    let owner = cluster.node(2).engine().clone();
    network.set_call_fault(
        "node-2",
        "node-1",
        Call::Replicate,
        Fault::Delay(Duration::from_millis(300)),
    );
    let first = tokio::spawn({
        let (owner, key) = (owner.clone(), key.clone());
        async move { owner.put("ks", &key, "first").await }
    });
    wait_until(CONVERGE, "the owner holds the first put", || {
        let (owner, key) = (owner.clone(), key.clone());
        async move { owner.get("ks", &key).await.ok().flatten().as_deref() == Some(b"first") }
    })
    .await;
    network.clear_fault("node-2", "node-1");
    owner.put("ks", &key, "second").await.unwrap();
    first.await.unwrap().unwrap();

    cluster.isolate(2, Fault::Refuse);
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(
        v.as_deref(),
        Some(&b"second"[..]),
        "the replica holds the owner's last value"
    );
    cluster.shutdown().await;
}

/// `get_many` asks the replica for the keys whose owner cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_asks_the_replica_when_the_owner_is_gone() {
    let (cluster, key) = three_with_a_put().await;
    let other = cluster.key_owned_by("ks", 1, "o:");
    cluster.isolate(2, Fault::Refuse);

    let results = cluster
        .node(0)
        .engine()
        .get_many("ks", &[key.clone(), other.clone()])
        .await
        .unwrap();
    let values: Vec<Option<Vec<u8>>> = results
        .into_iter()
        .map(|r| r.result.unwrap().map(|v| v.to_vec()))
        .collect();
    assert_eq!(
        values,
        [
            Some(b"v1".to_vec()),
            Some(format!("v:{other}").into_bytes())
        ]
    );
    assert_eq!(cluster.sources[0].fetches_of(&key), 0, "not loaded");
    cluster.shutdown().await;
}

/// An owner that lacks a key — here flushed, as its peers flush a node that comes back —
/// asks the key's replica before its source, and keeps the answer (read repair).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_lacks_a_key_asks_the_replica_first() {
    let (cluster, key) = three_with_a_put().await;
    let network = cluster.network().unwrap();
    network
        .transport("node-0")
        .flush(&cluster.addrs[2], Duration::from_secs(2))
        .await
        .unwrap();

    for asker in [0, 2] {
        let v = cluster.node(asker).engine().get("ks", &key).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"v1"[..]), "read through node {asker}");
    }
    assert_eq!(cluster.sources[2].fetches_of(&key), 0, "not loaded");
    assert_eq!(
        network.delivered("node-2", "node-1", Call::Copies),
        1,
        "asked the replica once, then kept its answer"
    );
    cluster.shutdown().await;
}

/// A read repair never brings back a value that a delete in progress is removing: a read
/// that misses on the owner while the delete's invalidation is on its way to the replica
/// waits for it, and reads after the delete load the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_never_brings_back_a_value_being_deleted() {
    let cluster = three().await;
    let network = cluster.network().unwrap();
    let key = key_with(&cluster, 2, 1, "r:");
    let owner = cluster.node(2).engine().clone();
    owner.put("ks", &key, "v1").await.unwrap();
    network.set_call_fault(
        "node-2",
        "node-1",
        Call::Invalidate,
        Fault::Delay(Duration::from_millis(300)),
    );
    let invalidations = || network.delivered("node-2", "node-0", Call::Invalidate);
    let before = invalidations();
    let delete = tokio::spawn({
        let (owner, key) = (owner.clone(), key.clone());
        async move { owner.delete("ks", &key).await }
    });
    // Removed on the owner and node 0 by now; the replica's invalidation is on its way.
    wait_for(CONVERGE, "the delete reaches node 0", || {
        invalidations() > before
    })
    .await;
    let during = tokio::spawn({
        let (owner, key) = (owner.clone(), key.clone());
        async move { owner.get("ks", &key).await }
    });
    delete.await.unwrap().unwrap();
    during.await.unwrap().unwrap();

    let source = format!("v:{key}");
    for asker in [2, 0] {
        let v = cluster.node(asker).engine().get("ks", &key).await.unwrap();
        assert_eq!(
            v.as_deref(),
            Some(source.as_bytes()),
            "read through node {asker}"
        );
    }
    cluster.shutdown().await;
}

/// A node that comes back takes over the copies it keeps as a replica, not only the keys it
/// owns: once the owner is gone, its puts are read from the node that returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_node_takes_its_replica_copies_back() {
    let mut cluster = three().await;
    let key = key_with(&cluster, 0, 2, "r:");
    cluster.stop_node(2).await;
    cluster.wait_converged().await;
    // Node 1 is the key's replica while node 2 is away.
    cluster
        .node(1)
        .engine()
        .put("ks", &key, "v1")
        .await
        .unwrap();
    cluster.start_node(2).await;
    cluster.wait_converged().await;
    // Node 1 is neither owner nor replica any more: it drops its copy.
    let node_1 = cluster.node(1).engine().clone();
    wait_until(CONVERGE, "node 1 drops its copy", || {
        let engine = node_1.clone();
        async move {
            let stats = engine.keyspace_stats("ks").await.unwrap();
            stats.main_cache_entries == 0
        }
    })
    .await;

    cluster.isolate(0, Fault::Refuse);
    let v = cluster.node(1).engine().get("ks", &key).await.unwrap();
    assert_eq!(
        v.as_deref(),
        Some(&b"v1"[..]),
        "held by the returned replica"
    );
    assert_eq!(cluster.sources[1].fetches_of(&key), 0, "not loaded");
    cluster.shutdown().await;
}

/// An owner that falls silent (its calls lost, as when it is paused or cut off): once it
/// fails its probes, a read answers from the key's replica, well within the read timeout,
/// instead of waiting it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_owner_s_puts_are_read_from_its_replica() {
    let (cluster, key) = three_with_a_put().await;
    cluster.isolate(2, Fault::Drop);

    let started = Instant::now();
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"v1"[..]), "the replica's value");
    let read_timeout = cluster.node(0).engine().config().read_timeout;
    assert!(started.elapsed() < read_timeout, "{:?}", started.elapsed());
    cluster.shutdown().await;
}

/// A read sent to an owner that the ring drops before the read gives up on it asks the key's
/// new owner — the old owner's replica — not the replica in the new ring (which would be
/// this node, holding nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_owner_left_the_ring_meanwhile_asks_its_successor() {
    let cluster = TestCluster::builder(3)
        .in_memory()
        .specs(vec![replicated()])
        // A quarter of it, the least an owner is waited for, outlasts its leaving the ring.
        .edit(|_, c| c.engine.read_timeout = Duration::from_secs(4))
        .build()
        .await;
    let key = put_replicated(&cluster).await;
    cluster.isolate(2, Fault::Drop);

    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"v1"[..]), "the successor's value");
    assert_eq!(
        cluster.node(0).cluster().ring_members().len(),
        2,
        "the owner left the ring meanwhile"
    );
    cluster.shutdown().await;
}

/// Without replicas, an owner that falls silent and fails its probes is read around: the
/// key is loaded from the source beside it within the read timeout, and not kept (the owner
/// may be alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_owner_is_read_around_within_the_deadline() {
    let cluster = TestCluster::in_memory(3).await;
    let key = cluster.key_owned_by("ks", 2, "s:");
    cluster.isolate(2, Fault::Drop);

    let started = Instant::now();
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(format!("v:{key}").as_bytes()));
    let read_timeout = cluster.node(0).engine().config().read_timeout;
    assert!(started.elapsed() < read_timeout, "{:?}", started.elapsed());
    assert_eq!(cluster.sources[0].fetches_of(&key), 1, "loaded beside it");
    let stats = cluster.node(0).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!(stats.hot_cache_entries, 0, "not kept");
    cluster.shutdown().await;
}

/// While another member is still taking its keys over (a cluster forming), a write through a
/// joining member waits for it, rather than landing on a member that reads of the key stop
/// asking once the other one serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_joining_member_waits_for_the_others() {
    let mut cluster = TestCluster::builder(3)
        .in_memory()
        .started(1)
        .edit(|_, c| c.cluster.bootstrap_timeout = Duration::from_millis(300))
        .build()
        .await;
    let network = cluster.network().unwrap().clone();
    // Nodes 1 and 2 cannot take their keys over from node 0 until allowed.
    for joining in ["node-1", "node-2"] {
        network.set_call_fault(joining, "node-0", Call::Handoff, Fault::Refuse);
    }
    cluster.start_node(1).await;
    cluster.start_node(2).await;
    // Owned by node 1; while node 1 joins, written on node 2 once node 2 serves (before
    // that, node 0 served it).
    let all = Ring::new(cluster.ids.iter().map(NodeId::new));
    let without_1 = Ring::new(["node-0", "node-2"].map(NodeId::from));
    let key = (0..10_000)
        .map(|n| format!("j:{n}"))
        .find(|k| {
            all.owner("ks", k).map(NodeId::as_str) == Some("node-1")
                && without_1.owner("ks", k).map(NodeId::as_str) == Some("node-2")
        })
        .unwrap();
    wait_for(CONVERGE, "nodes 1 and 2 in every ring", || {
        (0..3).all(|i| cluster.node(i).cluster().ring_members().len() == 3)
    })
    .await;

    let writer = cluster.node(1).engine().clone();
    let mut put = tokio::spawn({
        let key = key.clone();
        async move { writer.put("ks", &key, "formed").await }
    });
    let early = tokio::time::timeout(Duration::from_millis(100), &mut put).await;
    let waited = early.is_err();
    network.clear_fault("node-2", "node-0");
    wait_for(CONVERGE, "node 1 sends the key to node 2", || {
        cluster.node(1).cluster().owner_of("ks", &key).0 == "node-2"
    })
    .await;
    match early {
        Ok(done) => done,
        Err(_) => put.await,
    }
    .unwrap()
    .unwrap();
    let v = cluster.node(1).engine().get("ks", &key).await.unwrap();
    assert_eq!(
        v.as_deref(),
        Some(&b"formed"[..]),
        "read while node 1 still joins"
    );
    assert!(waited, "the write waited while node 2 joined");
    network.clear_fault("node-1", "node-0");
    cluster.wait_converged().await;
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(
        v.as_deref(),
        Some(&b"formed"[..]),
        "read once node 1 serves it"
    );
    cluster.shutdown().await;
}

//! Membership: owner failure, join, leave, start-up quorum, topology events.

use std::time::Duration;

use distcache::{Node, NodeConfig, TopologyChange, client::Client};

use distcache_testkit::wait_until;
use distcache_testkit::{CONVERGE, TestCluster};

/// When the owner stops answering, the asking node loads the key itself: the client sees no
/// error, and the failure is counted in peer_errors. Once probes notice, the owner leaves
/// every ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_owner_falls_back_to_a_local_load() {
    // Nodes that stop without a word, as a crashed one would; probed seldom, so that no
    // probe happens to catch node 2 saying it is stopping (start-up probes on its own).
    let mut cluster = TestCluster::builder(3)
        .edit(|_, c| {
            c.cluster.announce_leave = false;
            c.cluster.probe_interval = std::time::Duration::from_secs(1);
        })
        .build()
        .await;
    let key = cluster.key_owned_by("ks", 2, "f:");
    cluster.stop_node(2).await;
    // Ask at once, before the failure is detected.
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(v.as_deref(), Some(format!("v:{key}").as_bytes()));
    assert_eq!(
        cluster.sources[0].fetches_of(&key),
        1,
        "loaded by the asking node"
    );
    let stats = cluster.node(0).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!(stats.stats.peer_errors, 1);
    assert_eq!(
        stats.hot_cache_entries, 1,
        "kept as a copy, not as an owned key"
    );
    cluster.wait_converged().await;
    cluster.shutdown().await;
}

/// A node that starts later joins every ring and takes over its keys; when it stops, it
/// leaves them again. Subscribers see it join, become owning, and leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave() {
    let mut cluster = TestCluster::builder(3).started(2).build().await;
    let mut events = cluster.node(0).subscribe_topology();
    let key = {
        // A key that node 2 will own once it joins.
        let all = distcache::Ring::new(["node-0", "node-1", "node-2"].map(distcache::NodeId::from));
        (0..10_000)
            .map(|n| format!("j:{n}"))
            .find(|k| all.owner("ks", k).map(|id| id.as_str()) == Some("node-2"))
            .unwrap()
    };
    cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert_eq!(cluster.sources[2].fetches_of(&key), 0);

    cluster.start_node(2).await;
    cluster.wait_converged().await;
    let joined = tokio::time::timeout(CONVERGE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined.change, TopologyChange::Joined);
    assert_eq!(joined.node_id, "node-2");
    assert_eq!(joined.addr, cluster.addrs[2]);
    // Then it took its keys over and serves them itself.
    let owning = tokio::time::timeout(CONVERGE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owning.change, TopologyChange::Owning);
    assert_eq!(owning.node_id, "node-2");

    // The new owner now loads its keys (a fresh key, so nothing is cached yet).
    let fresh = cluster.key_owned_by("ks", 2, "fresh:");
    cluster.node(1).engine().get("ks", &fresh).await.unwrap();
    assert_eq!(cluster.sources[2].fetches_of(&fresh), 1);
    assert_eq!(cluster.sources[1].fetches_of(&fresh), 0);

    cluster.stop_node(2).await;
    cluster.wait_converged().await;
    let left = tokio::time::timeout(CONVERGE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.change, TopologyChange::Left);
    assert_eq!(left.node_id, "node-2");
    assert_eq!(events.dropped(), 0);
    cluster.shutdown().await;
}

/// A node that shuts down tells its peers (and says `stopping` to probes): they take it out of
/// their rings at once, long before failed probes would, and their subscribers see it leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_announced() {
    // Failed probes would need 1000 in a row (50 s): only the node's own word can be in time.
    let mut cluster = TestCluster::builder(3)
        .edit(|_, c| c.cluster.failure_threshold = 1000)
        .build()
        .await;
    let mut events = cluster.node(0).subscribe_topology();
    cluster.stop_node(2).await;
    cluster.wait_converged().await;
    let left = tokio::time::timeout(CONVERGE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (left.change, left.node_id.as_str()),
        (TopologyChange::Left, "node-2")
    );
    cluster.shutdown().await;
}

/// A leave announcement is checked with the peer it names: a forged one, or one naming the
/// node itself, changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_leave_announcements_are_ignored() {
    let cluster = TestCluster::start(3).await;
    let http = reqwest::Client::new();
    for (id, addr) in [
        ("node-1", cluster.addrs[1].clone()),
        ("node-0", cluster.addrs[0].clone()),
        ("node-9", "127.0.0.1:1".to_owned()),
    ] {
        let forged = distcache::wire::Health {
            status: "ok".into(),
            node_id: id.into(),
            addr,
            ready: false,
            stopping: true,
            owning: false,
            ring: Vec::new(),
            agreed: false,
            discovery: None,
        };
        let response = http
            .post(format!(
                "http://{}/_distcache/peer/leaving",
                cluster.addrs[0]
            ))
            .json(&forged)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{id}");
    }
    let response = http
        .post(format!(
            "http://{}/_distcache/peer/leaving",
            cluster.addrs[0]
        ))
        .body("not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let mut ring: Vec<String> = cluster
        .node(0)
        .cluster()
        .ring_members()
        .iter()
        .map(|id| id.to_string())
        .collect();
    ring.sort();
    assert_eq!(ring, ["node-0", "node-1", "node-2"]);
    cluster.shutdown().await;
}

/// A peer that left and came back is flushed first: it missed the deletes in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_peer_is_flushed() {
    let mut cluster = TestCluster::start(2).await;
    let key = cluster.key_owned_by("ks", 1, "r:");
    cluster.node(1).engine().get("ks", &key).await.unwrap();
    cluster.stop_node(1).await;
    cluster.wait_converged().await;
    cluster.start_node(1).await;
    cluster.wait_converged().await;
    // A restarted node starts empty anyway; what matters is that it is back and serving.
    let v = cluster.node(0).engine().get("ks", &key).await.unwrap();
    assert!(v.is_some());
    cluster.shutdown().await;
}

/// Start-up fails with a clear error, naming the missing peers, when fewer than
/// minimum_peers_quorum members answer within bootstrap_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_without_quorum() {
    let absent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let absent_addr = absent.local_addr().unwrap().to_string();
    drop(absent);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::for_test("alone");
    config.peers = vec![absent_addr.clone()];
    config.cluster.minimum_peers_quorum = 2;
    config.cluster.bootstrap_timeout = Duration::from_millis(300);
    config.data_dir = dir.path().to_path_buf();
    let started = std::time::Instant::now();
    let err = Node::builder(config)
        .start(listener)
        .await
        .err()
        .expect("no quorum");
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = err.to_string();
    assert!(
        text.contains("quorum") && text.contains(&absent_addr),
        "{text}"
    );
}

/// Start-up waits for the quorum: a node is not ready while it waits, and starts once its
/// peer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_for_the_quorum() {
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = vec![
        la.local_addr().unwrap().to_string(),
        lb.local_addr().unwrap().to_string(),
    ];
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let config = |id: &str, dir: &tempfile::TempDir| {
        let mut c = NodeConfig::for_test(id);
        c.peers = addrs.clone();
        c.cluster.minimum_peers_quorum = 2;
        c.data_dir = dir.path().to_path_buf();
        c
    };
    let first = tokio::spawn(Node::builder(config("a", &dirs[0])).start(la));
    let client = Client::new([addrs[0].clone()]).unwrap();
    wait_until(Duration::from_secs(5), "node a answers, not ready", || {
        let c = &client;
        async move { c.health().await.is_ok_and(|h| !h.ready) }
    })
    .await;
    assert!(!first.is_finished(), "a waits for its quorum");
    let b = Node::builder(config("b", &dirs[1]))
        .start(lb)
        .await
        .unwrap();
    let a = first.await.unwrap().unwrap();
    assert!(a.is_ready() && b.is_ready());
    assert!(client.health().await.unwrap().ready);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Reads keep succeeding, each within its deadline, while a member leaves and rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_survive_membership_changes() {
    let mut cluster = TestCluster::start(3).await;
    let engine = cluster.node(0).engine().clone();
    let reader = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        for i in 0..400 {
            let started = std::time::Instant::now();
            let v = tokio::time::timeout(
                Duration::from_secs(5),
                engine.get("ks", &format!("m:{}", i % 97)),
            )
            .await
            .expect("a get outlived its deadline")
            .expect("a get failed");
            assert!(v.is_some());
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        slowest
    });
    cluster.stop_node(2).await;
    cluster.wait_converged().await;
    cluster.start_node(2).await;
    cluster.wait_converged().await;
    let slowest = reader.await.unwrap();
    assert!(
        slowest < Duration::from_secs(3),
        "slowest get took {slowest:?}"
    );
    cluster.shutdown().await;
}

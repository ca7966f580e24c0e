//! Whole nodes with no peers list finding each other through NATS: one by one, all at once
//! with a start-up quorum, growing by a node and shrinking by one while reads go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use distcache::client::Client;
use distcache::{NatsConfig, NatsDiscovery, Node, NodeConfig};
use distcache_testkit::{CONVERGE, NatsServer, TestSource, loopback_listener, spec, wait_until};

/// A node of the end-to-end test: its own source and data dir, found through NATS.
struct NatsNode {
    node: Node,
    source: Arc<TestSource>,
    _dir: tempfile::TempDir,
}

/// Starts node `i` with no peers list: it finds the others through NATS at `url`.
async fn start_node(i: usize, url: &str) -> NatsNode {
    start_node_waiting_for(i, url, 1).await
}

/// Like [`start_node`], the node waiting for `quorum` members before it serves.
async fn start_node_waiting_for(i: usize, url: &str, quorum: usize) -> NatsNode {
    let (listener, addr) = loopback_listener().await;
    let id = format!("node-{i}");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::for_test(&id);
    config.data_dir = dir.path().to_path_buf();
    assert!(config.peers.is_empty());
    config.cluster.minimum_peers_quorum = quorum;
    let discovery = NatsDiscovery::new(NatsConfig::for_test([url]), &id, &addr).expect("valid");
    let source = TestSource::batching();
    let node = Node::builder(config)
        .register_source("test", source.clone())
        .keyspace_spec(spec("ks"))
        .discovery(Arc::new(discovery))
        .start(listener)
        .await
        .expect("node starts");
    NatsNode {
        node,
        source,
        _dir: dir,
    }
}

/// Waits until every node's ring holds exactly `nodes` and they agree.
async fn wait_ring(nodes: &[&NatsNode]) {
    let mut want: Vec<String> = nodes.iter().map(|n| n.node.id().to_string()).collect();
    want.sort();
    wait_until(
        CONVERGE,
        "every ring holds exactly the running nodes",
        || {
            let ok = nodes.iter().all(|n| {
                let c = n.node.cluster();
                let mut have: Vec<String> =
                    c.ring_members().iter().map(|id| id.to_string()).collect();
                have.sort();
                have == want && c.agreed()
            });
            async move { ok }
        },
    )
    .await;
}

/// Nodes with no peers list form a cluster through NATS; a 4th joins and takes about a
/// quarter of the keys; one stops and leaves while reads go on, none failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn a_cluster_forms_grows_and_shrinks_through_nats() {
    let server = NatsServer::start().await;
    let url = server.url();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start_node(i, &url).await);
    }
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;

    nodes.push(start_node(3, &url).await);
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;
    let client = Client::new([nodes[0].node.addr().to_owned()]).expect("client");
    let keys: Vec<String> = (0..400).map(|k| format!("fresh-{k}")).collect();
    for key in &keys {
        let value = client.get("ks", key).await.expect("read");
        assert_eq!(value.as_deref(), Some(format!("v:{key}").as_bytes()));
    }
    let by_newcomer = nodes[3].source.fetches();
    assert!(
        (60..=140).contains(&by_newcomer),
        "the 4th node loaded {by_newcomer} of 400 keys, not about a quarter"
    );

    let reads = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let (stop_reading, mut reading) = tokio::sync::watch::channel(false);
    let reader = {
        let (reads, failures) = (Arc::clone(&reads), Arc::clone(&failures));
        let client = Client::new([nodes[2].node.addr().to_owned()]).expect("client");
        let keys = keys.clone();
        tokio::spawn(async move {
            for key in keys.iter().cycle() {
                if *reading.borrow_and_update() {
                    return;
                }
                match client.get("ks", key).await {
                    Ok(Some(_)) => reads.fetch_add(1, Ordering::SeqCst),
                    _ => failures.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };
    let leaving = nodes.remove(1);
    leaving.node.shutdown().await.expect("shutdown");
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;
    let before = reads.load(Ordering::SeqCst);
    wait_until(CONVERGE, "reads go on after the node left", || {
        let more = reads.load(Ordering::SeqCst) > before + 50;
        async move { more }
    })
    .await;
    stop_reading.send_replace(true);
    reader.await.expect("reader");
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no read failed");
    for n in &nodes {
        n.node.shutdown().await.expect("shutdown");
    }
}

/// Three nodes started at once, each waiting for a start-up quorum of three (as the pods of a
/// Deployment do): they find each other through NATS while they wait, and form one cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn nodes_started_together_reach_their_quorum_through_nats() {
    let server = NatsServer::start().await;
    let url = server.url();
    let starts = (0..3).map(|i| {
        let url = url.clone();
        tokio::spawn(async move {
            // Started apart, so that the first ones cannot hear of the later ones at start.
            tokio::time::sleep(Duration::from_millis(400 * i as u64)).await;
            start_node_waiting_for(i, &url, 3).await
        })
    });
    let mut nodes = Vec::new();
    for start in futures::future::join_all(starts).await {
        nodes.push(start.expect("start task"));
    }
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;
    wait_until(
        CONVERGE,
        "the control plane has the three nodes as voters",
        || {
            let voters = nodes[0]
                .node
                .control()
                .map(|c| c.status().members.iter().filter(|m| m.voter).count());
            async move { voters == Some(3) }
        },
    )
    .await;
    for n in &nodes {
        n.node.shutdown().await.expect("shutdown");
    }
}

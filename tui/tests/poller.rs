//! The poller against real nodes in this process: it learns the members from one endpoint,
//! and a member that stops stays in the snapshot, marked down with its error.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use distcache::{KeySpaceSpec, Node, NodeConfig, SourceSpec};
use distcache_tui::{PollConfig, Snapshot, poller};
use tokio::sync::mpsc;

/// `n` nodes forming one cluster, serving a put-only keyspace `scratch`.
async fn start(n: usize) -> (Vec<Node>, Vec<String>, Vec<tempfile::TempDir>) {
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        listeners.push(l);
    }
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let starts = listeners.into_iter().enumerate().map(|(i, l)| {
        let mut config = NodeConfig::for_test(&format!("node-{i}"));
        config.peers = addrs.clone();
        config.data_dir = dirs[i].path().to_path_buf();
        config.cluster.minimum_peers_quorum = n;
        Node::builder(config)
            .keyspace_spec(KeySpaceSpec::new("scratch", SourceSpec::None))
            .start(l)
    });
    let nodes = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("node starts"))
        .collect();
    (nodes, addrs, dirs)
}

/// Reads snapshots until one satisfies `ok`, for up to 20 s.
async fn until(
    snapshots: &mut mpsc::Receiver<Snapshot>,
    what: &str,
    ok: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, snapshots.recv()).await {
            Ok(Some(snapshot)) if ok(&snapshot) => return snapshot,
            Ok(Some(snapshot)) => last = Some(snapshot),
            Ok(None) => panic!("the poller stopped while waiting until {what}"),
            Err(_) => panic!("timed out waiting until {what}; last snapshot: {last:#?}"),
        }
    }
}

/// Given one endpoint, the poller shows every member; a member that stops stays listed,
/// down and with its error, while the others stay up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_follows_members_and_keeps_a_stopped_one() {
    let (mut nodes, addrs, _dirs) = start(3).await;
    let (tx, mut snapshots) = mpsc::channel(4);
    let poller = tokio::spawn(poller::run(
        PollConfig {
            endpoints: vec![addrs[0].clone()],
            token: None,
            interval: Duration::from_millis(100),
        },
        tx,
    ));

    let all_up = until(&mut snapshots, "three nodes are up", |s| {
        s.nodes.len() == 3 && s.nodes.iter().all(|n| n.up && n.ready)
    })
    .await;
    let ids: Vec<&str> = all_up.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["node-0", "node-1", "node-2"]);
    assert!(
        all_up
            .nodes
            .iter()
            .all(|n| n.keyspaces.iter().any(|k| k.name == "scratch"))
    );

    let stopped = nodes.pop().unwrap();
    stopped.shutdown().await.unwrap();
    let one_down = until(&mut snapshots, "node-2 is shown down", |s| {
        s.nodes.iter().any(|n| n.id == "node-2" && !n.up)
    })
    .await;
    assert_eq!(one_down.nodes.len(), 3, "{one_down:#?}");
    for n in &one_down.nodes {
        if n.id == "node-2" {
            assert_eq!(n.addr, addrs[2]);
            assert!(n.error.is_some(), "{n:#?}");
            assert!(n.keyspaces.is_empty());
        } else {
            assert!(n.up && n.error.is_none(), "{n:#?}");
        }
    }

    poller.abort();
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

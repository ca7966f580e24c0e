//! The poller against real nodes in this process: it learns the members from one endpoint,
//! and a member that stops stays in the snapshot, marked down with its error.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use distcache::{KeySpaceSpec, SourceSpec};
use distcache_testkit::TestCluster;
use distcache_tui::{PollConfig, Snapshot, poller};
use tokio::sync::mpsc;

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
    let mut cluster = TestCluster::builder(3)
        .specs(vec![KeySpaceSpec::new("scratch", SourceSpec::None)])
        .build()
        .await;
    let addrs = cluster.addrs.clone();
    let (tx, mut snapshots) = mpsc::channel(4);
    let poller = tokio::spawn(poller::run(
        PollConfig {
            tls: Default::default(),
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
    assert!(
        all_up
            .nodes
            .iter()
            .all(|n| n.discovery.as_deref() == Some("static") && n.last_seen == Some(all_up.at)),
        "{all_up:#?}"
    );

    cluster.stop_node(2).await;
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
            let seen = n.last_seen.expect("it answered before");
            assert!(seen < one_down.at, "{n:#?}");
        } else {
            assert!(n.up && n.error.is_none(), "{n:#?}");
        }
    }

    poller.abort();
    cluster.shutdown().await;
}

//! Control-plane latency on loopback: how long a keyspace update takes to commit, and until
//! the new revision is applied on all three nodes of a cluster.
//!
//! `cargo bench -p distcache --bench control` starts three real nodes in this process, sends
//! `UPDATES` keyspace updates through a follower, and prints p50/p99 of (a) the update call
//! (validated, committed by the raft majority, applied on the calling node) and (b) the time
//! until every node applied it, against the targets (p50 < 10 ms, visible p99 < 50 ms). Next to
//! them it prints two references measured in the same run: one fsync of the store (sled
//! flush) and one HTTP round trip to a node, since a commit costs a few of each.

use std::time::{Duration, Instant};

use distcache::client::Client;
use distcache::{KeySpaceSpec, SourceSpec};
use distcache_testkit::TestCluster;

const UPDATES: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn fsync_reference(dir: &std::path::Path) -> Duration {
    let db = sled::open(dir.join("fsync-reference")).expect("sled");
    let mut samples = Vec::new();
    for i in 0..100u32 {
        db.insert(i.to_be_bytes(), vec![0u8; 256]).expect("insert");
        let started = Instant::now();
        db.flush_async().await.expect("flush");
        samples.push(started.elapsed());
    }
    samples.sort();
    percentile(&samples, 0.5)
}

async fn rtt_reference(addr: &str) -> Duration {
    let client = Client::new([addr]).expect("client");
    let mut samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        client.health().await.expect("health");
        samples.push(started.elapsed());
    }
    samples.sort();
    percentile(&samples, 0.5)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; there is nothing to check quickly.
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let reference_dir = tempfile::tempdir().expect("dir");
        // Real election timing (the test defaults are faster and noisier).
        let cluster = TestCluster::builder(3)
            .specs(Vec::new())
            .edit(|_, config| config.control = distcache::ControlConfig::default())
            .build()
            .await;
        let leader = cluster.wait_leader().await;
        let follower = (leader + 1) % 3;
        let nodes: Vec<&distcache::Node> = (0..3).map(|i| cluster.node(i)).collect();
        let mut watchers: Vec<_> = nodes.iter().map(|n| n.engine().watch_revision()).collect();

        let mut commit = Vec::with_capacity(UPDATES);
        let mut visible = Vec::with_capacity(UPDATES);
        for i in 0..UPDATES {
            let mut spec = KeySpaceSpec::new("bench", SourceSpec::None);
            spec.warm_keys = vec![format!("k{i}")];
            let started = Instant::now();
            let revision = nodes[follower]
                .engine()
                .update_keyspace(spec)
                .await
                .expect("update");
            commit.push(started.elapsed());
            for w in watchers.iter_mut() {
                w.wait_for(|r| *r >= revision).await.expect("revision");
            }
            visible.push(started.elapsed());
        }
        commit.sort();
        visible.sort();
        let fsync = fsync_reference(reference_dir.path()).await;
        let rtt = rtt_reference(nodes[follower].addr()).await;

        let (c50, c99) = (percentile(&commit, 0.5), percentile(&commit, 0.99));
        let (v50, v99) = (percentile(&visible, 0.5), percentile(&visible, 0.99));
        println!("keyspace update through a follower, 3 nodes on loopback, {UPDATES} updates:");
        println!(
            "  commit (applied on the caller)  p50 {:>7.2} ms  p99 {:>7.2} ms   target p50 < 10 ms: {}",
            ms(c50),
            ms(c99),
            if c50 < Duration::from_millis(10) { "met" } else { "MISSED" }
        );
        println!(
            "  applied on all 3 nodes          p50 {:>7.2} ms  p99 {:>7.2} ms   target p99 < 50 ms: {}",
            ms(v50),
            ms(v99),
            if v99 < Duration::from_millis(50) { "met" } else { "MISSED" }
        );
        println!(
            "references in this run: fsync p50 {:.2} ms, HTTP round trip p50 {:.3} ms; commit p50 = {:.1}× fsync, {:.1}× round trip",
            ms(fsync),
            ms(rtt),
            ms(c50) / ms(fsync).max(1e-6),
            ms(c50) / ms(rtt).max(1e-6)
        );
        drop(nodes);
        cluster.shutdown().await;
    });
}

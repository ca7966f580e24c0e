//! The chaos suite: real node processes under a recorded read/write/catalog load while a fault
//! is injected, then a checker reads the history (see `distcache_testkit::chaos`). Every
//! scenario asserts: no wrong value, no stale read, no catalog anomaly, no read to a live node
//! past its deadline, and under 0.1 % failed reads to live nodes (the source-failure
//! scenarios, where failing is the right answer, excepted). Puts lost with their owner are
//! counted, not failed, where a put lives on its owner only (see the README); with
//! `replicas = 2`, no acknowledged put may be lost when one node is killed and restarted.
//!
//! Partition scenarios run their nodes in network namespaces ([`NetLab`]); where namespaces
//! cannot be created (not root, or `CHAOS_NO_NETNS` set) they say so and run the in-process
//! twin ([`MemoryRun`]) instead. A node cut off from the others may serve stale copies while
//! cut off (the checker counts those apart, see the README); everywhere else the rules hold.
//!
//! `scripts/chaos.sh` runs the same scenarios longer (`CHAOS_SECONDS`) and prints the table;
//! each test appends its row to `$CHAOS_REPORT` when that is set.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distcache::{KeySpaceSpec, SourceSpec};
use distcache_testkit::chaos::{
    Action, Answer, ChaosRun, History, KEYSPACE, MemoryRun, NetLab, Record, Report,
};

/// Length of each phase of a scenario (before, during and after its fault).
fn phase() -> Duration {
    let seconds = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_distcache"))
}

/// Appends `line` to `$CHAOS_REPORT` when that is set.
fn report_line(line: &str) {
    if let Some(path) = std::env::var_os("CHAOS_REPORT") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(file, "{line}").unwrap();
    }
}

/// Prints the row, appends it to `$CHAOS_REPORT`, and asserts the guarantees; the failure
/// rate of reads to live nodes too unless `expect_failures` (the source fails on purpose).
fn settle(report: &Report, expect_failures: bool) {
    println!("{}\n{report}", Report::header());
    for example in &report.examples {
        println!("  {example}");
    }
    report_line(&report.to_string());
    let why = format!("{report}\n{}", report.examples.join("\n"));
    assert!(report.operations > 100, "too little load: {why}");
    assert_eq!(report.wrong, 0, "wrong values: {why}");
    assert_eq!(report.stale, 0, "stale reads: {why}");
    assert_eq!(report.catalog, 0, "catalog anomalies: {why}");
    assert_eq!(report.late, 0, "reads past their deadline: {why}");
    println!(
        "live reads: {} of {} failed ({:.3} %)",
        report.live_read_failures,
        report.live_reads,
        report.live_failure_rate() * 100.0
    );
    if !expect_failures {
        assert!(
            report.live_failure_rate() < 0.001,
            "{} of {} reads to live nodes failed: {why}",
            report.live_read_failures,
            report.live_reads
        );
    }
}

/// Which node a kill scenario kills.
enum Victim {
    /// The node after the raft leader.
    Follower,
    /// The raft leader.
    Leader,
    /// The owner of the hot key `k0`.
    OwnerOfHotKey,
}

/// Under load: kill -9 of `victim`, then its restart on the same data directory; checked.
async fn kill_and_restart(victim: Victim, replicas: u8, scenario: &str) {
    let mut run = ChaosRun::start_with(binary(), 3, replicas).await;
    let owner = match victim {
        Victim::OwnerOfHotKey => {
            let owner = run
                .cluster
                .client(0, Duration::from_secs(2))
                .owner(KEYSPACE, "k0")
                .await
                .unwrap();
            Some(owner.owner.strip_prefix("node-").unwrap().parse().unwrap())
        }
        Victim::Follower | Victim::Leader => None,
    };
    run.load(4);
    run.run_for(phase()).await;
    let victim = match (victim, owner) {
        (_, Some(owner)) => owner,
        (Victim::Leader, None) => run.cluster.leader().await,
        (_, None) => (run.cluster.leader().await + 1) % 3,
    };
    run.kill(victim);
    run.run_for(phase()).await;
    run.restart(victim).await;
    run.run_for(phase()).await;
    let report = run.finish(scenario).await;
    settle(&report, false);
    if replicas > 1 {
        assert_eq!(
            report.lost_puts,
            0,
            "acknowledged puts lost with one node killed and restarted: {report}\n{}",
            report.examples.join("\n")
        );
    }
}

/// kill -9 of a follower under load, then a restart on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_a_follower() {
    kill_and_restart(Victim::Follower, 1, "kill -9 follower").await;
}

/// kill -9 of the raft leader under load, then a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_leader() {
    kill_and_restart(Victim::Leader, 1, "kill -9 leader").await;
}

/// kill -9 of the owner of the hottest key, then a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_owner_of_a_hot_key() {
    kill_and_restart(Victim::OwnerOfHotKey, 1, "kill -9 owner of hot key").await;
}

/// With `replicas = 2`, kill -9 of a hot key's owner and its restart keep every guarantee
/// and lose no acknowledged put: the replica serves the owner's puts while it is gone, and
/// the owner takes them back when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_owner_with_replicas() {
    kill_and_restart(Victim::OwnerOfHotKey, 2, "kill -9 owner, replicas=2").await;
}

/// SIGSTOP of a node for longer than its health threshold, then SIGCONT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_a_node() {
    let mut run = ChaosRun::start(binary(), 3).await;
    run.load(4);
    run.run_for(phase()).await;
    let victim = (run.cluster.leader().await + 2) % 3;
    run.pause(victim);
    run.run_for(phase().max(Duration::from_secs(1))).await;
    run.resume(victim);
    run.cluster.wait_ready(&[victim]).await;
    run.run_for(phase()).await;
    // Reads of the paused node's keys through live nodes answer from the source once it
    // fails its probes, well within their deadline.
    settle(&run.finish("SIGSTOP node > threshold").await, false);
}

/// Every node stopped, then all started again on their data: the catalog survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_stop_and_start() {
    let mut run = ChaosRun::start(binary(), 3).await;
    run.load(4);
    run.run_for(phase()).await;
    for i in 0..3 {
        run.stop_node(i).await;
    }
    for i in 0..3 {
        run.cluster.spawn(i);
    }
    run.cluster.wait_ready(&[0, 1, 2]).await;
    for i in 0..3 {
        run.history.up(i);
    }
    run.run_for(phase()).await;
    settle(&run.finish("full stop and start").await, false);
}

/// A source 10× slower than the read deadline: reads fail by their deadline, never later, and
/// the cluster serves normally once the source is fast again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_source() {
    let mut run = ChaosRun::start(binary(), 3).await;
    run.load(4);
    run.run_for(phase()).await;
    run.source
        .set_delay(distcache_testkit::chaos::READ_DEADLINE * 10);
    run.run_for(phase()).await;
    run.source.set_delay(Duration::ZERO);
    run.run_for(phase()).await;
    settle(&run.finish("source 10x slower").await, true);
}

/// A source that fails, then flaps (every other request fails), then recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_flapping_source() {
    let mut run = ChaosRun::start(binary(), 3).await;
    run.load(4);
    run.run_for(phase()).await;
    run.source.set_failing(true);
    run.run_for(phase()).await;
    run.source.set_failing(false);
    run.source.set_flapping(true);
    run.run_for(phase()).await;
    run.source.set_flapping(false);
    run.run_for(phase()).await;
    settle(&run.finish("source failing, flapping").await, true);
}

/// Catalog writes are accepted again less than 2 s after kill -9 of the leader: the median of
/// five failovers, each measured from the kill to the first committed write through a
/// survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_takes_under_two_seconds() {
    let mut run = ChaosRun::start(binary(), 3).await;
    let mut took = Vec::new();
    for round in 0..5u64 {
        let leader = run.cluster.leader().await;
        let survivor = run
            .cluster
            .client((leader + 1) % 3, Duration::from_secs(10));
        let mut spec = KeySpaceSpec::new("failover", SourceSpec::None);
        spec.default_ttl = Some(Duration::from_secs(round + 1));
        run.kill(leader);
        let killed = Instant::now();
        survivor.put_keyspace(&spec, None).await.unwrap();
        took.push(killed.elapsed());
        run.restart(leader).await;
    }
    took.sort();
    let median = took[2];
    println!("leader failover: median {median:?} of {took:?}");
    if let Some(path) = std::env::var_os("CHAOS_REPORT") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(
            file,
            "leader failover (kill -9 to next committed write): median {} ms of {:?}",
            median.as_millis(),
            took.iter().map(Duration::as_millis).collect::<Vec<_>>()
        )
        .unwrap();
    }
    assert!(
        median < Duration::from_secs(2),
        "median failover {median:?} of {took:?}"
    );
    drop(run);
}

/// How long after a heal every read must succeed again.
const RECOVERY: Duration = Duration::from_secs(2);

/// The raft leader cut off from the two other nodes for longer than the failure threshold,
/// then healed: the majority elects a leader and keeps committing, the cut-off node's catalog
/// writes fail with UNAVAILABLE and never take effect, under 0.1 % of reads fail (one that
/// needs the other side answers from the source once that side fails its probes), and every
/// read succeeds again soon after the heal.
#[test]
fn partition_the_leader_from_the_majority() {
    partition_scenario("partition, leader cut off", true);
}

/// A follower cut off from the leader and the other follower, then healed: as above.
#[test]
fn partition_a_follower_from_the_majority() {
    partition_scenario("partition, follower cut off", false);
}

/// Runs a partition scenario in network namespaces or, where they cannot be created, its
/// in-process twin, and says which ran.
fn partition_scenario(name: &'static str, cut_the_leader: bool) {
    let net = match std::env::var_os("CHAOS_NO_NETNS") {
        Some(_) => Err("CHAOS_NO_NETNS is set".to_owned()),
        None => NetLab::create(3).map_err(|e| e.to_string()),
    };
    let net = match net {
        Ok(net) => net,
        Err(why) => {
            let line = "partition: network namespaces unavailable, ran the in-process fault transport instead";
            println!("{line} ({why})");
            report_line(line);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            // No raft leader in memory (the nodes share one catalog): the variants cut
            // different nodes.
            runtime.block_on(in_process_partition(if cut_the_leader { 0 } else { 2 }));
            return;
        }
    };
    let line = "partition: ran in network namespaces (a veth pair per node, cut by routing rules)";
    println!("{line}: {}", net.hub_namespace());
    report_line(line);
    // Everything that opens sockets runs on the hub's runtime; the lab is torn down when the
    // run ends, a panic included.
    let runtime = net.runtime().unwrap();
    let outcome = runtime.block_on(async move {
        tokio::spawn(namespaced_partition(net, name, cut_the_leader)).await
    });
    drop(runtime);
    if let Err(e) = outcome
        && let Ok(panic) = e.try_into_panic()
    {
        std::panic::resume_unwind(panic);
    }
}

async fn namespaced_partition(net: NetLab, name: &str, cut_the_leader: bool) {
    let mut run = ChaosRun::start_in(binary(), 3, Some(net), 1).await;
    let leader = run.cluster.leader().await;
    let cut = if cut_the_leader {
        leader
    } else {
        (leader + 1) % 3
    };
    let majority: Vec<usize> = (0..3).filter(|&i| i != cut).collect();
    run.load_with(4, &majority);
    run.run_for(phase()).await;
    run.partition(&[cut]);
    // Meanwhile catalog writes through the cut-off node, each waited for in full before the
    // heal (so that none can be committed by it).
    let cut_writes = run
        .catalog_writes_through(
            cut,
            phase().max(Duration::from_secs(2)),
            Duration::from_millis(500),
            Duration::from_secs(10),
        )
        .await;
    run.heal();
    let healed = run.history.now();
    run.run_for(phase().max(RECOVERY + Duration::from_secs(1)))
        .await;
    let history = Arc::clone(&run.history);
    let report = run.finish(name).await;
    settle(&report, false);

    let why = format!("{report}\n{}", report.examples.join("\n"));
    assert!(!cut_writes.is_empty());
    for write in &cut_writes {
        assert!(
            matches!(&write.answer, Answer::Failed(e) if e.starts_with("UNAVAILABLE")),
            "a catalog write through the cut-off node: {write:?}"
        );
    }
    let cut_markers: Vec<u64> = cut_writes
        .iter()
        .filter_map(|w| match w.action {
            Action::Catalog { marker } => Some(marker),
            _ => None,
        })
        .collect();
    let shown = history
        .views()
        .into_iter()
        .find(|v| v.marker.is_some_and(|m| cut_markers.contains(&m)));
    assert!(
        shown.is_none(),
        "a write refused by the cut-off node took effect later: {shown:?}"
    );
    let (_, cut_at, _) = history.cuts()[0].clone();
    let majority_writes: Vec<Record> = history
        .records()
        .into_iter()
        .filter(|r| {
            matches!(r.action, Action::Catalog { marker } if !cut_markers.contains(&marker))
                && r.invoked >= cut_at
                && r.completed <= healed
        })
        .collect();
    assert!(
        !majority_writes.is_empty(),
        "no catalog write through the majority during the partition"
    );
    let refused: Vec<&Record> = majority_writes
        .iter()
        .filter(|r| !r.acknowledged())
        .collect();
    assert!(
        refused.is_empty(),
        "catalog writes through the majority failed during the partition: {refused:?}\n{why}"
    );
    reads_recover(&history, healed, &why);
}

/// The in-process twin: node `cut` cut off on an in-memory network, then healed.
async fn in_process_partition(cut: usize) {
    let mut run = MemoryRun::start(3).await;
    run.load(4);
    run.run_for(phase()).await;
    run.partition(&[cut]);
    run.run_for(phase().max(Duration::from_secs(2))).await;
    run.heal();
    let healed = run.history.now();
    run.run_for(phase().max(RECOVERY + Duration::from_secs(1)))
        .await;
    let history = Arc::clone(&run.history);
    let report = run.finish(&format!("in-process: node {cut} cut off")).await;
    settle(&report, false);
    let why = format!("{report}\n{}", report.examples.join("\n"));
    reads_recover(&history, healed, &why);
}

/// Every read invoked [`RECOVERY`] after the heal succeeded, on every node.
fn reads_recover(history: &History, healed: Duration, why: &str) {
    let after: Vec<Record> = history
        .records()
        .into_iter()
        .filter(|r| matches!(r.action, Action::Get { .. }) && r.invoked > healed + RECOVERY)
        .collect();
    assert!(!after.is_empty(), "no reads after the heal: {why}");
    let failed: Vec<&Record> = after.iter().filter(|r| !r.acknowledged()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} reads after the heal failed, e.g. {:?}\n{why}",
        failed.len(),
        after.len(),
        failed.first()
    );
}

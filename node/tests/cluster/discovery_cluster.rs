//! Clusters whose members come from discovery alone (no `peers` list): formed from DNS
//! records published after the nodes started, grown by a record change, a member dropped
//! and taken back when its record or its pod's readiness changes.

use std::time::Duration;

use distcache::{DiscoveryConfig, DiscoveryProvider, DnsConfig, KubernetesConfig, NodeId, Ring};
use distcache_testkit::{CONVERGE, FakeKubeApi, TestCluster, TestDns, wait_until};

const SRV: &str = "_distcache._tcp";

/// How many of `n` keys of `ks` node `id` owns in a ring of `members`.
fn owned_by(id: &str, members: &[&str], n: usize) -> usize {
    let ring = Ring::new(members.iter().map(NodeId::new));
    (0..n)
        .filter(|i| ring.owner("ks", &format!("k{i}")).map(NodeId::as_str) == Some(id))
        .count()
}

/// Waits until node `i`'s ring holds exactly `want`.
async fn wait_ring(cluster: &TestCluster, i: usize, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    wait_until(CONVERGE, &format!("node {i}'s ring is {want:?}"), || {
        let ring = cluster.node(i).cluster().ring_ids();
        let want = want.clone();
        async move { ring == want }
    })
    .await;
}

/// Three nodes started with quorum 3 and no records find each other once the SRV records
/// appear (start-up follows discovery), form one raft group, and serve; a record change
/// brings a fourth, which owns about a quarter of the keys; a record removed takes a live
/// member out of the others' rings (a Left event), and its return brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_cluster_forms_grows_and_follows_records() {
    let dns = TestDns::start("distcache.test.").await;
    let (server, name) = (dns.addr(), dns.name(SRV));
    let builder = TestCluster::builder(4)
        .started(3)
        .discovery(move |_| DiscoveryConfig {
            provider: DiscoveryProvider::Dns,
            dns: DnsConfig {
                name: name.clone(),
                server: Some(server.clone()),
                interval: Duration::from_millis(50),
                port: None,
            },
            ..DiscoveryConfig::default()
        });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let building = tokio::spawn(builder.build_with(move |addrs| {
        let _ = tx.send(addrs.to_vec());
    }));
    let addrs = rx.await.unwrap();
    dns.publish_srv(SRV, &addrs[..3]).await;
    let mut cluster = tokio::time::timeout(CONVERGE, building)
        .await
        .expect("the nodes form a cluster once their records appear")
        .unwrap();
    let leader = cluster.wait_leader().await;
    let status = cluster.node(leader).control().unwrap().status();
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 3);

    dns.publish_srv(SRV, &addrs).await;
    cluster.start_node(3).await;
    cluster.wait_converged().await;
    let all = ["node-0", "node-1", "node-2", "node-3"];
    let fourth = owned_by("node-3", &all, 4000);
    assert!(
        (800..1200).contains(&fourth),
        "node-3 owns {fourth} of 4000 keys"
    );
    for i in 0..4 {
        let (owner, _) = cluster.node(i).cluster().owner_of("ks", "k7");
        let want = Ring::new(all.map(NodeId::from))
            .owner("ks", "k7")
            .unwrap()
            .to_string();
        assert_eq!(owner, want, "node {i} routes k7 to its owner");
    }
    wait_until(CONVERGE, "node-3 joins the raft group", || {
        let members = cluster.node(leader).control().unwrap().status().members;
        async move { members.iter().any(|m| m.name == "node-3") }
    })
    .await;

    let mut events = cluster.node(0).subscribe_topology();
    let without_1 = [addrs[0].clone(), addrs[2].clone(), addrs[3].clone()];
    dns.publish_srv(SRV, &without_1).await;
    for i in [0, 2, 3] {
        wait_ring(&cluster, i, &["node-0", "node-2", "node-3"]).await;
    }
    let left = tokio::time::timeout(CONVERGE, async {
        loop {
            let e = events.recv().await.expect("events");
            if e.node_id == "node-1" && e.change == distcache::TopologyChange::Left {
                return e;
            }
        }
    })
    .await
    .expect("a Left event for node-1");
    assert_eq!(left.addr, addrs[1]);
    assert!(cluster.node(0).engine().get("ks", "k1").await.is_ok());

    dns.publish_srv(SRV, &addrs).await;
    cluster.wait_converged().await;
    cluster.shutdown().await;
}

/// Nodes found through the Kubernetes API form a cluster; a fourth pod joins; a pod
/// turning unready leaves the other members' rings while reads keep succeeding, and comes
/// back when it is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_cluster_grows_and_drops_an_unready_pod() {
    let api = FakeKubeApi::start().await;
    let kubeconfig = api.kubeconfig().to_path_buf();
    let builder = TestCluster::builder(4)
        .started(3)
        .discovery(move |_| DiscoveryConfig {
            provider: DiscoveryProvider::Kubernetes,
            kubernetes: KubernetesConfig {
                kubeconfig: Some(kubeconfig.clone()),
                ..KubernetesConfig::default()
            },
            ..DiscoveryConfig::default()
        });
    let mut cluster = builder
        .build_with(|addrs| {
            for (i, addr) in addrs.iter().enumerate().take(3) {
                api.set_pod(&format!("node-{i}"), addr, true);
            }
        })
        .await;
    cluster.wait_leader().await;

    api.set_pod("node-3", &cluster.addrs[3], true);
    cluster.start_node(3).await;
    cluster.wait_converged().await;

    let engine = cluster.node(0).engine().clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&done);
    let reader = tokio::spawn(async move {
        let mut reads = 0usize;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let key = format!("k{}", reads % 101);
            engine.get("ks", &key).await.expect("a read failed");
            reads += 1;
            tokio::task::yield_now().await;
        }
        reads
    });
    api.set_pod("node-1", &cluster.addrs[1], false);
    for i in [0, 2, 3] {
        wait_ring(&cluster, i, &["node-0", "node-2", "node-3"]).await;
    }
    api.set_pod("node-1", &cluster.addrs[1], true);
    cluster.wait_converged().await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.await.expect("no read failed");
    assert!(reads > 0);
    cluster.shutdown().await;
}

/// A node that cannot see its start-up quorum through discovery fails after
/// `bootstrap_timeout`, saying how many it saw, of how many, and through which source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_quorum_error_names_the_discovery_source() {
    let dns = TestDns::start("distcache.test.").await;
    let (listener, addr) = distcache_testkit::loopback_listener().await;
    dns.publish_srv(SRV, &[addr]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = distcache::NodeConfig::for_test("alone");
    config.data_dir = dir.path().to_path_buf();
    config.cluster.minimum_peers_quorum = 3;
    config.cluster.bootstrap_timeout = Duration::from_millis(300);
    config.discovery = DiscoveryConfig {
        provider: DiscoveryProvider::Dns,
        dns: DnsConfig {
            name: dns.name(SRV),
            server: Some(dns.addr()),
            ..DnsConfig::default()
        },
        ..DiscoveryConfig::default()
    };
    let err = distcache::Node::builder(config)
        .start(listener)
        .await
        .err()
        .expect("no quorum");
    let text = err.to_string();
    assert!(
        text.contains("saw 1 of 3 members after 300ms via dns _distcache._tcp.distcache.test."),
        "{text}"
    );
}

/// A node that finds a running cluster joins it without waiting for its start-up quorum
/// (the quorum is for forming a cluster), so a replacement pod of a shrunken cluster starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_cluster_ends_the_quorum_wait() {
    let mut cluster = TestCluster::builder(2)
        .started(1)
        .edit(|i, c| {
            if i == 1 {
                c.cluster.minimum_peers_quorum = 5;
            }
        })
        .build()
        .await;
    cluster.start_node(1).await;
    cluster.wait_converged().await;
    cluster.shutdown().await;
}

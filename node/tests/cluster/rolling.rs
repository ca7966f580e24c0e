//! Rolling replacement (issue 16): the deploy every Kubernetes user does. Every node of a live
//! three-node cluster is replaced, one at a time, by a new node with a new id — the new pod
//! starts and becomes ready, then the old one leaves the Service and stops cleanly — while a
//! client reads through the Service and keeps updating the catalog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use distcache::client::Client;
use distcache::{DiscoveryConfig, DiscoveryProvider, KeySpaceSpec, KubernetesConfig, SourceSpec};
use distcache_testkit::{CONVERGE, FakeKubeApi, TestCluster, wait_until};

fn extra(max_bytes: u64) -> KeySpaceSpec {
    let mut spec = KeySpaceSpec::new("extra", SourceSpec::None);
    spec.max_bytes = Some(max_bytes);
    spec
}

/// The voters of the raft group, as its leader sees them, sorted, once every running node
/// follows one running leader (a stopped leader is still named until the next election).
async fn voters(cluster: &TestCluster) -> Vec<String> {
    let mut leader = None;
    wait_until(
        CONVERGE,
        "the running nodes follow a running leader",
        || {
            let named: Vec<Option<String>> = cluster
                .running()
                .into_iter()
                .map(|i| cluster.node(i).control().unwrap().status().leader)
                .collect();
            leader = named
                .first()
                .cloned()
                .flatten()
                .filter(|first| named.iter().all(|n| n.as_ref() == Some(first)));
            leader = leader
                .take()
                .and_then(|name| {
                    cluster
                        .running()
                        .into_iter()
                        .find(|i| cluster.ids[*i] == name)
                })
                .map(|i| cluster.ids[i].clone());
            std::future::ready(leader.is_some())
        },
    )
    .await;
    let name = leader.unwrap();
    let index = cluster.ids.iter().position(|id| *id == name).unwrap();
    let mut voters: Vec<String> = cluster
        .node(index)
        .control()
        .unwrap()
        .status()
        .members
        .into_iter()
        .filter(|m| m.voter)
        .map(|m| m.name)
        .collect();
    voters.sort();
    voters
}

/// A node's index and a client of it.
type Endpoint = (usize, Arc<Client>);

/// The Service: the nodes a client may reach now (ready, not terminating).
#[derive(Clone, Default)]
struct Service {
    endpoints: Arc<Mutex<Vec<Endpoint>>>,
    /// Requests finished, reads and updates alike: a change of endpoints is in effect once
    /// this moved on by the number of clients.
    finished: Arc<AtomicUsize>,
}

impl Service {
    fn pick(&self, n: usize) -> Arc<Client> {
        let endpoints = self.endpoints.lock().unwrap();
        Arc::clone(&endpoints[n % endpoints.len()].1)
    }

    fn add(&self, i: usize, client: Client) {
        self.endpoints.lock().unwrap().push((i, Arc::new(client)));
    }

    /// Takes node `i` out, and waits until every client finished a request begun after that.
    async fn remove(&self, i: usize) {
        self.endpoints.lock().unwrap().retain(|(j, _)| *j != i);
        let now = self.finished.load(Ordering::SeqCst);
        wait_until(CONVERGE, "the clients moved past the change", || {
            let done = self.finished.load(Ordering::SeqCst);
            async move { done >= now + 2 }
        })
        .await;
    }
}

/// All three nodes replaced by new ones (new ids), one at a time, under reads and catalog
/// updates: no read fails, every update commits, the catalog holds the last one on every
/// node, and raft ends with three voters, all of them new nodes — each old voter handing its
/// seat to the new node as it stops (the grace period is longer than the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_replacement_keeps_reads_updates_and_a_raft_majority() {
    let api = FakeKubeApi::start().await;
    let kubeconfig = api.kubeconfig().to_path_buf();
    let mut cluster = TestCluster::builder(6)
        .started(3)
        // Far longer than the test: a stopped voter is replaced only by handing its seat over
        // as it stops, never by the leader giving up on it.
        .edit(|_, c| c.control.voter_grace_period = std::time::Duration::from_secs(600))
        .discovery(move |_| DiscoveryConfig {
            provider: DiscoveryProvider::Kubernetes,
            kubernetes: KubernetesConfig {
                kubeconfig: Some(kubeconfig.clone()),
                ..KubernetesConfig::default()
            },
            ..DiscoveryConfig::default()
        })
        .build_with(|addrs| {
            for (i, addr) in addrs.iter().enumerate().take(3) {
                api.set_pod(&format!("node-{i}"), addr, true);
            }
        })
        .await;
    assert_eq!(voters(&cluster).await, ["node-0", "node-1", "node-2"]);
    let service = Service::default();
    for i in 0..3 {
        service.add(i, cluster.client(i));
    }
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (service, done) = (service.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut reads = 0usize;
            while !done.load(Ordering::SeqCst) {
                let key = format!("k{}", reads % 97);
                if let Err(e) = service.pick(reads).get("ks", &key).await {
                    panic!("read {reads} of {key} failed: {e}");
                }
                reads += 1;
                service.finished.fetch_add(1, Ordering::SeqCst);
            }
            reads
        })
    };
    let writer = {
        let (service, done) = (service.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut committed, mut revision) = (0u64, 0u64);
            while !done.load(Ordering::SeqCst) {
                let size = 1 << 20 | (committed + 1);
                let client = service.pick(committed as usize);
                match client.put_keyspace(&extra(size), None).await {
                    Ok(change) => revision = change.revision,
                    Err(e) => panic!("update {} failed: {e}", committed + 1),
                }
                committed += 1;
                service.finished.fetch_add(1, Ordering::SeqCst);
            }
            (committed, revision)
        })
    };

    for old in 0..3 {
        let new = old + 3;
        // The new pod starts; it is ready once it joined (a caught-up learner) and owns keys.
        api.set_pod(&format!("node-{new}"), &cluster.addrs[new], true);
        cluster.start_node(new).await;
        cluster.wait_converged().await;
        service.add(new, cluster.client(new));
        // The old pod terminates: out of the Service, then a clean stop, which hands its
        // voter seat to the new node.
        service.remove(old).await;
        api.delete_pod(&format!("node-{old}"));
        cluster.stop_node(old).await;
        cluster.wait_converged().await;
        let gone = format!("node-{old}");
        wait_until(
            CONVERGE,
            "three voters, none of them the stopped node",
            || {
                let (cluster, gone) = (&cluster, &gone);
                async move {
                    let seats = voters(cluster).await;
                    seats.len() == 3 && !seats.contains(gone)
                }
            },
        )
        .await;
    }

    let finished = service.finished.load(Ordering::SeqCst);
    wait_until(CONVERGE, "more requests after the last replacement", || {
        let now = service.finished.load(Ordering::SeqCst);
        async move { now >= finished + 10 }
    })
    .await;
    done.store(true, Ordering::SeqCst);
    assert!(reader.await.expect("no read failed") > 0);
    let (committed, revision) = writer.await.expect("every update committed");
    assert!(committed > 0);
    assert_eq!(voters(&cluster).await, ["node-3", "node-4", "node-5"]);
    cluster.wait_revision(revision).await;
    let last = Some(1 << 20 | committed);
    for i in 3..6 {
        let spec = cluster.client(i).keyspace("extra").await.unwrap();
        assert_eq!(
            spec.max_bytes, last,
            "node-{i} holds the last committed update"
        );
    }
    cluster.shutdown().await;
}

/// A voter that stopped cleanly (handing its seat to the learner) and comes back with its
/// data resumes its raft state — no new group, no re-initialisation — is taken back in by the
/// leader, and catches up with the catalog changed while it was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_that_left_cleanly_comes_back_into_the_same_group() {
    let mut cluster = TestCluster::start(4).await;
    wait_until(CONVERGE, "three voters and a learner", || {
        let cluster = &cluster;
        async move {
            let v = voters(cluster).await;
            let leader = cluster.wait_leader().await;
            v.len() == 3
                && cluster
                    .node(leader)
                    .control()
                    .unwrap()
                    .status()
                    .members
                    .len()
                    == 4
        }
    })
    .await;
    let seats = voters(&cluster).await;
    let victim = cluster
        .ids
        .iter()
        .position(|id| seats.contains(id))
        .unwrap();
    let name = cluster.ids[victim].clone();
    cluster.stop_node(victim).await;
    let after = voters(&cluster).await;
    assert!(after.len() == 3 && !after.contains(&name), "{after:?}");

    let running = cluster.running()[0];
    let revision = cluster
        .node(running)
        .engine()
        .update_keyspace(extra(2 << 20))
        .await
        .unwrap();
    cluster.start_node(victim).await;
    cluster.wait_revision(revision).await;
    assert_eq!(
        cluster
            .node(victim)
            .engine()
            .keyspace("extra")
            .and_then(|s| s.max_bytes),
        Some(2 << 20)
    );
    wait_until(CONVERGE, "the leader has it back as a member", || {
        let (cluster, name) = (&cluster, &name);
        async move {
            let leader = cluster.wait_leader().await;
            let members = cluster.node(leader).control().unwrap().status().members;
            members.len() == 4 && members.iter().any(|m| m.name == *name)
        }
    })
    .await;
    let later = cluster
        .node(victim)
        .engine()
        .update_keyspace(extra(3 << 20))
        .await
        .unwrap();
    assert_eq!(later, revision + 1, "one group, one revision sequence");
    cluster.shutdown().await;
}

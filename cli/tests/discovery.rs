//! Clusters of real `distcache node start` processes that find each other through DNS (a
//! DNS server on loopback), the Kubernetes API (the fake API of the testkit) or NATS (a real
//! nats-server), with no
//! `--peers`: three form a cluster, a fourth joins and owns about a quarter of the keys, and
//! one is killed with SIGKILL and leaves — while a client reads and updates the catalog
//! without a single failure, and raft replaces the dead voter.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use distcache::client::Client;
use distcache::{KeySpaceSpec, SourceSpec};
use distcache_testkit::{FakeKubeApi, NatsServer, TestDns, free_addr, wait_until};

const WITHIN: Duration = Duration::from_secs(30);
const SRV: &str = "_distcache._tcp";

/// Settings every node shares: fast probes, fast raft, a short voter grace period.
const NODE_TOML: &str = r#"
[cluster]
probe_interval = "100ms"
probe_timeout = "300ms"
failure_threshold = 2
bootstrap_timeout = "20s"
join_retry_interval = "50ms"

[control]
heartbeat_interval = "50ms"
election_timeout_min = "300ms"
election_timeout_max = "600ms"
voter_grace_period = "2s"
reconcile_interval = "100ms"
"#;

/// NATS timings of the test nodes: a killed node is dropped within half a second.
const NATS_TOML: &str = r#"
[discovery.nats]
announce_interval = "100ms"
peer_timeout = "500ms"
request_timeout = "300ms"
reconnect_wait = "100ms"
"#;

/// Where the nodes are listed.
enum Directory {
    Dns(TestDns),
    Kubernetes(FakeKubeApi),
    /// The nodes list themselves: each announces itself on the server's subject.
    Nats(NatsServer),
}

impl Directory {
    /// The flags that point a node at this directory.
    fn flags(&self) -> Vec<String> {
        match self {
            Directory::Dns(dns) => [
                "--discovery",
                "dns",
                "--dns-name",
                &dns.name(SRV),
                "--dns-server",
                &dns.addr(),
                "--dns-interval",
                "100ms",
            ]
            .map(String::from)
            .to_vec(),
            Directory::Kubernetes(_) => ["--discovery", "kubernetes"].map(String::from).to_vec(),
            Directory::Nats(nats) => ["--discovery", "nats", "--nats-url", &nats.url()]
                .map(String::from)
                .to_vec(),
        }
    }

    /// Lists exactly the nodes `which` (by index into `addrs`).
    async fn show(&self, addrs: &[String], which: &[usize]) {
        match self {
            Directory::Dns(dns) => {
                let listed: Vec<String> = which.iter().map(|i| addrs[*i].clone()).collect();
                dns.publish_srv(SRV, &listed).await;
            }
            Directory::Kubernetes(api) => {
                for (i, addr) in addrs.iter().enumerate() {
                    if which.contains(&i) {
                        api.set_pod(&format!("node-{i}"), addr, true);
                    } else {
                        api.delete_pod(&format!("node-{i}"));
                    }
                }
            }
            // A node is listed while it announces itself, and dropped when it goes silent.
            Directory::Nats(_) => {}
        }
    }
}

/// Node processes, killed when dropped.
struct Procs {
    dir: tempfile::TempDir,
    addrs: Vec<String>,
    children: Vec<Option<Child>>,
    flags: Vec<String>,
    kubeconfig: Option<PathBuf>,
}

impl Procs {
    fn new(n: usize, directory: &Directory) -> Procs {
        let dir = tempfile::tempdir().unwrap();
        let toml = match directory {
            Directory::Nats(_) => format!("{NODE_TOML}{NATS_TOML}"),
            _ => NODE_TOML.to_owned(),
        };
        std::fs::write(dir.path().join("node.toml"), toml).unwrap();
        std::fs::write(
            dir.path().join("ks.toml"),
            "[[keyspace]]\nname = \"ks\"\nsource = { kind = \"none\" }\n",
        )
        .unwrap();
        Procs {
            dir,
            addrs: (0..n).map(|_| free_addr()).collect(),
            children: (0..n).map(|_| None).collect(),
            flags: directory.flags(),
            kubeconfig: match directory {
                Directory::Kubernetes(api) => Some(api.kubeconfig().to_path_buf()),
                Directory::Dns(_) | Directory::Nats(_) => None,
            },
        }
    }

    /// Starts node `i`, which waits for a start-up quorum of 3 (or a running cluster).
    fn spawn(&mut self, i: usize) {
        let path = self.dir.path();
        let log = std::fs::File::create(path.join(format!("node-{i}.log"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_distcache"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .args(["node", "start", "--config"])
            .arg(path.join("node.toml"))
            .args(["--id", &format!("node-{i}"), "--listen", &self.addrs[i]])
            .arg("--data-dir")
            .arg(path.join(format!("data-{i}")))
            .arg("--keyspace-file")
            .arg(path.join("ks.toml"))
            .args(["--minimum-peers-quorum", "3"])
            .args(&self.flags);
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig);
        }
        self.children[i] = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL: no leave announcement, no raft shutdown.
    fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn client(&self, i: usize) -> Client {
        Client::new([self.addrs[i].clone()])
            .unwrap()
            .with_timeout(Duration::from_secs(5))
    }

    /// What node `i` logged, for a failure message.
    fn log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("node-{i}.log")))
            .unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Waits until each of `nodes` is ready with a ring of exactly `ring` (ids).
    async fn wait_ring(&self, nodes: &[usize], ring: &[usize]) {
        let want: Vec<String> = ring.iter().map(|i| format!("node-{i}")).collect();
        for &i in nodes {
            let client = self.client(i);
            let (client, want) = (&client, &want);
            let ok = tokio::time::timeout(WITHIN, async move {
                loop {
                    if let Ok(h) = client.health().await
                        && h.ready
                        && h.ring == *want
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            assert!(
                ok.is_ok(),
                "node {i} never saw ring {want:?}; its log:\n{}",
                self.log(i)
            );
        }
    }

    /// Waits until node `i` sees a raft group whose voters are exactly `voters`.
    async fn wait_voters(&self, i: usize, voters: &[usize]) {
        let want: Vec<String> = voters.iter().map(|v| format!("node-{v}")).collect();
        let client = self.client(i);
        wait_until(WITHIN, &format!("voters {want:?}"), || {
            let (client, want) = (&client, &want);
            async move {
                client.cluster().await.is_ok_and(|c| {
                    let mut have: Vec<String> = c
                        .members
                        .iter()
                        .filter(|m| m.voter)
                        .map(|m| m.id.clone())
                        .collect();
                    have.sort();
                    have == *want
                })
            }
        })
        .await;
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn extra(max_bytes: u64) -> KeySpaceSpec {
    let mut spec = KeySpaceSpec::new("extra", SourceSpec::None);
    spec.max_bytes = Some(max_bytes);
    spec
}

/// The whole life of a cluster found through `directory`.
async fn cluster_life(directory: Directory) {
    let mut procs = Procs::new(4, &directory);
    let addrs = procs.addrs.clone();
    directory.show(&addrs, &[0, 1, 2]).await;
    for i in 0..3 {
        procs.spawn(i);
    }
    procs.wait_ring(&[0, 1, 2], &[0, 1, 2]).await;
    procs.wait_voters(0, &[0, 1, 2]).await;
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    for key in &keys {
        procs
            .client(0)
            .put("ks", key, key.clone(), None)
            .await
            .unwrap();
    }

    // A fourth node joins through a directory change and owns about a quarter of the keys.
    directory.show(&addrs, &[0, 1, 2, 3]).await;
    procs.spawn(3);
    procs.wait_ring(&[0, 1, 2, 3], &[0, 1, 2, 3]).await;
    let mut fourth = 0;
    for key in &keys {
        if procs.client(1).owner("ks", key).await.unwrap().owner == "node-3" {
            fourth += 1;
        }
    }
    assert!(
        (25..=75).contains(&fourth),
        "node-3 owns {fourth} of 200 keys"
    );

    // Readers on nodes 0 and 3 and a catalog writer run while a node dies.
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [0, 3]
        .into_iter()
        .map(|i| {
            let (client, keys, done) = (procs.client(i), keys.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut reads = 0usize;
                while !done.load(Ordering::SeqCst) {
                    let key = &keys[reads % keys.len()];
                    if let Err(e) = client.get("ks", key).await {
                        panic!("read of {key} through node {i} failed: {e}");
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writer = {
        let (client, done) = (procs.client(0), Arc::clone(&done));
        tokio::spawn(async move {
            let mut committed = 0u64;
            while !done.load(Ordering::SeqCst) {
                let bytes = 1 << 20 | (committed + 1);
                if let Err(e) = client.put_keyspace(&extra(bytes), None).await {
                    panic!("keyspace update {} failed: {e}", committed + 1);
                }
                committed += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            committed
        })
    };

    // Kill the raft leader when it is node 1 or 2 (writes must survive an election), else
    // node 1; it leaves the rings, then the directory, and raft replaces it with node 3.
    let leader = procs
        .client(0)
        .cluster()
        .await
        .unwrap()
        .leader
        .unwrap_or_default();
    let victim = if leader == "node-2" { 2 } else { 1 };
    let survivors: Vec<usize> = (0..4).filter(|i| *i != victim).collect();
    procs.kill(victim);
    procs.wait_ring(&survivors, &survivors).await;
    directory.show(&addrs, &survivors).await;
    procs.wait_voters(0, &survivors[..]).await;
    let committed_before = procs.client(0).cluster().await.unwrap().applied_revision;
    wait_until(WITHIN, "more updates commit after the replacement", || {
        let client = procs.client(3);
        async move {
            client
                .cluster()
                .await
                .is_ok_and(|c| c.applied_revision >= committed_before + 5)
        }
    })
    .await;
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.expect("no read failed") > 0);
    }
    let committed = writer.await.expect("every update committed");
    assert!(committed >= 5);
    // Committed and applied on the node that answered; the others apply it within moments.
    for &i in &survivors {
        let client = procs.client(i);
        wait_until(WITHIN, &format!("node {i} applied the last update"), || {
            let client = &client;
            async move {
                client
                    .keyspace("extra")
                    .await
                    .is_ok_and(|spec| spec.max_bytes == Some(1 << 20 | committed))
            }
        })
        .await;
    }
}

/// DNS (SRV records on a loopback DNS server): form, grow, lose a node to SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_cluster_forms_grows_and_survives_a_killed_node() {
    cluster_life(Directory::Dns(TestDns::start("distcache.test.").await)).await;
}

/// Kubernetes (pods by label through the fake API): form, grow, lose a node to SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_cluster_forms_grows_and_survives_a_killed_node() {
    cluster_life(Directory::Kubernetes(FakeKubeApi::start().await)).await;
}

/// NATS (a real nats-server; the nodes announce themselves): form, grow, lose a node to
/// SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn nats_cluster_forms_grows_and_survives_a_killed_node() {
    cluster_life(Directory::Nats(NatsServer::start().await)).await;
}

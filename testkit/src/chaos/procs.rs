//! A cluster of real `distcache node start` processes, for fault injection: kill -9, stop,
//! pause (SIGSTOP) and resume, restart with the same data directory; and, when started in
//! network namespaces ([`NetLab`]), partitions between chosen nodes.
//!
//! The nodes run on loopback, or each in its own namespace (then the cluster's clients work
//! only from a thread in the lab's hub namespace: see [`NetLab::runtime`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use distcache::client::Client;

use super::netns::{NetLab, NetnsError};
use crate::free_addr;

/// Timings of chaos nodes: members notice a dead peer within a few hundred milliseconds.
const NODE_TOML: &str = r#"
[cluster]
probe_interval = "100ms"
probe_timeout = "300ms"
failure_threshold = 3
bootstrap_timeout = "30s"
join_retry_interval = "50ms"

# Raft keeps its production timings (heartbeat 100 ms, elections 500–1000 ms): the suite
# measures failover as it is deployed.
[control]
voter_grace_period = "30s"
reconcile_interval = "100ms"
"#;

/// How long a node may take to start.
const START_WITHIN: Duration = Duration::from_secs(30);

/// Node processes, killed when dropped.
pub struct ProcCluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    /// Each node's `host:port`.
    pub addrs: Vec<String>,
    children: Vec<Option<Child>>,
    /// The namespaces the nodes run in; dropped after the children are killed.
    net: Option<NetLab>,
}

impl ProcCluster {
    /// Starts `n` nodes of `binary` serving the keyspaces in `keyspace_toml`, and waits until
    /// every one is ready with all `n` in its ring.
    pub async fn start(binary: &Path, n: usize, keyspace_toml: &str) -> ProcCluster {
        ProcCluster::start_in(binary, n, keyspace_toml, None).await
    }

    /// [`start`](Self::start), with node `i` in namespace `i` of `net` when it is given (and
    /// listening on its address there).
    pub async fn start_in(
        binary: &Path,
        n: usize,
        keyspace_toml: &str,
        net: Option<NetLab>,
    ) -> ProcCluster {
        let addrs = match &net {
            Some(net) => (0..n).map(|i| net.node_addr(i)).collect(),
            None => (0..n).map(|_| free_addr()).collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("node.toml"), NODE_TOML).unwrap();
        std::fs::write(dir.path().join("ks.toml"), keyspace_toml).unwrap();
        let mut cluster = ProcCluster {
            binary: binary.to_path_buf(),
            dir,
            addrs,
            children: (0..n).map(|_| None).collect(),
            net,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_ready(&(0..n).collect::<Vec<_>>()).await;
        cluster
    }

    /// The number of nodes, running or not.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True for a cluster of no nodes.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Starts node `i` (again), on its address and data directory.
    pub fn spawn(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "node {i} runs already");
        let path = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.join(format!("node-{i}.log")))
            .unwrap();
        let peers = self.addrs.join(",");
        let mut command = match &self.net {
            Some(net) => net.command(i, &self.binary),
            None => Command::new(&self.binary),
        };
        let child = command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // The nodes' log filter: `CHAOS_LOG` (e.g. `info,distcache::engine=debug`), else info.
            .env(
                "DISTCACHE_LOG",
                std::env::var("CHAOS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .args(["node", "start", "--config"])
            .arg(path.join("node.toml"))
            .args(["--id", &format!("node-{i}"), "--listen", &self.addrs[i]])
            .args(["--peers", &peers])
            .arg("--data-dir")
            .arg(path.join(format!("data-{i}")))
            .arg("--keyspace-file")
            .arg(path.join("ks.toml"))
            .args(["--minimum-peers-quorum", &self.len().to_string()])
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// SIGKILL: no goodbye, no raft hand-over, no flush beyond what was durable.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to end (SIGKILL after 20 s).
    pub async fn stop(&mut self, i: usize) {
        let Some(mut child) = self.children[i].take() else {
            return;
        };
        signal(&child, "TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGSTOP: the process holds its sockets but answers nothing.
    pub fn pause(&self, i: usize) {
        if let Some(child) = &self.children[i] {
            signal(child, "STOP");
        }
    }

    /// SIGCONT.
    pub fn resume(&self, i: usize) {
        if let Some(child) = &self.children[i] {
            signal(child, "CONT");
        }
    }

    /// Drops every packet between a node of `a` and a node of `b`, both ways (clients still
    /// reach every node). Only in namespaces.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<(), NetnsError> {
        match &self.net {
            Some(net) => net.partition(a, b),
            None => panic!("partitions need a cluster started in network namespaces"),
        }
    }

    /// Removes every partition.
    pub fn heal(&self) -> Result<(), NetnsError> {
        match &self.net {
            Some(net) => net.heal(),
            None => Ok(()),
        }
    }

    /// A client of node `i` only, with `timeout` per request.
    pub fn client(&self, i: usize, timeout: Duration) -> Client {
        Client::new([self.addrs[i].clone()])
            .unwrap()
            .with_timeout(timeout)
    }

    /// A client of `nodes` (it moves on when one cannot be reached).
    pub fn clients_of(&self, nodes: &[usize], timeout: Duration) -> Client {
        Client::new(nodes.iter().map(|&i| self.addrs[i].clone()))
            .unwrap()
            .with_timeout(timeout)
    }

    /// A client of every node (it moves on when one cannot be reached).
    pub fn any_client(&self, timeout: Duration) -> Client {
        Client::new(self.addrs.clone())
            .unwrap()
            .with_timeout(timeout)
    }

    /// Waits until each of `nodes` is ready and sees every running node in its ring.
    pub async fn wait_ready(&self, nodes: &[usize]) {
        let running: Vec<String> = (0..self.len())
            .filter(|i| self.children[*i].is_some())
            .map(|i| format!("node-{i}"))
            .collect();
        for &i in nodes {
            let client = self.client(i, Duration::from_secs(2));
            let mut ready = false;
            let deadline = std::time::Instant::now() + START_WITHIN;
            while std::time::Instant::now() < deadline {
                if let Ok(h) = client.health().await
                    && h.ready
                    && running.iter().all(|id| h.ring.contains(id))
                {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(
                ready,
                "node {i} not ready in time; its log:\n{}",
                self.log(i)
            );
        }
    }

    /// The index of the raft leader, as the first running node that names one says.
    pub async fn leader(&self) -> usize {
        let deadline = std::time::Instant::now() + START_WITHIN;
        while std::time::Instant::now() < deadline {
            for i in (0..self.len()).filter(|i| self.children[*i].is_some()) {
                let client = self.client(i, Duration::from_millis(500));
                if let Ok(info) = client.cluster().await
                    && let Some(leader) = info.leader
                    && let Some(index) = leader.strip_prefix("node-")
                    && let Ok(index) = index.parse::<usize>()
                    && self.children.get(index).is_some_and(Option::is_some)
                {
                    return index;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no leader within {START_WITHIN:?}");
    }

    /// The last lines node `i` logged.
    pub fn log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("node-{i}.log")))
            .unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Whether any node's log holds a panic.
    pub fn panicked(&self) -> Option<usize> {
        (0..self.len()).find(|i| {
            std::fs::read_to_string(self.dir.path().join(format!("node-{i}.log")))
                .unwrap_or_default()
                .contains("panicked")
        })
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.resume(i);
            self.kill(i);
        }
        // For a look at the nodes' logs after a run: `CHAOS_KEEP_LOGS=1`.
        if std::env::var_os("CHAOS_KEEP_LOGS").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("chaos: node logs kept in {}", self.dir.path().display());
        }
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

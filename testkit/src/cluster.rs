//! `TestCluster`: N real nodes in this process, each on its own loopback port (bound to port 0
//! up front, so a node can be started late or restarted on the same address), each with its own
//! data source and counters. Every multi-node test uses it.

use std::sync::Arc;
use std::time::Duration;

use distcache::client::Client;
use distcache::{KeySpaceSpec, Node, NodeConfig, NodeId, Ring};
use tokio::net::TcpListener;

use crate::source::{TestSource, spec, wait_until};

/// How long any convergence may take before a test fails.
pub const CONVERGE: Duration = Duration::from_secs(15);

/// Adjusts the configuration of node `i`.
type EditConfig = Arc<dyn Fn(usize, &mut NodeConfig) + Send + Sync>;

pub struct TestCluster {
    nodes: Vec<Option<Node>>,
    listeners: Vec<Option<TcpListener>>,
    pub addrs: Vec<String>,
    pub ids: Vec<String>,
    pub sources: Vec<Arc<TestSource>>,
    specs: Vec<KeySpaceSpec>,
    edit: EditConfig,
    data_dirs: Vec<tempfile::TempDir>,
    /// Nodes started together at build: they form the control plane together.
    initial: usize,
    local_catalogs: bool,
}

pub struct Builder {
    nodes: usize,
    started: usize,
    local_catalogs: bool,
    specs: Vec<KeySpaceSpec>,
    edit: EditConfig,
}

impl Builder {
    /// Nodes started by `build` (the rest are bound but not started).
    pub fn started(mut self, n: usize) -> Self {
        self.started = n;
        self
    }

    /// Each node follows its own in-memory catalog instead of the raft control plane.
    pub fn local_catalogs(mut self) -> Self {
        self.local_catalogs = true;
        self
    }

    /// Keyspaces every node serves (default: `ks` over the node's test source).
    pub fn specs(mut self, specs: Vec<KeySpaceSpec>) -> Self {
        self.specs = specs;
        self
    }

    /// Adjusts each node's configuration (by index).
    pub fn edit(mut self, f: impl Fn(usize, &mut NodeConfig) + Send + Sync + 'static) -> Self {
        self.edit = Arc::new(f);
        self
    }

    pub async fn build(self) -> TestCluster {
        self.build_with(|_| {}).await
    }

    /// Like `build`, telling `bound` the nodes' addresses before any node starts.
    pub async fn build_with(self, bound: impl FnOnce(&[String])) -> TestCluster {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..self.nodes {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push(l.local_addr().expect("addr").to_string());
            listeners.push(Some(l));
        }
        bound(&addrs);
        let mut cluster = TestCluster {
            nodes: (0..self.nodes).map(|_| None).collect(),
            listeners,
            addrs,
            ids: (0..self.nodes).map(|i| format!("node-{i}")).collect(),
            sources: (0..self.nodes).map(|_| TestSource::batching()).collect(),
            specs: self.specs,
            edit: self.edit,
            data_dirs: (0..self.nodes)
                .map(|_| tempfile::tempdir().expect("temp dir"))
                .collect(),
            initial: self.started,
            local_catalogs: self.local_catalogs,
        };
        let starts = (0..self.started).map(|i| cluster.prepare(i));
        let prepared: Vec<_> = starts.collect();
        let nodes = futures::future::join_all(prepared.into_iter().map(|(b, l)| b.start(l))).await;
        for (i, node) in nodes.into_iter().enumerate() {
            cluster.nodes[i] = Some(node.expect("node starts"));
        }
        cluster.wait_converged().await;
        cluster
    }
}

impl TestCluster {
    pub fn builder(nodes: usize) -> Builder {
        Builder {
            nodes,
            started: nodes,
            local_catalogs: false,
            specs: vec![spec("ks")],
            edit: Arc::new(|_, _| {}),
        }
    }

    /// N started nodes serving keyspace `ks`.
    pub async fn start(nodes: usize) -> TestCluster {
        TestCluster::builder(nodes).build().await
    }

    fn config(&self, i: usize) -> NodeConfig {
        let mut config = NodeConfig::for_test(&self.ids[i]);
        config.peers = self.addrs.clone();
        config.data_dir = self.data_dirs[i].path().to_path_buf();
        // The nodes started together form the control plane together; later ones join it.
        config.cluster.minimum_peers_quorum = if i < self.initial {
            self.initial.max(1)
        } else {
            1
        };
        (self.edit)(i, &mut config);
        config
    }

    fn prepare(&mut self, i: usize) -> (distcache::NodeBuilder, TcpListener) {
        let mut builder =
            Node::builder(self.config(i)).register_source("test", self.sources[i].clone());
        if self.local_catalogs {
            builder = builder.catalog(Arc::new(distcache::LocalCatalog::new()));
        }
        for s in &self.specs {
            builder = builder.keyspace_spec(s.clone());
        }
        let listener = self.listeners[i].take().expect("node already running");
        (builder, listener)
    }

    /// Starts node `i` (bound but not running), waiting until it serves.
    pub async fn start_node(&mut self, i: usize) {
        if self.listeners[i].is_none() {
            let l = TcpListener::bind(&self.addrs[i])
                .await
                .expect("rebind same address");
            self.listeners[i] = Some(l);
        }
        let (builder, listener) = self.prepare(i);
        self.nodes[i] = Some(builder.start(listener).await.expect("node starts"));
    }

    /// Stops node `i`; its address refuses connections afterwards.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await.expect("shutdown");
        }
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.is_running(*i))
            .collect()
    }

    pub fn client(&self, i: usize) -> Client {
        Client::new([self.addrs[i].clone()]).expect("client")
    }

    /// The index of the node that owns `key` of `ks` among the running nodes.
    pub fn owner_of(&self, ks: &str, key: &str) -> usize {
        let ring = Ring::new(
            self.running()
                .into_iter()
                .map(|i| NodeId::new(&self.ids[i])),
        );
        let owner = ring.owner(ks, key).expect("a running node");
        self.ids
            .iter()
            .position(|id| id == owner.as_str())
            .expect("owner is a node")
    }

    /// A key of `ks` owned by node `i` (with `prefix`).
    pub fn key_owned_by(&self, ks: &str, i: usize, prefix: &str) -> String {
        (0..10_000)
            .map(|n| format!("{prefix}{n}"))
            .find(|k| self.owner_of(ks, k) == i)
            .expect("some key is owned by every node")
    }

    /// Waits until every running node's ring holds exactly the running nodes, and every node
    /// is owning and agrees with the others. On time-out, says what each node sees.
    pub async fn wait_converged(&self) {
        let mut want: Vec<String> = self
            .running()
            .iter()
            .map(|i| self.ids[*i].clone())
            .collect();
        want.sort();
        let converged = |i: usize| {
            let cluster = self.node(i).cluster();
            let mut have: Vec<String> = cluster
                .ring_members()
                .iter()
                .map(|id| id.to_string())
                .collect();
            have.sort();
            have == want && cluster.agreed()
        };
        let deadline = std::time::Instant::now() + CONVERGE;
        while !self.running().into_iter().all(converged) {
            if std::time::Instant::now() >= deadline {
                let seen: Vec<String> = self
                    .running()
                    .into_iter()
                    .map(|i| {
                        let c = self.node(i).cluster();
                        format!(
                            "node {i}: ring {:?}, owning {}, agreed {}, members {:?}",
                            c.ring_ids(),
                            c.is_owning(),
                            c.agreed(),
                            c.members()
                        )
                    })
                    .collect();
                panic!("rings did not converge on {want:?}:\n{}", seen.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The index of the node that leads the control plane, once every running node agrees.
    pub async fn wait_leader(&self) -> usize {
        let mut leader = None;
        wait_until(CONVERGE, "every running node follows one leader", || {
            let names: Vec<Option<String>> = self
                .running()
                .into_iter()
                .map(|i| self.node(i).control().and_then(|c| c.status().leader))
                .collect();
            let agreed = names
                .first()
                .cloned()
                .flatten()
                .filter(|first| names.iter().all(|n| n.as_deref() == Some(first.as_str())));
            leader = agreed.and_then(|name| self.ids.iter().position(|id| *id == name));
            let found = leader.is_some_and(|l| self.is_running(l));
            async move { found }
        })
        .await;
        leader.expect("a leader")
    }

    /// Waits until every running node applied catalog revision `revision`.
    pub async fn wait_revision(&self, revision: u64) {
        wait_until(CONVERGE, "every running node applied the revision", || {
            let all = self
                .running()
                .into_iter()
                .all(|i| self.node(i).engine().revision() >= revision);
            async move { all }
        })
        .await;
    }

    /// Total fetches over every node's source.
    pub fn total_fetches(&self) -> usize {
        self.sources.iter().map(|s| s.fetches()).sum()
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }
}

//! `TestCluster`: N real nodes in the test's process, each with its own data source and
//! counters, on one of two wires:
//!
//! - **sockets** (the default): each node on its own loopback port, bound to port 0 up front
//!   so a node can be started late or restarted on the same address; the raft control plane
//!   unless [`Builder::local_catalogs`];
//! - **in memory** ([`Builder::in_memory`]): the nodes call each other through a
//!   [`MemoryNetwork`], which can drop, delay or refuse calls between named nodes; they
//!   share one in-memory catalog (the control plane talks HTTP).
//!
//! Every multi-node test and bench starts its nodes here.

use std::sync::Arc;
use std::time::Duration;

use distcache::client::Client;
use distcache::memnet::{Fault, MemoryNetwork};
use distcache::{DiscoveryConfig, KeySpaceSpec, LocalCatalog, Node, NodeConfig, NodeId, Ring};
use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::source::{TestSource, spec};
use crate::wait::wait_until;

/// How long any convergence may take before a test fails.
pub const CONVERGE: Duration = Duration::from_secs(15);

/// Adjusts the configuration of node `i`.
type EditConfig = Arc<dyn Fn(usize, &mut NodeConfig) + Send + Sync>;

/// The discovery settings of node `i` (instead of the static list of every address).
type DiscoveryFor = Arc<dyn Fn(usize) -> DiscoveryConfig + Send + Sync>;

/// How the nodes reach each other.
enum Wire {
    Sockets {
        listeners: Vec<Option<TcpListener>>,
        data_dirs: Vec<tempfile::TempDir>,
        /// Each node follows its own in-memory catalog instead of the control plane.
        local_catalogs: bool,
    },
    Memory {
        network: Arc<MemoryNetwork>,
        catalog: Arc<LocalCatalog>,
    },
}

/// Nodes of one test, started and stopped by index.
pub struct TestCluster {
    nodes: Vec<Option<Node>>,
    wire: Wire,
    /// Where each node is reached.
    pub addrs: Vec<String>,
    /// Each node's id: `node-<index>`.
    pub ids: Vec<String>,
    /// Each node's data source, registered as `test`.
    pub sources: Vec<Arc<TestSource>>,
    specs: Vec<KeySpaceSpec>,
    edit: EditConfig,
    discovery: Option<DiscoveryFor>,
    /// Nodes started together at build: they form the control plane together.
    initial: usize,
}

/// Shapes a [`TestCluster`] before it starts.
pub struct Builder {
    nodes: usize,
    started: usize,
    local_catalogs: bool,
    in_memory: bool,
    specs: Vec<KeySpaceSpec>,
    edit: EditConfig,
    discovery: Option<DiscoveryFor>,
}

impl Builder {
    /// The nodes find each other with `discovery(i)` (a DNS name, the Kubernetes API)
    /// instead of a static list of every node's address.
    pub fn discovery(
        mut self,
        f: impl Fn(usize) -> DiscoveryConfig + Send + Sync + 'static,
    ) -> Self {
        self.discovery = Some(Arc::new(f));
        self
    }

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

    /// The nodes talk over an in-memory network (see [`TestCluster::network`]) and share
    /// one in-memory catalog.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
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

    /// Starts the nodes and waits until their rings agree.
    pub async fn build(self) -> TestCluster {
        self.build_with(|_| {}).await
    }

    /// Like `build`, telling `bound` the nodes' addresses before any node starts.
    pub async fn build_with(self, bound: impl FnOnce(&[String])) -> TestCluster {
        let (wire, addrs) = if self.in_memory {
            let addrs = (0..self.nodes)
                .map(|i| format!("node-{i}.memory:3320"))
                .collect();
            let wire = Wire::Memory {
                network: MemoryNetwork::new(),
                catalog: Arc::new(LocalCatalog::new()),
            };
            (wire, addrs)
        } else {
            let mut listeners = Vec::new();
            let mut addrs = Vec::new();
            for _ in 0..self.nodes {
                let (listener, addr) = crate::ports::loopback_listener().await;
                listeners.push(Some(listener));
                addrs.push(addr);
            }
            let wire = Wire::Sockets {
                listeners,
                data_dirs: (0..self.nodes)
                    .map(|_| tempfile::tempdir().expect("temp dir"))
                    .collect(),
                local_catalogs: self.local_catalogs,
            };
            (wire, addrs)
        };
        bound(&addrs);
        let mut cluster = TestCluster {
            nodes: (0..self.nodes).map(|_| None).collect(),
            wire,
            addrs,
            ids: (0..self.nodes).map(|i| format!("node-{i}")).collect(),
            sources: (0..self.nodes).map(|_| TestSource::batching()).collect(),
            specs: self.specs,
            edit: self.edit,
            discovery: self.discovery,
            initial: self.started,
        };
        let starts: Vec<_> = (0..self.started).map(|i| cluster.launch(i)).collect();
        let nodes = futures::future::join_all(starts).await;
        for (i, node) in nodes.into_iter().enumerate() {
            cluster.nodes[i] = Some(node.expect("node starts"));
        }
        cluster.wait_converged().await;
        cluster
    }
}

impl TestCluster {
    /// A builder for `nodes` nodes, all started, serving keyspace `ks`, over sockets.
    pub fn builder(nodes: usize) -> Builder {
        Builder {
            nodes,
            started: nodes,
            local_catalogs: false,
            in_memory: false,
            specs: vec![spec("ks")],
            edit: Arc::new(|_, _| {}),
            discovery: None,
        }
    }

    /// N started nodes serving keyspace `ks` over sockets.
    pub async fn start(nodes: usize) -> TestCluster {
        TestCluster::builder(nodes).build().await
    }

    /// N started nodes serving keyspace `ks` over an in-memory network.
    pub async fn in_memory(nodes: usize) -> TestCluster {
        TestCluster::builder(nodes).in_memory().build().await
    }

    /// The in-memory network, to inject faults or count calls (`None` over sockets).
    pub fn network(&self) -> Option<&Arc<MemoryNetwork>> {
        match &self.wire {
            Wire::Memory { network, .. } => Some(network),
            Wire::Sockets { .. } => None,
        }
    }

    fn config(&self, i: usize) -> NodeConfig {
        let mut config = NodeConfig::for_test(&self.ids[i]);
        match &self.discovery {
            Some(discovery) => config.discovery = discovery(i),
            None => config.peers = self.addrs.clone(),
        }
        if let Wire::Sockets { data_dirs, .. } = &self.wire {
            config.data_dir = data_dirs[i].path().to_path_buf();
        }
        // The nodes started together form the control plane together; later ones join it.
        config.cluster.minimum_peers_quorum = if i < self.initial {
            self.initial.max(1)
        } else {
            1
        };
        (self.edit)(i, &mut config);
        config
    }

    /// Starts node `i` on the cluster's wire (its listener is taken: it must not run).
    fn launch(&mut self, i: usize) -> BoxFuture<'static, distcache::Result<Node>> {
        let mut builder =
            Node::builder(self.config(i)).register_source("test", self.sources[i].clone());
        for s in &self.specs {
            builder = builder.keyspace_spec(s.clone());
        }
        let addr = self.addrs[i].clone();
        match &mut self.wire {
            Wire::Sockets {
                listeners,
                local_catalogs,
                ..
            } => {
                if *local_catalogs {
                    builder = builder.catalog(Arc::new(LocalCatalog::new()));
                }
                let listener = listeners[i].take().expect("node already running");
                Box::pin(builder.start(listener))
            }
            Wire::Memory { network, catalog } => {
                let network = Arc::clone(network);
                let builder = builder.catalog(catalog.clone());
                Box::pin(async move { builder.start_in_memory(&network, &addr).await })
            }
        }
    }

    /// Starts node `i` (bound but not running), waiting until it serves.
    pub async fn start_node(&mut self, i: usize) {
        if let Wire::Sockets { listeners, .. } = &mut self.wire
            && listeners[i].is_none()
        {
            let l = TcpListener::bind(&self.addrs[i])
                .await
                .expect("rebind same address");
            listeners[i] = Some(l);
        }
        self.nodes[i] = Some(self.launch(i).await.expect("node starts"));
    }

    /// Stops node `i`; its address refuses connections afterwards.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await.expect("shutdown");
        }
    }

    /// Makes every call between node `i` and the others meet `fault`, both ways (in memory
    /// only): `Fault::Refuse` looks like a crashed node, `Fault::Drop` like a partition.
    pub fn isolate(&self, i: usize, fault: Fault) {
        let network = self.network().expect("faults need an in-memory cluster");
        for (j, other) in self.ids.iter().enumerate() {
            if j != i {
                network.set_fault(other, &self.ids[i], fault);
                network.set_fault(&self.ids[i], other, fault);
            }
        }
    }

    /// Running node `i`.
    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// The indexes of the running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.is_running(*i))
            .collect()
    }

    /// An HTTP client of node `i` (over sockets).
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
        let running: Vec<&Node> = self.running().into_iter().map(|i| self.node(i)).collect();
        let leader = wait_leader(&running).await;
        self.ids
            .iter()
            .position(|id| *id == leader)
            .expect("the leader is a node of this cluster")
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

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }
}

/// The id of the node that leads the control plane, once all of `nodes` follow it.
pub async fn wait_leader(nodes: &[&Node]) -> String {
    let mut leader = None;
    wait_until(CONVERGE, "every node follows one leader", || {
        let names: Vec<Option<String>> = nodes
            .iter()
            .map(|n| n.control().and_then(|c| c.status().leader))
            .collect();
        leader = one_leader(&names);
        std::future::ready(leader.is_some())
    })
    .await;
    leader.expect("a leader")
}

/// The leader every node names, when they all name the same one.
fn one_leader(names: &[Option<String>]) -> Option<String> {
    let first = names.first().cloned().flatten()?;
    names
        .iter()
        .all(|n| n.as_deref() == Some(first.as_str()))
        .then_some(first)
}

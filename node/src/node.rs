//! A cluster node: the engine, its HTTP server, membership and discovery, started and stopped
//! as one.
//!
//! Start-up order: serve HTTP at once (so peers can probe this node; `readyz` answers 503
//! meanwhile), find peers through discovery, wait for the start-up quorum, start the engine,
//! then declare readiness (peers route this node's keys here, and it forwards them to their
//! previous owners), take the keys over once every peer does (`cluster/join.rs`), warm once
//! the cluster agrees, and keep probing. `readyz` answers 200 from then on. Shutdown runs the
//! other way: not ready first (peers stop routing here at their next probe), then the engine,
//! then the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use distcache_control::{ControlConfig, ControlError, ControlPlane};

use crate::catalog::{Catalog, RaftCatalog};
use crate::cluster::{Cluster, ClusterConfig, TopologyEvents};
use crate::config::{EngineConfig, KeySpaceOverrides};
use crate::discovery::{Discovery, StaticDiscovery, check_addr};
use crate::engine::{Engine, EngineBuilder};
use crate::error::{Error, Problems, Result};
use crate::keyspace::KeySpace;
use crate::ring::NodeId;
use crate::server::{self, Readiness, ServerConfig};
use crate::source::DataSource;
use crate::spec::{KeySpaceSpec, read_keyspace_file};
use crate::transport::HttpTransport;

/// Everything a node needs to start; the TOML file of `--config` has these keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name, unique in the cluster and stable across restarts.
    pub id: String,
    /// Address to listen on. Default `127.0.0.1:3320`.
    pub listen: String,
    /// Address peers and clients reach this node at. Default: `listen` (required when
    /// `listen` is a wildcard such as `0.0.0.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Directory for the node's durable state. Default `./distcache-data`.
    pub data_dir: PathBuf,
    /// Addresses of the cluster's nodes (static discovery); this node's own may be listed.
    pub peers: Vec<String>,
    /// A TOML or JSON file of keyspace specs to serve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyspace_file: Option<PathBuf>,
    /// Engine defaults and limits.
    pub engine: EngineConfig,
    /// Probing, quorum and topology settings.
    pub cluster: ClusterConfig,
    /// HTTP limits and deadlines.
    pub server: ServerConfig,
    /// Raft timings and membership targets of the control plane.
    pub control: ControlConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: String::new(),
            listen: "127.0.0.1:3320".into(),
            advertise: None,
            data_dir: PathBuf::from("./distcache-data"),
            peers: Vec::new(),
            keyspace_file: None,
            engine: EngineConfig::default(),
            cluster: ClusterConfig::default(),
            server: ServerConfig::default(),
            control: ControlConfig::default(),
        }
    }
}

impl NodeConfig {
    /// A node named `id` with millisecond timings, for tests.
    pub fn for_test(id: &str) -> Self {
        NodeConfig {
            id: id.into(),
            listen: "127.0.0.1:0".into(),
            engine: EngineConfig::for_test(),
            cluster: ClusterConfig::for_test(),
            control: ControlConfig::for_test(),
            ..NodeConfig::default()
        }
    }

    /// Every problem of this configuration, fields named as in the TOML file.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if let Err(message) = crate::spec::validate::name(&self.id) {
            problems.push("id", message);
        }
        if check_addr(&self.listen).is_err() {
            problems.push(
                "listen",
                format!("`{}` is not a host:port address", self.listen),
            );
        }
        if let Some(adv) = &self.advertise
            && check_addr(adv).is_err()
        {
            problems.push("advertise", format!("`{adv}` is not a host:port address"));
        }
        for (i, peer) in self.peers.iter().enumerate() {
            if check_addr(peer.trim()).is_err() {
                problems.push(
                    format!("peers[{i}]"),
                    format!("`{peer}` is not a host:port address"),
                );
            }
        }
        problems.extend_prefixed("engine", self.engine.problems());
        problems.extend_prefixed("cluster", self.cluster.problems());
        problems.extend_prefixed("server", self.server.problems());
        for (field, message) in self.control.problems() {
            problems.push(format!("control.{field}"), message);
        }
        problems
    }

    /// The address this node announces, given the address it is bound to.
    pub fn advertised(&self, bound: SocketAddr) -> Result<String> {
        match &self.advertise {
            Some(adv) => Ok(adv.clone()),
            None if bound.ip().is_unspecified() => Err(Error::InvalidConfig({
                let mut p = Problems::new();
                p.push(
                    "advertise",
                    format!("is required when listening on the wildcard address {bound}"),
                );
                p
            })),
            None => Ok(bound.to_string()),
        }
    }
}

/// Builds a [`Node`]: the engine builder's keyspaces and sources, plus discovery.
pub struct NodeBuilder {
    config: NodeConfig,
    engine: EngineBuilder,
    discovery: Option<Arc<dyn Discovery>>,
    /// A catalog given by the program replaces the control plane.
    custom_catalog: bool,
}

impl NodeBuilder {
    /// Adds a keyspace defined in code.
    pub fn keyspace(mut self, keyspace: impl KeySpace) -> Self {
        self.engine = self.engine.keyspace(keyspace);
        self
    }

    /// Adds a keyspace defined by a spec.
    pub fn keyspace_spec(mut self, spec: KeySpaceSpec) -> Self {
        self.engine = self.engine.keyspace_spec(spec);
        self
    }

    /// Overrides fields of keyspace `name`.
    pub fn override_keyspace(mut self, name: impl Into<String>, o: KeySpaceOverrides) -> Self {
        self.engine = self.engine.override_keyspace(name, o);
        self
    }

    /// Registers a data source for specs of kind `registered`.
    pub fn register_source(mut self, name: impl Into<String>, source: impl DataSource) -> Self {
        self.engine = self.engine.register_source(name, source);
        self
    }

    /// Uses `catalog` for keyspace definitions instead of the raft control plane (a
    /// [`LocalCatalog`](crate::LocalCatalog) makes each node follow only its own definitions).
    pub fn catalog(mut self, catalog: Arc<dyn Catalog>) -> Self {
        self.engine = self.engine.catalog(catalog);
        self.custom_catalog = true;
        self
    }

    /// Finds peers with `discovery` instead of the static `peers` list.
    pub fn discovery(mut self, discovery: Arc<dyn Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Starts the node on `listener` and returns once it serves (or why it cannot).
    pub async fn start(self, listener: TcpListener) -> Result<Node> {
        let NodeBuilder {
            config,
            mut engine,
            discovery,
            custom_catalog,
        } = self;
        let mut problems = config.problems();
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("listener has no address: {e}")))?;
        let addr = match config.advertised(bound) {
            Ok(addr) => addr,
            Err(Error::InvalidConfig(p)) => {
                problems.0.extend(p.0);
                String::new()
            }
            Err(e) => return Err(e),
        };
        if let Some(file) = &config.keyspace_file {
            match read_keyspace_file(file) {
                Ok(specs) => {
                    for spec in specs {
                        engine = engine.keyspace_spec(spec);
                    }
                }
                Err(Error::InvalidConfig(p)) => problems.0.extend(p.0),
                Err(e) => return Err(e),
            }
        }
        problems.into_result(Error::InvalidConfig)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::InvalidConfig({
                let mut p = Problems::new();
                p.push(
                    "data_dir",
                    format!("cannot create {}: {e}", config.data_dir.display()),
                );
                p
            })
        })?;

        let control = if custom_catalog {
            None
        } else {
            let plane = ControlPlane::open(
                &config.data_dir.join("control"),
                &config.id,
                &addr,
                config.control.clone(),
                config.server.token.as_deref(),
            )
            .await
            .map_err(|e| match e {
                ControlError::Config(m) => Error::InvalidConfig({
                    let mut p = Problems::new();
                    p.push("data_dir", m);
                    p
                }),
                other => Error::Unavailable(other.to_string()),
            })?;
            engine = engine.catalog(Arc::new(RaftCatalog::new(plane.clone())));
            Some(plane)
        };

        let me = NodeId::new(&config.id);
        let transport = Arc::new(HttpTransport::new(
            &config.id,
            config.server.token.as_deref(),
        )?);
        let cluster = Arc::new(Cluster::new(
            me.clone(),
            addr.clone(),
            config.cluster.clone(),
            Arc::clone(&transport) as Arc<dyn crate::transport::PeerTransport>,
        ));
        let engine = engine
            .config(config.engine.clone())
            .cluster(Arc::clone(&cluster))
            .build()?;
        if control.is_some() {
            // Revisions compare only between nodes that share one catalog.
            transport.follow_revision(engine.watch_revision());
        }
        let discovery: Arc<dyn Discovery> = match discovery {
            Some(d) => d,
            None => Arc::new(StaticDiscovery::new(config.peers.iter().map(|p| p.trim()))?),
        };

        let readiness = Arc::new(Readiness::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let router = server::router(
            engine.clone(),
            control.clone(),
            &config.id,
            &addr,
            Arc::clone(&readiness),
            config.server.clone(),
        );
        let mut server_stop = shutdown_rx.clone();
        let server_config = config.server.clone();
        let server = tokio::spawn(async move {
            server::serve(listener, router, &server_config, async move {
                crate::net::stopped(&mut server_stop).await;
            })
            .await
        });

        let node = Node {
            id: me,
            addr,
            bound,
            engine,
            cluster,
            control,
            quorum: config.cluster.minimum_peers_quorum,
            discovery,
            readiness,
            shutdown,
            tasks: std::sync::Mutex::new(vec![]),
            server: std::sync::Mutex::new(Some(server)),
        };
        if let Err(e) = node.join(shutdown_rx).await {
            let _ = node.shutdown().await;
            return Err(e);
        }
        Ok(node)
    }
}

/// A running node. Dropping it without [`shutdown`](Node::shutdown) leaves its tasks running
/// until the runtime ends.
pub struct Node {
    id: NodeId,
    addr: String,
    bound: SocketAddr,
    engine: Engine,
    cluster: Arc<Cluster>,
    control: Option<ControlPlane>,
    quorum: usize,
    discovery: Arc<dyn Discovery>,
    readiness: Arc<Readiness>,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    server: std::sync::Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

impl Node {
    /// A builder for a node with `config`.
    pub fn builder(config: NodeConfig) -> NodeBuilder {
        let engine = Engine::builder(config.engine.clone());
        NodeBuilder {
            config,
            engine,
            discovery: None,
            custom_catalog: false,
        }
    }

    async fn join(&self, shutdown: watch::Receiver<bool>) -> Result<()> {
        self.discovery.start().await?;
        let addrs = self.discovery.peers().await?;
        self.cluster.set_addresses(&addrs);
        // A node that already belongs to a control plane restarts from its stored catalog:
        // the start-up quorum is for forming (or first joining) a cluster.
        let resuming = self.control.as_ref().is_some_and(ControlPlane::resumed);
        if resuming {
            self.cluster.probe_round().await;
        } else {
            self.cluster.wait_for_quorum().await?;
        }
        if let Some(plane) = &self.control {
            plane.set_peers(&addrs);
            let config = self.cluster.config();
            plane
                .bootstrap(
                    self.quorum,
                    config.bootstrap_timeout,
                    config.join_retry_interval,
                    self.engine.seed_entries()?,
                )
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            plane.start();
        }
        self.engine.start().await?;
        self.readiness.set_ready();

        let mut tasks = Vec::new();
        let cluster = Arc::clone(&self.cluster);
        let prober_stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            cluster.run_prober(prober_stop).await;
        }));
        let cluster = Arc::clone(&self.cluster);
        let plane = self.control.clone();
        let mut changes = self.discovery.changes();
        let mut stop = shutdown;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() { return; }
                        let addrs = changes.borrow_and_update().clone();
                        cluster.set_addresses(&addrs);
                        if let Some(plane) = &plane {
                            plane.set_peers(&addrs);
                        }
                    }
                    _ = crate::net::stopped(&mut stop) => return,
                }
            }
        }));
        // Take this node's keys over (peers route them here meanwhile, and it forwards them
        // to their previous owners), then warm once the cluster agrees who owns what.
        let engine = self.engine.clone();
        let warmup = self.engine.config().warmup.clone();
        let mut joined = tokio::spawn(async move {
            engine.join_cluster().await;
            if warmup.warm_on_start {
                if !engine.wait_settled(warmup.start_timeout).await {
                    tracing::warn!("the members do not agree on the ring yet; warming anyway");
                }
                engine.warm_at_start().await;
            }
        });
        let limit = self.cluster.config().bootstrap_timeout;
        if tokio::time::timeout(limit, &mut joined).await.is_err() {
            tracing::warn!(
                waited = %humantime::format_duration(limit),
                "still joining: serving by forwarding this node's keys to their previous owners"
            );
            tasks.push(joined);
        }
        *self.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        tracing::info!(node = %self.id, addr = %self.addr, owning = self.cluster.is_owning(), "node ready");
        Ok(())
    }

    /// The node's name.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The address peers and clients reach it at.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address its listener is bound to.
    pub fn bound_addr(&self) -> SocketAddr {
        self.bound
    }

    /// The engine, for embedding programs that also serve reads in-process.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The membership.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The control plane (absent when the program supplied its own catalog).
    pub fn control(&self) -> Option<&ControlPlane> {
        self.control.as_ref()
    }

    /// Follows peers joining and leaving.
    pub fn subscribe_topology(&self) -> TopologyEvents {
        self.cluster.subscribe()
    }

    /// Whether the node serves data.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Stops serving: not ready first, then the engine, then the HTTP server and probes.
    pub async fn shutdown(&self) -> Result<()> {
        self.readiness.set_stopping();
        self.cluster.announce_leaving().await;
        let stopped = self.engine.stop().await;
        if let Some(plane) = &self.control {
            plane.shutdown().await;
        }
        self.shutdown.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(server) = server {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server ended with an error"),
                Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
            }
        }
        self.discovery.stop().await?;
        tracing::info!(node = %self.id, "node stopped");
        stopped
    }
}

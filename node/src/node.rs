//! A cluster node: the engine, its HTTP server (and Redis-protocol front, when configured),
//! membership and discovery, started and stopped as one.
//!
//! Start-up order: serve HTTP at once (so peers can probe this node; `readyz` answers 503
//! meanwhile), find peers through discovery, wait for the start-up quorum, start the engine,
//! then declare readiness (peers route this node's keys here, and it forwards them to their
//! previous owners), take the keys over once every peer does (`cluster/join.rs`), warm once
//! the cluster agrees, and keep probing. `readyz` answers 200 from then on. Shutdown runs the
//! other way: not ready first (peers stop routing here at their next probe), then the engine,
//! then the server, and last the OpenTelemetry export (flushed within its bound).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use distcache_control::{ControlError, ControlPlane};

use crate::catalog::{Catalog, RaftCatalog};
use crate::cluster::{Cluster, TopologyEvents};
use crate::config::KeySpaceOverrides;
use crate::discovery::Discovery;
use crate::engine::{Engine, EngineBuilder};
use crate::error::{Error, Problems, Result};
use crate::keyspace::KeySpace;
use crate::memnet::MemoryNetwork;
use crate::net::loops::EventLoops;
use crate::otel::{OtelError, OtelPipeline};
use crate::ring::NodeId;
use crate::server::{HttpStats, Readiness};
use crate::source::DataSource;
use crate::spec::{KeySpaceSpec, read_keyspace_file};
use crate::tls::{NodeTls, TlsConfig};

mod config;
mod wire;

pub use config::NodeConfig;

use wire::{Parts, Serving, Wire};

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

    /// Starts the node on `listener` and returns once it serves (or why it cannot): checks
    /// the configuration, opens the control plane, builds the engine and its cluster, serves
    /// HTTP, then joins the cluster (`Node::join`).
    pub async fn start(self, listener: TcpListener) -> Result<Node> {
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("listener has no address: {e}")))?;
        let addr = self.config.advertised(bound);
        self.launch(addr, Wire::Http { listener, bound }).await
    }

    /// Starts the node on an in-memory `network` at address `addr` (any `host:port`
    /// unique on that network), for tests: the same engine, membership and join as
    /// [`start`](Self::start), with peer calls made in memory and no HTTP server. Needs a
    /// [`catalog`](Self::catalog) (the raft control plane talks HTTP); the nodes of one
    /// in-memory cluster usually share one.
    pub async fn start_in_memory(self, network: &Arc<MemoryNetwork>, addr: &str) -> Result<Node> {
        if !self.custom_catalog {
            return Err(Error::InvalidConfig({
                let mut p = Problems::new();
                p.push(
                    "catalog",
                    "an in-memory node needs a catalog (NodeBuilder::catalog): the control plane talks HTTP",
                );
                p
            }));
        }
        let checked_addr = crate::discovery::check_addr(addr).map(|()| addr.to_owned());
        let network = Arc::clone(network);
        self.launch(checked_addr, Wire::Memory { network }).await
    }

    /// Checks the configuration, opens the control plane, builds the engine and its
    /// cluster, puts the node on its wire, then joins the cluster (`Node::join`).
    async fn launch(self, addr: Result<String>, wire: Wire) -> Result<Node> {
        let NodeBuilder {
            config,
            engine,
            discovery,
            custom_catalog,
        } = self;
        let (addr, mut engine) = checked(&config, addr, engine)?;
        // Before the engine: its instruments and spans come from these providers.
        let otel = start_otel(&config)?;
        if let Some(pipeline) = otel.as_ref().filter(|p| p.exports_traces()) {
            engine = engine.tracer_provider(pipeline.tracer_provider());
        }
        let tls = match (&config.tls, &wire) {
            (Some(tls), Wire::Http { .. }) => Some(load_tls(tls.clone()).await?),
            _ => None,
        };
        let control = if custom_catalog {
            None
        } else {
            let plane = open_control(&config, &addr, tls.as_ref()).await?;
            engine = engine.catalog(Arc::new(RaftCatalog::new(plane.clone())));
            Some(plane)
        };
        let (engine, cluster) =
            wire.build_engine(&config, &addr, engine, control.is_some(), tls.as_ref())?;
        let discovery: Arc<dyn Discovery> = match discovery {
            Some(d) => d,
            None => {
                crate::discovery::from_config(&config.discovery, &config.peers, &config.id, &addr)?
            }
        };
        let readiness = Arc::new(Readiness::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        if let Some(tls) = &tls {
            // Ends with the node: it stops on the shutdown signal.
            drop(tls.spawn_watcher(shutdown_rx.clone()));
        }
        let http = Arc::new(HttpStats::default());
        if let Some(pipeline) = otel.as_ref().filter(|p| p.exports_metrics()) {
            observe_node(pipeline, &engine, control.as_ref(), &config.id, &http);
        }
        let tokens = crate::server::tokens(&config.server)?;
        let threads = config.server.io_threads_in_use();
        let loops = Arc::new(EventLoops::start("io", threads).map_err(|e| {
            let mut p = Problems::new();
            p.push(
                "server.io_threads",
                format!("cannot start {threads} event-loop threads: {e}"),
            );
            Error::InvalidConfig(p)
        })?);
        tracing::debug!(io_threads = loops.len(), "event loops started");
        let parts = Parts {
            config: &config,
            addr: &addr,
            engine: &engine,
            control: control.as_ref(),
            readiness: &readiness,
            http: &http,
            tokens: tokens.as_ref(),
            loops: &loops,
        };
        let resp = wire::serve_resp(&parts, tls.clone(), shutdown_rx.clone()).await?;
        let (bound, serving) = wire.serve(&parts, tls, shutdown_rx.clone())?;
        let (resp_bound, resp) = resp.unzip();
        let node = Node {
            id: NodeId::new(&config.id),
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
            serving: std::sync::Mutex::new(Some(serving)),
            resp_bound,
            resp: std::sync::Mutex::new(resp),
            loops,
            otel,
        };
        if let Err(e) = node.join(shutdown_rx).await {
            let _ = node.shutdown().await;
            return Err(e);
        }
        Ok(node)
    }
}

/// Every problem of `config` and `addr` at once (its fields, the advertised address, the
/// keyspace file); otherwise the address and `engine` with the file's keyspaces added.
fn checked(
    config: &NodeConfig,
    addr: Result<String>,
    mut engine: EngineBuilder,
) -> Result<(String, EngineBuilder)> {
    let mut problems = config.problems();
    let addr = match addr {
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
    Ok((addr, engine))
}

fn create_data_dir(config: &NodeConfig) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::InvalidConfig({
            let mut p = Problems::new();
            p.push(
                "data_dir",
                format!("cannot create {}: {e}", config.data_dir.display()),
            );
            p
        })
    })
}

/// Exports the node's metrics through `pipeline`: the engine's, the HTTP server's and the
/// control plane's, read when the pipeline collects (`otel/metrics.rs`).
fn observe_node(
    pipeline: &OtelPipeline,
    engine: &Engine,
    control: Option<&ControlPlane>,
    node_id: &str,
    http: &Arc<HttpStats>,
) {
    use opentelemetry::metrics::MeterProvider as _;
    let meter = pipeline.meter_provider().meter("distcache");
    let engine = engine.downgrade();
    let control = control.cloned();
    let node_id = node_id.to_owned();
    let http = Arc::clone(http);
    crate::otel::metrics::observe(
        &meter,
        Box::new(move || {
            let mut scrape = engine.upgrade()?.scrape_now();
            scrape.http = http.snapshot();
            scrape.raft = crate::server::raft_status(control.as_ref(), &node_id);
            Some(scrape)
        }),
    );
}

/// Starts the OpenTelemetry export `config.otel` describes (`None`: nothing to export).
fn start_otel(config: &NodeConfig) -> Result<Option<OtelPipeline>> {
    OtelPipeline::start(&config.otel, &config.id).map_err(|e| match e {
        OtelError::Invalid(p) => Error::InvalidConfig({
            let mut problems = Problems::new();
            problems.extend_prefixed("otel", p);
            problems
        }),
        other => Error::Internal(other.to_string()),
    })
}

/// Reads the node's TLS files (off the runtime: they are files).
async fn load_tls(config: TlsConfig) -> Result<Arc<NodeTls>> {
    tokio::task::spawn_blocking(move || NodeTls::load(config))
        .await
        .map_err(|e| Error::Internal(format!("loading the TLS files failed: {e}")))?
}

/// Opens (or creates) the node's control plane under its data directory; with `tls`, raft
/// calls go over https with this node's certificate.
async fn open_control(
    config: &NodeConfig,
    addr: &str,
    tls: Option<&Arc<NodeTls>>,
) -> Result<ControlPlane> {
    create_data_dir(config)?;
    let dial = tls.map(|tls| tls.client_config()).transpose()?;
    ControlPlane::open(
        &config.data_dir.join("control"),
        &config.id,
        addr,
        config.control.clone(),
        config.server.token.as_deref(),
        dial,
    )
    .await
    .map_err(|e| match e {
        ControlError::Config(m) => Error::InvalidConfig({
            let mut p = Problems::new();
            p.push("data_dir", m);
            p
        }),
        other => Error::Unavailable(other.to_string()),
    })
}

/// A running node. Dropping it without [`shutdown`](Node::shutdown) leaves its tasks running
/// until the runtime ends.
pub struct Node {
    id: NodeId,
    addr: String,
    bound: Option<SocketAddr>,
    engine: Engine,
    cluster: Arc<Cluster>,
    control: Option<ControlPlane>,
    quorum: usize,
    discovery: Arc<dyn Discovery>,
    readiness: Arc<Readiness>,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    serving: std::sync::Mutex<Option<Serving>>,
    /// Where the Redis-protocol front listens, and its task (`server.resp_listen`).
    resp_bound: Option<SocketAddr>,
    resp: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The event loops the fronts' connections live on; stopped once both fronts are.
    loops: Arc<EventLoops>,
    /// The OpenTelemetry export, when configured; shut down last.
    otel: Option<OtelPipeline>,
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

    /// Joins the cluster: finds the peers, forms or resumes the control plane, starts the
    /// engine and serves, keeps membership current in the background, then takes this node's
    /// keys over and warms them.
    async fn join(&self, shutdown: watch::Receiver<bool>) -> Result<()> {
        self.find_peers(shutdown.clone()).await?;
        self.form_control_plane().await?;
        self.engine.start().await?;
        self.readiness.set_ready();
        let mut tasks = vec![self.probe_peers(shutdown)];
        if let Some(still_joining) = self.take_keys_over().await {
            tasks.push(still_joining);
        }
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tasks);
        tracing::info!(node = %self.id, addr = %self.addr, owning = self.cluster.is_owning(), via = %self.discovery.describe(), "node ready");
        Ok(())
    }

    /// Starts discovery, follows its addresses from now on (the membership and the control
    /// plane see every change, during start-up too), and probes the peers: once, for a node
    /// that resumes its stored control-plane state, else until the start-up quorum answers.
    async fn find_peers(&self, shutdown: watch::Receiver<bool>) -> Result<()> {
        self.discovery.start().await?;
        self.cluster.set_discovery_source(self.discovery.describe());
        let follower = self.follow_discovery(shutdown).await?;
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(follower);
        // A node that already belongs to a control plane restarts from its stored catalog:
        // the start-up quorum is for forming (or first joining) a cluster.
        let resuming = self.control.as_ref().is_some_and(ControlPlane::resumed);
        if resuming {
            self.cluster.probe_round().await;
        } else {
            self.cluster
                .wait_for_quorum(&self.discovery.describe())
                .await?;
        }
        Ok(())
    }

    /// Applies discovery's addresses to the membership and the control plane: the current
    /// list now, then every change until `shutdown`.
    async fn follow_discovery(&self, mut stop: watch::Receiver<bool>) -> Result<JoinHandle<()>> {
        let mut changes = self.discovery.changes();
        changes.borrow_and_update();
        let apply = {
            let cluster = Arc::clone(&self.cluster);
            let plane = self.control.clone();
            move |addrs: &[String]| {
                cluster.set_addresses(addrs);
                if let Some(plane) = &plane {
                    plane.set_peers(addrs);
                }
            }
        };
        apply(&self.discovery.peers().await?);
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() { return; }
                        let addrs = changes.borrow_and_update().clone();
                        apply(&addrs);
                    }
                    _ = crate::net::stopped(&mut stop) => return,
                }
            }
        }))
    }

    /// Forms the raft group with the peers discovery names (or joins it) and starts
    /// following it.
    async fn form_control_plane(&self) -> Result<()> {
        let Some(plane) = &self.control else {
            return Ok(());
        };
        let config = self.cluster.config();
        plane
            .bootstrap(
                self.quorum,
                config.bootstrap_timeout,
                config.join_retry_interval,
                self.engine.seed_entries()?,
            )
            .await
            .map_err(|e| {
                Error::Unavailable(format!("{e} (peers via {})", self.discovery.describe()))
            })?;
        plane.start();
        Ok(())
    }

    /// The prober, in the background until `shutdown`.
    fn probe_peers(&self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let cluster = Arc::clone(&self.cluster);
        tokio::spawn(async move {
            cluster.run_prober(shutdown).await;
        })
    }

    /// Takes this node's keys over (peers route them here meanwhile, and it forwards them to
    /// their previous owners), then warms once the cluster agrees who owns what. Waits at most
    /// `bootstrap_timeout`; returns the task when it goes on behind.
    async fn take_keys_over(&self) -> Option<JoinHandle<()>> {
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
        if tokio::time::timeout(limit, &mut joined).await.is_ok() {
            return None;
        }
        tracing::warn!(
            waited = %humantime::format_duration(limit),
            "still joining: serving by forwarding this node's keys to their previous owners"
        );
        Some(joined)
    }

    /// The node's name.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The address peers and clients reach it at.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address its listener is bound to (`None` on an in-memory network).
    pub fn bound_addr(&self) -> Option<SocketAddr> {
        self.bound
    }

    /// The address the Redis-protocol front is bound to (`None` without
    /// `server.resp_listen`).
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.resp_bound
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

    /// The OpenTelemetry export (`None` when `[otel]` names no endpoint): its tracer and
    /// meter providers are those of this node's spans and instruments.
    pub fn otel(&self) -> Option<&OtelPipeline> {
        self.otel.as_ref()
    }

    /// Follows peers joining and leaving.
    pub fn subscribe_topology(&self) -> TopologyEvents {
        self.cluster.subscribe()
    }

    /// Whether the node serves data.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Stops serving: not ready first, then the engine, then the control plane (leaving the
    /// raft group when a learner can take this node's seat), then the HTTP server and probes,
    /// then the OpenTelemetry export (flushing what is waiting, within its bound).
    pub async fn shutdown(&self) -> Result<()> {
        self.readiness.set_stopping();
        self.cluster.announce_leaving().await;
        let stopped = self.engine.stop().await;
        if let Some(plane) = &self.control {
            // A voter hands its seat to a caught-up learner (a rolling replacement keeps a
            // full set of live voters); without one it stays a voter.
            plane.leave().await;
            plane.shutdown().await;
        }
        self.shutdown.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        let serving = self
            .serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match serving {
            Some(Serving::Http(server)) => match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server ended with an error"),
                Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
            },
            Some(Serving::Memory(network)) => network.detach(&self.addr),
            None => {}
        }
        let resp = self.resp.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(Err(e)) = match resp {
            Some(task) => Some(task.await),
            None => None,
        } {
            tracing::warn!(error = %e, "Redis-protocol front task failed");
        }
        self.loops.stop().await;
        self.discovery.stop().await?;
        if let Some(otel) = &self.otel {
            // Bounded: an unreachable collector delays the stop by its export timeout at most.
            if let Err(e) = otel.shutdown().await {
                tracing::warn!(error = %e, "OpenTelemetry export did not end cleanly");
            }
        }
        tracing::info!(node = %self.id, "node stopped");
        stopped
    }
}

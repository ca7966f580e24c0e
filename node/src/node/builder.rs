//! Building and launching a [`Node`]: the keyspaces, sources, catalog and discovery a
//! program adds, then the checks of the configuration, the data directory, the telemetry,
//! TLS and the control plane, in the order a start needs them.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use distcache_control::{ControlError, ControlPlane};

use super::Node;
use super::config::NodeConfig;
use super::wire::{self, Parts, Wire};
use crate::catalog::{Catalog, RaftCatalog};
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

/// Builds a [`Node`]: the engine builder's keyspaces and sources, plus discovery.
pub struct NodeBuilder {
    config: NodeConfig,
    engine: EngineBuilder,
    discovery: Option<Arc<dyn Discovery>>,
    /// A catalog given by the program replaces the control plane.
    custom_catalog: bool,
}

impl NodeBuilder {
    /// A builder for a node with `config` ([`Node::builder`]).
    pub(super) fn new(config: NodeConfig) -> Self {
        let engine = Engine::builder(config.engine.clone());
        NodeBuilder {
            config,
            engine,
            discovery: None,
            custom_catalog: false,
        }
    }

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

//! What a node is reached on: HTTP on a listener (TLS when configured) or an in-memory
//! network. The wire decides the peer transport the engine is built over and how the node
//! serves; the rest of a node's start-up does not depend on it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use distcache_control::ControlPlane;

use super::NodeConfig;
use crate::cluster::Cluster;
use crate::engine::{Engine, EngineBuilder};
use crate::error::{Error, Problems, Result};
use crate::memnet::MemoryNetwork;
use crate::net::loops::EventLoops;
use crate::resp::{self, Front};
use crate::ring::NodeId;
use crate::server::auth::Tokens;
use crate::server::{self, Readiness, ServerConfig};
use crate::tls::NodeTls;
use crate::transport::{HttpTransport, PeerTransport};

/// What a node serves its peers and clients on.
pub(super) enum Wire {
    /// HTTP on this listener.
    Http {
        listener: TcpListener,
        bound: SocketAddr,
    },
    /// Calls on an in-memory network.
    Memory { network: Arc<MemoryNetwork> },
}

impl Wire {
    /// The engine over its cluster membership, calling peers over this wire. With a shared
    /// catalog (`raft`), HTTP peer requests carry this node's applied revision.
    pub(super) fn build_engine(
        &self,
        config: &NodeConfig,
        addr: &str,
        engine: EngineBuilder,
        raft: bool,
        tls: Option<&Arc<NodeTls>>,
    ) -> Result<(Engine, Arc<Cluster>)> {
        match self {
            Wire::Http { .. } => {
                let dial = tls.map(|tls| tls.client_config()).transpose()?;
                let http = HttpTransport::new(&config.id, config.server.token.as_deref(), dial)?
                    .with_limits(config.engine.limits.clone());
                let (engine, cluster) = build_engine(config, addr, engine, http.clone())?;
                if raft {
                    // Revisions compare only between nodes that share one catalog.
                    http.follow_revision(engine.watch_revision());
                }
                Ok((engine, cluster))
            }
            Wire::Memory { network } => {
                build_engine(config, addr, engine, network.transport(&config.id))
            }
        }
    }

    /// Puts the node on this wire: serves HTTP on the listener until `stop`, or attaches to
    /// the network. Answers the bound address (HTTP only) and what to stop at shutdown.
    pub(super) fn serve(
        self,
        parts: &Parts<'_>,
        tls: Option<Arc<NodeTls>>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Option<SocketAddr>, Serving)> {
        let Parts {
            config,
            addr,
            engine,
            control,
            readiness,
            http,
            tokens,
            loops,
        } = *parts;
        match self {
            Wire::Http { listener, bound } => {
                let served = server::Served {
                    engine: engine.clone(),
                    control: control.cloned(),
                    node_id: config.id.clone(),
                    addr: addr.to_owned(),
                    readiness: Arc::clone(readiness),
                    config: config.server.clone(),
                    http: Arc::clone(http),
                    tokens: tokens.cloned(),
                };
                let peer_certificates = tls.as_ref().is_some_and(|tls| tls.verifies_clients());
                let router = server::router(served, peer_certificates)?;
                let loops = Arc::clone(loops);
                let server = spawn_server(listener, router, &config.server, tls, loops, stop);
                Ok((Some(bound), Serving::Http(server)))
            }
            Wire::Memory { network } => {
                network.attach(addr, &config.id, engine.clone(), Arc::clone(readiness));
                Ok((None, Serving::Memory(network)))
            }
        }
    }
}

/// What a node's server needs of the node being launched.
#[derive(Clone, Copy)]
pub(super) struct Parts<'a> {
    pub config: &'a NodeConfig,
    pub addr: &'a str,
    pub engine: &'a Engine,
    pub control: Option<&'a ControlPlane>,
    pub readiness: &'a Arc<Readiness>,
    /// The HTTP server's request durations.
    pub http: &'a Arc<server::HttpStats>,
    /// The tokens requests must carry (`None`: the node is open).
    pub tokens: Option<&'a Arc<Tokens>>,
    /// The event loops both fronts serve connections on.
    pub loops: &'a Arc<EventLoops>,
}

/// What a running node serves on, stopped last at shutdown.
pub(super) enum Serving {
    /// The HTTP server's task.
    Http(JoinHandle<std::io::Result<()>>),
    /// Attached to this network at the node's address.
    Memory(Arc<MemoryNetwork>),
}

/// The engine over its cluster membership and peer `transport`.
fn build_engine(
    config: &NodeConfig,
    addr: &str,
    engine: EngineBuilder,
    transport: impl PeerTransport,
) -> Result<(Engine, Arc<Cluster>)> {
    let cluster = Arc::new(Cluster::new(
        NodeId::new(&config.id),
        addr.to_owned(),
        config.cluster.clone(),
        Arc::new(transport),
    ));
    let engine = engine
        .config(config.engine.clone())
        .cluster(Arc::clone(&cluster))
        .build()?;
    Ok((engine, cluster))
}

/// Serves `router` on `listener` (over TLS with `tls`) in a task until `stop` says true.
fn spawn_server(
    listener: TcpListener,
    router: axum::Router,
    config: &ServerConfig,
    tls: Option<Arc<NodeTls>>,
    loops: Arc<EventLoops>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let config = config.clone();
    tokio::spawn(async move {
        server::serve(listener, router, &config, tls, loops, async move {
            crate::net::stopped(&mut stop).await;
        })
        .await
    })
}

/// With `server.resp_listen` set: binds it and serves the Redis protocol over `parts`'
/// engine (over TLS with `tls`) in a task until `stop` says true. Answers the bound address
/// and the task.
pub(super) async fn serve_resp(
    parts: &Parts<'_>,
    tls: Option<Arc<NodeTls>>,
    stop: watch::Receiver<bool>,
) -> Result<Option<(SocketAddr, JoinHandle<()>)>> {
    let config = parts.config;
    let Some(addr) = &config.server.resp_listen else {
        return Ok(None);
    };
    let refused = |e: std::io::Error| {
        let mut p = Problems::new();
        p.push(
            "server.resp_listen",
            format!("cannot listen on {addr}: {e}"),
        );
        Error::InvalidConfig(p)
    };
    let listener = TcpListener::bind(addr).await.map_err(refused)?;
    let bound = listener.local_addr().map_err(refused)?;
    let front = Front::new(
        parts.engine.clone(),
        parts.tokens.cloned(),
        &config.server,
        &config.id,
    );
    let front = Arc::new(front);
    let max_connections = config.server.max_connections;
    let loops = Arc::clone(parts.loops);
    let task = tokio::spawn(async move {
        resp::serve(listener, front, max_connections, tls, loops, stop).await;
    });
    tracing::info!(addr = %bound, "serving the Redis protocol");
    Ok(Some((bound, task)))
}

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

use tokio::sync::watch;
use tokio::task::JoinHandle;

use distcache_control::ControlPlane;

use crate::cluster::{Cluster, TopologyEvents};
use crate::discovery::Discovery;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::net::loops::EventLoops;
use crate::otel::OtelPipeline;
use crate::ring::NodeId;
use crate::server::Readiness;

mod builder;
mod config;
mod wire;

pub use builder::NodeBuilder;
pub use config::NodeConfig;

use wire::Serving;

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
        NodeBuilder::new(config)
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

//! Polls every node concurrently, once per interval, through a [`Fleet`] of
//! `distcache::client`, and sends what it saw as a [`Snapshot`].
//!
//! The fleet keeps one client per member across polls (so connections are reused) and
//! follows the membership: each poll asks the given endpoints (or, when they are down, the
//! members) for the members, drops the clients of nodes that left and adds clients for nodes
//! that joined. A member that stops answering stays in the list, marked down, so the
//! dashboard shows it red instead of forgetting it.

use std::time::{Duration, Instant};

use distcache::client::{Answer, Client, Fleet, Member};
use distcache::wire::{ClusterInfo, Health};
use distcache::{ClientTls, KeySpaceSnapshot, Result};
use tokio::sync::mpsc;
use tracing::debug;

use crate::model::{NodeView, Snapshot};

/// Where and how to poll.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// Nodes to ask first (any answers with the members).
    pub endpoints: Vec<String>,
    /// Bearer token, if the cluster needs one.
    pub token: Option<String>,
    /// TLS settings for https endpoints (and bare `host:port` ones when any is set).
    pub tls: ClientTls,
    /// Time between polls.
    pub interval: Duration,
}

impl PollConfig {
    /// A client of the endpoints with the token and TLS settings.
    pub fn client(&self) -> Result<Client> {
        Ok(Client::with_tls(self.endpoints.clone(), &self.tls)?.with_token(self.token.clone()))
    }
}

/// What one node answered in one poll.
struct Probe {
    health: Health,
    cluster: Option<ClusterInfo>,
    keyspaces: Vec<KeySpaceSnapshot>,
}

/// Polls until the receiver is gone.
pub async fn run(config: PollConfig, out: mpsc::Sender<Snapshot>) {
    let started = Instant::now();
    let timeout = config
        .interval
        .clamp(Duration::from_millis(500), Duration::from_secs(3));
    let fleet = Fleet::new(config.token.clone(), timeout).with_tls(&config.tls);
    let mut fleet = match fleet {
        Ok(fleet) => fleet,
        Err(e) => {
            // The dashboard checked the settings before it started polling.
            debug!(error = %e, "the TLS settings cannot be used");
            return;
        }
    };
    // Until some node names the members, the endpoints stand in for them.
    fleet.set_members(
        config
            .endpoints
            .iter()
            .map(|e| Member::at(e.trim().trim_start_matches("http://"))),
    );
    let seeds = match config.client() {
        Ok(c) => Some(c.with_token(config.token.clone()).with_timeout(timeout)),
        Err(e) => {
            debug!(error = %e, "the endpoints cannot be asked for the members");
            None
        }
    };
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When each node (by address) last answered.
    let mut last_up: std::collections::HashMap<String, f64> = Default::default();
    loop {
        ticker.tick().await;
        if let Some(seeds) = &seeds
            && let Err(e) = fleet.refresh(seeds).await
        {
            debug!(error = %e, "no node named the members; polling the ones known");
        }
        let mut nodes: Vec<NodeView> = fleet.ask(probe).await.into_iter().map(node_view).collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.addr.cmp(&b.addr)));
        let at = started.elapsed().as_secs_f64();
        for node in &mut nodes {
            if node.up {
                last_up.insert(node.addr.clone(), at);
            }
            node.last_seen = last_up.get(&node.addr).copied();
        }
        let snapshot = Snapshot { at, nodes };
        if out.send(snapshot).await.is_err() {
            return;
        }
    }
}

/// Asks one node for its health, then its control-plane view and keyspaces. A node that
/// answers its health is up, whatever the other two answer.
async fn probe(client: &Client) -> Result<Probe> {
    let health = client.health().await?;
    let (cluster, keyspaces) = tokio::join!(client.cluster(), client.stats());
    Ok(Probe {
        health,
        cluster: cluster.ok(),
        keyspaces: keyspaces.unwrap_or_default(),
    })
}

fn node_view(answer: Answer<Probe>) -> NodeView {
    match answer.result {
        Ok(probe) => NodeView {
            id: probe.health.node_id,
            addr: answer.member.addr,
            up: true,
            ready: probe.health.ready,
            error: None,
            cluster: probe.cluster,
            keyspaces: probe.keyspaces,
            discovery: probe.health.discovery,
            last_seen: None,
        },
        Err(e) => NodeView {
            id: answer.member.name().to_owned(),
            addr: answer.member.addr,
            up: false,
            ready: false,
            error: Some(e.to_string()),
            cluster: None,
            keyspaces: Vec::new(),
            discovery: None,
            last_seen: None,
        },
    }
}

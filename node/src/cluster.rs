//! Cluster membership as this node sees it, and who owns which key.
//!
//! Discovery supplies addresses; probing each one (`GET /healthz`) tells who answers there
//! and whether it serves. A peer that answers and is ready joins the ring; one that fails
//! `failure_threshold` probes in a row, or says it is not ready, leaves it. A peer that left
//! and comes back is flushed first: while it was out, this node's deletes and puts did not
//! reach it, so its caches may hold old values. Every change rebuilds the ring and is published
//! as a [`TopologyEvent`]; publishing never blocks (a slow subscriber loses events and is told
//! how many).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::ring::{NodeId, Ring};
use crate::transport::{PeerError, PeerTransport};
use crate::wire::Health;

mod config;

pub use config::ClusterConfig;

/// A peer in the ring: its name and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's `--id`.
    pub id: NodeId,
    /// Its `host:port`.
    pub addr: String,
}

/// Where a key is loaded.
pub(crate) enum Route {
    /// This node owns it.
    Local,
    /// Another node owns it.
    Remote(Arc<Peer>),
}

/// Items split by the owner of their key: this node's, and each peer's.
pub(crate) struct ByOwner<T> {
    /// Items whose key this node owns.
    pub local: Vec<T>,
    /// Items per owning peer.
    pub remote: Vec<(Arc<Peer>, Vec<T>)>,
}

/// What changed in the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyChange {
    /// A peer joined the ring.
    Joined,
    /// A peer left the ring.
    Left,
    /// A known peer now answers at another address.
    Updated,
}

/// One membership change, as seen by this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyEvent {
    /// What happened.
    pub change: TopologyChange,
    /// The peer's name.
    pub node_id: String,
    /// The peer's address.
    pub addr: String,
    /// When this node noticed.
    pub at: SystemTime,
}

/// A subscription to topology events. Never slows the cluster down: when it falls behind,
/// the oldest events are dropped and counted.
pub struct TopologyEvents {
    rx: broadcast::Receiver<TopologyEvent>,
    dropped: u64,
}

impl TopologyEvents {
    /// The next event, or `None` once the node is gone.
    pub async fn recv(&mut self) -> Option<TopologyEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => self.dropped += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Events this subscription missed because it fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// A member as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The member's name (`null` until it answered a probe).
    pub id: Option<String>,
    /// Its address.
    pub addr: String,
    /// True for the node answering.
    pub is_self: bool,
    /// Answered its last probe.
    pub reachable: bool,
    /// In the ring: reachable, ready, and flushed after any absence.
    pub healthy: bool,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Milliseconds since its last successful probe (`null`: never).
    pub last_seen_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Tracked {
    id: Option<NodeId>,
    reachable: bool,
    healthy: bool,
    failures: u32,
    last_seen: Option<Instant>,
    /// Left the ring after having been in it: flush before it comes back.
    needs_flush: bool,
    /// This address turned out to be this node.
    is_self: bool,
}

/// The live membership of the ring and the ring itself.
pub(crate) struct View {
    pub ring: Ring,
    pub peers: HashMap<NodeId, Arc<Peer>>,
    /// The ring once every reachable member serves (starting ones included): who will own a
    /// key, which is what warmups go by, so nodes starting together warm each key once.
    pub settled: Ring,
}

/// Membership, probing and ownership for one node.
pub struct Cluster {
    me: NodeId,
    my_addr: String,
    config: ClusterConfig,
    transport: Arc<dyn PeerTransport>,
    tracked: Mutex<BTreeMap<String, Tracked>>,
    view: ArcSwap<View>,
    events: broadcast::Sender<TopologyEvent>,
}

impl Cluster {
    /// Membership for node `me`, reachable at `my_addr`.
    pub fn new(
        me: NodeId,
        my_addr: String,
        config: ClusterConfig,
        transport: Arc<dyn PeerTransport>,
    ) -> Self {
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let view = View {
            ring: Ring::new([me.clone()]),
            peers: HashMap::new(),
            settled: Ring::new([me.clone()]),
        };
        Cluster {
            me,
            my_addr,
            config,
            transport,
            tracked: Mutex::new(BTreeMap::new()),
            view: ArcSwap::from_pointee(view),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Tracked>> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node's name.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// This node's address.
    pub fn my_addr(&self) -> &str {
        &self.my_addr
    }

    /// The membership settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The transport to peers.
    pub(crate) fn transport(&self) -> &Arc<dyn PeerTransport> {
        &self.transport
    }

    /// Follows topology changes.
    pub fn subscribe(&self) -> TopologyEvents {
        TopologyEvents {
            rx: self.events.subscribe(),
            dropped: 0,
        }
    }

    /// Replaces the addresses to probe (from discovery). This node's own address is skipped;
    /// peers no longer listed leave the ring.
    pub fn set_addresses(&self, addrs: &[String]) {
        let mut tracked = self.lock();
        tracked.retain(|addr, _| addrs.contains(addr));
        for addr in addrs {
            if *addr != self.my_addr {
                tracked.entry(addr.clone()).or_default();
            }
        }
        drop(tracked);
        self.rebuild(Vec::new());
    }

    /// Whether this node will own `(keyspace, key)` once every reachable member serves.
    pub(crate) fn will_own(&self, keyspace: &str, key: &str) -> bool {
        self.view
            .load()
            .settled
            .owner(keyspace, key)
            .is_none_or(|owner| *owner == self.me)
    }

    /// Where `(keyspace, key)` is loaded.
    #[inline]
    pub(crate) fn route(&self, keyspace: &str, key: &str) -> Route {
        let view = self.view.load();
        match view.ring.owner(keyspace, key) {
            Some(owner) if *owner != self.me => match view.peers.get(owner) {
                Some(peer) => Route::Remote(Arc::clone(peer)),
                None => Route::Local,
            },
            _ => Route::Local,
        }
    }

    /// Splits `items` by the owner of their key, so that each owner gets one batch.
    pub(crate) fn split<T>(
        &self,
        keyspace: &str,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> &str,
    ) -> ByOwner<T> {
        let mut local = Vec::new();
        let mut remote: Vec<(Arc<Peer>, Vec<T>)> = Vec::new();
        let mut index: HashMap<NodeId, usize> = HashMap::new();
        for item in items {
            match self.route(keyspace, key(&item)) {
                Route::Local => local.push(item),
                Route::Remote(peer) => {
                    let slot = *index.entry(peer.id.clone()).or_insert_with(|| {
                        remote.push((Arc::clone(&peer), Vec::new()));
                        remote.len() - 1
                    });
                    remote[slot].1.push(item);
                }
            }
        }
        ByOwner { local, remote }
    }

    /// The id and address of the node owning `(keyspace, key)`.
    pub fn owner_of(&self, keyspace: &str, key: &str) -> (String, String) {
        match self.route(keyspace, key) {
            Route::Local => (self.me.to_string(), self.my_addr.clone()),
            Route::Remote(peer) => (peer.id.to_string(), peer.addr.clone()),
        }
    }

    /// The peers in the ring (this node excluded).
    pub(crate) fn live_peers(&self) -> Vec<Arc<Peer>> {
        self.view.load().peers.values().cloned().collect()
    }

    /// The ring's members (this node included), by name.
    pub fn ring_members(&self) -> Vec<NodeId> {
        self.view.load().ring.members().cloned().collect()
    }

    /// Every known member, this node first.
    pub fn members(&self) -> Vec<MemberStatus> {
        let now = Instant::now();
        let mut out = vec![MemberStatus {
            id: Some(self.me.to_string()),
            addr: self.my_addr.clone(),
            is_self: true,
            reachable: true,
            healthy: true,
            consecutive_failures: 0,
            last_seen_ms: Some(0),
        }];
        for (addr, t) in self.lock().iter().filter(|(_, t)| !t.is_self) {
            out.push(MemberStatus {
                id: t.id.as_ref().map(NodeId::to_string),
                addr: addr.clone(),
                is_self: false,
                reachable: t.reachable,
                healthy: t.healthy,
                consecutive_failures: t.failures,
                last_seen_ms: t.last_seen.map(|s| {
                    now.duration_since(s)
                        .as_millis()
                        .try_into()
                        .unwrap_or(u64::MAX)
                }),
            });
        }
        out
    }

    /// Members that answer probes, this node included (what the start-up quorum counts).
    pub fn reachable_count(&self) -> usize {
        1 + self
            .lock()
            .values()
            .filter(|t| t.reachable && !t.is_self)
            .count()
    }

    /// Probes every address once, applies what changed, and rebuilds the ring.
    pub async fn probe_round(&self) {
        let addrs: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, t)| !t.is_self)
            .map(|(a, _)| a.clone())
            .collect();
        let timeout = self.config.probe_timeout;
        let probes = addrs.into_iter().map(|addr| async move {
            let result = self.transport.probe(&addr, timeout).await;
            (addr, result)
        });
        let results = futures::future::join_all(probes).await;
        let mut events = Vec::new();
        let mut to_flush = Vec::new();
        {
            let mut tracked = self.lock();
            for (addr, result) in results {
                let Some(t) = tracked.get_mut(&addr) else {
                    continue;
                };
                match result {
                    Ok(health) => self.observe_up(&addr, t, health, &mut events, &mut to_flush),
                    Err(err) => self.observe_down(&addr, t, &err, &mut events),
                }
            }
        }
        for (addr, id) in to_flush {
            let flushed = self.transport.flush(&addr, self.config.probe_timeout).await;
            let mut tracked = self.lock();
            let Some(t) = tracked.get_mut(&addr) else {
                continue;
            };
            match flushed {
                Ok(()) => {
                    t.needs_flush = false;
                    t.healthy = true;
                    tracing::info!(peer = %id, %addr, "peer is back; flushed its caches");
                    events.push(event(TopologyChange::Joined, &id, &addr));
                }
                Err(e) => {
                    tracing::warn!(peer = %id, %addr, error = %e, "peer is back but could not be flushed; keeping it out of the ring")
                }
            }
        }
        self.rebuild(events);
    }

    fn observe_up(
        &self,
        addr: &str,
        t: &mut Tracked,
        health: Health,
        events: &mut Vec<TopologyEvent>,
        to_flush: &mut Vec<(String, NodeId)>,
    ) {
        let id = NodeId::new(&health.node_id);
        if id == self.me {
            t.is_self = true;
            return;
        }
        t.failures = 0;
        t.reachable = true;
        t.last_seen = Some(Instant::now());
        if t.id.as_ref().is_some_and(|old| *old != id) && t.healthy {
            // Another node now answers at this address: the old one left.
            if let Some(old) = t.id.take() {
                events.push(event(TopologyChange::Left, &old, addr));
            }
            t.healthy = false;
        }
        t.id = Some(id.clone());
        if !health.ready {
            if t.healthy {
                t.healthy = false;
                t.needs_flush = true;
                events.push(event(TopologyChange::Left, &id, addr));
            }
            return;
        }
        if !t.healthy {
            if t.needs_flush {
                to_flush.push((addr.to_owned(), id));
            } else {
                t.healthy = true;
                events.push(event(TopologyChange::Joined, &id, addr));
            }
        }
    }

    fn observe_down(
        &self,
        addr: &str,
        t: &mut Tracked,
        err: &PeerError,
        events: &mut Vec<TopologyEvent>,
    ) {
        t.failures = t.failures.saturating_add(1);
        if t.failures >= self.config.failure_threshold {
            t.reachable = false;
            if t.healthy {
                t.healthy = false;
                t.needs_flush = true;
                let id = t.id.clone().unwrap_or_else(|| NodeId::new(addr));
                tracing::warn!(peer = %id, %addr, failures = t.failures, error = %err, "peer left the ring");
                events.push(event(TopologyChange::Left, &id, addr));
            }
        }
    }

    /// Rebuilds the ring from the healthy peers and publishes `events`.
    fn rebuild(&self, mut events: Vec<TopologyEvent>) {
        let tracked = self.lock();
        let mut reachable: Vec<NodeId> = tracked
            .values()
            .filter(|t| t.reachable && !t.is_self)
            .filter_map(|t| t.id.clone())
            .collect();
        reachable.push(self.me.clone());
        let mut peers: HashMap<NodeId, Arc<Peer>> = HashMap::new();
        for (addr, t) in tracked.iter() {
            if let (true, false, Some(id)) = (t.healthy, t.is_self, t.id.as_ref()) {
                if let Some(existing) = peers.get(id) {
                    tracing::warn!(peer = %id, first = %existing.addr, second = %addr, "two addresses answer with the same node id; using the first");
                    continue;
                }
                peers.insert(
                    id.clone(),
                    Arc::new(Peer {
                        id: id.clone(),
                        addr: addr.clone(),
                    }),
                );
            }
        }
        drop(tracked);
        let current = self.view.load();
        let settled = Ring::new(reachable);
        let settled_changed = settled.members().ne(current.settled.members());
        let changed = settled_changed
            || current.peers.len() != peers.len()
            || peers
                .iter()
                .any(|(id, p)| current.peers.get(id).is_none_or(|c| c.addr != p.addr));
        if changed {
            for (id, p) in &peers {
                if let Some(old) = current.peers.get(id)
                    && old.addr != p.addr
                {
                    events.push(event(TopologyChange::Updated, id, &p.addr));
                }
            }
            let ring = Ring::new(peers.keys().cloned().chain([self.me.clone()]));
            tracing::info!(members = ring.len(), "ring rebuilt");
            self.view.store(Arc::new(View {
                ring,
                peers,
                settled,
            }));
        }
        for e in events {
            // No subscriber is fine; a lagging one loses the oldest events.
            let _ = self.events.send(e);
        }
    }

    /// Probes until `minimum_peers_quorum` members (this node included) answer, retrying
    /// every `join_retry_interval`; fails after `bootstrap_timeout` naming who is missing.
    pub async fn wait_for_quorum(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            self.probe_round().await;
            let seen = self.reachable_count();
            if seen >= self.config.minimum_peers_quorum {
                tracing::info!(seen, "start-up quorum reached");
                return Ok(());
            }
            if started.elapsed() >= self.config.bootstrap_timeout {
                let missing: Vec<String> = self
                    .lock()
                    .iter()
                    .filter(|(_, t)| !t.reachable && !t.is_self)
                    .map(|(a, _)| a.clone())
                    .collect();
                return Err(Error::Unavailable(format!(
                    "start-up quorum not reached: {seen} of {} members answered within {} (no answer from: {})",
                    self.config.minimum_peers_quorum,
                    humantime::format_duration(self.config.bootstrap_timeout),
                    if missing.is_empty() {
                        "none known".to_owned()
                    } else {
                        missing.join(", ")
                    }
                )));
            }
            tracing::info!(
                seen,
                wanted = self.config.minimum_peers_quorum,
                "waiting for peers"
            );
            tokio::time::sleep(self.config.join_retry_interval).await;
        }
    }

    /// Probes every `probe_interval` until `shutdown` resolves.
    pub(crate) async fn run_prober(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.config.probe_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.probe_round().await,
                _ = crate::net::stopped(&mut shutdown) => return,
            }
        }
    }

    /// The time a peer needs to leave the ring after it stops answering.
    pub fn failure_detection_time(&self) -> Duration {
        self.config.probe_interval * self.config.failure_threshold + self.config.probe_timeout
    }
}

fn event(change: TopologyChange, id: &NodeId, addr: &str) -> TopologyEvent {
    TopologyEvent {
        change,
        node_id: id.to_string(),
        addr: addr.to_owned(),
        at: SystemTime::now(),
    }
}

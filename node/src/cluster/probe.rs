//! Learning who is up: probe rounds, announced departures, the start-up quorum, and the ring
//! rebuilt from what they found.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Cluster, Peer, TopologyChange, TopologyEvent, Tracked, View};
use crate::error::{Error, Result};
use crate::ring::{NodeId, Ring};
use crate::transport::PeerError;
use crate::wire::Health;

impl Cluster {
    /// A peer announced it is shutting down: it leaves the ring now. The announcement is only
    /// a hint: the peer is found by address (else by id), and acted on only once a probe of
    /// that address confirms the same node says it is stopping, so a stray or forged request
    /// cannot take a live peer out of the ring.
    pub(crate) async fn peer_leaving(&self, claimed: Health) {
        if claimed.node_id == self.me.as_str() {
            tracing::debug!(addr = %claimed.addr, "a leave announcement named this node; ignored");
            return;
        }
        let addr = {
            let tracked = self.lock();
            if tracked.contains_key(&claimed.addr) {
                Some(claimed.addr.clone())
            } else {
                tracked
                    .iter()
                    .find(|(_, t)| {
                        t.id.as_ref()
                            .is_some_and(|id| id.as_str() == claimed.node_id)
                    })
                    .map(|(addr, _)| addr.clone())
            }
        };
        let Some(addr) = addr else {
            tracing::debug!(peer = %claimed.node_id, addr = %claimed.addr, "unknown peer says it is leaving");
            return;
        };
        let health = match self.transport.probe(&addr, self.config.probe_timeout).await {
            Ok(h) if h.stopping && h.node_id == claimed.node_id => h,
            Ok(h) => {
                tracing::debug!(peer = %claimed.node_id, %addr, answered = %h.node_id, stopping = h.stopping, "leave announcement not confirmed");
                return;
            }
            // Gone already: the probes will take it out.
            Err(_) => return,
        };
        let mut events = Vec::new();
        {
            let mut tracked = self.lock();
            if let Some(t) = tracked.get_mut(&addr) {
                let mut no_flush = Vec::new();
                self.observe_up(&addr, t, health, &mut events, &mut no_flush);
            }
        }
        self.rebuild(events);
    }

    /// Tells every peer this node is shutting down, so they take it out of their rings at
    /// once; best effort, each within twice `probe_timeout`. Off with `announce_leave = false`.
    pub async fn announce_leaving(&self) {
        if !self.config.announce_leave {
            return;
        }
        let addrs: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, t)| t.reachable && !t.is_self)
            .map(|(a, _)| a.clone())
            .collect();
        let me = Health {
            status: "ok".into(),
            node_id: self.me.as_str().to_owned(),
            addr: self.my_addr.clone(),
            ready: false,
            stopping: true,
            owning: false,
            ring: Vec::new(),
            agreed: false,
            discovery: None,
        };
        // The peer probes this node back before it acts: room for that round trip too.
        let timeout = self.config.probe_timeout * 2;
        let me = &me;
        let told = addrs.into_iter().map(|addr| async move {
            if let Err(e) = self.transport.leaving(&addr, me, timeout).await {
                tracing::debug!(peer = %addr, error = %e, "could not announce leaving");
            }
        });
        futures::future::join_all(told).await;
    }

    /// Probes every address once, applies what changed, and rebuilds the ring.
    pub async fn probe_round(&self) {
        let _one_at_a_time = self.probing.lock().await;
        let started = Instant::now();
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
        self.fence.renew(started, self.listed_by_ready_peers());
        self.publish_news();
    }

    /// Whether every reachable peer that serves its keys (ready and owning) lists this node in
    /// its ring, so that its invalidations reach this node. A peer still joining owns nothing
    /// yet (it forwards its keys to their previous owners) and may not have probed this node.
    fn listed_by_ready_peers(&self) -> bool {
        let me = self.me.as_str();
        self.lock()
            .values()
            .filter(|t| t.reachable && !t.is_self && t.ready && t.owning)
            .all(|t| t.lists(me))
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
        t.last_seen = Some(Instant::now());
        if health.owning && !t.owning && t.healthy && health.ready {
            events.push(event(TopologyChange::Owning, &id, addr));
        }
        t.owning = health.owning;
        t.ring = health.ring;
        t.ready = health.ready && !health.stopping;
        if health.stopping {
            // Leaving for good: out of the ring at once, so warmups triggered by its leaving
            // already count it out.
            t.reachable = false;
            if t.healthy {
                t.healthy = false;
                t.needs_flush = true;
                events.push(event(TopologyChange::Left, &id, addr));
            }
            t.id = Some(id);
            return;
        }
        t.reachable = true;
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

    /// Rebuilds the ring from the healthy peers (and the owners' ring from those of them
    /// that are owning) and publishes `events`.
    pub(super) fn rebuild(&self, mut events: Vec<TopologyEvent>) {
        // Everything below, the view's store included, under the membership lock: rebuilds
        // racing each other (probes, discovery, becoming owning) store in the order they read.
        let tracked = self.lock();
        let owning = self.is_owning();
        let mut peers: HashMap<NodeId, Arc<Peer>> = HashMap::new();
        let mut owners: Vec<NodeId> = Vec::new();
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
                if t.owning {
                    owners.push(id.clone());
                }
            }
        }
        if owning {
            owners.push(self.me.clone());
        }
        let current = self.view.load();
        let owners = Ring::new(owners);
        let changed = owning != current.owning
            || owners.members().ne(current.owners.members())
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
            tracing::info!(
                members = ring.len(),
                owners = owners.len(),
                owning,
                "ring rebuilt"
            );
            self.view.store(Arc::new(View {
                ring,
                peers,
                owners,
                owning,
            }));
        }
        drop(tracked);
        if changed {
            self.publish_news();
        }
        for e in events {
            tracing::info!(change = ?e.change, peer = %e.node_id, addr = %e.addr, "topology changed");
            // No subscriber is fine; a lagging one loses the oldest events.
            let _ = self.events.send(e);
        }
    }

    /// Probes until `minimum_peers_quorum` members (this node included) answer, or until a
    /// peer answers that already serves (a running cluster, which this node joins without
    /// waiting: the quorum is for forming one), retrying every `join_retry_interval`; fails
    /// after `bootstrap_timeout` naming who is missing and `via`, where the addresses came
    /// from. Discovery may add addresses meanwhile.
    pub async fn wait_for_quorum(&self, via: &str) -> Result<()> {
        let started = Instant::now();
        let wanted = self.config.minimum_peers_quorum;
        loop {
            self.probe_round().await;
            let seen = self.reachable_count();
            if seen >= wanted {
                tracing::info!(seen, via, "start-up quorum reached");
                return Ok(());
            }
            if let Some(serving) = self.serving_peer() {
                tracing::info!(seen, wanted, peer = %serving, via, "a running cluster answers; joining it without waiting for the start-up quorum");
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
                    "start-up quorum not reached: saw {seen} of {wanted} members after {} via {via} (no answer from: {})",
                    humantime::format_duration(self.config.bootstrap_timeout),
                    if missing.is_empty() {
                        "none known".to_owned()
                    } else {
                        missing.join(", ")
                    }
                )));
            }
            tracing::info!(seen, wanted, via, "waiting for peers");
            tokio::time::sleep(self.config.join_retry_interval).await;
        }
    }

    /// A peer in the ring (it answered ready: a cluster runs), by name.
    fn serving_peer(&self) -> Option<String> {
        self.lock()
            .iter()
            .find(|(_, t)| t.healthy && !t.is_self)
            .map(|(addr, t)| match &t.id {
                Some(id) => id.to_string(),
                None => addr.clone(),
            })
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

pub(super) fn event(change: TopologyChange, id: &NodeId, addr: &str) -> TopologyEvent {
    TopologyEvent {
        change,
        node_id: id.to_string(),
        addr: addr.to_owned(),
        at: SystemTime::now(),
    }
}

//! Cluster membership as this node sees it, and who owns which key.
//!
//! Discovery supplies addresses; probing each one (`GET /healthz`) tells who answers there
//! and whether it serves. A peer that answers and is ready joins the ring; one that fails
//! `failure_threshold` probes in a row, says it is not ready, or announces it is shutting down
//! (`cluster/probe.rs`), leaves it. A peer that left
//! and comes back is flushed first: while it was out, this node's deletes and puts did not
//! reach it, so its caches may hold old values. Every change rebuilds the ring and is published
//! as a [`TopologyEvent`]; publishing never blocks (a slow subscriber loses events and is told
//! how many).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::fence::Fence;
pub use crate::ring::Peer;
use crate::ring::{NodeId, Ring};
use crate::telemetry::PeerCalls;
use crate::transport::{MeteredTransport, PeerTransport};

mod config;
mod join;
mod probe;

pub use config::ClusterConfig;

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

impl<T> ByOwner<T> {
    /// Every item served here (no cluster to send any elsewhere).
    pub fn all_local(local: Vec<T>) -> Self {
        ByOwner {
            local,
            remote: Vec::new(),
        }
    }

    /// Adds `item` to `peer`'s batch.
    pub fn push_remote(&mut self, peer: Arc<Peer>, item: T) {
        match self.remote.iter_mut().find(|(p, _)| p.id == peer.id) {
            Some((_, items)) => items.push(item),
            None => self.remote.push((peer, vec![item])),
        }
    }
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
    /// A peer that joined took its keys over and now serves them itself.
    Owning,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The discovery source that lists it (for this node: how it finds its peers); absent
    /// from older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Default)]
struct Tracked {
    id: Option<NodeId>,
    reachable: bool,
    healthy: bool,
    /// Serves its keys itself (not still taking them over).
    owning: bool,
    /// Its ring as it last reported it, by id, sorted.
    ring: Vec<String>,
    /// It said it serves (ready, not stopping) when it last answered.
    ready: bool,
    failures: u32,
    last_seen: Option<Instant>,
    /// Left the ring after having been in it: flush before it comes back.
    needs_flush: bool,
    /// This address turned out to be this node.
    is_self: bool,
}

impl Tracked {
    /// Whether the peer's last reported ring lists node `me` (a peer that reports no ring
    /// runs a version without it and cannot say: it counts as listing).
    fn lists(&self, me: &str) -> bool {
        self.ring.is_empty() || self.ring.iter().any(|id| id == me)
    }
}

/// The live membership of the ring and the ring itself.
pub(crate) struct View {
    /// Every ready member, this node included: where requests for a key are sent.
    pub ring: Ring,
    pub peers: HashMap<NodeId, Arc<Peer>>,
    /// The members that serve their keys themselves (this node once it is owning): where a
    /// joining member forwards the keys it does not serve yet.
    pub owners: Ring,
    /// Whether this node serves the keys the ring gives it.
    pub owning: bool,
}

/// Membership, probing and ownership for one node.
pub struct Cluster {
    me: NodeId,
    my_addr: String,
    config: ClusterConfig,
    transport: Arc<dyn PeerTransport>,
    /// Every call through `transport`, by peer (it is wrapped to record them).
    peer_calls: Arc<PeerCalls>,
    tracked: Mutex<BTreeMap<String, Tracked>>,
    view: ArcSwap<View>,
    events: broadcast::Sender<TopologyEvent>,
    /// Whether this node serves its keys itself (see `cluster/join.rs`).
    owning: std::sync::atomic::AtomicBool,
    /// One probe round at a time (the prober, joining and start-up all probe): two rounds
    /// that both found a returning peer would flush it twice, the second time after it was
    /// back in the ring and held new writes.
    probing: tokio::sync::Mutex<()>,
    /// Addresses that left the ring because discovery stopped listing them: flushed if they
    /// come back.
    departed: Mutex<std::collections::HashSet<String>>,
    /// Where the addresses come from (the discovery provider's description).
    source: Mutex<Option<String>>,
    /// Whether this node's caches may answer (see `fence.rs`), renewed by every probe round.
    fence: Arc<Fence>,
    /// Bumped whenever the view is replaced or a probe round ends: what waits on the
    /// membership (a write waiting for an owner, a read watching its owner) looks again.
    news: tokio::sync::watch::Sender<u64>,
}

/// How many departed addresses are remembered.
const MAX_DEPARTED: usize = 4096;

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
            owners: Ring::new(std::iter::empty()),
            owning: false,
        };
        let peer_calls = Arc::new(PeerCalls::default());
        let transport = Arc::new(MeteredTransport::new(transport, Arc::clone(&peer_calls)));
        let fence = Arc::new(Fence::new(Fence::lease_for(
            config.failure_threshold,
            config.probe_interval,
            config.probe_timeout,
        )));
        Cluster {
            me,
            my_addr,
            config,
            transport,
            peer_calls,
            tracked: Mutex::new(BTreeMap::new()),
            view: ArcSwap::from_pointee(view),
            events,
            owning: std::sync::atomic::AtomicBool::new(false),
            probing: tokio::sync::Mutex::new(()),
            departed: Mutex::new(Default::default()),
            source: Mutex::new(None),
            fence,
            news: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Follows membership news: the receiver sees a change whenever the view is replaced or
    /// a probe round ends.
    pub(crate) fn news(&self) -> tokio::sync::watch::Receiver<u64> {
        self.news.subscribe()
    }

    fn publish_news(&self) {
        self.news.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the peer at `addr` is suspect: it failed its last probe, or it is no longer
    /// in the ring.
    pub(crate) fn suspects(&self, addr: &str) -> bool {
        self.lock()
            .get(addr)
            .is_none_or(|t| t.failures > 0 || !t.healthy)
    }

    /// Whether the peer at `addr` is out of the ring (it failed `failure_threshold` probes
    /// in a row, or left): it is flushed before it serves again.
    pub(crate) fn dropped(&self, addr: &str) -> bool {
        self.lock().get(addr).is_none_or(|t| !t.healthy)
    }

    /// The fence of this node's caches, shared with its keyspaces.
    pub(crate) fn fence(&self) -> &Arc<Fence> {
        &self.fence
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

    /// The calls this node made to its peers.
    pub(crate) fn peer_calls(&self) -> &PeerCalls {
        &self.peer_calls
    }

    /// Follows topology changes.
    pub fn subscribe(&self) -> TopologyEvents {
        TopologyEvents {
            rx: self.events.subscribe(),
            dropped: 0,
        }
    }

    /// Replaces the addresses to probe (from discovery). This node's own address is skipped;
    /// peers no longer listed leave the ring at once (a `Left` event). An address that left
    /// while in the ring and is listed again is flushed before it rejoins, as after a failure:
    /// while it was out, this node's writes did not reach it.
    pub fn set_addresses(&self, addrs: &[String]) {
        let mut events = Vec::new();
        let mut tracked = self.lock();
        let mut departed = self.departed.lock().unwrap_or_else(|e| e.into_inner());
        tracked.retain(|addr, t| {
            if addrs.contains(addr) {
                return true;
            }
            if t.healthy || t.needs_flush {
                departed.insert(addr.clone());
            }
            if t.healthy && !t.is_self {
                let id = t.id.clone().unwrap_or_else(|| NodeId::new(addr));
                tracing::info!(peer = %id, %addr, "peer no longer discovered; it left the ring");
                events.push(probe::event(TopologyChange::Left, &id, addr));
            }
            false
        });
        for addr in addrs {
            if *addr != self.my_addr && !tracked.contains_key(addr) {
                let returning = departed.remove(addr);
                tracing::debug!(%addr, returning, "address discovered");
                tracked.insert(
                    addr.clone(),
                    Tracked {
                        needs_flush: returning,
                        ..Tracked::default()
                    },
                );
            }
        }
        // Bounded: in a cluster whose pods get new addresses each time, old ones never return.
        if departed.len() > MAX_DEPARTED {
            departed.clear();
        }
        drop(departed);
        drop(tracked);
        self.rebuild(events);
    }

    /// Records where the addresses come from (shown with each member and in `/healthz`).
    pub fn set_discovery_source(&self, source: impl Into<String>) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source.into());
    }

    /// Where the addresses come from, once discovery started.
    pub fn discovery_source(&self) -> Option<String> {
        self.source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether this node serves `(keyspace, key)` itself: it owns the key and is owning.
    /// Warmups go by it, so a key is warmed by the node that will serve it, once.
    pub(crate) fn will_own(&self, keyspace: &str, key: &str) -> bool {
        let view = self.view.load();
        view.owning
            && view
                .ring
                .owner(keyspace, key)
                .is_none_or(|owner| *owner == self.me)
    }

    /// Where `(keyspace, key)` is loaded: on the owner the ring names, or, for a key this
    /// node owns but does not serve yet (it is joining), on the owner among the owning
    /// members.
    #[inline]
    pub(crate) fn route(&self, keyspace: &str, key: &str) -> Route {
        let view = self.view.load();
        match view.ring.owner(keyspace, key) {
            Some(owner) if *owner != self.me => match view.peers.get(owner) {
                Some(peer) => Route::Remote(Arc::clone(peer)),
                None => Route::Local,
            },
            _ if view.owning => Route::Local,
            _ => match Self::forward_in(&view, &self.me, keyspace, key) {
                Some(peer) => Route::Remote(peer),
                None => Route::Local,
            },
        }
    }

    /// Where a joining node sends a key a peer asked it for: the key's owner among the
    /// owning members, unless that is this node. `None` once this node is owning: a peer's
    /// request is then always served here.
    pub(crate) fn forward_target(&self, keyspace: &str, key: &str) -> Option<Arc<Peer>> {
        let view = self.view.load();
        if view.owning {
            return None;
        }
        Self::forward_in(&view, &self.me, keyspace, key)
    }

    fn forward_in(view: &View, me: &NodeId, keyspace: &str, key: &str) -> Option<Arc<Peer>> {
        view.owners
            .owner(keyspace, key)
            .filter(|owner| *owner != me)
            .and_then(|owner| view.peers.get(owner))
            .cloned()
    }

    /// Whether this node serves the keys it owns itself.
    pub fn is_owning(&self) -> bool {
        self.owning.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Declares this node owning (or not) and rebuilds the ring.
    pub(crate) fn set_owning(&self, owning: bool) {
        self.owning
            .store(owning, std::sync::atomic::Ordering::Release);
        self.rebuild(Vec::new());
    }

    /// The ids of the ring's members, sorted (what `/healthz` reports).
    pub fn ring_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .view
            .load()
            .ring
            .members()
            .map(NodeId::to_string)
            .collect();
        ids.sort();
        ids
    }

    /// Splits `items` by the owner of their key, so that each owner gets one batch.
    pub(crate) fn split<T>(
        &self,
        keyspace: &str,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> &str,
    ) -> ByOwner<T> {
        let mut by_owner = ByOwner::all_local(Vec::new());
        for item in items {
            match self.route(keyspace, key(&item)) {
                Route::Local => by_owner.local.push(item),
                Route::Remote(peer) => by_owner.push_remote(peer, item),
            }
        }
        by_owner
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
            source: self.discovery_source(),
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
                source: self.discovery_source(),
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
}

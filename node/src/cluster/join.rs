//! Joining without a stale read: a node takes ownership of its keys only once every peer
//! routes them to it, and only after taking over what their previous owners cached.
//!
//! A node that starts is *ready* (peers put it in their rings and send it its keys) but not
//! *owning*: it forwards the keys it owns to their owner among the owning members, and
//! answers peers' requests for them the same way. Once every reachable peer lists it in its
//! ring (the acknowledgement), the engine takes the entries of its keys over from the owning
//! peers (`engine/handoff.rs`) and the node becomes owning. The cluster *agrees* when every
//! healthy member is owning and reports the same ring: `/readyz` waits for that.

use std::sync::Arc;

use super::{Cluster, Peer};
use crate::ring::NodeId;

impl Cluster {
    /// `Ok` when every reachable peer is ready and lists this node in its ring, so every
    /// request for this node's keys comes here; else who is missing.
    pub(crate) fn acknowledged(&self) -> Result<(), String> {
        let me = self.me.as_str();
        let missing: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, t)| t.reachable && !t.is_self)
            // A peer that reports no ring runs a version without it: it cannot say, and
            // waiting for it would stall a rolling upgrade for good.
            .filter(|(_, t)| !(t.healthy && t.lists(me)))
            .map(|(addr, t)| match &t.id {
                Some(id) => format!("{id} ({addr})"),
                None => addr.clone(),
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    }

    /// Whether some peer answers probes: a node alone owns its keys at once.
    pub(crate) fn has_reachable_peers(&self) -> bool {
        self.lock().values().any(|t| t.reachable && !t.is_self)
    }

    /// The peers in the ring that serve their keys themselves: where a joining node takes its
    /// keys' entries over from.
    pub(crate) fn owning_peers(&self) -> Vec<Arc<Peer>> {
        let view = self.view.load();
        view.owners
            .members()
            .filter(|id| **id != self.me)
            .filter_map(|id| view.peers.get(id).cloned())
            .collect()
    }

    /// The peer that owns `(keyspace, key)` in this node's ring (`None`: this node does).
    pub(crate) fn ring_owner_peer(&self, keyspace: &str, key: &str) -> Option<Arc<Peer>> {
        let view = self.view.load();
        view.ring
            .owner(keyspace, key)
            .filter(|owner| **owner != self.me)
            .and_then(|owner| view.peers.get(owner))
            .cloned()
    }

    /// The peer that holds the replica of `(keyspace, key)` in this node's ring (`None`: this
    /// node does, or the ring has one member).
    pub(crate) fn replica_peer(&self, keyspace: &str, key: &str) -> Option<Arc<Peer>> {
        let view = self.view.load();
        view.ring
            .replica(keyspace, key)
            .filter(|replica| **replica != self.me)
            .and_then(|replica| view.peers.get(replica))
            .cloned()
    }

    /// The peer that holds `(keyspace, key)` once `owner` is gone: its replica while `owner`
    /// is in this node's ring, its owner once `owner` has left it (`None`: this node).
    pub(crate) fn successor_peer(
        &self,
        keyspace: &str,
        key: &str,
        owner: &NodeId,
    ) -> Option<Arc<Peer>> {
        let view = self.view.load();
        view.ring
            .owner_without(keyspace, key, owner)
            .filter(|next| **next != self.me)
            .and_then(|next| view.peers.get(next))
            .cloned()
    }

    /// Whether this node holds the replica of `(keyspace, key)` in its ring.
    pub(crate) fn is_replica(&self, keyspace: &str, key: &str) -> bool {
        self.view
            .load()
            .ring
            .replica(keyspace, key)
            .is_some_and(|replica| *replica == self.me)
    }

    /// Whether `node` holds the replica of `(keyspace, key)` in this node's ring.
    pub(crate) fn replica_is(&self, node: &str, keyspace: &str, key: &str) -> bool {
        self.view
            .load()
            .ring
            .replica(keyspace, key)
            .is_some_and(|replica| replica.as_str() == node)
    }

    /// Whether a write of this node's keys may go ahead: this node serves them itself, or it
    /// is joining and every other member of its ring serves its keys — so the member a write
    /// is forwarded to stays the one that holds it until this node takes its keys over. While
    /// other members are joining too (a cluster forming), the member a key is forwarded to
    /// changes as each of them becomes owning, and a write stored on one would be missed by
    /// reads sent to the next.
    pub(crate) fn writes_settled(&self) -> bool {
        let view = self.view.load();
        view.owning
            || (!view.owners.is_empty()
                && view
                    .ring
                    .members()
                    .filter(|m| **m != self.me)
                    .all(|m| view.owners.contains(m)))
    }

    /// Whether `node` owns `(keyspace, key)` in this node's ring.
    pub(crate) fn owner_is(&self, node: &str, keyspace: &str, key: &str) -> bool {
        self.view
            .load()
            .ring
            .owner(keyspace, key)
            .is_some_and(|owner| owner.as_str() == node)
    }

    /// Whether a peer that serves its keys itself owns `(keyspace, key)` in this node's ring.
    pub(crate) fn owned_by_owning_peer(&self, keyspace: &str, key: &str) -> bool {
        let view = self.view.load();
        view.ring
            .owner(keyspace, key)
            .is_some_and(|owner| *owner != self.me && view.owners.members().any(|o| o == owner))
    }

    /// Whether `node` is a member of this node's ring.
    pub(crate) fn in_ring(&self, node: &str) -> bool {
        self.view
            .load()
            .ring
            .members()
            .any(|id| id.as_str() == node)
    }

    /// Whether the cluster agrees on ownership as far as this node can tell: it is owning,
    /// and every healthy peer is owning and reports the same ring as this node's.
    pub fn agreed(&self) -> bool {
        if !self.is_owning() {
            return false;
        }
        let mine = self.ring_ids();
        self.lock()
            .values()
            .filter(|t| t.healthy && !t.is_self)
            .all(|t| t.owning && (t.ring.is_empty() || t.ring == mine))
    }

    /// Whether the cluster agrees and no reachable peer is still starting (one that is would
    /// change the ring when it becomes ready). Start warmups wait for this, so that a key is
    /// warmed once, by the member that keeps it.
    pub(crate) fn settled(&self) -> bool {
        self.agreed()
            && self
                .lock()
                .values()
                .all(|t| t.is_self || !t.reachable || t.healthy)
    }
}

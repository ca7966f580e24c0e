//! Where a read goes when the usual place cannot answer, and the replica's part in it.
//!
//! - **The owner cannot serve** (nothing answers at its address, or it is silent and fails
//!   its probes — paused, cut off): the reading node asks the node that holds the keys once
//!   that owner is gone — their replica, or their new owner when the ring dropped the owner
//!   since the read was sent — for the values it holds (a keyspace with `replicas = 2`: the
//!   replica holds every acknowledged put), then loads the rest from its own data source,
//!   all within the read's deadline. Values loaded beside a silent owner answer the callers
//!   only: the owner may be alive and hold newer ones.
//! - **The owner lacks a key** (restarted, flushed by its peers, new to the key after a
//!   join, or its cache fence is closed): before its data source, it asks the key's replica
//!   for the value it holds (read repair), and keeps it.
//!
//! The replica answers from its main cache only (`Engine::serve_copies`): never loaded there,
//! never passed on, nothing while its own fence is closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::Space;
use super::load::Target;
use crate::cluster::Cluster;
use crate::error::Error;
use crate::flight::Ticket;
use crate::ring::Peer;
use crate::store::Cached;
use crate::transport::RemoteValue;

impl Space {
    /// The cluster, when this keyspace keeps a replica of each put in it.
    fn replicated(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref().filter(|_| self.settings.replicas > 1)
    }

    /// Resolves once `owner` has had a quarter of the read timeout to answer and the
    /// membership gives up on it; never without a cluster. In a keyspace with replicas, that
    /// is as soon as it fails a probe: the replica holds every acknowledged put. Without,
    /// only once it is out of the ring: it is flushed before it serves again, so the source
    /// is then what any node would answer — before that, a slow owner that may come back
    /// with its puts is waited for (the read fails at its deadline rather than answer an
    /// older value).
    pub(crate) async fn owner_gone(&self, owner: &Peer) {
        let Some(cluster) = &self.cluster else {
            return std::future::pending().await;
        };
        tokio::time::sleep(self.settings.read_timeout / 4).await;
        let replicated = self.replicated().is_some();
        let gone = || {
            if replicated {
                cluster.suspects(&owner.addr)
            } else {
                cluster.dropped(&owner.addr)
            }
        };
        let mut news = cluster.news();
        while !gone() {
            if news.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Answers `tickets`, whose owner `owner` cannot serve them, by `deadline`: from their
    /// replica where it holds them, else from this node's data source, keeping what the
    /// source answers in `target`.
    pub(super) async fn fall_back(
        &self,
        owner: &Peer,
        tickets: Vec<Ticket>,
        target: Target,
        deadline: Instant,
    ) {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let tickets = match self.replicated() {
            Some(cluster) => {
                // Who holds a copy once the owner is gone: its replica, or — the ring having
                // dropped the owner since the read was sent — the key's new owner.
                let by_replica = group_by(tickets, |key| {
                    cluster.successor_peer(self.name(), key, &owner.id)
                });
                // Half the time left: the source may still have to be asked.
                self.ask_replicas(cluster, by_replica, remaining() / 2, Target::Nowhere)
                    .await
            }
            None => tickets,
        };
        if tickets.is_empty() {
            return;
        }
        let wait = remaining();
        if wait.is_zero() {
            let err = Error::timeout(
                "a read whose owner cannot serve it",
                self.settings.read_timeout,
            );
            for ticket in tickets {
                ticket.resolve(Err(err.clone()));
            }
            return;
        }
        if let Some((tickets, pass)) = self.admit(tickets)
            && let Some((_slot, tickets)) = self.slot(pass, tickets, wait).await
        {
            self.fetch_local(tickets, target, remaining().max(Duration::from_millis(1)))
                .await;
        }
    }

    /// Read repair, on the node that owns `tickets`' keys: asks their replica (in a keyspace
    /// with replicas) for the values it holds and keeps those in the main cache; returns the
    /// tickets it held nothing for, for the data source.
    pub(super) async fn repair(&self, tickets: Vec<Ticket>) -> Vec<Ticket> {
        let Some(cluster) = self.replicated() else {
            return tickets;
        };
        if tickets.is_empty() {
            return tickets;
        }
        // Not while a write of these keys is on its way to the replica: the replica may still
        // hold what a delete here has removed.
        let _ordered = self
            .write_order
            .lock(self.name(), tickets.iter().map(Ticket::key))
            .await;
        // Landed meanwhile.
        let tickets = self.drop_hits(tickets).await;
        let by_replica = group_by(tickets, |key| cluster.replica_peer(self.name(), key));
        // A quarter of the read: a replica that does not answer by then leaves the source
        // time to.
        let timeout = self.settings.read_timeout / 4;
        self.ask_replicas(cluster, by_replica, timeout, Target::Main)
            .await
    }

    /// Asks each replica in `by_replica` for the values it holds of its tickets' keys (within
    /// `timeout`), answers the tickets it had values for (keeping them in `target`), and
    /// returns the rest.
    async fn ask_replicas(
        &self,
        cluster: &Cluster,
        by_replica: ByReplica,
        timeout: Duration,
        target: Target,
    ) -> Vec<Ticket> {
        let ByReplica { mut rest, groups } = by_replica;
        if timeout.is_zero() {
            rest.extend(groups.into_values().flat_map(|(_, tickets)| tickets));
            return rest;
        }
        let calls = groups.into_values().map(|(replica, tickets)| async move {
            let keys: Vec<String> = tickets.iter().map(|t| t.key().to_owned()).collect();
            let answer = cluster
                .transport()
                .copies(&replica.addr, self.name(), &keys, timeout)
                .await;
            (replica, tickets, answer)
        });
        for (replica, tickets, answer) in futures::future::join_all(calls).await {
            let answers = match answer {
                Ok(answers) if answers.len() == tickets.len() => answers,
                Ok(_) => {
                    debug!(keyspace = %self.name(), replica = %replica.id, "replica answered the wrong number of keys");
                    rest.extend(tickets);
                    continue;
                }
                Err(e) => {
                    debug!(keyspace = %self.name(), replica = %replica.id, error = %e, "replica cannot say what it holds");
                    rest.extend(tickets);
                    continue;
                }
            };
            for (ticket, answer) in tickets.into_iter().zip(answers) {
                match answer {
                    Ok(Some(copy)) => {
                        debug!(keyspace = %self.name(), key = ticket.key(), replica = %replica.id, "answered from the replica");
                        self.settle_copy(ticket, copy, target).await;
                    }
                    Ok(None) | Err(_) => rest.push(ticket),
                }
            }
        }
        rest
    }

    /// Answers `ticket` with the value a replica held, kept in `target` (unless a write of
    /// the key landed meanwhile, or the fence is closed).
    async fn settle_copy(&self, ticket: Ticket, copy: RemoteValue, target: Target) {
        let expires_at = copy.ttl.and_then(|t| Instant::now().checked_add(t));
        let entry = Cached::found(copy.value, expires_at);
        if let Some(store) = self.store(target)
            && copy.ttl.is_none_or(|t| !t.is_zero())
            && self.caching()
        {
            store
                .insert_unless(ticket.key(), entry.clone(), ticket.cancelled())
                .await;
        }
        ticket.resolve(Ok(entry));
    }
}

/// Tickets by the peer holding a copy of their key, and those without one to ask.
struct ByReplica {
    /// Tickets whose copy this node holds, or nobody.
    rest: Vec<Ticket>,
    /// Tickets by their holder's id.
    groups: HashMap<String, (Arc<Peer>, Vec<Ticket>)>,
}

/// Groups `tickets` by the peer `holder` names for their key; those it names none for (this
/// node holds the copy, or nobody) are left aside.
fn group_by(tickets: Vec<Ticket>, holder: impl Fn(&str) -> Option<Arc<Peer>>) -> ByReplica {
    let mut by = ByReplica {
        rest: Vec::new(),
        groups: HashMap::new(),
    };
    for ticket in tickets {
        match holder(ticket.key()) {
            Some(peer) => by
                .groups
                .entry(peer.id.to_string())
                .or_insert_with(|| (peer, Vec::new()))
                .1
                .push(ticket),
            None => by.rest.push(ticket),
        }
    }
    by
}

//! Joining a cluster without a stale read (the protocol is in `cluster/join.rs`): the joining
//! node's takeover of its keys' entries, the owning node's handoff of them, and the gate that
//! keeps forwarded writes from landing on a previous owner after it handed its entries over.

use std::time::Duration;

use tokio::sync::RwLockReadGuard;

use super::{Engine, Inner};
use crate::error::{Error, Result};
use crate::wire::HandoffEntry;

impl Inner {
    /// While this node is joining, a write of its keys is forwarded to their previous owner;
    /// it holds the join gate shared, so the takeover (which holds it exclusively) starts only
    /// once every forwarded write landed, and none lands later. While other members are
    /// joining too (a cluster forming), a write waits until they serve their keys
    /// ([`Cluster::writes_settled`](crate::cluster::Cluster::writes_settled)). Waits at most
    /// `timeout` in all.
    pub(crate) async fn write_gate(
        &self,
        timeout: Duration,
    ) -> Result<Option<RwLockReadGuard<'_, ()>>> {
        match &self.cluster {
            Some(cluster) if !cluster.is_owning() => {
                let gate = async {
                    let mut news = cluster.news();
                    while !cluster.writes_settled() {
                        if news.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    self.join_gate.read().await
                };
                tokio::time::timeout(timeout, gate)
                    .await
                    .map(Some)
                    .map_err(|_| {
                        let why = if cluster.writes_settled() {
                            "this node is taking its keys over from their previous owners; retry"
                        } else {
                            "members of the cluster are still taking their keys over; retry"
                        };
                        Error::Unavailable(why.into())
                    })
            }
            _ => Ok(None),
        }
    }
}

impl Engine {
    /// The entries this node caches for keys that node `to` owns in its ring (and, in a
    /// keyspace with replicas, for keys whose replica `to` is), for `to` to take over,
    /// collected once the writes this node is applying are done. Values are
    /// shared, not copied. Fails while `to` is not in the ring: its
    /// keys are still this node's to serve, and it would miss some.
    pub(crate) async fn handoff_entries(&self, to: &str) -> Result<Vec<HandoffEntry>> {
        let Some(cluster) = &self.inner.cluster else {
            return Ok(Vec::new());
        };
        if !cluster.in_ring(to) {
            return Err(Error::Unavailable(format!(
                "node `{to}` is not in the ring of node `{}` yet",
                cluster.me()
            )));
        }
        // Writes this node applies as owner finish first (they were routed here before `to`
        // joined the ring); later ones for `to`'s keys are passed on to it.
        let _barrier = self.inner.owner_gate.write().await;
        let mut out = Vec::new();
        for space in self.inner.spaces_now().values() {
            let name = space.name();
            // Its own keys, and the copies it keeps as their replica.
            let replicas = space.settings.replicas > 1;
            let wanted = |k: &str| {
                cluster.owner_is(to, name, k) || (replicas && cluster.replica_is(to, name, k))
            };
            for (key, cached) in space.main.entries_where(wanted) {
                let ttl_ms = cached
                    .remaining()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                if ttl_ms == Some(0) {
                    continue;
                }
                if let Some(value) = cached.value {
                    out.push(HandoffEntry {
                        keyspace: name.to_owned(),
                        key: key.as_ref().clone(),
                        value,
                        ttl_ms,
                    });
                }
            }
        }
        tracing::info!(
            to,
            entries = out.len(),
            "handing entries over to a joining node"
        );
        Ok(out)
    }

    /// Drops from the main caches the entries of keys that another member owns and serves
    /// itself: copies left behind after a joining member took them over (but not the copies
    /// this node keeps as the keys' replica). Requests for them
    /// go to that member; writes there would have removed them here anyway.
    pub(crate) async fn drop_handed_over(&self) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        let mut dropped = 0usize;
        for space in self.inner.spaces_now().values() {
            let name = space.name();
            // A keyspace with replicas keeps the copies this node holds as their replica.
            let replicas = space.settings.replicas > 1;
            let moved = space.main.entries_where(|k| {
                cluster.owned_by_owning_peer(name, k) && !(replicas && cluster.is_replica(name, k))
            });
            for (key, _) in moved {
                if space.main.remove(&key).await {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            tracing::info!(dropped, "dropped entries handed over to their new owners");
        }
    }

    /// Takes this node's keys over: with forwarded writes held back (every write of them comes
    /// through here once every peer routes them here), adopts the entries every owning peer
    /// caches for them, then becomes owning. Returns how many entries were adopted. On failure
    /// the node stays joining (and forwarding), to try again.
    pub(crate) async fn take_over(&self) -> Result<u64> {
        let Some(cluster) = &self.inner.cluster else {
            return Ok(0);
        };
        let _frozen = self.inner.join_gate.write().await;
        let spaces = self.inner.spaces_now();
        for space in spaces.values() {
            space.begin_takeover();
        }
        let me = cluster.me().to_string();
        let timeout = cluster.config().bootstrap_timeout;
        let mut adopted = 0u64;
        let mut outcome = Ok(());
        for peer in cluster.owning_peers() {
            let (sink, mut entries) = tokio::sync::mpsc::channel::<HandoffEntry>(256);
            let fetch = cluster.transport().handoff(&peer.addr, &me, timeout, sink);
            let adopt = async {
                let mut n = 0u64;
                while let Some(e) = entries.recv().await {
                    let ttl = e.ttl_ms.map(Duration::from_millis);
                    if let Some(space) = spaces.get(&e.keyspace)
                        && space.adopt(&e.key, e.value, ttl).await
                    {
                        n += 1;
                    }
                }
                n
            };
            let (fetched, n) = tokio::join!(fetch, adopt);
            adopted += n;
            if let Err(e) = fetched {
                outcome = Err(Error::Unavailable(format!(
                    "cannot take keys over from {}: {e}",
                    peer.id
                )));
                break;
            }
        }
        let mut held = true;
        for space in spaces.values() {
            held &= space.end_takeover();
        }
        outcome?;
        if !held {
            return Err(Error::Unavailable(
                "the caches were flushed during the takeover; taking the keys over again".into(),
            ));
        }
        cluster.set_owning(true);
        tracing::info!(adopted, "took the keys over; serving them");
        Ok(adopted)
    }

    /// Joins the cluster: once every reachable peer routes this node's keys here, takes them
    /// over and becomes owning (at once when no peer answers). Retries every
    /// `join_retry_interval` until it succeeds or the engine stops.
    pub(crate) async fn join_cluster(&self) {
        let Some(cluster) = self.inner.cluster.clone() else {
            return;
        };
        let pause = cluster.config().join_retry_interval;
        let mut last_wait = String::new();
        while self.is_running() && !cluster.is_owning() {
            cluster.probe_round().await;
            if !cluster.has_reachable_peers() {
                cluster.set_owning(true);
                tracing::info!("no peer answers: owning every key");
                break;
            }
            match cluster.acknowledged() {
                Ok(()) => match self.take_over().await {
                    Ok(_) => break,
                    Err(e) => tracing::warn!(error = %e, "takeover failed; retrying"),
                },
                Err(waiting) if waiting != last_wait => {
                    tracing::info!(waiting_for = %waiting, "joining: waiting for peers to route this node's keys here");
                    last_wait = waiting;
                }
                Err(_) => {}
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Waits (probing) until the cluster agrees on ownership and no reachable peer is still
    /// starting, at most `limit`; returns whether it does.
    pub(crate) async fn wait_settled(&self, limit: Duration) -> bool {
        let Some(cluster) = self.inner.cluster.clone() else {
            return true;
        };
        let pause = cluster.config().join_retry_interval;
        let deadline = crate::units::deadline_after(tokio::time::Instant::now(), limit);
        loop {
            if cluster.settled() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline || !self.is_running() {
                return false;
            }
            tokio::time::sleep(pause).await;
            cluster.probe_round().await;
        }
    }
}

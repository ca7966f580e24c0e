//! The engine's side of node-to-node calls: writes sent to owners, invalidations sent to every
//! peer, and the owner-side handlers that serve peers' requests: here when this node serves
//! the key, else passed on once — to the owner this node knows (never back to the sender,
//! never past `MAX_HOPS` nodes) or, while this node joins, to the key's previous owner.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Engine, Inner, ReadMode};
use crate::cluster::{ByOwner, Cluster, Peer};
use crate::entry::{Entry, KeyResult, answered};
use crate::error::{Error, Result};
use crate::space::Space;
use crate::store::Cached;

/// Which copies an invalidation leaves alone: a peer and a key it keeps (the key's replica,
/// which gets the new value instead).
pub(super) type Keeps<'a> = dyn Fn(&Peer, &str) -> bool + Sync + 'a;

/// A value served to a peer, with its remaining time to live here.
pub(crate) type Served = Option<(Bytes, Option<Duration>)>;

fn served(cached: Cached) -> Served {
    let ttl = cached.remaining();
    cached.value.map(|v| (v, ttl))
}

impl Inner {
    /// Removes `keys` from every peer in the ring, except the copies `keeps` names (a peer
    /// and a key it keeps). Fails, naming them, when some peers did not confirm: they may
    /// still hold the old values.
    pub(super) async fn invalidate_peers(
        &self,
        space: &Space,
        keys: &[String],
        keeps: Option<&Keeps<'_>>,
    ) -> Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        if keys.is_empty() {
            return Ok(());
        }
        // Half the write timeout: an owner serving a forwarded write answers within the
        // sender's deadline (the whole write timeout), so the sender hears which copies may
        // be stale rather than a bare time-out.
        let timeout = space.settings.write_timeout / 2;
        let peers = cluster.live_peers();
        let calls = peers.iter().filter_map(|peer| {
            let theirs: std::borrow::Cow<'_, [String]> = match keeps {
                None => keys.into(),
                Some(keeps) => keys
                    .iter()
                    .filter(|k| !keeps(peer, k))
                    .cloned()
                    .collect::<Vec<_>>()
                    .into(),
            };
            (!theirs.is_empty()).then_some(async move {
                let result = cluster
                    .transport()
                    .invalidate(&peer.addr, space.name(), &theirs, timeout)
                    .await;
                (peer, result)
            })
        });
        let failed: Vec<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|(peer, result)| {
                result.err().map(|e| {
                    tracing::warn!(peer = %peer.id, error = %e, keys = keys.len(), "invalidation not confirmed");
                    format!("{} ({e})", peer.id)
                })
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Unavailable(format!(
                "the change was applied, but {} of {} other node(s) did not confirm dropping their copies: {}",
                failed.len(),
                peers.len(),
                failed.join("; ")
            )))
        }
    }

    /// Drops this node's copies of `key` before a write of it goes to its owner — but not
    /// the value it holds as the key's replica (in a keyspace with replicas): should the
    /// owner not take the write, that value is still the last one acknowledged, and the
    /// owner replaces or removes it when it does. Returns whether anything was removed.
    pub(super) async fn drop_before_forwarding(&self, space: &Space, key: &str) -> bool {
        match &self.cluster {
            Some(cluster)
                if space.settings.replicas > 1 && cluster.is_replica(space.name(), key) =>
            {
                space.remove_copy(key).await
            }
            _ => space.remove(key).await,
        }
    }

    /// Stores `entries` on their owner `peer`, after dropping this node's own copies — but
    /// not the value it holds as a key's replica: should the owner not take the put, that
    /// value is still the last one acknowledged. The owner invalidates every other node's
    /// copies, this one's included (and replaces the replica's).
    pub(super) async fn put_remote(
        &self,
        space: &Space,
        peer: &Arc<Peer>,
        entries: Vec<Entry>,
    ) -> Vec<KeyResult<()>> {
        for entry in &entries {
            self.drop_before_forwarding(space, &entry.key).await;
        }
        let Some(cluster) = &self.cluster else {
            return entries
                .into_iter()
                .map(|e| KeyResult {
                    key: e.key,
                    result: Err(Error::Internal("no cluster to reach the owner".into())),
                })
                .collect();
        };
        let answers = cluster
            .transport()
            .put_many(
                &peer.addr,
                space.name(),
                &entries,
                space.settings.write_timeout,
            )
            .await;
        match answers {
            Ok(answers) => entries
                .into_iter()
                .zip(answers)
                .map(|(e, result)| KeyResult { key: e.key, result })
                .collect(),
            Err(e) => {
                let err = e.into_error();
                entries
                    .into_iter()
                    .map(|e| KeyResult {
                        key: e.key,
                        result: Err(err.clone()),
                    })
                    .collect()
            }
        }
    }
}

impl Engine {
    /// Serves a peer's read of a key this node owns: from the cache, else loaded here. While
    /// this node is joining, forwarded to the key's owner among the owning members; a read
    /// passed on to an owner that cannot be reached is served here.
    pub(crate) async fn serve_get(&self, keyspace: &str, key: &str, from: &str) -> Result<Served> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_key(key)?;
        if let Some((cluster, peer)) = self.pass_on(keyspace, key, from) {
            let call =
                cluster
                    .transport()
                    .get(&peer.addr, keyspace, key, space.settings.read_timeout);
            // The owner's answer, unless it stops answering and fails its probes first.
            let answer = tokio::select! {
                answer = call => Some(answer),
                () = space.owner_gone(&peer) => None,
            };
            match answer {
                Some(Ok(remote)) => return Ok(remote.map(|r| (r.value, r.ttl))),
                // The owner this node knows is gone (the sender already saw it leave):
                // served here, as a client's read of an unreachable owner is.
                Some(Err(e)) if e.calls_for_fallback() => {
                    tracing::warn!(keyspace, peer = %peer.id, error = %e, "owner cannot serve a passed-on read; serving it here");
                }
                None => {
                    tracing::warn!(keyspace, peer = %peer.id, "owner of a passed-on read does not answer and fails its probes; serving it here");
                }
                Some(Err(e)) => return Err(e.into_error()),
            }
        }
        self.inner
            .read_one(&space, key, ReadMode::ForPeer)
            .await
            .map(served)
    }

    /// Serves a peer's batch read: hits from the cache, misses in one `fetch_many`. While
    /// this node is joining, each key is read from its owner among the owning members.
    pub(crate) async fn serve_get_many(
        &self,
        keyspace: &str,
        keys: &[String],
        from: &str,
    ) -> Result<Vec<KeyResult<Served>>> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_batch(keys.len())?;
        if keys
            .iter()
            .any(|key| self.pass_on(keyspace, key, from).is_some())
        {
            let reads = keys.iter().map(|key| async move {
                KeyResult {
                    key: key.clone(),
                    result: self.serve_get(keyspace, key, from).await,
                }
            });
            return Ok(futures::future::join_all(reads).await);
        }
        let mut answers: Vec<Option<Result<Served>>> = vec![None; keys.len()];
        self.inner
            .read(&space, keys, ReadMode::ForPeer, |slot, outcome| {
                answers[slot] = Some(outcome.map(served));
            })
            .await;
        Ok(keys
            .iter()
            .zip(answers)
            .map(|(key, a)| KeyResult {
                key: key.clone(),
                result: a.unwrap_or_else(|| Err(Error::Internal("key was not answered".into()))),
            })
            .collect())
    }

    /// Serves a peer's writes of keys this node owns: stores them, then invalidates every
    /// other node's copies (the sender's included). Keys this node does not serve are passed
    /// on (see [`pass_on`](Self::pass_on)).
    pub(crate) async fn serve_put_many(
        &self,
        keyspace: &str,
        entries: Vec<Entry>,
        from: &str,
    ) -> Result<Vec<KeyResult<()>>> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_batch(entries.len())?;
        let _gate = self.inner.write_gate(space.settings.write_timeout).await?;
        let mut results: Vec<Option<KeyResult<()>>> = (0..entries.len()).map(|_| None).collect();
        let mut by_owner = ByOwner::all_local(Vec::new());
        for (slot, entry) in entries.into_iter().enumerate() {
            if let Err(e) = self.check_entry(&entry.key, &entry.value, entry.ttl) {
                results[slot] = Some(KeyResult {
                    key: entry.key,
                    result: Err(e),
                });
            } else if let Some((_, peer)) = self.pass_on(keyspace, &entry.key, from) {
                by_owner.push_remote(peer, (slot, entry));
            } else {
                by_owner.local.push((slot, entry));
            }
        }
        let space = &space;
        super::writes::gather(
            &mut results,
            by_owner,
            |entries| self.inner.put_local(space, entries),
            |peer, entries| async move { self.inner.put_remote(space, &peer, entries).await },
        )
        .await;
        Ok(answered(results))
    }

    /// Stores the values an owner replicates here (this node is their keys' replica): kept in
    /// the main cache as they are, never passed on, so that this node serves them as soon as
    /// it owns the keys (when the owner is gone) and hands them back when the owner returns.
    pub(crate) async fn serve_replicate(
        &self,
        keyspace: &str,
        entries: Vec<Entry>,
    ) -> Result<Vec<KeyResult<()>>> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_batch(entries.len())?;
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let result = match self.check_entry(&entry.key, &entry.value, entry.ttl) {
                Ok(()) => space.store_put(&entry.key, entry.value, entry.ttl).await,
                Err(e) => Err(e),
            };
            results.push(KeyResult {
                key: entry.key,
                result,
            });
        }
        Ok(results)
    }

    /// Answers a peer's question for the values this node holds of `keys` in its main cache
    /// (as their owner or their replica): from memory only, never loaded, never passed on,
    /// and nothing while the cache fence is closed (what is held may be stale then).
    pub(crate) async fn serve_copies(
        &self,
        keyspace: &str,
        keys: &[String],
    ) -> Result<Vec<KeyResult<Served>>> {
        let space = self.inner.space(keyspace)?;
        let limits = &self.inner.config.limits;
        limits.check_batch(keys.len())?;
        let mut results = Vec::with_capacity(keys.len());
        for key in keys {
            let result = match limits.check_key(key) {
                Ok(()) => Ok(space.held(key).await.and_then(served)),
                Err(e) => Err(e),
            };
            results.push(KeyResult {
                key: key.clone(),
                result,
            });
        }
        Ok(results)
    }

    /// Serves a peer's deletes of keys this node owns: removes them, then invalidates every
    /// other node's copies. Keys this node does not serve are passed on.
    pub(crate) async fn serve_delete_many(
        &self,
        keyspace: &str,
        keys: &[String],
        from: &str,
    ) -> Result<Vec<KeyResult<()>>> {
        let space = self.inner.space(keyspace)?;
        let limits = &self.inner.config.limits;
        limits.check_batch(keys.len())?;
        let _gate = self.inner.write_gate(space.settings.write_timeout).await?;
        let mut results: Vec<Option<KeyResult<()>>> = (0..keys.len()).map(|_| None).collect();
        let mut by_owner = ByOwner::all_local(Vec::new());
        for (slot, key) in keys.iter().enumerate() {
            if let Err(e) = limits.check_key(key) {
                results[slot] = Some(KeyResult {
                    key: key.clone(),
                    result: Err(e),
                });
            } else if let Some((_, peer)) = self.pass_on(keyspace, key, from) {
                by_owner.push_remote(peer, (slot, key.clone()));
            } else {
                by_owner.local.push((slot, key.clone()));
            }
        }
        let space = &space;
        super::writes::gather(
            &mut results,
            by_owner,
            |keys| self.inner.delete_local(space, keys),
            |peer, keys| async move { self.inner.delete_remote(space, &peer, keys).await },
        )
        .await;
        Ok(answered(results))
    }

    /// Where a peer's request for `key` (sent by node `from`) goes instead of being served
    /// here: to the key's owner when that is another node and not the sender (the sender's
    /// view of the ring is behind this node's: a write served here now might miss the owner's
    /// takeover); while this node joins, to the key's owner among the owning members. `None`
    /// once the request went through `MAX_HOPS` nodes: views that differ in a circle end here.
    fn pass_on(&self, keyspace: &str, key: &str, from: &str) -> Option<(&Arc<Cluster>, Arc<Peer>)> {
        let cluster = self.inner.cluster.as_ref()?;
        if crate::transport::hops() >= crate::transport::MAX_HOPS {
            return None;
        }
        let peer = match cluster.ring_owner_peer(keyspace, key) {
            Some(owner) => (owner.id.as_str() != from).then_some(owner)?,
            None => cluster.forward_target(keyspace, key)?,
        };
        Some((cluster, peer))
    }

    /// Drops `keys` from this node's caches at a peer's request (a put or delete elsewhere).
    pub(crate) async fn serve_invalidate(&self, keyspace: &str, keys: &[String]) -> Result<()> {
        let space = match self.inner.space(keyspace) {
            Ok(space) => space,
            // Nothing here to hold a copy.
            Err(Error::KeySpaceNotFound(_) | Error::NotRunning) => return Ok(()),
            Err(e) => return Err(e),
        };
        for key in keys {
            if space.remove(key).await {
                space.stats.removed_keys.inc();
            }
        }
        Ok(())
    }

    /// Empties every cache of this node (it missed invalidations while out of the ring).
    pub(crate) fn flush(&self) {
        for space in self.inner.spaces.load().values() {
            space.flush();
        }
        tracing::info!("caches flushed at a peer's request");
    }
}

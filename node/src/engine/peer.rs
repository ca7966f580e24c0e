//! The engine's side of node-to-node calls: writes sent to owners, invalidations sent to every
//! peer, and the owner-side handlers that serve peers' requests (locally once this node is
//! owning: a request that came from a peer is then never forwarded again; while it joins, to
//! an owning member, which serves it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Engine, Entry, Inner, KeyResult};
use crate::cluster::{Cluster, Peer};
use crate::error::{Error, Result};
use crate::space::Space;
use crate::store::Cached;

/// A value served to a peer, with its remaining time to live here.
pub(crate) type Served = Option<(Bytes, Option<Duration>)>;

fn served(cached: Cached) -> Served {
    let ttl = cached.remaining();
    cached.value.map(|v| (v, ttl))
}

impl Inner {
    /// Removes `keys` from every peer in the ring. Fails, naming them, when some peers did
    /// not confirm: they may still hold the old values.
    pub(super) async fn invalidate_peers(&self, space: &Space, keys: &[String]) -> Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        if keys.is_empty() {
            return Ok(());
        }
        let timeout = space.settings.write_timeout;
        let peers = cluster.live_peers();
        let calls = peers.iter().map(|peer| async move {
            let result = cluster
                .transport()
                .invalidate(&peer.addr, space.name(), keys, timeout)
                .await;
            (peer, result)
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

    /// Stores `entries` on their owner `peer`, after dropping this node's own copies. The
    /// owner invalidates every other node's copies, this one's included.
    pub(super) async fn put_remote(
        &self,
        space: &Space,
        peer: &Arc<Peer>,
        entries: Vec<Entry>,
    ) -> Vec<KeyResult<()>> {
        for entry in &entries {
            space.remove(&entry.key).await;
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
    /// this node is joining, forwarded to the key's owner among the owning members.
    pub(crate) async fn serve_get(&self, keyspace: &str, key: &str) -> Result<Served> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_key(key)?;
        if let Some((cluster, peer)) = self.forward_target(keyspace, key) {
            let remote = cluster
                .transport()
                .get(&peer.addr, keyspace, key, space.settings.read_timeout)
                .await
                .map_err(|e| e.into_error())?;
            return Ok(remote.map(|r| (r.value, r.ttl)));
        }
        if let Some(hit) = space.cached(key).await {
            space.stats.cache_hits.inc();
            space.hot_keys.record(key, false);
            return Ok(served(hit));
        }
        space.stats.loads.inc();
        space.hot_keys.record(key, true);
        let pending = space.load_owned(&[key]);
        match pending.into_iter().next() {
            Some(p) => p.await.map(served),
            None => Err(Error::Internal("no load was started for the key".into())),
        }
    }

    /// Serves a peer's batch read: hits from the cache, misses in one `fetch_many`. While
    /// this node is joining, each key is read from its owner among the owning members.
    pub(crate) async fn serve_get_many(
        &self,
        keyspace: &str,
        keys: &[String],
    ) -> Result<Vec<KeyResult<Served>>> {
        let space = self.inner.space(keyspace)?;
        let limits = &self.inner.config.limits;
        limits.check_batch(keys.len())?;
        if self.inner.cluster.as_ref().is_some_and(|c| !c.is_owning()) {
            let reads = keys.iter().map(|key| async move {
                KeyResult {
                    key: key.clone(),
                    result: self.serve_get(keyspace, key).await,
                }
            });
            return Ok(futures::future::join_all(reads).await);
        }
        let mut answers: Vec<Option<Result<Served>>> = Vec::with_capacity(keys.len());
        let mut misses: Vec<(usize, &str)> = Vec::new();
        for (slot, key) in keys.iter().enumerate() {
            if let Err(e) = limits.check_key(key) {
                answers.push(Some(Err(e)));
            } else if let Some(hit) = space.cached(key).await {
                space.stats.cache_hits.inc();
                space.hot_keys.record(key, false);
                answers.push(Some(Ok(served(hit))));
            } else {
                space.stats.loads.inc();
                space.hot_keys.record(key, true);
                answers.push(None);
                misses.push((slot, key));
            }
        }
        let miss_keys: Vec<&str> = misses.iter().map(|(_, k)| *k).collect();
        let outcomes = futures::future::join_all(space.load_owned(&miss_keys)).await;
        for ((slot, _), outcome) in misses.iter().zip(outcomes) {
            answers[*slot] = Some(outcome.map(served));
        }
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
    /// other node's copies (the sender's included).
    pub(crate) async fn serve_put_many(
        &self,
        keyspace: &str,
        entries: Vec<Entry>,
    ) -> Result<Vec<KeyResult<()>>> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_batch(entries.len())?;
        let _gate = self.inner.write_gate(space.settings.write_timeout).await?;
        let mut results = Vec::with_capacity(entries.len());
        let mut stored = Vec::new();
        for entry in entries {
            if let Some((_, peer)) = self.forward_target(keyspace, &entry.key) {
                let key = entry.key.clone();
                let mut answer = self.inner.put_remote(&space, &peer, vec![entry]).await;
                results.push(answer.pop().unwrap_or_else(|| KeyResult {
                    key,
                    result: Err(Error::Internal("the owner answered no result".into())),
                }));
                continue;
            }
            let result = match self.check_entry(&entry.key, &entry.value, entry.ttl) {
                Ok(()) => space.store_put(&entry.key, entry.value, entry.ttl).await,
                Err(e) => Err(e),
            };
            if result.is_ok() {
                stored.push(entry.key.clone());
            }
            results.push(KeyResult {
                key: entry.key,
                result,
            });
        }
        if let Err(e) = self.inner.invalidate_peers(&space, &stored).await {
            for r in results.iter_mut().filter(|r| r.result.is_ok()) {
                r.result = Err(e.clone());
            }
        }
        Ok(results)
    }

    /// Where a peer's request for `key` goes instead of being served here: its owner among
    /// the owning members, while this node is joining.
    fn forward_target(&self, keyspace: &str, key: &str) -> Option<(&Arc<Cluster>, Arc<Peer>)> {
        let cluster = self.inner.cluster.as_ref()?;
        cluster
            .forward_target(keyspace, key)
            .map(|peer| (cluster, peer))
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

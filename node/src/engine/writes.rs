//! Writes on the node that serves the key: puts and deletes go to the key's owner, which
//! applies them and then drops every other node's copy.
//!
//! A node applies its writes holding the owner gate shared; a node handing entries over to a
//! joining peer holds it exclusively while it collects them (`engine/handoff.rs`), so a write
//! that was routed here before the ring changed either finishes first and is in the handoff,
//! or arrives later and is passed on to the new owner (`engine/peer.rs`); none is lost in
//! between.

use std::sync::Arc;

use super::Inner;
use crate::cluster::Peer;
use crate::entry::{Entry, KeyResult, all_ok};
use crate::error::{Error, Result};
use crate::space::Space;

impl Inner {
    /// Stores puts of keys this node serves, then drops every other node's copies. One
    /// result per entry, in order.
    pub(super) async fn put_local(&self, space: &Space, entries: Vec<Entry>) -> Vec<KeyResult<()>> {
        let _applying = self.owner_gate.read().await;
        let mut results = Vec::with_capacity(entries.len());
        let mut stored = Vec::new();
        for entry in entries {
            let result = space.store_put(&entry.key, entry.value, entry.ttl).await;
            if result.is_ok() {
                stored.push(entry.key.clone());
            }
            results.push(KeyResult {
                key: entry.key,
                result,
            });
        }
        self.confirm(space, &stored, &mut results).await;
        results
    }

    /// Removes keys this node serves, then drops every other node's copies.
    pub(super) async fn delete_local(
        &self,
        space: &Space,
        keys: Vec<String>,
    ) -> Vec<KeyResult<()>> {
        let _applying = self.owner_gate.read().await;
        for key in &keys {
            if space.remove(key).await {
                space.stats.removed_keys.inc();
            }
        }
        let mut results = all_ok(&keys);
        self.confirm(space, &keys, &mut results).await;
        results
    }

    /// Drops `keys` from every peer; where some peer did not confirm, the results that were
    /// fine become that error (it may still serve the old value).
    async fn confirm(&self, space: &Space, keys: &[String], results: &mut [KeyResult<()>]) {
        if let Err(e) = self.invalidate_peers(space, keys).await {
            for r in results.iter_mut().filter(|r| r.result.is_ok()) {
                r.result = Err(e.clone());
            }
        }
    }

    /// Deletes `keys` on their owner `peer`, after dropping this node's copies. When the owner
    /// cannot be reached at all, drops them on every node from here instead.
    pub(super) async fn delete_remote(
        &self,
        space: &Space,
        peer: &Arc<Peer>,
        keys: Vec<String>,
    ) -> Vec<KeyResult<()>> {
        for key in &keys {
            if space.remove(key).await {
                space.stats.removed_keys.inc();
            }
        }
        let Some(cluster) = &self.cluster else {
            return self.delete_local(space, keys).await;
        };
        let answer = cluster
            .transport()
            .delete_many(
                &peer.addr,
                space.name(),
                &keys,
                space.settings.write_timeout,
            )
            .await;
        match answer {
            Ok(answers) => keys
                .into_iter()
                .zip(answers)
                .map(|(key, result)| KeyResult { key, result })
                .collect(),
            Err(e) if e.calls_for_fallback() => {
                tracing::debug!(peer = %peer.id, error = %e, "owner unreachable; deleting from every node");
                let mut results = all_ok(&keys);
                self.confirm(space, &keys, &mut results).await;
                results
            }
            Err(e) => {
                let err: Error = e.into_error();
                keys.into_iter()
                    .map(|key| KeyResult {
                        key,
                        result: Err(err.clone()),
                    })
                    .collect()
            }
        }
    }

    /// Applies `keys`' deletes where their owners are: each owner's in one call, this node's
    /// here. One result per key, in order.
    pub(super) async fn delete_routed(
        &self,
        space: &Space,
        keys: Vec<String>,
    ) -> Result<Vec<KeyResult<()>>> {
        let by_owner = match &self.cluster {
            Some(cluster) => cluster.split(space.name(), keys.into_iter().enumerate(), |(_, k)| k),
            None => crate::cluster::ByOwner {
                local: keys.into_iter().enumerate().collect(),
                remote: Vec::new(),
            },
        };
        let count =
            by_owner.local.len() + by_owner.remote.iter().map(|(_, g)| g.len()).sum::<usize>();
        let mut results: Vec<Option<KeyResult<()>>> = (0..count).map(|_| None).collect();
        let local = async {
            let (slots, keys): (Vec<usize>, Vec<String>) = by_owner.local.into_iter().unzip();
            if keys.is_empty() {
                return Vec::new();
            }
            slots
                .into_iter()
                .zip(self.delete_local(space, keys).await)
                .collect::<Vec<_>>()
        };
        let remote = by_owner.remote.into_iter().map(|(peer, group)| async move {
            let (slots, keys): (Vec<usize>, Vec<String>) = group.into_iter().unzip();
            slots
                .into_iter()
                .zip(self.delete_remote(space, &peer, keys).await)
                .collect::<Vec<_>>()
        });
        let (local, remote) = futures::join!(local, futures::future::join_all(remote));
        for (slot, answer) in local.into_iter().chain(remote.into_iter().flatten()) {
            results[slot] = Some(answer);
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| Error::Internal("delete was not answered".into())))
            .collect()
    }
}

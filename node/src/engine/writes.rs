//! Writes on the node that serves the key: puts and deletes go to the key's owner, which
//! applies them and then drops every other node's copy.
//!
//! A node applies its writes holding the owner gate shared; a node handing entries over to a
//! joining peer holds it exclusively while it collects them (`engine/handoff.rs`), so a write
//! that was routed here before the ring changed either finishes first and is in the handoff,
//! or arrives later and is passed on to the new owner (`engine/peer.rs`); none is lost in
//! between.

use std::future::Future;
use std::sync::Arc;

use super::Inner;
use crate::cluster::{ByOwner, Peer};
use crate::entry::{Entry, KeyResult, all_ok, answered};
use crate::error::Error;
use crate::space::Space;

impl Inner {
    /// Stores puts of keys this node serves, then drops every other node's copies. One
    /// result per entry, in order.
    pub(super) async fn put_local(&self, space: &Space, entries: Vec<Entry>) -> Vec<KeyResult<()>> {
        let _applying = self.owner_gate.read().await;
        let mut results = Vec::with_capacity(entries.len());
        let mut stored = Vec::new();
        let mut replicated = Vec::new();
        for entry in entries {
            let result = space
                .store_put(&entry.key, entry.value.clone(), entry.ttl)
                .await;
            if result.is_ok() {
                stored.push(entry.key.clone());
                if space.settings.replicas > 1 {
                    replicated.push((results.len(), entry.clone()));
                }
            }
            results.push(KeyResult {
                key: entry.key,
                result,
            });
        }
        self.confirm(space, &stored, &mut results).await;
        // After the invalidations (which drop the replica's old copy too): the new values.
        self.replicate(space, replicated, &mut results).await;
        results
    }

    /// Sends put values to their keys' replicas (the nodes that own them once this node is
    /// gone); a put whose replica did not confirm fails with that error, though its owner
    /// keeps it. Without a replica (a ring of one) the owner's copy is all there is.
    async fn replicate(
        &self,
        space: &Space,
        entries: Vec<(usize, Entry)>,
        results: &mut [KeyResult<()>],
    ) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        type Batch = (Arc<Peer>, Vec<(usize, Entry)>);
        let mut by_replica: std::collections::HashMap<String, Batch> =
            std::collections::HashMap::new();
        for (slot, entry) in entries {
            if results[slot].result.is_err() {
                continue;
            }
            if let Some(peer) = cluster.replica_peer(space.name(), &entry.key) {
                by_replica
                    .entry(peer.id.to_string())
                    .or_insert_with(|| (peer, Vec::new()))
                    .1
                    .push((slot, entry));
            }
        }
        let timeout = space.settings.write_timeout / 2;
        let calls = by_replica.into_values().map(|(peer, batch)| async move {
            let entries: Vec<Entry> = batch.iter().map(|(_, e)| e.clone()).collect();
            let answer = cluster
                .transport()
                .replicate(&peer.addr, space.name(), &entries, timeout)
                .await;
            (peer, batch, answer)
        });
        for (peer, batch, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok(answers) => {
                    for ((slot, _), answer) in batch.iter().zip(answers) {
                        if let Err(e) = answer {
                            results[*slot].result = Err(Error::Unavailable(format!(
                                "stored on its owner, but its replica {} refused it: {e}",
                                peer.id
                            )));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.id, error = %e, keys = batch.len(), "replication not confirmed");
                    for (slot, _) in &batch {
                        results[*slot].result = Err(Error::Unavailable(format!(
                            "stored on its owner, but its replica {} did not confirm it: {e}",
                            peer.id
                        )));
                    }
                }
            }
        }
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
    ) -> Vec<KeyResult<()>> {
        let mut results: Vec<Option<KeyResult<()>>> = (0..keys.len()).map(|_| None).collect();
        let slotted = keys.into_iter().enumerate();
        let by_owner = match &self.cluster {
            Some(cluster) => cluster.split(space.name(), slotted, |(_, k)| k),
            None => ByOwner::all_local(slotted.collect()),
        };
        gather(
            &mut results,
            by_owner,
            |keys| self.delete_local(space, keys),
            |peer, keys| async move { self.delete_remote(space, &peer, keys).await },
        )
        .await;
        answered(results)
    }
}

/// Runs `here` on the items served on this node and `there` on each peer's batch, all at
/// once, and puts every answer in the slot its item came with.
pub(super) async fn gather<T, Here, HereFut, There, ThereFut>(
    results: &mut [Option<KeyResult<()>>],
    by_owner: ByOwner<(usize, T)>,
    here: Here,
    there: There,
) where
    Here: FnOnce(Vec<T>) -> HereFut,
    HereFut: Future<Output = Vec<KeyResult<()>>>,
    There: Fn(Arc<Peer>, Vec<T>) -> ThereFut,
    ThereFut: Future<Output = Vec<KeyResult<()>>>,
{
    let (slots, items): (Vec<usize>, Vec<T>) = by_owner.local.into_iter().unzip();
    let local = async {
        if items.is_empty() {
            Vec::new()
        } else {
            here(items).await
        }
    };
    let remote = by_owner.remote.into_iter().map(|(peer, group)| {
        let (slots, items): (Vec<usize>, Vec<T>) = group.into_iter().unzip();
        let call = there(peer, items);
        async move { slots.into_iter().zip(call.await).collect::<Vec<_>>() }
    });
    let (local, remote) = futures::join!(local, futures::future::join_all(remote));
    for (slot, answer) in slots
        .into_iter()
        .zip(local)
        .chain(remote.into_iter().flatten())
    {
        results[slot] = Some(answer);
    }
}

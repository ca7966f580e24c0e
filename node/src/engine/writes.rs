//! Writes on the node that serves the key: puts and deletes go to the key's owner, which
//! applies them and then drops every other node's copy — in a keyspace with replicas, all
//! but the replica's, which a put replaces with its value, the owner's writes of one key in
//! the order it applied them (`space/order.rs`).
//!
//! A node applies its writes holding the owner gate shared; a node handing entries over to a
//! joining peer holds it exclusively while it collects them (`engine/handoff.rs`), so a write
//! that was routed here before the ring changed either finishes first and is in the handoff,
//! or arrives later and is passed on to the new owner (`engine/peer.rs`); none is lost in
//! between.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use super::Inner;
use crate::cluster::{ByOwner, Peer};
use crate::entry::{Entry, KeyResult, all_ok, answered};
use crate::error::Error;
use crate::space::Space;

impl Inner {
    /// Stores puts of keys this node serves, then drops every other node's copies; in a
    /// keyspace with replicas, sends each value to its key's replica instead of dropping the
    /// replica's copy. One result per entry, in order.
    pub(super) async fn put_local(&self, space: &Space, entries: Vec<Entry>) -> Vec<KeyResult<()>> {
        let _applying = self.owner_gate.read().await;
        let cluster = self
            .cluster
            .as_ref()
            .filter(|_| space.settings.replicas > 1);
        let _ordered = match cluster {
            Some(_) => Some(
                space
                    .write_order
                    .lock(space.name(), entries.iter().map(|e| &e.key))
                    .await,
            ),
            None => None,
        };
        let mut results = Vec::with_capacity(entries.len());
        let mut stored = Vec::new();
        let mut replicated = Vec::new();
        for entry in entries {
            let result = space
                .store_put(&entry.key, entry.value.clone(), entry.ttl)
                .await;
            if result.is_ok() {
                stored.push(entry.key.clone());
                if cluster.is_some() {
                    replicated.push((results.len(), entry.clone()));
                }
            }
            results.push(KeyResult {
                key: entry.key,
                result,
            });
        }
        let Some(cluster) = cluster else {
            self.confirm(space, &stored, &mut results).await;
            return results;
        };
        // The replica's copy is replaced, never dropped first: were this node to die between
        // the two, the replica would hold nothing of the puts acknowledged before.
        let replicas: HashMap<&str, Arc<Peer>> = replicated
            .iter()
            .filter_map(|(_, e)| {
                cluster
                    .replica_peer(space.name(), &e.key)
                    .map(|peer| (e.key.as_str(), peer))
            })
            .collect();
        let holds = |peer: &Peer, key: &str| replicas.get(key).is_some_and(|r| r.id == peer.id);
        let (invalidated, refused) = futures::join!(
            self.invalidate_peers(space, &stored, Some(&holds)),
            self.replicate(space, &replicated, &replicas)
        );
        if let Err(e) = invalidated {
            for r in results.iter_mut().filter(|r| r.result.is_ok()) {
                r.result = Err(e.clone());
            }
        }
        for (slot, e) in refused {
            results[slot].result = Err(e);
        }
        results
    }

    /// Sends put values to their keys' replicas (the nodes that own them once this node is
    /// gone); returns the slots of the puts whose replica did not confirm, with the error
    /// (their owner keeps them). Without a replica (a ring of one) the owner's copy is all
    /// there is.
    async fn replicate(
        &self,
        space: &Space,
        entries: &[(usize, Entry)],
        replicas: &HashMap<&str, Arc<Peer>>,
    ) -> Vec<(usize, Error)> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        type Batch<'a> = (Arc<Peer>, Vec<&'a (usize, Entry)>);
        let mut by_replica: HashMap<String, Batch<'_>> = HashMap::new();
        for slotted in entries {
            if let Some(peer) = replicas.get(slotted.1.key.as_str()) {
                by_replica
                    .entry(peer.id.to_string())
                    .or_insert_with(|| (Arc::clone(peer), Vec::new()))
                    .1
                    .push(slotted);
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
        let mut refused = Vec::new();
        for (peer, batch, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok(answers) => {
                    for ((slot, _), answer) in batch.iter().zip(answers) {
                        if let Err(e) = answer {
                            refused.push((
                                *slot,
                                Error::Unavailable(format!(
                                    "stored on its owner, but its replica {} refused it: {e}",
                                    peer.id
                                )),
                            ));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.id, error = %e, keys = batch.len(), "replication not confirmed");
                    for (slot, _) in &batch {
                        refused.push((
                            *slot,
                            Error::Unavailable(format!(
                                "stored on its owner, but its replica {} did not confirm it: {e}",
                                peer.id
                            )),
                        ));
                    }
                }
            }
        }
        refused
    }

    /// Removes keys this node serves, then drops every other node's copies.
    pub(super) async fn delete_local(
        &self,
        space: &Space,
        keys: Vec<String>,
    ) -> Vec<KeyResult<()>> {
        let _applying = self.owner_gate.read().await;
        // Ordered with the puts of the same keys, whose values reach the replica.
        let _ordered = match &self.cluster {
            Some(_) if space.settings.replicas > 1 => {
                Some(space.write_order.lock(space.name(), &keys).await)
            }
            _ => None,
        };
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
        if let Err(e) = self.invalidate_peers(space, keys, None).await {
            for r in results.iter_mut().filter(|r| r.result.is_ok()) {
                r.result = Err(e.clone());
            }
        }
    }

    /// Deletes `keys` on their owner `peer`, after dropping this node's copies (not the value
    /// it holds as a key's replica: the owner removes that). When the owner cannot be reached
    /// at all, drops them on every node from here instead, this one included.
    pub(super) async fn delete_remote(
        &self,
        space: &Space,
        peer: &Arc<Peer>,
        keys: Vec<String>,
    ) -> Vec<KeyResult<()>> {
        for key in &keys {
            if self.drop_before_forwarding(space, key).await {
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
                for key in &keys {
                    if space.remove(key).await {
                        space.stats.removed_keys.inc();
                    }
                }
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

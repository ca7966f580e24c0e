//! Batch operations: one result per key, never stopping half-way.
//!
//! `get_many` answers hits at once and loads the misses in one batch per owner, owners in
//! parallel. `put_many` stores each owner's entries with one call per owner, then invalidates
//! copies elsewhere. `delete_many` sends each owner its keys the same way.

use std::time::Instant;

use bytes::Bytes;
use tracing::Instrument;

use super::{Engine, ReadMode};
use crate::cluster::ByOwner;
use crate::entry::{Entry, KeyResult, answered};
use crate::error::{Error, Result};
use crate::telemetry::{Op, OpStats};

impl Engine {
    /// Reads many keys of one keyspace, answering one result per key in order (a key listed
    /// twice is loaded once and answered twice). Misses are loaded in one batch per owner.
    pub async fn get_many<K: AsRef<str>>(
        &self,
        keyspace: &str,
        keys: &[K],
    ) -> Result<Vec<KeyResult<Option<Bytes>>>> {
        let started = Instant::now();
        let space = self.inner.space_for(Op::GetMany, keyspace)?;
        let span = tracing::debug_span!(
            "distcache.get_many",
            distcache.keyspace = keyspace,
            keys = keys.len()
        );
        let result = self
            .inner
            .traced(
                Op::GetMany,
                keyspace,
                async {
                    self.inner.config.limits.check_batch(keys.len())?;
                    let mut results: Vec<Option<Result<Option<Bytes>>>> = vec![None; keys.len()];
                    self.inner
                        .read(&space, keys, ReadMode::Batch, |slot, outcome| {
                            results[slot] = Some(outcome.map(|c| c.value));
                        })
                        .await;
                    Ok(keys
                        .iter()
                        .zip(results)
                        .map(|(key, result)| KeyResult {
                            key: key.as_ref().to_owned(),
                            result: result.unwrap_or_else(|| {
                                Err(Error::Internal("key was not answered".into()))
                            }),
                        })
                        .collect())
                }
                .instrument(span),
            )
            .await;
        finish_batch(space.stats.key_ops.of(Op::GetMany), started, &result);
        result
    }

    /// Stores many entries of one keyspace, answering one result per entry in order. An
    /// invalid entry fails alone; the others are stored, each on its owner.
    pub async fn put_many(
        &self,
        keyspace: &str,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Vec<KeyResult<()>>> {
        let started = Instant::now();
        let space = self.inner.space_for(Op::PutMany, keyspace)?;
        let entries: Vec<Entry> = entries.into_iter().collect();
        let span = tracing::debug_span!(
            "distcache.put_many",
            distcache.keyspace = keyspace,
            keys = entries.len()
        );
        let result = self
            .inner
            .traced(
                Op::PutMany,
                keyspace,
                async {
                    self.inner.config.limits.check_batch(entries.len())?;
                    let _gate = self.inner.write_gate(space.settings.write_timeout).await?;
                    let mut results: Vec<Option<KeyResult<()>>> = vec![None; entries.len()];
                    let mut valid: Vec<(usize, Entry)> = Vec::with_capacity(entries.len());
                    for (slot, entry) in entries.into_iter().enumerate() {
                        match self.check_entry(&entry.key, &entry.value, entry.ttl) {
                            Ok(()) => valid.push((slot, entry)),
                            Err(e) => {
                                results[slot] = Some(KeyResult {
                                    key: entry.key,
                                    result: Err(e),
                                })
                            }
                        }
                    }
                    let by_owner = match self.inner.cluster.as_ref() {
                        Some(cluster) => cluster.split(space.name(), valid, |(_, e)| &e.key),
                        None => ByOwner::all_local(valid),
                    };
                    let space = &space;
                    super::writes::gather(
                        &mut results,
                        by_owner,
                        |entries| self.inner.put_local(space, entries),
                        |peer, entries| async move {
                            self.inner.put_remote(space, &peer, entries).await
                        },
                    )
                    .await;
                    Ok(answered(results))
                }
                .instrument(span),
            )
            .await;
        finish_batch(space.stats.key_ops.of(Op::PutMany), started, &result);
        result
    }

    /// Removes many keys on their owners, which drop every other node's copies, answering one
    /// result per key in order.
    pub async fn delete_many<K: AsRef<str>>(
        &self,
        keyspace: &str,
        keys: &[K],
    ) -> Result<Vec<KeyResult<()>>> {
        let started = Instant::now();
        let space = self.inner.space_for(Op::DeleteMany, keyspace)?;
        let limits = &self.inner.config.limits;
        let span = tracing::debug_span!(
            "distcache.delete_many",
            distcache.keyspace = keyspace,
            keys = keys.len()
        );
        let result = self
            .inner
            .traced(
                Op::DeleteMany,
                keyspace,
                async {
                    limits.check_batch(keys.len())?;
                    let _gate = self.inner.write_gate(space.settings.write_timeout).await?;
                    let mut results: Vec<Option<KeyResult<()>>> = Vec::with_capacity(keys.len());
                    let mut valid = Vec::new();
                    let mut valid_slots = Vec::new();
                    for (slot, key) in keys.iter().enumerate() {
                        let key = key.as_ref();
                        match limits.check_key(key) {
                            Ok(()) => {
                                space.stats.remove_keys_requests.inc();
                                valid.push(key.to_owned());
                                valid_slots.push(slot);
                                results.push(None);
                            }
                            Err(e) => results.push(Some(KeyResult {
                                key: key.to_owned(),
                                result: Err(e),
                            })),
                        }
                    }
                    let answers = self.inner.delete_routed(&space, valid).await;
                    for (slot, answer) in valid_slots.into_iter().zip(answers) {
                        results[slot] = Some(answer);
                    }
                    Ok(answered(results))
                }
                .instrument(span),
            )
            .await;
        finish_batch(space.stats.key_ops.of(Op::DeleteMany), started, &result);
        result
    }
}

/// Counts a finished batch call: failed as a whole by its error, else by every key's error.
fn finish_batch<T>(stats: &OpStats, started: Instant, result: &Result<Vec<KeyResult<T>>>) {
    stats.requests.inc();
    stats.duration.record(started.elapsed());
    match result {
        Err(e) => stats.error(e),
        Ok(results) => {
            for e in results.iter().filter_map(|r| r.result.as_ref().err()) {
                stats.error(e);
            }
        }
    }
}

//! Running warmups: planning the keys, warming this node's share, coordinating a cluster-wide
//! run, sharing hot keys. The background manager that reacts to updates, topology changes,
//! aging and refresh-ahead is `warming/manager.rs`; what a warmup is (configuration, run
//! records) is `crate::warmup`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::Engine;
use crate::cluster::ByOwner;
use crate::error::{Error, Result};
use crate::space::Space;
use crate::warmup::{DemandStart, PeerHotKeys, WarmupRun, WarmupTrigger};
use crate::wire::{KeyFailure, WarmOutcome};

mod manager;

pub(crate) use manager::spawn_manager;

/// Keys sent to an owner per request of a cluster-wide warmup (progress moves per batch), at
/// most: a batch is four rounds of `concurrency` prefetches, so its deadline stays a few
/// prefetch timeouts long.
const BATCH: usize = 64;
/// Demand runs that may go at once on one node.
pub(crate) const MAX_RUNNING_DEMAND: usize = 8;

/// Whether a warm request checks ownership: a node warming on its own does; a node asked by a
/// coordinator serves what it was asked (like any hop-marked request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    Check,
    Trust,
}

impl Engine {
    /// The keys a warmup of `keyspace` prefetches: its `warm_keys`, then its hottest keys (this
    /// node's counts plus those its peers shared), de-duplicated.
    pub fn warmup_plan(&self, keyspace: &str) -> Result<Vec<String>> {
        let space = self.inner.space(keyspace)?;
        let config = &self.inner.config.warmup;
        let mut counts: HashMap<String, u64> = HashMap::new();
        for (key, count) in space.hot_keys.top(config.max_hot_keys, config.min_hits) {
            *counts.entry(key).or_default() += u64::from(count);
        }
        for peer in self.inner.shared_hot().values() {
            for (key, count) in peer.by_keyspace.get(keyspace).into_iter().flatten() {
                *counts.entry(key.clone()).or_default() += u64::from(*count);
            }
        }
        let mut hot: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= u64::from(config.min_hits.max(1)))
            .collect();
        hot.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        hot.truncate(config.max_hot_keys);
        let mut plan: Vec<String> = space.settings.warm_keys.clone();
        let mut planned: std::collections::HashSet<String> = plan.iter().cloned().collect();
        for (key, _) in hot {
            if planned.insert(key.clone()) {
                plan.push(key);
            }
        }
        Ok(plan)
    }

    /// The hottest keys of `keyspace` on this node, with their counts (shared with peers).
    pub fn hot_keys(&self, keyspace: &str) -> Result<Vec<(String, u32)>> {
        let space = self.inner.space(keyspace)?;
        let config = &self.inner.config.warmup;
        Ok(space.hot_keys.top(config.max_hot_keys, config.min_hits))
    }

    /// Loads into this node's cache the keys of `keys` it should hold and does not (or, with
    /// `force`, re-fetches them), at most `concurrency` at a time on this node across all runs,
    /// each waited for at most `min(warmup timeout, read_timeout)`.
    pub(crate) async fn warm_keys(
        &self,
        keyspace: &str,
        keys: &[String],
        ownership: Ownership,
        force: bool,
    ) -> Result<WarmOutcome> {
        let space = self.inner.space(keyspace)?;
        let config = &self.inner.config.warmup;
        let deadline = config.timeout.min(space.settings.read_timeout);
        let mut outcome = WarmOutcome::default();
        let mut todo = Vec::new();
        for key in keys {
            if let Err(e) = self.inner.config.limits.check_key(key) {
                outcome.fail(key, e.to_string());
                continue;
            }
            let elsewhere = ownership == Ownership::Check
                && self
                    .inner
                    .cluster
                    .as_ref()
                    .is_some_and(|c| !c.will_own(keyspace, key));
            // A copy in the hot cache counts as cached: reads hit it as they would the main cache.
            if elsewhere || (!force && space.cached(key).await.is_some()) {
                outcome.skipped += 1;
            } else {
                todo.push(key.clone());
            }
        }
        let slots = &self.inner.warm_slots;
        let results: Vec<(String, Result<bool>)> = futures::stream::iter(todo)
            .map(|key| {
                let space = Arc::clone(&space);
                async move {
                    let result = prefetch(&space, slots, &key, force, deadline).await;
                    (key, result)
                }
            })
            .buffer_unordered(config.concurrency.max(1))
            .collect()
            .await;
        for (key, result) in results {
            match result {
                Ok(true) => outcome.warmed += 1,
                Ok(false) => outcome.skipped += 1,
                Err(e) => outcome.fail(&key, e.to_string()),
            }
        }
        space.stats.warmed_keys.add(outcome.warmed as u64);
        Ok(outcome)
    }

    /// Warms this node's share of `keyspace`'s plan, recorded as one run (none when the plan is
    /// empty: a keyspace without warm or hot keys leaves no trace).
    pub(crate) async fn warm_local(
        &self,
        keyspace: &str,
        trigger: WarmupTrigger,
    ) -> Result<Option<WarmupRun>> {
        let (keys, force) = match trigger {
            WarmupTrigger::Refresh => {
                let keys = self
                    .hot_keys(keyspace)?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                (keys, true)
            }
            _ => (self.warmup_plan(keyspace)?, false),
        };
        if keys.is_empty() {
            return Ok(None);
        }
        let log = &self.inner.warmups;
        let id = log.begin(keyspace, trigger, keys.len());
        let outcome = self
            .warm_keys(keyspace, &keys, Ownership::Check, force)
            .await;
        match outcome {
            Ok(outcome) => log.add(id, &outcome),
            Err(e) => log.add(
                id,
                &WarmOutcome {
                    failed: keys.len(),
                    failures: vec![KeyFailure {
                        key: String::new(),
                        error: e.to_string(),
                    }],
                    ..WarmOutcome::default()
                },
            ),
        }
        log.finish(id);
        if let Some(space) = self.inner.spaces_now().get(keyspace) {
            space.stats.warmups.inc();
        }
        log.get(id)
            .map(Some)
            .ok_or_else(|| Error::Internal("warmup run vanished".into()))
    }

    /// Starts a cluster-wide warmup of `keyspace`: `keys`, or else its plan. Every owner warms
    /// its own keys. Returns the run at once; follow it with [`warmup_run`](Self::warmup_run).
    /// Asking for a keyspace's plan while a demand run of it is going returns that run; at
    /// most `MAX_RUNNING_DEMAND` demand runs go at once per node (`UNAVAILABLE` beyond).
    pub async fn warmup(&self, keyspace: &str, keys: Option<Vec<String>>) -> Result<WarmupRun> {
        self.inner.space(keyspace)?;
        let reuse = keys.is_none();
        let keys = match keys {
            Some(keys) if keys.is_empty() => {
                return Err(Error::InvalidRequest("no keys to warm".into()));
            }
            Some(mut keys) => {
                self.inner.config.limits.check_batch(keys.len())?;
                let mut seen = std::collections::HashSet::new();
                keys.retain(|k| seen.insert(k.clone()));
                keys
            }
            None => self.warmup_plan(keyspace)?,
        };
        let id = match self.inner.warmups.begin_demand(
            keyspace,
            keys.len(),
            reuse,
            MAX_RUNNING_DEMAND,
        ) {
            DemandStart::Started(id) => id,
            DemandStart::Running(run) => return Ok(run),
            DemandStart::Busy(running) => {
                return Err(Error::Unavailable(format!(
                    "{running} warmups are running on this node; try again when one has finished"
                )));
            }
        };
        let engine = self.clone();
        let keyspace = keyspace.to_owned();
        // Not on the event loop that served the request: the warmup outlives it.
        self.inner.tasks.spawn_detached(async move {
            engine.coordinate(&keyspace, keys, id).await;
            engine.inner.warmups.finish(id);
            if let Some(space) = engine.inner.spaces_now().get(&keyspace) {
                space.stats.warmups.inc();
            }
        });
        self.warmup_run(id)
            .ok_or_else(|| Error::Internal("warmup run vanished".into()))
    }

    /// Sends each owner its keys, in batches, and adds every answer to run `id`.
    async fn coordinate(&self, keyspace: &str, keys: Vec<String>, id: u64) {
        let by_owner = match &self.inner.cluster {
            Some(cluster) => cluster.split(keyspace, keys, |k| k.as_str()),
            None => ByOwner {
                local: keys,
                remote: Vec::new(),
            },
        };
        let log = &self.inner.warmups;
        let concurrency = self.inner.config.warmup.concurrency.max(1);
        let batch_size = (concurrency * 4).min(BATCH);
        let local = async {
            for batch in by_owner.local.chunks(batch_size) {
                let outcome = match self
                    .warm_keys(keyspace, batch, Ownership::Trust, false)
                    .await
                {
                    Ok(o) => o,
                    Err(e) => failed_batch(batch, &e.to_string()),
                };
                log.add(id, &outcome);
            }
        };
        let remote =
            futures::future::join_all(by_owner.remote.into_iter().map(|(peer, keys)| async move {
                let Some(cluster) = &self.inner.cluster else {
                    return;
                };
                for batch in keys.chunks(batch_size) {
                    // Rounds of `concurrency` prefetches, each within the prefetch timeout.
                    let rounds = u32::try_from(batch.len().div_ceil(concurrency)).unwrap_or(1);
                    let timeout =
                        self.inner.config.warmup.timeout * rounds + Duration::from_secs(1);
                    let outcome = match cluster
                        .transport()
                        .warm(&peer.addr, keyspace, batch, timeout)
                        .await
                    {
                        Ok(o) => o,
                        Err(e) => {
                            failed_batch(batch, &format!("owner {} did not warm it: {e}", peer.id))
                        }
                    };
                    log.add(id, &outcome);
                }
            }));
        futures::join!(local, remote);
    }

    /// Every warmup run this node keeps, oldest first.
    pub fn warmup_runs(&self) -> Vec<WarmupRun> {
        self.inner.warmups.all()
    }

    /// Warmup run `id` of this node.
    pub fn warmup_run(&self, id: u64) -> Option<WarmupRun> {
        self.inner.warmups.get(id)
    }

    /// Asks every live peer for its hot keys and keeps them for planning: each list cut to
    /// `max_hot_keys`, keyspaces this node does not have left out. A peer's lists are kept for
    /// `max(hot_key_halflife, 3 × share_interval)` after it last answered, so a peer that
    /// left is still known while its keys are re-homed, and forgotten after.
    pub(crate) async fn exchange_hot_keys(&self) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        let config = &self.inner.config.warmup;
        let keep = config.hot_key_halflife.max(config.share_interval * 3);
        let timeout = cluster.config().probe_timeout;
        let asks = cluster.live_peers().into_iter().map(|peer| async move {
            let answer = cluster.transport().hot(&peer.addr, timeout).await;
            (peer, answer)
        });
        for (peer, answer) in futures::future::join_all(asks).await {
            match answer {
                Ok(lists) => {
                    let spaces = self.inner.spaces_now();
                    let by_keyspace = lists
                        .into_iter()
                        .filter(|(keyspace, _)| spaces.contains_key(keyspace))
                        .map(|(keyspace, mut list)| {
                            list.truncate(config.max_hot_keys);
                            (keyspace, list)
                        })
                        .collect();
                    self.inner.shared_hot().insert(
                        peer.id.to_string(),
                        PeerHotKeys {
                            received: std::time::Instant::now(),
                            by_keyspace,
                        },
                    );
                }
                Err(e) => {
                    tracing::debug!(peer = %peer.id, error = %e, "hot keys not shared this round")
                }
            }
        }
        self.inner
            .shared_hot()
            .retain(|_, peer| peer.received.elapsed() <= keep);
    }

    /// This node's hot keys of every keyspace (what peers ask for).
    pub(crate) fn all_hot_keys(&self) -> HashMap<String, Vec<(String, u32)>> {
        let config = &self.inner.config.warmup;
        self.inner
            .spaces_now()
            .iter()
            .map(|(name, space)| {
                (
                    name.clone(),
                    space.hot_keys.top(config.max_hot_keys, config.min_hits),
                )
            })
            .collect()
    }

    async fn warm_all(&self, trigger: WarmupTrigger) {
        let names: Vec<String> = self.inner.spaces_now().keys().cloned().collect();
        for name in names {
            match self.warm_local(&name, trigger).await {
                Ok(Some(run)) if run.warmed + run.failed > 0 => tracing::info!(
                    keyspace = %name, trigger = ?trigger, warmed = run.warmed,
                    failed = run.failed, skipped = run.skipped, "warmup done"
                ),
                Ok(_) => {}
                Err(e) => tracing::debug!(keyspace = %name, error = %e, "warmup skipped"),
            }
        }
    }

    /// The start warmup, waited for up to `start_timeout` (it goes on behind after that).
    pub(crate) async fn warm_at_start(&self) {
        if !self.inner.config.warmup.warm_on_start {
            return;
        }
        let engine = self.clone();
        let task = tokio::spawn(async move {
            engine.exchange_hot_keys().await;
            engine.warm_all(WarmupTrigger::Start).await;
        });
        if tokio::time::timeout(self.inner.config.warmup.start_timeout, task)
            .await
            .is_err()
        {
            tracing::warn!("start warmup still running; serving meanwhile");
        }
    }
}

/// Loads (or with `force` re-fetches) one key under a node-wide prefetch slot, waiting at most
/// `deadline`. A load still running at the deadline keeps its slot until it ends, so a slow
/// source never has more than `concurrency` prefetches in flight. `Ok(false)`: not found.
async fn prefetch(
    space: &Arc<Space>,
    slots: &Arc<tokio::sync::Semaphore>,
    key: &str,
    force: bool,
    deadline: Duration,
) -> Result<bool> {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(|_| Error::NotRunning)?;
    let pending = if force {
        space.refresh_owned(&[key])
    } else {
        space.load_owned(&[key])
    };
    let Some(load) = pending.into_iter().next() else {
        return Err(Error::Internal("no load was started".into()));
    };
    match tokio::time::timeout(deadline, load.clone()).await {
        Ok(outcome) => outcome.map(|found| found.value.is_some()),
        Err(_) => {
            space.tasks.spawn_detached(async move {
                let _ = load.await;
                drop(slot);
            });
            Err(Error::timeout("warmup fetch", deadline))
        }
    }
}

fn failed_batch(batch: &[String], error: &str) -> WarmOutcome {
    let mut outcome = WarmOutcome::default();
    for key in batch {
        outcome.fail(key, error.to_owned());
    }
    outcome
}

//! The one read path. A client's `get` and `get_many` and a peer's single and batch reads
//! all come here; they differ only in where a key that misses the caches is loaded, which
//! [`ReadMode`] says.
//!
//! How reads are counted (the `stats` of a keyspace): a read is counted once, on the node
//! that answered the client. There it is a get, a hit or a load, and a read for the hot-key
//! tracker. When that node loads the key through its owner, it counts a peer load; the owner
//! counts the request in `peer_requests` only, never as a get, a hit or a hot read, so that
//! summing the nodes' gets gives the reads clients made. The owner's data-source work is its
//! own whoever asked: a fetch it makes for a peer shows in its `loads_deduped` and
//! `local_loads` like any other.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::Inner;
use crate::error::{Error, Result};
use crate::flight::Pending;
use crate::space::Space;
use crate::store::Cached;
use crate::telemetry::{Op, end_span, span_name, within};
use opentelemetry::Context;
use opentelemetry::trace::SpanKind;

/// Where a read that misses the caches is loaded, and how it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// A client's `get`: counted here, timed (hits 1 in `hit_timing_every`), and loaded by
    /// the key's owner (this node from its data source, or a peer through the transport).
    Client,
    /// A key of a client's `get_many`: counted and loaded as a `get`, timed with its batch.
    Batch,
    /// A peer's read of keys this node serves: answered from the caches or this node's data
    /// source, never sent on; counted as peer requests only.
    ForPeer,
}

impl Inner {
    /// Reads `keys` of `space`, calling `answer(slot, outcome)` once for every key: hits at
    /// once, then the misses, each loaded once however often it is listed. Keys the limits
    /// refuse are answered with the error and not counted.
    pub(crate) async fn read<K: AsRef<str>>(
        &self,
        space: &Arc<Space>,
        keys: &[K],
        mode: ReadMode,
        mut answer: impl FnMut(usize, Result<Cached>),
    ) {
        if let [key] = keys {
            answer(0, self.read_one(space, key.as_ref(), mode).await);
            return;
        }
        let limits = &self.config.limits;
        // Both stay empty, and so allocate nothing, while every key hits.
        let mut misses: Vec<&str> = Vec::new();
        let mut waiting: HashMap<&str, Vec<usize>> = HashMap::new();
        for (slot, key) in keys.iter().enumerate() {
            let key = key.as_ref();
            if let Err(e) = limits.check_key(key) {
                answer(slot, Err(e));
                continue;
            }
            let hit = space.lookup(key).await;
            count(space, key, mode, hit.as_ref().map(|(_, hot)| *hot));
            if let Some((hit, _)) = hit {
                answer(slot, Ok(hit));
                continue;
            }
            match waiting.get_mut(key) {
                // Listed twice: answered by the same load.
                Some(slots) => slots.push(slot),
                None => {
                    misses.push(key);
                    waiting.insert(key, vec![slot]);
                }
            }
        }
        if misses.is_empty() {
            return;
        }
        let pending = self.load(space, &misses, mode);
        if pending.len() != misses.len() {
            let err = Error::Internal("a load was not started for every missed key".into());
            for slot in waiting.into_values().flatten() {
                answer(slot, Err(err.clone()));
            }
            return;
        }
        let outcomes = futures::future::join_all(pending).await;
        for (key, outcome) in misses.iter().zip(outcomes) {
            for slot in waiting.get(key).into_iter().flatten() {
                answer(*slot, outcome.clone());
            }
        }
    }

    /// Reads one key (see [`read`](Self::read)): the same steps without the bookkeeping of
    /// keys listed twice, which a miss of a single key would pay for.
    pub(crate) async fn read_one(
        &self,
        space: &Arc<Space>,
        key: &str,
        mode: ReadMode,
    ) -> Result<Cached> {
        if let Err(e) = self.config.limits.check_key(key) {
            if mode == ReadMode::Client {
                space
                    .stats
                    .key_ops
                    .of(Op::Get)
                    .finish(Instant::now(), &Err::<(), _>(e.clone()));
            }
            return Err(e);
        }
        // A hit is timed 1 in `hit_timing_every`, a miss always (from here on).
        let sampled = match mode {
            ReadMode::Client => self.telemetry.hits.start(),
            ReadMode::Batch | ReadMode::ForPeer => None,
        };
        // The span of a get starts here, but is made only once the lookup says it is needed.
        let traced_from = (mode == ReadMode::Client && self.telemetry.spans.is_on())
            .then(std::time::SystemTime::now);
        let hit = space.lookup(key).await;
        count(space, key, mode, hit.as_ref().map(|(_, hot)| *hot));
        if let Some((hit, hot)) = hit {
            if traced_from.is_some() && self.telemetry.spans.in_sampled_trace() {
                let cx = self.get_span(space, traced_from);
                end_span(cx.as_ref(), Some(if hot { "hot" } else { "hit" }), &Ok(()));
            }
            if let Some(started) = sampled {
                let weight = self.telemetry.hits.weight();
                space
                    .stats
                    .key_ops
                    .of(Op::Get)
                    .duration
                    .record_weighted(started.elapsed(), weight);
            }
            return Ok(hit);
        }
        let started = sampled.unwrap_or_else(Instant::now);
        // A span for the load only: a hit must stay as cheap as a moka lookup.
        let span = tracing::debug_span!("distcache.load_key", distcache.keyspace = %space.name(), key, ?mode);
        let get_cx = traced_from.and_then(|from| self.get_span(space, Some(from)));
        // The wait for the single-flight load, under the get's span; the load task started
        // under it carries it on to the peer call or the fetch.
        let wait_cx = get_cx.as_ref().and_then(|cx| {
            let _in_get = cx.clone().attach();
            let spans = &self.telemetry.spans;
            spans.start(
                "distcache.singleflight.wait",
                SpanKind::Internal,
                Vec::new(),
                None,
            )
        });
        let pending = {
            let _in_wait = wait_cx.clone().map(Context::attach);
            self.load(space, &[key], mode).pop()
        };
        let outcome = match pending {
            Some(pending) => within(wait_cx.as_ref(), pending.instrument(span)).await,
            None => Err(Error::Internal("no load was started for the key".into())),
        };
        if get_cx.is_some() {
            end_span(wait_cx.as_ref(), None, &outcome);
            let label = match &outcome {
                Ok(c) if c.value.is_none() => Some("not_found"),
                Ok(_) => Some(match self.owner(space, key) {
                    crate::cluster::Route::Local => "loaded",
                    crate::cluster::Route::Remote(_) => "peer",
                }),
                Err(_) => None,
            };
            end_span(get_cx.as_ref(), label, &outcome);
        }
        if mode == ReadMode::Client {
            let stats = space.stats.key_ops.of(Op::Get);
            stats.duration.record(started.elapsed());
            if let Err(e) = &outcome {
                stats.error(e);
            }
        }
        outcome
    }

    /// The span of a client's `get` of `space`, from `from`.
    fn get_span(&self, space: &Space, from: Option<std::time::SystemTime>) -> Option<Context> {
        let name = span_name(Op::Get);
        self.telemetry
            .spans
            .operation(name, Op::Get.name(), space.name(), from)
    }

    /// Starts the loads of `keys`, which missed both caches: by their owners for a client's
    /// read, here for a peer's.
    fn load(&self, space: &Arc<Space>, keys: &[&str], mode: ReadMode) -> Vec<Pending> {
        match mode {
            ReadMode::Client | ReadMode::Batch => self.route(space, keys),
            ReadMode::ForPeer => space.load_owned(keys),
        }
    }
}

/// Counts one valid key read (see the module docs); `hit` is `None` for a miss, else whether
/// the hot cache answered.
#[inline]
fn count(space: &Space, key: &str, mode: ReadMode, hit: Option<bool>) {
    match mode {
        ReadMode::Client | ReadMode::Batch => {
            if mode == ReadMode::Batch {
                space.stats.batch_keys.inc();
            }
            match hit {
                Some(hot) => {
                    space.stats.cache_hits.inc();
                    if hot {
                        space.stats.hot_hits.inc();
                    }
                }
                None => space.stats.loads.inc(),
            }
            space.hot_keys.record(key, hit.is_none());
        }
        ReadMode::ForPeer => space.stats.peer_requests.inc(),
    }
}

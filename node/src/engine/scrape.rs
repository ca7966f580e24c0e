//! The engine's part of a metrics scrape ([`Scrape`]): its keyspaces' counters, gauges and
//! histograms, its own operations, its calls to peers, its ring and revision. Read
//! synchronously, so that OpenTelemetry's collection callbacks, which cannot await, can read
//! it too. Cache sizes are exact once moka's pending maintenance has run: called off any
//! runtime (an exporter's own thread) the scrape runs it first, blocking that thread;
//! called on a runtime thread it cannot, and sizes may lag the last writes (`GET /metrics`
//! settles the caches asynchronously instead).

use std::sync::Arc;

use super::{Engine, Inner};
use crate::stats::Scrape;

impl Inner {
    pub(crate) fn scrape_now(&self) -> Scrape {
        let mut spaces: Vec<_> = self.spaces_now().values().cloned().collect();
        spaces.sort_by(|a, b| a.name().cmp(b.name()));
        if tokio::runtime::Handle::try_current().is_err() {
            // Not a runtime's thread: nothing this thread runs can hold what the maintenance
            // waits for.
            futures::executor::block_on(async {
                for space in &spaces {
                    space.settle_caches().await;
                }
            });
        }
        let mut ops = Vec::new();
        let mut fetches = Vec::new();
        for space in &spaces {
            let name = space.name();
            for (op, snapshot) in space.stats.ops() {
                ops.push((name.to_owned(), op, snapshot));
            }
            for (outcome, durations) in space.stats.fetches.snapshot() {
                fetches.push((name.to_owned(), outcome, durations));
            }
        }
        for (op, keyspace, snapshot) in self.telemetry.ops.snapshot() {
            ops.push((keyspace, op, snapshot));
        }
        Scrape {
            keyspaces: spaces.iter().map(|s| s.snapshot_now()).collect(),
            ops,
            fetches,
            peers: self
                .cluster
                .as_ref()
                .map(|c| c.peer_calls().snapshot())
                .unwrap_or_default(),
            catalog_commit: self.telemetry.catalog_commit.snapshot(),
            http: Vec::new(),
            ring_members: self
                .cluster
                .as_ref()
                .map_or(1, |cluster| cluster.ring_ids().len()),
            revision: *self.applied_tx.borrow(),
            raft: None,
        }
    }
}

impl Engine {
    /// The engine's metrics now (see the module docs).
    pub(crate) fn scrape_now(&self) -> Scrape {
        self.inner.scrape_now()
    }

    /// The engine's state, for readers that must not keep the engine alive (the
    /// OpenTelemetry callbacks a meter provider holds).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }
}

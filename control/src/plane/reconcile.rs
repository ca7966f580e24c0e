//! The leader's membership duties, once per `reconcile_interval`: add the nodes it can see as
//! learners, promote caught-up learners up to the voter target, and replace voters that have
//! been unreachable longer than the grace period. One membership change at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::{ChangeMembers, ServerState};

use super::{ControlPlane, lock};
use crate::Member;

/// How far behind the leader's last log a learner may be and still be promoted.
const CAUGHT_UP_LAG: u64 = 16;

/// Whether a member's log, as the leader's replication `metrics` show it, is close enough to
/// the leader's to vote at once.
pub(super) fn caught_up(
    metrics: &openraft::RaftMetrics<u64, Member>,
) -> impl Fn(&u64) -> bool + use<> {
    let last_log = metrics.last_log_index.unwrap_or(0);
    let replication = metrics.replication.clone().unwrap_or_default();
    move |id: &u64| {
        replication
            .get(id)
            .and_then(|m| m.map(|l| l.index))
            .is_some_and(|matched| matched + CAUGHT_UP_LAG >= last_log)
    }
}

impl ControlPlane {
    pub(super) async fn reconcile_loop(&self) {
        let mut stop = self.inner.stop.subscribe();
        let mut ticker = tokio::time::interval(self.inner.config.reconcile_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            if let Err(e) = self.reconcile_once().await {
                tracing::debug!(error = %e, "membership reconciliation postponed");
            }
        }
    }

    async fn reconcile_once(&self) -> Result<(), String> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            lock(&self.inner.last_seen).clear();
            return Ok(());
        }
        // A group whose founder stopped before writing its seed still gets marked formed, once
        // the founder had the grace period to do it.
        let unseeded = !self.inner.catalog.borrow().seeded;
        let waited = {
            let mut since = lock(&self.inner.unseeded_since);
            match (unseeded, *since) {
                (false, _) => {
                    *since = None;
                    false
                }
                (true, None) => {
                    *since = Some(Instant::now());
                    false
                }
                (true, Some(t)) => t.elapsed() > self.inner.config.voter_grace_period,
            }
        };
        if unseeded && waited && !self.formed_here() {
            let command = crate::Command {
                change: crate::Change::Seed {
                    entries: Vec::new(),
                },
                expected_revision: None,
                request_id: None,
            };
            self.write(command)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        let membership = metrics.membership_config.membership().clone();
        let nodes: BTreeMap<u64, Member> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let now = Instant::now();

        // Probe every address known from discovery or membership.
        let mut addrs: Vec<String> = lock(&self.inner.peers).clone();
        addrs.extend(nodes.values().map(|n| n.addr.clone()));
        addrs.retain(|a| *a != self.inner.me.addr);
        addrs.sort();
        addrs.dedup();
        let timeout = self
            .inner
            .config
            .reconcile_interval
            .max(Duration::from_millis(200));
        let statuses =
            futures::future::join_all(addrs.iter().map(|a| self.probe(a, timeout))).await;
        let mut seen_now = BTreeMap::new();
        {
            let mut last_seen = lock(&self.inner.last_seen);
            last_seen.insert(self.inner.id, now);
            for status in statuses.into_iter().flatten() {
                last_seen.insert(status.id, now);
                seen_now.insert(status.id, status);
            }
            // Members never seen since this node became leader count from now.
            for id in nodes.keys() {
                last_seen.entry(*id).or_insert(now);
            }
        }

        // 1. Nodes that answer but are not members join as learners.
        for (id, status) in &seen_now {
            if !nodes.contains_key(id) && status.name != self.inner.me.name && !status.leaving {
                let member = Member {
                    name: status.name.clone(),
                    addr: status.addr.clone(),
                };
                tracing::info!(node = %member.name, "adding a learner the leader can see");
                self.inner
                    .raft
                    .add_learner(*id, member, false)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
        }

        let grace = self.inner.config.voter_grace_period;
        let gone = |id: &u64| {
            lock(&self.inner.last_seen)
                .get(id)
                .is_none_or(|seen| now.duration_since(*seen) > grace)
        };

        // 2. Replace voters gone longer than the grace period (only while the rest of the
        //    voters can commit the change).
        let dead: BTreeSet<u64> = voters.iter().filter(|id| gone(id)).copied().collect();
        let alive_voters = voters.len() - dead.len();
        if !dead.is_empty() && alive_voters * 2 > voters.len() {
            tracing::warn!(gone = ?dead.iter().filter_map(|id| nodes.get(id).map(|n| &n.name)).collect::<Vec<_>>(), "removing voters gone longer than the grace period");
            self.inner
                .raft
                .change_membership(ChangeMembers::RemoveVoters(dead), false)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        }

        // 3. Promote caught-up, reachable learners while voters are below the target.
        let target = self.inner.config.voters;
        if voters.len() < target {
            let caught_up = caught_up(&metrics);
            let mut candidates: Vec<(&String, u64)> = nodes
                .iter()
                .filter(|(id, _)| !voters.contains(id) && !gone(id) && caught_up(id))
                .map(|(id, n)| (&n.name, *id))
                .collect();
            candidates.sort();
            let promote: BTreeSet<u64> = candidates
                .into_iter()
                .take(target - voters.len())
                .map(|(_, id)| id)
                .collect();
            if !promote.is_empty() {
                tracing::info!(
                    count = promote.len(),
                    "promoting caught-up learners to voters"
                );
                self.inner
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(promote), false)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
        }

        // 4. Forget learners gone longer than the grace period.
        let dead_learners: BTreeSet<u64> = nodes
            .keys()
            .filter(|id| !voters.contains(id) && gone(id))
            .copied()
            .collect();
        if !dead_learners.is_empty() {
            self.inner
                .raft
                .change_membership(ChangeMembers::RemoveNodes(dead_learners), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

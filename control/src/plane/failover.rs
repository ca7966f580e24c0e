//! Fast failover: a follower that finds the leader gone starts the election at once instead of
//! waiting out raft's election timeout.
//!
//! Raft alone notices a dead leader only when its election timer runs out, and openraft draws
//! each node's timeout once, so two followers with close timeouts can split their votes
//! round after round. Here every follower probes the leader's control status four times per
//! election timeout; after [`MISSES`] failed probes in a row, once the leader's lease on the
//! followers has run out (they refuse votes before), the surviving voters campaign one at a
//! time by name, half an election timeout apart, so their votes do not split and a voter
//! whose log is behind is followed by one that is not. Raft's own timer stays the fallback.
//! An election started while the leader is in fact alive is safe — raft never has two
//! leaders in a term — and costs one term change.

use std::time::{Duration, Instant};

use openraft::ServerState;

use super::ControlPlane;
use super::leader_member;

/// Failed probes in a row before the leader counts as gone.
const MISSES: u32 = 2;

impl ControlPlane {
    pub(super) async fn watch_leader(&self) {
        let config = &self.inner.config;
        let mut stop = self.inner.stop.subscribe();
        let every = (config.election_timeout_min / 4).max(Duration::from_millis(10));
        let timeout = config.election_timeout_min.max(Duration::from_millis(50));
        // Followers keep the leader's lease this long after they last heard from it, and
        // refuse votes meanwhile: campaigning earlier only wastes a term.
        let lease = config.election_timeout_max + config.heartbeat_interval * 2;
        let stagger = config.election_timeout_min / 2;
        let mut misses = 0u32;
        let mut watched: Option<u64> = None;
        let mut last_alive = Instant::now();
        let mut campaigned: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let metrics = self.inner.raft.metrics().borrow().clone();
            let leader = match (metrics.state, metrics.current_leader) {
                (ServerState::Follower, Some(id)) if id != self.inner.id => {
                    if watched != Some(id) {
                        (watched, misses, campaigned) = (Some(id), 0, None);
                        last_alive = Instant::now();
                    }
                    let Some(member) = leader_member(&metrics) else {
                        continue;
                    };
                    let probed = Instant::now();
                    if self.probe(&member.addr, timeout).await.is_some() {
                        (misses, campaigned) = (0, None);
                        last_alive = probed;
                        continue;
                    }
                    misses += 1;
                    (id, member.to_string())
                }
                // A candidate's vote request made this follower forget the leader it watched:
                // the election is still this node's to help along.
                (ServerState::Follower, None) if misses >= MISSES => match watched {
                    Some(id) => (id, format!("raft id {id}")),
                    None => continue,
                },
                _ => {
                    (watched, misses, campaigned) = (None, 0, None);
                    continue;
                }
            };
            if misses < MISSES {
                continue;
            }
            // Every surviving voter campaigns in turn, by name, `stagger` apart: the first
            // usually wins; one whose log is behind loses and the next one wins.
            let membership = metrics.membership_config.membership();
            let mut survivors: Vec<(String, u64)> = membership
                .voter_ids()
                .filter(|id| *id != leader.0)
                .filter_map(|id| membership.get_node(&id).map(|m| (m.name.clone(), id)))
                .collect();
            survivors.sort();
            let Some(rank) = survivors.iter().position(|(_, id)| *id == self.inner.id) else {
                continue;
            };
            let turn = lease + stagger.saturating_mul(u32::try_from(rank).unwrap_or(u32::MAX));
            if last_alive.elapsed() < turn {
                continue;
            }
            // A campaign that won nothing (a vote refused, a log behind) is tried again once
            // every survivor had its turn.
            let round = stagger.saturating_mul(u32::try_from(survivors.len()).unwrap_or(u32::MAX));
            if campaigned.is_some_and(|at| at.elapsed() < round) {
                continue;
            }
            tracing::info!(leader = %leader.1, "the leader does not answer; starting an election");
            if let Err(e) = self.inner.raft.trigger().elect().await {
                tracing::warn!(error = %e, "could not start an election");
            }
            campaigned = Some(Instant::now());
        }
    }
}

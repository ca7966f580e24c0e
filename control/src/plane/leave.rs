//! Leaving the group on a clean stop: a voter hands its seat to a caught-up learner in one
//! membership change, so that replacing the nodes of a cluster one at a time (a rolling
//! update that starts each new node before it stops an old one) keeps a full set of live
//! voters throughout. Without a learner to take the seat, a stopping voter stays a voter:
//! the group never shrinks on a clean stop, and a whole cluster stopped at once comes back
//! as it was. A learner that stops is simply removed.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::ChangeMembers;

use super::{ControlPlane, leader_member, reconcile::caught_up};
use crate::Member;
use crate::network::{BASE, LeaveReply};

impl ControlPlane {
    /// Leaves the group before a clean stop (see the module docs); gives up, logging why,
    /// after `write_timeout` (at most 5 s). Call before [`shutdown`](Self::shutdown).
    pub async fn leave(&self) {
        self.inner.leaving.store(true, Ordering::Release);
        let limit = self.inner.config.write_timeout.min(Duration::from_secs(5));
        let deadline = Instant::now() + limit;
        loop {
            let metrics = self.inner.raft.metrics().borrow().clone();
            if metrics
                .membership_config
                .membership()
                .get_node(&self.inner.id)
                .is_none()
            {
                return;
            }
            let reply = if metrics.current_leader == Some(self.inner.id) {
                self.accept_leave(self.inner.me.clone()).await
            } else {
                // Without a leader that answers (the rest of the cluster is stopping too),
                // there is no one to hand the seat to: stay a voter.
                let Some(leader) = leader_member(&metrics) else {
                    tracing::info!("no leader known; stays a member");
                    return;
                };
                match self.ask_to_leave(&leader).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        tracing::info!(leader = %leader.name, error = %e, "the leader does not answer; stays a member");
                        return;
                    }
                }
            };
            match reply {
                LeaveReply::Left => {
                    tracing::info!("left the control plane");
                    return;
                }
                LeaveReply::Kept => {
                    tracing::info!("stays a voter: no caught-up learner to take its seat");
                    return;
                }
                LeaveReply::Forward { .. } | LeaveReply::Unavailable { .. } => {
                    if Instant::now() >= deadline {
                        tracing::warn!(reply = ?reply, waited = %humantime::format_duration(limit), "could not leave the control plane; the leader replaces this node after the grace period");
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Asks `leader` to take this node out; `Err` when it cannot be reached.
    async fn ask_to_leave(&self, leader: &Member) -> Result<LeaveReply, String> {
        let url = format!("{}://{}{BASE}/leave", self.inner.scheme, leader.addr);
        let response = self
            .inner
            .http
            .post(url)
            .timeout(Duration::from_secs(2))
            .json(&self.inner.me)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(response
            .json::<LeaveReply>()
            .await
            .unwrap_or_else(|e| LeaveReply::Unavailable {
                message: e.to_string(),
            }))
    }

    /// On the leader: takes `member` out of the group — a voter only in exchange for a
    /// caught-up learner, in one change; otherwise names the leader.
    pub(crate) async fn accept_leave(&self, member: Member) -> LeaveReply {
        let metrics = self.inner.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.inner.id) {
            return LeaveReply::Forward {
                leader: leader_member(&metrics),
            };
        }
        let id = crate::raft_id(&member.name);
        let membership = metrics.membership_config.membership().clone();
        if membership.get_node(&id).is_none() {
            return LeaveReply::Left;
        }
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let change = if voters.contains(&id) {
            let caught_up = caught_up(&metrics);
            let mut learners: Vec<(&String, u64)> = membership
                .nodes()
                .filter(|(n, _)| !voters.contains(n) && **n != id && caught_up(n))
                .map(|(n, m)| (&m.name, *n))
                .collect();
            learners.sort();
            let Some((name, successor)) = learners.first().cloned() else {
                return LeaveReply::Kept;
            };
            tracing::info!(leaving = %member.name, successor = %name, "a stopping voter hands its seat to a learner");
            let mut next = voters.clone();
            next.remove(&id);
            next.insert(successor);
            ChangeMembers::ReplaceAllVoters(next)
        } else {
            tracing::info!(leaving = %member.name, "a stopping learner leaves");
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        match self.inner.raft.change_membership(change, false).await {
            Ok(_) => LeaveReply::Left,
            Err(e) => LeaveReply::Unavailable {
                message: e.to_string(),
            },
        }
    }
}

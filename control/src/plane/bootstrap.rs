//! Joining or forming the raft group at start-up.
//!
//! A node that already belongs to a group (its store holds a log or vote) resumes at once. A
//! pristine node probes the peers it knows: if any of them is in a group, it asks that group's
//! leader to add it and waits to receive the log; if none is, and at least `min_members`
//! pristine nodes answer, the one with the lowest name initialises the group with them (the
//! first `voters` by name as voters) — only after two probe rounds in a row saw the same
//! nodes, so a node that answers late does not end up in a second group — and then writes the
//! seed entries (its start-up definitions) with one `Seed` command.
//!
//! A node that joins waits, before it serves, until it applied what the leader had applied
//! when it joined and the catalog is seeded, so that it never serves a catalog that is
//! behind the one the cluster formed with.

use std::time::{Duration, Instant};

use openraft::ServerState;

use super::ControlPlane;
use crate::network::{BASE, JoinReply, PeerStatus};
use crate::{ControlError, Member, raft_id};

impl ControlPlane {
    /// Resumes, joins or forms the group; fails after `timeout` with who was seen. When this
    /// node forms the group, `seed` becomes the catalog's initial entries.
    pub async fn bootstrap(
        &self,
        min_members: usize,
        timeout: Duration,
        retry: Duration,
        seed: Vec<(String, serde_json::Value)>,
    ) -> Result<(), ControlError> {
        let started = Instant::now();
        let deadline = started + timeout;
        if self.inner.resumed {
            // A restart: the catalog on disk is served at once.
            return Ok(());
        }
        let mut previous_view: Option<Vec<String>> = None;
        let mut target = 0;
        loop {
            let member = self.is_member().await?;
            if member && self.formed_here() {
                self.write_seed(seed, deadline).await?;
                return self.wait_caught_up(deadline, target).await;
            }
            let statuses = self.probe_peers().await;
            if member {
                // Added (by our request or by the leader's own reconciliation): catch up with
                // what the leader has applied now.
                target = target.max(leader_applied(&statuses));
                return self.wait_caught_up(deadline, target).await;
            }

            if let Some(leader) = statuses.iter().find_map(|s| s.leader.clone()) {
                target = target.max(leader_applied(&statuses));
                self.ask_to_join(&leader).await;
                previous_view = None;
            } else if statuses.iter().any(|s| s.initialized) {
                tracing::info!("a raft group exists but has no leader yet; waiting");
                previous_view = None;
            } else {
                let mut names: Vec<String> = statuses.iter().map(|s| s.name.clone()).collect();
                names.push(self.inner.me.name.clone());
                names.sort();
                names.dedup();
                let lowest = names.first() == Some(&self.inner.me.name);
                if names.len() >= min_members && lowest {
                    if previous_view.as_ref() == Some(&names) {
                        self.initialize(&statuses).await?;
                        continue;
                    }
                    previous_view = Some(names);
                } else {
                    previous_view = None;
                }
            }
            if started.elapsed() >= timeout {
                let seen: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
                return Err(ControlError::Unavailable(format!(
                    "could not join or form the control plane within {}: {} other node(s) answered ({}), {min_members} member(s) needed",
                    humantime::format_duration(timeout),
                    seen.len(),
                    if seen.is_empty() {
                        "none".to_owned()
                    } else {
                        seen.join(", ")
                    },
                )));
            }
            tokio::time::sleep(retry).await;
        }
    }

    async fn probe_peers(&self) -> Vec<PeerStatus> {
        let peers: Vec<String> = super::lock(&self.inner.peers).clone();
        futures::future::join_all(
            peers
                .iter()
                .map(|addr| self.probe(addr, Duration::from_secs(1))),
        )
        .await
        .into_iter()
        .flatten()
        .filter(|s| s.name != self.inner.me.name)
        .collect()
    }

    async fn is_member(&self) -> Result<bool, ControlError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| ControlError::Unavailable(format!("raft stopped: {e}")))
    }

    async fn initialize(&self, pristine: &[PeerStatus]) -> Result<(), ControlError> {
        let mut members: Vec<Member> = pristine
            .iter()
            .map(|s| Member {
                name: s.name.clone(),
                addr: s.addr.clone(),
            })
            .chain([self.inner.me.clone()])
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members.dedup_by(|a, b| a.name == b.name);
        members.truncate(self.inner.config.voters);
        let voters: std::collections::BTreeMap<u64, Member> = members
            .iter()
            .map(|m| (raft_id(&m.name), m.clone()))
            .collect();
        tracing::info!(voters = ?members.iter().map(|m| &m.name).collect::<Vec<_>>(), "initialising the control plane");
        match self.inner.raft.initialize(voters).await {
            Ok(()) => {
                self.inner
                    .formed_here
                    .store(true, std::sync::atomic::Ordering::Release);
                Ok(())
            }
            // Someone (this node, before a restart) already initialised: nothing to do.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(e) => Err(ControlError::Unavailable(format!(
                "initialising raft failed: {e}"
            ))),
        }
    }

    async fn ask_to_join(&self, leader: &Member) {
        let url = format!("{}://{}{BASE}/join", self.inner.scheme, leader.addr);
        let reply = async {
            let response = self
                .inner
                .http
                .post(url)
                .timeout(Duration::from_secs(2))
                .json(&self.inner.me)
                .send()
                .await
                .ok()?;
            response.json::<JoinReply>().await.ok()
        }
        .await;
        match reply {
            Some(JoinReply::Added) => {
                tracing::info!(leader = %leader.name, "asked to join the control plane")
            }
            other => tracing::info!(leader = %leader.name, reply = ?other, "join not accepted yet"),
        }
    }

    /// Writes the seed entries once this node leads the group it formed.
    async fn write_seed(
        &self,
        seed: Vec<(String, serde_json::Value)>,
        deadline: Instant,
    ) -> Result<(), ControlError> {
        let command = crate::Command {
            change: crate::Change::Seed { entries: seed },
            expected_revision: None,
            request_id: None,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let plane = ControlPlane {
            inner: self.inner.clone(),
        };
        match tokio::time::timeout(left, plane.write(command)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ControlError::Unavailable(
                "the new control plane could not write its seed in time".into(),
            )),
        }
    }

    /// Waits until a leader is known, this node applied at least `target` (what the leader
    /// had applied when this node joined) and the catalog is seeded.
    async fn wait_caught_up(&self, deadline: Instant, target: u64) -> Result<(), ControlError> {
        let mut metrics = self.inner.raft.metrics();
        let mut catalog = self.inner.catalog.clone();
        loop {
            let caught_up = {
                let m = metrics.borrow_and_update();
                let applied = m.last_applied.map_or(0, |l| l.index);
                m.current_leader.is_some()
                    && applied >= target
                    && m.state != ServerState::Shutdown
                    && catalog.borrow_and_update().seeded
            };
            if caught_up {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "joined the control plane but did not catch up in time; serving what arrived so far"
                );
                return Ok(());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), async {
                tokio::select! {
                    _ = metrics.changed() => {}
                    _ = catalog.changed() => {}
                }
            })
            .await;
        }
    }
}

/// What the leader named by the answering peers had applied (0 when none names one).
fn leader_applied(statuses: &[PeerStatus]) -> u64 {
    statuses
        .iter()
        .find_map(|s| s.leader.as_ref())
        .and_then(|leader| statuses.iter().find(|s| s.name == leader.name))
        .map_or(0, |s| s.applied)
}

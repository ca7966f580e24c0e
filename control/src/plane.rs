//! One node's control plane: the raft instance, its store, and the duties around it.
//!
//! - **Writes**: any node accepts one; a follower forwards it to the leader it knows (retrying
//!   through elections until `write_timeout`), so callers never need to know who leads.
//! - **Bootstrap** (`plane/bootstrap.rs`): a restarted node resumes from sled; a pristine node
//!   joins a running group through its leader, or, when none runs, the pristine node with the
//!   lowest name initialises a new group once `min_members` answer.
//! - **Reconciliation** (`plane/reconcile.rs`): the leader adds nodes it can see as learners,
//!   promotes caught-up learners up to the voter target, and replaces voters gone longer than
//!   the grace period.
//! - **Leaving** (`plane/leave.rs`): a voter that stops cleanly hands its seat to a
//!   caught-up learner, so a rolling replacement never leaves the group without a majority.
//! - **Fast failover** (`plane/failover.rs`): a follower that finds the leader gone starts the
//!   election at once rather than after raft's election timeout.
//! - **Status**: role, leader, term and members, for the admin API.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::network::{BASE, Network, PeerStatus, WriteReply};
use crate::store::open_store;
use crate::{Command, ControlConfig, ControlError, JsonCatalog, Member, Outcome, Raft, raft_id};

mod bootstrap;
mod failover;
mod leave;
mod reconcile;
mod routes;

/// A node's role in the raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes writes.
    Leader,
    /// Votes and replicates.
    Follower,
    /// Running an election.
    Candidate,
    /// Replicates without voting.
    Learner,
    /// Not (yet) part of a group.
    Shutdown,
}

/// A member of the raft group as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's name.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Voter (true) or learner.
    pub voter: bool,
}

/// The control plane as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlStatus {
    /// This node's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The leader's name, when known.
    pub leader: Option<String>,
    /// The current term.
    pub term: u64,
    /// Index of the last log entry applied here.
    pub applied_index: u64,
    /// Every member of the group.
    pub members: Vec<MemberInfo>,
}

pub(crate) struct Shared {
    pub raft: Raft,
    pub id: u64,
    pub me: Member,
    pub config: ControlConfig,
    pub http: reqwest::Client,
    /// `https` when the cluster speaks TLS, else `http`.
    pub scheme: &'static str,
    pub catalog: watch::Receiver<Arc<JsonCatalog>>,
    pub peers: Mutex<Vec<String>>,
    pub last_seen: Mutex<HashMap<u64, Instant>>,
    pub formed_here: AtomicBool,
    /// The store held a raft state when it was opened: this is a restart.
    pub resumed: bool,
    /// Set by [`ControlPlane::leave`]: this node is stopping for good.
    pub leaving: AtomicBool,
    /// When this node, leading, first saw the catalog unseeded.
    pub unseeded_since: Mutex<Option<Instant>>,
    pub stop: watch::Sender<bool>,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The control plane of one node. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    pub(crate) inner: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a plain assignment or read: a poisoned lock is consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ControlPlane {
    /// Opens the store in `dir` for the node `name` reachable at `addr`, and starts raft. The
    /// applied catalog is back from disk before this returns. With a `token`, every call to
    /// another node carries it as a bearer token.
    pub async fn open(
        dir: &Path,
        name: &str,
        addr: &str,
        config: ControlConfig,
        token: Option<&str>,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Self, ControlError> {
        let problems = config.problems();
        if !problems.is_empty() {
            let text: Vec<String> = problems.iter().map(|(f, m)| format!("{f}: {m}")).collect();
            return Err(ControlError::Config(text.join("; ")));
        }
        // Creating the directory and opening sled block (and opening may wait for a previous
        // owner's lock): off the runtime's worker threads.
        let (owned_dir, owned_name) = (dir.to_path_buf(), name.to_owned());
        let (log, sm) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&owned_dir).map_err(|e| {
                ControlError::Storage(format!("cannot create {}: {e}", owned_dir.display()))
            })?;
            open_store(&owned_dir, &owned_name)
        })
        .await
        .map_err(|e| ControlError::Storage(format!("opening the store failed: {e}")))??;
        let catalog = sm.subscribe();
        let raft_config = config
            .raft_config("distcache")
            .map_err(ControlError::Config)?;
        // reqwest is built without a default crypto provider: use ring unless the program
        // installed another one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ControlError::Config("the token must be printable ASCII".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut builder = reqwest::Client::builder();
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder
            .default_headers(headers)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(16)
            .no_proxy()
            .build()
            .map_err(|e| ControlError::Config(format!("cannot build the HTTP client: {e}")))?;
        let id = raft_id(name);
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            Network {
                http: http.clone(),
                scheme,
            },
            log,
            sm,
        )
        .await
        .map_err(|e| ControlError::Storage(format!("raft did not start: {e}")))?;
        let resumed = raft
            .is_initialized()
            .await
            .map_err(|e| ControlError::Storage(format!("raft stopped: {e}")))?;
        let (stop, _) = watch::channel(false);
        Ok(ControlPlane {
            inner: Arc::new(Shared {
                raft,
                id,
                me: Member {
                    name: name.to_owned(),
                    addr: addr.to_owned(),
                },
                config,
                http,
                scheme,
                catalog,
                peers: Mutex::new(Vec::new()),
                last_seen: Mutex::new(HashMap::new()),
                formed_here: AtomicBool::new(false),
                leaving: AtomicBool::new(false),
                resumed,
                unseeded_since: Mutex::new(None),
                stop,
                tasks: Mutex::new(Vec::new()),
            }),
        })
    }

    /// This node's raft id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The raft instance (metrics, management).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The applied catalog now and after every change.
    pub fn catalog(&self) -> watch::Receiver<Arc<JsonCatalog>> {
        self.inner.catalog.clone()
    }

    /// Replaces the addresses of the nodes this node knows of (from discovery).
    pub fn set_peers(&self, addrs: &[String]) {
        *lock(&self.inner.peers) = addrs
            .iter()
            .filter(|a| **a != self.inner.me.addr)
            .cloned()
            .collect();
    }

    /// True when the store already belonged to a group when it was opened (a restart).
    pub fn resumed(&self) -> bool {
        self.inner.resumed
    }

    /// True when this process initialised the group (so its keyspace file seeds the catalog).
    pub fn formed_here(&self) -> bool {
        self.inner.formed_here.load(Ordering::Acquire)
    }

    /// Commits `command` through the leader, wherever it is, and returns what applying it
    /// answered. Fails with `Unavailable` when no leader takes it within `write_timeout`.
    ///
    /// A command without a request id gets a fresh one, so the retries below (after a lost
    /// answer, across a leader change) commit it at most once and answer what the first
    /// commit did.
    pub async fn write(
        &self,
        mut command: Command<serde_json::Value>,
    ) -> Result<Outcome, ControlError> {
        if command.request_id.is_none() {
            command.request_id = Some(crate::fresh_request_id());
        }
        let deadline = Instant::now() + self.inner.config.write_timeout;
        let mut last_problem: String;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10));
            match self.write_local(command.clone(), left).await {
                WriteReply::Done { outcome } => return Ok(outcome),
                WriteReply::Forward {
                    leader: Some(leader),
                } if leader.name != self.inner.me.name => {
                    // A leader cut off from the others never answers: give up on it as soon
                    // as this node follows another (the request id keeps the retry from
                    // committing twice).
                    let forwarded = tokio::select! {
                        answer = self.forward(&leader, &command, deadline) => answer,
                        () = self.leader_replaced(&leader.name) => {
                            Err(format!("{} stopped leading while the change was forwarded to it", leader.name))
                        }
                    };
                    match forwarded {
                        Ok(WriteReply::Done { outcome }) => return Ok(outcome),
                        Ok(WriteReply::Forward { .. }) => {
                            last_problem = format!("{} stopped leading", leader.name)
                        }
                        Ok(WriteReply::Unavailable { message }) | Err(message) => {
                            last_problem = message
                        }
                    }
                }
                WriteReply::Forward { .. } => last_problem = "an election is running".into(),
                WriteReply::Unavailable { message } => last_problem = message,
            }
            if Instant::now() >= deadline {
                return Err(ControlError::Unavailable(format!(
                    "no leader committed the change within {} ({last_problem}); is a majority of the control plane reachable?",
                    humantime::format_duration(self.inner.config.write_timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Tries the write on this node.
    pub(crate) async fn write_local(
        &self,
        command: Command<serde_json::Value>,
        limit: Duration,
    ) -> WriteReply {
        // Without a majority a commit never comes: bound the wait.
        let written = match tokio::time::timeout(limit, self.inner.raft.client_write(command)).await
        {
            Ok(written) => written,
            Err(_) => {
                return WriteReply::Unavailable {
                    message: format!(
                        "the change was not committed within {}",
                        humantime::format_duration(limit)
                    ),
                };
            }
        };
        match written {
            Ok(response) => WriteReply::Done {
                outcome: response.data,
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => WriteReply::Forward {
                leader: f.leader_node,
            },
            Err(e) => WriteReply::Unavailable {
                message: e.to_string(),
            },
        }
    }

    /// Returns once this node no longer takes `leader` for the leader (another one, or an
    /// election running); never, if raft has stopped.
    async fn leader_replaced(&self, leader: &str) {
        let mut metrics = self.inner.raft.metrics();
        loop {
            let current = leader_member(&metrics.borrow_and_update()).map(|m| m.name);
            if current.as_deref() != Some(leader) {
                return;
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    async fn forward(
        &self,
        leader: &Member,
        command: &Command<serde_json::Value>,
        deadline: Instant,
    ) -> Result<WriteReply, String> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        let url = format!("{}://{}{BASE}/write", self.inner.scheme, leader.addr);
        let response = self
            .inner
            .http
            .post(url)
            .timeout(left)
            .json(command)
            .send()
            .await
            .map_err(|e| format!("forwarding to leader {} failed: {e}", leader.name))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the leader's answer failed: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("the leader answered badly: {e}"))
    }

    /// Role, leader, term and members as this node sees them.
    pub fn status(&self) -> ControlStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let mut members: Vec<MemberInfo> = membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                name: node.name.clone(),
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let leader = leader_member(&metrics).map(|m| m.name);
        let role = match metrics.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => {
                if members.is_empty() {
                    Role::Shutdown
                } else {
                    Role::Learner
                }
            }
            ServerState::Shutdown => Role::Shutdown,
        };
        ControlStatus {
            name: self.inner.me.name.clone(),
            role,
            leader,
            term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            members,
        }
    }

    /// What peers probe: identity, whether this node is in a group, and its leader.
    pub(crate) async fn peer_status(&self) -> PeerStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let leader = leader_member(&metrics);
        let initialized = self.inner.raft.is_initialized().await.unwrap_or(false);
        PeerStatus {
            applied: metrics.last_applied.map_or(0, |l| l.index),
            name: self.inner.me.name.clone(),
            id: self.inner.id,
            addr: self.inner.me.addr.clone(),
            initialized,
            leader,
            term: metrics.current_term,
            leaving: self.inner.leaving.load(Ordering::Acquire),
        }
    }

    /// Probes `addr`'s control status.
    pub(crate) async fn probe(&self, addr: &str, timeout: Duration) -> Option<PeerStatus> {
        let url = format!("{}://{addr}{BASE}/status", self.inner.scheme);
        let response = self
            .inner
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// Starts the leader's membership duties (they idle while this node follows).
    pub fn start(&self) {
        let plane = self.clone();
        let reconcile = tokio::spawn(async move { plane.reconcile_loop().await });
        let plane = self.clone();
        let watch = tokio::spawn(async move { plane.watch_leader().await });
        lock(&self.inner.tasks).extend([reconcile, watch]);
    }

    /// Stops the duties and raft. The store stays consistent on disk.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
    }
}

/// The member the metrics name as leader, if any (and if it is in the membership).
pub(crate) fn leader_member(metrics: &openraft::RaftMetrics<u64, Member>) -> Option<Member> {
    let id = metrics.current_leader?;
    metrics
        .membership_config
        .membership()
        .get_node(&id)
        .cloned()
}

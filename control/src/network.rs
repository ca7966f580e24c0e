//! Raft RPC over HTTP: the outbound client (reqwest, one pooled client for all peers) and the
//! wire types of the control routes under `/_distcache/raft/…` (served by `plane`).

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Member, Outcome, TypeConfig};

/// Base path of every control route.
pub(crate) const BASE: &str = "/_distcache/raft";

/// What a node says about its control plane (`GET /_distcache/raft/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The node's name.
    pub name: String,
    /// Its raft id.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// Whether it belongs to a raft group (it holds a log or a vote).
    pub initialized: bool,
    /// The leader it follows, if it knows one.
    pub leader: Option<Member>,
    /// Its current term.
    pub term: u64,
    /// Index of the last log entry it applied.
    #[serde(default)]
    pub applied: u64,
    /// It is stopping for good and handing its seat over: the leader does not add it back.
    #[serde(default)]
    pub leaving: bool,
}

/// The answer to a leave request (`POST /_distcache/raft/leave`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum LeaveReply {
    /// Out of the group (a caught-up learner took its voter seat), or not in it.
    Left,
    /// A voter with no caught-up learner to take its seat: it stays a voter, so the voters
    /// never shrink below the target on a clean stop (the grace period replaces it later).
    Kept,
    /// Not the leader: ask this one.
    Forward {
        /// The leader, if known.
        leader: Option<Member>,
    },
    /// Cannot change the membership now.
    Unavailable {
        /// Why.
        message: String,
    },
}

/// The answer to a forwarded write (`POST /_distcache/raft/write`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum WriteReply {
    /// Committed and applied on the leader.
    Done {
        /// The state machine's answer.
        outcome: Outcome,
    },
    /// Not the leader: try this one (none known: an election is running).
    Forward {
        /// The leader, if known.
        leader: Option<Member>,
    },
    /// The write cannot be taken now.
    Unavailable {
        /// Why.
        message: String,
    },
}

/// The answer to a join request (`POST /_distcache/raft/join`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum JoinReply {
    /// Added as a learner (or already a member).
    Added,
    /// Not the leader: ask this one.
    Forward {
        /// The leader, if known.
        leader: Option<Member>,
    },
    /// Cannot add now.
    Unavailable {
        /// Why.
        message: String,
    },
}

/// Builds connections to raft peers.
#[derive(Clone)]
pub(crate) struct Network {
    pub http: reqwest::Client,
    /// `https` when the cluster speaks TLS, else `http`.
    pub scheme: &'static str,
}

/// One peer's raft RPC endpoint. Creating it does not connect.
pub(crate) struct Connection {
    http: reqwest::Client,
    scheme: &'static str,
    target: u64,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &Member) -> Connection {
        Connection {
            http: self.http.clone(),
            scheme: self.scheme,
            target,
            addr: node.addr.clone(),
        }
    }
}

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<u64, Member, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("{}://{}{BASE}/{path}", self.scheme, self.addr);
        let response = self
            .http
            .post(url)
            .timeout(ttl)
            .json(request)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let body = response
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let result: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&body).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.call("append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, Member, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.call("vote", &rpc, option.hard_ttl()).await
    }
}

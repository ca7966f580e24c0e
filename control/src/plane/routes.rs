//! The control routes a node serves under `/_distcache/raft/…`: raft RPC, forwarded writes,
//! join requests, status. Bodies are JSON; unreadable bodies answer 400 with a JSON error.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use super::ControlPlane;
use crate::network::{BASE, JoinReply};
use crate::{Command, Member};

/// Snapshots travel in one body: allow far more than axum's 2 MB default.
const BODY_LIMIT: usize = 256 << 20;

impl ControlPlane {
    /// The control routes, to merge into the node's HTTP server.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(&format!("{BASE}/append"), post(append))
            .route(&format!("{BASE}/vote"), post(vote))
            .route(&format!("{BASE}/snapshot"), post(snapshot))
            .route(&format!("{BASE}/write"), post(write))
            .route(&format!("{BASE}/join"), post(join))
            .route(&format!("{BASE}/leave"), post(leave))
            .route(&format!("{BASE}/status"), get(status))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self.clone())
    }
}

/// Reads a JSON body; the error is the 400 answer to send.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "code": "INVALID_REQUEST",
                    "message": format!("invalid request: bad JSON body: {e}"),
                })),
            )
                .into_response(),
        )
    })
}

async fn append(State(plane): State<ControlPlane>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(rpc) => Json(plane.inner.raft.append_entries(rpc).await).into_response(),
        Err(r) => *r,
    }
}

async fn vote(State(plane): State<ControlPlane>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(rpc) => Json(plane.inner.raft.vote(rpc).await).into_response(),
        Err(r) => *r,
    }
}

async fn snapshot(State(plane): State<ControlPlane>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(rpc) => Json(plane.inner.raft.install_snapshot(rpc).await).into_response(),
        Err(r) => *r,
    }
}

async fn write(State(plane): State<ControlPlane>, body: Bytes) -> Response {
    match parse::<Command<serde_json::Value>>(&body) {
        Ok(command) => {
            let limit = plane.inner.config.write_timeout;
            Json(plane.write_local(command, limit).await).into_response()
        }
        Err(r) => *r,
    }
}

async fn join(State(plane): State<ControlPlane>, body: Bytes) -> Response {
    match parse::<Member>(&body) {
        Ok(member) => Json(plane.accept_join(member).await).into_response(),
        Err(r) => *r,
    }
}

async fn leave(State(plane): State<ControlPlane>, body: Bytes) -> Response {
    match parse::<Member>(&body) {
        Ok(member) => Json(plane.accept_leave(member).await).into_response(),
        Err(r) => *r,
    }
}

async fn status(State(plane): State<ControlPlane>) -> Response {
    Json(plane.peer_status().await).into_response()
}

impl ControlPlane {
    /// Adds `member` as a learner when this node leads; otherwise names the leader.
    pub(crate) async fn accept_join(&self, member: Member) -> JoinReply {
        let metrics = self.inner.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.inner.id) {
            return JoinReply::Forward {
                leader: super::leader_member(&metrics),
            };
        }
        let id = crate::raft_id(&member.name);
        if metrics
            .membership_config
            .membership()
            .get_node(&id)
            .is_some()
        {
            return JoinReply::Added;
        }
        tracing::info!(node = %member.name, addr = %member.addr, "adding a learner");
        match self.inner.raft.add_learner(id, member, false).await {
            Ok(_) => JoinReply::Added,
            Err(e) => JoinReply::Unavailable {
                message: e.to_string(),
            },
        }
    }
}

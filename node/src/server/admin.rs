//! The admin API (the seed's `peers` and `keyspaces` JSON) and health endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiPath;
use crate::cluster::MemberStatus;
use crate::error::Error;
use crate::stats::KeySpaceSnapshot;
use crate::warmup::WarmupRun;
use crate::wire::{ClusterInfo, ClusterMember, Health, Owner};
use distcache_control::Role;

pub(super) async fn peers(State(state): State<AppState>) -> Json<Vec<MemberStatus>> {
    Json(match state.engine.cluster() {
        Some(cluster) => cluster.members(),
        None => vec![MemberStatus {
            id: Some(state.node_id.clone()),
            addr: state.addr.clone(),
            is_self: true,
            reachable: true,
            healthy: true,
            consecutive_failures: 0,
            last_seen_ms: Some(0),
        }],
    })
}

pub(super) async fn cluster(State(state): State<AppState>) -> Json<ClusterInfo> {
    let probed = state
        .engine
        .cluster()
        .map(|c| c.members())
        .unwrap_or_default();
    let healthy = |name: &str, addr: &str| {
        name == state.node_id
            || probed
                .iter()
                .any(|m| m.healthy && (m.id.as_deref() == Some(name) || m.addr == addr))
    };
    let info = match &state.control {
        Some(control) => {
            let status = control.status();
            ClusterInfo {
                node_id: state.node_id.clone(),
                role: status.role,
                leader: status.leader,
                term: status.term,
                applied_revision: state.engine.revision(),
                members: status
                    .members
                    .into_iter()
                    .map(|m| ClusterMember {
                        healthy: healthy(&m.name, &m.addr),
                        id: m.name,
                        addr: m.addr,
                        voter: m.voter,
                    })
                    .collect(),
            }
        }
        None => ClusterInfo {
            node_id: state.node_id.clone(),
            role: Role::Shutdown,
            leader: None,
            term: 0,
            applied_revision: state.engine.revision(),
            members: vec![ClusterMember {
                id: state.node_id.clone(),
                addr: state.addr.clone(),
                healthy: true,
                voter: false,
            }],
        },
    };
    Json(info)
}

pub(super) async fn keyspaces(State(state): State<AppState>) -> Json<Vec<KeySpaceSnapshot>> {
    Json(state.engine.stats().await)
}

/// `?key=` of an owner look-up, for keys a URL path cannot carry.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OwnerQuery {
    key: String,
}

pub(super) async fn owner_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    super::extract::ApiQuery(query): super::extract::ApiQuery<OwnerQuery>,
) -> Result<Json<Owner>, ApiError> {
    owner(state, ApiPath((ks, query.key))).await
}

pub(super) async fn owner(
    State(state): State<AppState>,
    ApiPath((ks, key)): ApiPath<(String, String)>,
) -> Result<Json<Owner>, ApiError> {
    state.engine.config().limits.check_key(&key)?;
    let (owner, addr) = match state.engine.cluster() {
        Some(cluster) => cluster.owner_of(&ks, &key),
        None => (state.node_id.clone(), state.addr.clone()),
    };
    Ok(Json(Owner {
        keyspace: ks,
        key,
        owner,
        addr,
    }))
}

/// The optional body of a warmup request.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct WarmupRequest {
    keys: Option<Vec<String>>,
}

pub(super) async fn start_warmup(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    body: super::extract::ApiBody,
) -> Result<(StatusCode, Json<WarmupRun>), ApiError> {
    let request: WarmupRequest = if body.0.iter().all(u8::is_ascii_whitespace) {
        WarmupRequest::default()
    } else {
        serde_json::from_slice(&body.0)
            .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?
    };
    let run = state.engine.warmup(&ks, request.keys).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

pub(super) async fn warmups(State(state): State<AppState>) -> Json<Vec<WarmupRun>> {
    Json(state.engine.warmup_runs())
}

pub(super) async fn warmup(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<WarmupRun>, ApiError> {
    state.engine.warmup_run(id).map(Json).ok_or_else(|| {
        ApiError::plain(
            StatusCode::NOT_FOUND,
            "WARMUP_NOT_FOUND",
            format!("no warmup run {id} on this node (runs are kept per node, the newest 64)"),
        )
    })
}

pub(super) async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(health(&state))
}

fn health(state: &AppState) -> Health {
    super::health(&state.engine, &state.readiness, &state.node_id, &state.addr)
}

/// 200 once the node serves, owns its keys, and the cluster agrees on who owns what (every
/// healthy member owning, with the same ring); 503 with the reason before.
pub(super) async fn readyz(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Health>), ApiError> {
    let health = health(&state);
    if !health.ready {
        Err(ApiError::from(Error::NotRunning))
    } else if !health.owning {
        Err(ApiError::from(Error::Unavailable(
            "this node is joining: it is taking its keys over from their previous owners".into(),
        )))
    } else if !health.agreed {
        Err(ApiError::from(Error::Unavailable(
            "the members do not agree on the ring yet".into(),
        )))
    } else {
        Ok((StatusCode::OK, Json(health)))
    }
}

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
use crate::wire::{Health, Owner};

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

pub(super) async fn keyspaces(State(state): State<AppState>) -> Json<Vec<KeySpaceSnapshot>> {
    Json(state.engine.stats().await)
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

pub(super) async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        node_id: state.node_id.clone(),
        addr: state.addr.clone(),
        ready: state.is_ready(),
    })
}

pub(super) async fn readyz(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Health>), ApiError> {
    if state.is_ready() {
        Ok((StatusCode::OK, healthz(State(state)).await))
    } else {
        Err(ApiError::from(Error::NotRunning))
    }
}

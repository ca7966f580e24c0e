//! The admin API (the seed's `peers` and `keyspaces` JSON) and health endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::auth::Access;
use super::error::ApiError;
use super::extract::ApiPath;
use crate::cluster::MemberStatus;
use crate::error::Error;
use crate::stats::KeySpaceSnapshot;
use crate::warmup::WarmupRun;
use crate::wire::{ClusterInfo, ClusterMember, ErrorBody, Health, Owner, WireCode};
use distcache_control::Role;

/// The members this node probes, itself included, and how their probes go.
#[utoipa::path(
    get,
    path = "/_distcache/admin/peers",
    operation_id = "peers",
    tag = "admin",
    responses(
        (status = 200, description = "Every member.", body = Vec<MemberStatus>),
    ),
)]
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
            source: None,
        }],
    })
}

/// The control plane as this node sees it: raft role, leader, term, members.
#[utoipa::path(
    get,
    path = "/_distcache/admin/cluster",
    operation_id = "cluster",
    tag = "admin",
    responses(
        (status = 200, description = "The control plane.", body = ClusterInfo),
    ),
)]
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

/// Every keyspace on this node (for a token limited to some keyspaces, only those):
/// effective settings, cache sizes, counters, hot keys.
#[utoipa::path(
    get,
    path = "/_distcache/admin/keyspaces",
    operation_id = "keyspace_stats",
    tag = "admin",
    responses(
        (status = 200, description = "Every keyspace.", body = Vec<KeySpaceSnapshot>),
    ),
)]
pub(super) async fn keyspaces(
    State(state): State<AppState>,
    access: Access,
) -> Json<Vec<KeySpaceSnapshot>> {
    let mut stats = state.engine.stats().await;
    stats.retain(|s| access.allows(&s.name));
    Json(stats)
}

/// `?key=` of an owner look-up, for keys a URL path cannot carry.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct OwnerQuery {
    /// The key.
    key: String,
}

/// Which node owns a key named in the query string.
#[utoipa::path(
    get,
    path = "/_distcache/admin/owner/{ks}",
    operation_id = "owner_by_query",
    tag = "admin",
    params(("ks" = String, Path, description = "Keyspace name."), OwnerQuery),
    responses(
        (status = 200, description = "The owner.", body = Owner),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST`.", body = ErrorBody),
    ),
)]
pub(super) async fn owner_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    super::extract::ApiQuery(query): super::extract::ApiQuery<OwnerQuery>,
) -> Result<Json<Owner>, ApiError> {
    owner(state, ApiPath((ks, query.key))).await
}

/// Which node owns a key, as this node's ring says.
#[utoipa::path(
    get,
    path = "/_distcache/admin/owner/{ks}/{*key}",
    operation_id = "owner",
    tag = "admin",
    params(("ks" = String, Path, description = "Keyspace name."), ("key" = String, Path, description = "The key, percent-encoded as one path segment.")),
    responses(
        (status = 200, description = "The owner.", body = Owner),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST`.", body = ErrorBody),
    ),
)]
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
#[derive(serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WarmupRequest {
    /// The keys to warm. Default: the keyspace's plan (its warm keys and hot keys).
    keys: Option<Vec<String>>,
}

/// Starts a cluster-wide warmup of a keyspace (each owner loads its keys); answers at once with
/// this node's run, to follow at `/_distcache/admin/warmups/{id}`.
#[utoipa::path(
    post,
    path = "/_distcache/admin/keyspaces/{ks}/warmup",
    operation_id = "start_warmup",
    tag = "admin",
    params(("ks" = String, Path, description = "Keyspace name.")),
    request_body(content = Option<WarmupRequest>, description = "Optional; an empty body warms the keyspace's plan."),
    responses(
        (status = 202, description = "Started (or the run already going).", body = WarmupRun),
        (status = 400, description = "`INVALID_REQUEST`: the body is not the request JSON.", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 413, description = "`BATCH_TOO_LARGE`, or `INVALID_REQUEST`: the body is over `max_request_bytes`.", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: too many warmups are running.", body = ErrorBody),
    ),
)]
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

/// The warmup runs this node keeps (the newest 64), oldest first.
#[utoipa::path(
    get,
    path = "/_distcache/admin/warmups",
    operation_id = "warmups",
    tag = "admin",
    responses(
        (status = 200, description = "The runs.", body = Vec<WarmupRun>),
    ),
)]
pub(super) async fn warmups(State(state): State<AppState>) -> Json<Vec<WarmupRun>> {
    Json(state.engine.warmup_runs())
}

/// One warmup run of this node.
#[utoipa::path(
    get,
    path = "/_distcache/admin/warmups/{id}",
    operation_id = "warmup",
    tag = "admin",
    params(("id" = u64, Path, description = "Run id.")),
    responses(
        (status = 200, description = "The run.", body = WarmupRun),
        (status = 404, description = "`WARMUP_NOT_FOUND`.", body = ErrorBody),
    ),
)]
pub(super) async fn warmup(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<WarmupRun>, ApiError> {
    state.engine.warmup_run(id).map(Json).ok_or_else(|| {
        ApiError::plain(
            StatusCode::NOT_FOUND,
            WireCode::WarmupNotFound,
            format!("no warmup run {id} on this node (runs are kept per node, the newest 64)"),
        )
    })
}

/// Liveness and identity: answers while the process serves HTTP. Needs no token.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "The node's identity and state.", body = Health),
    ),
)]
pub(super) async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(health(&state))
}

fn health(state: &AppState) -> Health {
    super::health(&state.engine, &state.readiness, &state.node_id, &state.addr)
}

/// 200 once the node serves, owns its keys, and the cluster agrees on who owns what (every
/// healthy member owning, with the same ring); 503 with the reason before. Needs no token.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready.", body = Health),
        (status = 503, description = "`NOT_RUNNING` (starting or stopping), `UNAVAILABLE` (joining, or the ring is not agreed yet).", body = ErrorBody),
    ),
)]
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

//! Node-to-node routes. A request here is hop-marked by its path: it is always served by this
//! node, never forwarded, so two nodes that briefly disagree on ownership cannot bounce a key
//! between them or wait on each other.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::engine::Ownership;
use crate::transport::HotKeysByKeyspace;
use crate::wire::WarmOutcome;
use crate::wire::{
    BatchResponse, HOP_HEADER, HOPS_HEADER, Health, KeyOutcome, KeysRequest, PutManyRequest,
    REVISION_HEADER, Status, TTL_HEADER,
};

/// Sets up every peer request: unless it names a keyspace this node serves already, waits
/// until this node applied the catalog revision the sender had applied (its
/// `x-distcache-revision`), at most half the engine's read timeout, so a keyspace created
/// through the sender is known here too (after the wait the request is served whatever the
/// revision: a node cut off from the control plane still serves). A request for a keyspace
/// this node serves does not wait: while the control plane lags — its leader killed — every
/// peer call would otherwise stall behind it, past the callers' deadlines. Then serves the
/// request counting the nodes it went through (`x-distcache-hops`), which bounds how often
/// it is passed on.
pub(super) async fn peer_context(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let wanted = request
        .headers()
        .get(REVISION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let served_here = keyspace_of(request.uri().path())
        .is_some_and(|name| state.engine.inner.space(name).is_ok());
    if let Some(wanted) = wanted
        && !served_here
        && state.engine.revision() < wanted
    {
        let mut applied = state.engine.watch_revision();
        // Half a read timeout at most: the caller's own deadline must not pass meanwhile.
        let limit = state.engine.config().read_timeout / 2;
        let caught_up = tokio::time::timeout(limit, applied.wait_for(|r| *r >= wanted)).await;
        if !matches!(caught_up, Ok(Ok(_))) {
            tracing::debug!(
                from = from(request.headers()),
                wanted,
                applied = state.engine.revision(),
                "serving a peer request before catching up with its catalog revision"
            );
        }
    }
    let hops = request
        .headers()
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u8>().ok())
        .unwrap_or(1);
    crate::transport::HOPS.scope(hops, next.run(request)).await
}

/// The keyspace a peer route's path names (`/_distcache/peer/keyspaces/{ks}/…`), as sent:
/// valid keyspace names need no escaping.
fn keyspace_of(path: &str) -> Option<&str> {
    path.strip_prefix("/_distcache/peer/keyspaces/")?
        .split('/')
        .next()
        .filter(|name| !name.is_empty())
}

fn from(headers: &HeaderMap) -> &str {
    headers
        .get(HOP_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
}

/// `?key=` of a peer get: peers always send the key this way, so any key arrives verbatim.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyQuery {
    key: String,
}

pub(super) async fn get_by_query(
    state: State<AppState>,
    headers: HeaderMap,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Response, ApiError> {
    get(state, headers, ApiPath((ks, query.key))).await
}

pub(super) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((ks, key)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    tracing::trace!(from = from(&headers), keyspace = %ks, key = %key, "peer get");
    match state.engine.serve_get(&ks, &key, from(&headers)).await? {
        Some((value, ttl)) => {
            let mut response =
                ([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response();
            if let Some(ttl) = ttl {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(TTL_HEADER), ms.into());
            }
            Ok(response)
        }
        None => Err(ApiError::key_not_found(&ks, &key)),
    }
}

pub(super) async fn get_many(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<KeysRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    tracing::trace!(from = from(&headers), keyspace = %ks, keys = request.keys.len(), "peer get-many");
    let results = state
        .engine
        .serve_get_many(&ks, &request.keys, from(&headers))
        .await?;
    Ok(Json(BatchResponse {
        results: results
            .into_iter()
            .map(|r| KeyOutcome::from_get(r.key, r.result))
            .collect(),
    }))
}

/// The values this node holds for some keys, from memory only (see
/// `PeerTransport::copies`).
pub(super) async fn copies(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<KeysRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let results = state.engine.serve_copies(&ks, &request.keys).await?;
    Ok(Json(BatchResponse {
        results: results
            .into_iter()
            .map(|r| KeyOutcome::from_get(r.key, r.result))
            .collect(),
    }))
}

pub(super) async fn put_many(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<PutManyRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let results = state
        .engine
        .serve_put_many(&ks, request.into_entries(), from(&headers))
        .await?;
    Ok(Json(super::data::writes(results)))
}

pub(super) async fn replicate(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<PutManyRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let results = state
        .engine
        .serve_replicate(&ks, request.into_entries())
        .await?;
    Ok(Json(super::data::writes(results)))
}

pub(super) async fn delete_many(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<KeysRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let results = state
        .engine
        .serve_delete_many(&ks, &request.keys, from(&headers))
        .await?;
    Ok(Json(super::data::writes(results)))
}

pub(super) async fn invalidate(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<KeysRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    state.engine.serve_invalidate(&ks, &request.keys).await?;
    Ok(Json(BatchResponse {
        results: request
            .keys
            .into_iter()
            .map(|k| KeyOutcome::bare(k, Status::Ok))
            .collect(),
    }))
}

pub(super) async fn warm(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<KeysRequest>,
) -> Result<Json<WarmOutcome>, ApiError> {
    state
        .engine
        .config()
        .limits
        .check_batch(request.keys.len())?;
    let outcome = state
        .engine
        .warm_keys(&ks, &request.keys, Ownership::Trust, false)
        .await?;
    Ok(Json(outcome))
}

pub(super) async fn hot(State(state): State<AppState>) -> Json<HotKeysByKeyspace> {
    Json(state.engine.all_hot_keys())
}

pub(super) async fn flush(State(state): State<AppState>) -> StatusCode {
    state.engine.flush();
    StatusCode::NO_CONTENT
}

/// A peer says it is shutting down: it leaves this node's ring now, not after failed probes.
pub(super) async fn leaving(
    State(state): State<AppState>,
    ApiJson(peer): ApiJson<Health>,
) -> StatusCode {
    if let Some(cluster) = state.engine.cluster() {
        cluster.peer_leaving(peer).await;
    }
    StatusCode::NO_CONTENT
}

/// `?to=` of a handoff: the joining node taking its keys over.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HandoffQuery {
    to: String,
}

/// The entries this node caches for keys `to` owns, as newline-delimited JSON, written as
/// the joining node reads them.
pub(super) async fn handoff(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<HandoffQuery>,
) -> Result<Response, ApiError> {
    let entries = state.engine.handoff_entries(&query.to).await?;
    let lines = futures::stream::iter(entries).map(|entry| {
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}

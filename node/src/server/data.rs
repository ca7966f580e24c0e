//! The data API: read-through get, put, delete, and their batch forms.

use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiBody, ApiJson, ApiPath, ApiQuery};
use crate::error::Error;
use crate::units::parse_duration;
use crate::wire::{BatchResponse, KeyOutcome, KeysRequest, NODE_HEADER, PutManyRequest, Status};

pub(super) async fn empty_key() -> ApiError {
    ApiError::from(Error::EmptyKey)
}

/// The key of a `…/keys?key=` request, which carries it in the query string: the form for
/// keys that a URL path cannot carry (`.`, `..`), good for any key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyQuery {
    key: Option<String>,
    ttl: Option<String>,
}

impl KeyQuery {
    /// The key and the TTL of a PUT.
    fn key_and_ttl(self) -> Result<(String, Option<String>), ApiError> {
        match self.key {
            Some(key) => Ok((key, self.ttl)),
            None => Err(ApiError::from(Error::EmptyKey)),
        }
    }

    /// The key of a GET or DELETE, which take no `ttl`.
    fn key_alone(self) -> Result<String, ApiError> {
        if self.ttl.is_some() {
            return Err(ApiError::bad_request("ttl applies to PUT only"));
        }
        self.key_and_ttl().map(|(key, _)| key)
    }
}

pub(super) async fn get_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Response, ApiError> {
    get(state, ApiPath((ks, query.key_alone()?))).await
}

pub(super) async fn put_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
    body: Result<ApiBody, ApiError>,
) -> Result<StatusCode, ApiError> {
    let (key, ttl) = query.key_and_ttl()?;
    put(state, ApiPath((ks, key)), ApiQuery(PutQuery { ttl }), body).await
}

pub(super) async fn delete_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<StatusCode, ApiError> {
    delete(state, ApiPath((ks, query.key_alone()?))).await
}

pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath((ks, key)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    match state.engine.get(&ks, &key).await? {
        Some(value) => Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (HeaderName::from_static(NODE_HEADER), state.node_id.as_str()),
            ],
            value,
        )
            .into_response()),
        None => Err(ApiError::key_not_found(&ks, &key)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutQuery {
    ttl: Option<String>,
}

pub(super) async fn put(
    State(state): State<AppState>,
    ApiPath((ks, key)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<PutQuery>,
    body: Result<ApiBody, ApiError>,
) -> Result<StatusCode, ApiError> {
    let value = match body {
        Ok(ApiBody(value)) => value,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let max = state.engine.config().limits.max_value_bytes;
            return Err(ApiError::from(Error::ValueTooLarge { len: max + 1, max }));
        }
        Err(e) => return Err(e),
    };
    match query.ttl {
        Some(ttl) => {
            let ttl =
                parse_duration(&ttl).map_err(|e| ApiError::bad_request(format!("ttl: {e}")))?;
            state.engine.put_with_ttl(&ks, &key, value, ttl).await?;
        }
        None => state.engine.put(&ks, &key, value).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ApiPath((ks, key)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete(&ks, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn get_many(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<KeysRequest>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    let results = state.engine.get_many(&ks, &request.keys).await?;
    Ok(axum::Json(BatchResponse {
        results: results
            .into_iter()
            .map(|r| KeyOutcome::from_get(r.key, r.result.map(|v| v.map(|v| (v, None)))))
            .collect(),
    }))
}

pub(super) async fn put_many(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<PutManyRequest>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    let results = state.engine.put_many(&ks, request.into_entries()).await?;
    Ok(axum::Json(writes(results)))
}

pub(super) async fn delete_many(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<KeysRequest>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    let results = state.engine.delete_many(&ks, &request.keys).await?;
    Ok(axum::Json(writes(results)))
}

/// The batch response of a put-many or delete-many.
pub(super) fn writes(results: Vec<crate::entry::KeyResult<()>>) -> BatchResponse {
    BatchResponse {
        results: results
            .into_iter()
            .map(|r| match r.result {
                Ok(()) => KeyOutcome::bare(r.key, Status::Ok),
                Err(e) => KeyOutcome::error(r.key, &e),
            })
            .collect(),
    }
}

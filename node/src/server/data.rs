//! The data API: read-through get, put, delete, and their batch forms.

use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiBody, ApiJson, ApiPath, ApiQuery};
use super::openapi::RawValue;
use crate::error::Error;
use crate::units::parse_duration;
use crate::wire::{
    BatchResponse, ErrorBody, KeyOutcome, KeysRequest, NODE_HEADER, PutManyRequest, Status,
};

pub(super) async fn empty_key() -> ApiError {
    ApiError::from(Error::EmptyKey)
}

/// The key of a `…/keys?key=` request, which carries it in the query string: the form for
/// keys that a URL path cannot carry (`.`, `..`), good for any key.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct KeyQuery {
    /// The key (required).
    key: Option<String>,
    /// PUT only: time to live of the value (humantime, e.g. `5m`).
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

/// Reads a key named in the query string, loading it from the data source on a miss.
#[utoipa::path(
    get,
    path = "/v1/keyspaces/{ks}/keys",
    operation_id = "get_value_by_query",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name."), KeyQuery),
    responses(
        (status = 200, description = "The value.", body = RawValue, content_type = "application/octet-stream",
            headers(("x-distcache-node" = String, description = "The node that answered."))),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST`.", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`, or `KEY_NOT_FOUND`: the source has no such key.", body = ErrorBody),
        (status = 429, description = "`DATA_SOURCE_RATE_LIMITED`.", body = ErrorBody),
        (status = 502, description = "`DATA_SOURCE_ERROR`: the data source failed.", body = ErrorBody),
        (status = 503, description = "`DATA_SOURCE_CIRCUIT_OPEN`, `NOT_RUNNING`, `UNAVAILABLE`; `OVERLOADED` when the keyspace has `max_queued_loads` keys waiting for its data source, or the load got no call slot within `read_timeout`.", body = ErrorBody),
        (status = 504, description = "`TIMEOUT`: the fetch, the owner or the request deadline ran out.", body = ErrorBody),
    ),
)]
pub(super) async fn get_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Response, ApiError> {
    get(state, ApiPath((ks, query.key_alone()?))).await
}

/// Stores a value under a key named in the query string.
#[utoipa::path(
    put,
    path = "/v1/keyspaces/{ks}/keys",
    operation_id = "put_value_by_query",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name."), KeyQuery),
    request_body(content = RawValue, content_type = "application/octet-stream", description = "The value: any bytes, up to `max_value_bytes`."),
    responses(
        (status = 204, description = "Stored."),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST` (e.g. a bad `ttl`).", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 503, description = "`NOT_RUNNING`, `UNAVAILABLE`.", body = ErrorBody),
        (status = 504, description = "`TIMEOUT`: the owner or the request deadline ran out.", body = ErrorBody),
        (status = 413, description = "`VALUE_TOO_LARGE`: over `max_value_bytes` or what the keyspace can hold.", body = ErrorBody),
    ),
)]
pub(super) async fn put_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
    body: Result<ApiBody, ApiError>,
) -> Result<StatusCode, ApiError> {
    let (key, ttl) = query.key_and_ttl()?;
    put(state, ApiPath((ks, key)), ApiQuery(PutQuery { ttl }), body).await
}

/// Removes a key named in the query string from every node's caches.
#[utoipa::path(
    delete,
    path = "/v1/keyspaces/{ks}/keys",
    operation_id = "delete_value_by_query",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name."), KeyQuery),
    responses(
        (status = 204, description = "Removed (or was not there)."),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST` (e.g. a bad `ttl`).", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 503, description = "`NOT_RUNNING`, `UNAVAILABLE`.", body = ErrorBody),
        (status = 504, description = "`TIMEOUT`: the owner or the request deadline ran out.", body = ErrorBody),
    ),
)]
pub(super) async fn delete_by_query(
    state: State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<StatusCode, ApiError> {
    delete(state, ApiPath((ks, query.key_alone()?))).await
}

/// Reads a key, loading it from the data source on a miss (through its owner).
#[utoipa::path(
    get,
    path = "/v1/keyspaces/{ks}/keys/{*key}",
    operation_id = "get_value",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name."), ("key" = String, Path, description = "The key, percent-encoded as one path segment (a `/` as `%2F`). Keys a path cannot carry (`.`, `..`) go in the `key` query parameter of `/v1/keyspaces/{ks}/keys` instead.")),
    responses(
        (status = 200, description = "The value.", body = RawValue, content_type = "application/octet-stream",
            headers(("x-distcache-node" = String, description = "The node that answered."))),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST`.", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`, or `KEY_NOT_FOUND`: the source has no such key.", body = ErrorBody),
        (status = 429, description = "`DATA_SOURCE_RATE_LIMITED`.", body = ErrorBody),
        (status = 502, description = "`DATA_SOURCE_ERROR`: the data source failed.", body = ErrorBody),
        (status = 503, description = "`DATA_SOURCE_CIRCUIT_OPEN`, `NOT_RUNNING`, `UNAVAILABLE`; `OVERLOADED` when the keyspace has `max_queued_loads` keys waiting for its data source, or the load got no call slot within `read_timeout`.", body = ErrorBody),
        (status = 504, description = "`TIMEOUT`: the fetch, the owner or the request deadline ran out.", body = ErrorBody),
    ),
)]
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

/// The query string of a PUT.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PutQuery {
    /// Time to live of the value (humantime, e.g. `5m`). Default: the keyspace's `default_ttl`.
    ttl: Option<String>,
}

/// Stores a value (at its owner), replacing any cached one.
#[utoipa::path(
    put,
    path = "/v1/keyspaces/{ks}/keys/{*key}",
    operation_id = "put_value",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name."), ("key" = String, Path, description = "The key, percent-encoded as one path segment (a `/` as `%2F`). Keys a path cannot carry (`.`, `..`) go in the `key` query parameter of `/v1/keyspaces/{ks}/keys` instead."), PutQuery),
    request_body(content = RawValue, content_type = "application/octet-stream", description = "The value: any bytes, up to `max_value_bytes`."),
    responses(
        (status = 204, description = "Stored."),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST` (e.g. a bad `ttl`).", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 503, description = "`NOT_RUNNING`, `UNAVAILABLE`.", body = ErrorBody),
        (status = 504, description = "`TIMEOUT`: the owner or the request deadline ran out.", body = ErrorBody),
        (status = 413, description = "`VALUE_TOO_LARGE`: over `max_value_bytes` or what the keyspace can hold.", body = ErrorBody),
    ),
)]
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

/// Removes a key from every node's caches.
#[utoipa::path(
    delete,
    path = "/v1/keyspaces/{ks}/keys/{*key}",
    operation_id = "delete_value",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name."), ("key" = String, Path, description = "The key, percent-encoded as one path segment (a `/` as `%2F`). Keys a path cannot carry (`.`, `..`) go in the `key` query parameter of `/v1/keyspaces/{ks}/keys` instead.")),
    responses(
        (status = 204, description = "Removed (or was not there)."),
        (status = 400, description = "`EMPTY_KEY`, `KEY_TOO_LARGE`, `INVALID_REQUEST` (e.g. a bad `ttl`).", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 503, description = "`NOT_RUNNING`, `UNAVAILABLE`.", body = ErrorBody),
        (status = 504, description = "`TIMEOUT`: the owner or the request deadline ran out.", body = ErrorBody),
    ),
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    ApiPath((ks, key)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete(&ks, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads several keys; each key's result on its own (a failed key does not fail the batch).
#[utoipa::path(
    post,
    path = "/v1/keyspaces/{ks}/get-many",
    operation_id = "get_many",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name.")),
    request_body = KeysRequest,
    responses(
        (status = 200, description = "One result per key, in request order; values base64.", body = BatchResponse),
        (status = 400, description = "`INVALID_REQUEST`: the body is not the request JSON.", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 413, description = "`BATCH_TOO_LARGE` (over `max_batch_keys`), or `INVALID_REQUEST`: the body is over `max_request_bytes`.", body = ErrorBody),
        (status = 503, description = "`NOT_RUNNING`, `UNAVAILABLE`.", body = ErrorBody),
    ),
)]
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

/// Stores several values; each key's result on its own.
#[utoipa::path(
    post,
    path = "/v1/keyspaces/{ks}/put-many",
    operation_id = "put_many",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name.")),
    request_body = PutManyRequest,
    responses(
        (status = 200, description = "One result per key, in request order.", body = BatchResponse),
        (status = 400, description = "`INVALID_REQUEST`: the body is not the request JSON.", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 413, description = "`BATCH_TOO_LARGE` (over `max_batch_keys`), or `INVALID_REQUEST`: the body is over `max_request_bytes`.", body = ErrorBody),
        (status = 503, description = "`NOT_RUNNING`, `UNAVAILABLE`.", body = ErrorBody),
    ),
)]
pub(super) async fn put_many(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiJson(request): ApiJson<PutManyRequest>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    let results = state.engine.put_many(&ks, request.into_entries()).await?;
    Ok(axum::Json(writes(results)))
}

/// Removes several keys; each key's result on its own.
#[utoipa::path(
    post,
    path = "/v1/keyspaces/{ks}/delete-many",
    operation_id = "delete_many",
    tag = "data",
    params(("ks" = String, Path, description = "Keyspace name.")),
    request_body = KeysRequest,
    responses(
        (status = 200, description = "One result per key, in request order.", body = BatchResponse),
        (status = 400, description = "`INVALID_REQUEST`: the body is not the request JSON.", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 413, description = "`BATCH_TOO_LARGE` (over `max_batch_keys`), or `INVALID_REQUEST`: the body is over `max_request_bytes`.", body = ErrorBody),
        (status = 503, description = "`NOT_RUNNING`, `UNAVAILABLE`.", body = ErrorBody),
    ),
)]
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

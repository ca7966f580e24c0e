//! The keyspace catalog over HTTP: list, get, create, create-or-replace, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Access;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, IdempotencyKey};
use crate::catalog::{CatalogChange, WriteOptions};
use crate::error::{Error, Problems};
use crate::spec::KeySpaceSpec;
use crate::wire::{ChangeResponse, ErrorBody, KeySpaceList};

/// The compare-and-set condition of a change.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct CasQuery {
    /// Apply the change only if the catalog is at this revision (else `REVISION_MISMATCH`).
    expected_revision: Option<u64>,
}

/// The keyspaces of a bulk delete.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct NamesQuery {
    /// Comma-separated keyspace names, e.g. `a,b`.
    names: String,
    /// Apply the change only if the catalog is at this revision (else `REVISION_MISMATCH`).
    expected_revision: Option<u64>,
}

/// Every keyspace in this node's catalog, with the revision it applied; for a token limited
/// to some keyspaces, only those.
#[utoipa::path(
    get,
    path = "/v1/keyspaces",
    operation_id = "list_keyspaces",
    tag = "catalog",
    responses((status = 200, description = "The catalog.", body = KeySpaceList)),
)]
pub(super) async fn list(State(state): State<AppState>, access: Access) -> Json<KeySpaceList> {
    // The revision first: a change applied in between then shows as the newer keyspaces under
    // the older revision, never as older keyspaces under a revision that includes the change
    // (the engine publishes the keyspaces before the revision).
    let revision = state.engine.revision();
    let mut keyspaces = state.engine.keyspaces();
    keyspaces.retain(|spec| access.allows(&spec.name));
    Json(KeySpaceList {
        revision,
        keyspaces,
    })
}

/// One keyspace's spec.
#[utoipa::path(
    get,
    path = "/v1/keyspaces/{ks}",
    operation_id = "get_keyspace",
    tag = "catalog",
    params(("ks" = String, Path, description = "Keyspace name.")),
    responses(
        (status = 200, description = "The spec as stored.", body = KeySpaceSpec),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
    ),
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
) -> Result<Json<KeySpaceSpec>, ApiError> {
    state
        .engine
        .keyspace(&ks)
        .map(Json)
        .ok_or_else(|| ApiError::from(Error::KeySpaceNotFound(ks)))
}

/// Reads a spec from a JSON body, taking the name from the path when the body has none.
fn spec_from(body: serde_json::Value, path_name: Option<&str>) -> Result<KeySpaceSpec, ApiError> {
    let mut body = body;
    let object = body
        .as_object_mut()
        .ok_or_else(|| invalid_spec("spec", "must be a JSON object"))?;
    if let Some(name) = path_name {
        match object.get("name") {
            None => {
                object.insert("name".into(), serde_json::Value::String(name.to_owned()));
            }
            Some(serde_json::Value::String(n)) if n == name => {}
            Some(other) => {
                return Err(invalid_spec(
                    "name",
                    format!("{other} differs from `{name}` in the path"),
                ));
            }
        }
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "spec".to_owned() } else { path };
        invalid_spec(&field, e.into_inner().to_string())
    })
}

fn invalid_spec(field: &str, message: impl Into<String>) -> ApiError {
    let mut p = Problems::new();
    p.push(field, message);
    ApiError::from(Error::InvalidSpec(p))
}

/// Creates a keyspace; fails if the name is taken.
#[utoipa::path(
    post,
    path = "/v1/keyspaces",
    operation_id = "create_keyspace",
    tag = "catalog",
    params(("Idempotency-Key" = Option<String>, Header, description = "Commits the change once: a retry with the same key (1 to 128 visible ASCII characters) answers what the first attempt did; the key reused for another change is `INVALID_REQUEST`.")),
    request_body = KeySpaceSpec,
    responses(
        (status = 201, description = "Committed; the answer names the revision.", body = ChangeResponse),
        (status = 400, description = "`INVALID_SPEC` (every bad field listed in `problems`), `INVALID_REQUEST`.", body = ErrorBody),
        (status = 409, description = "`KEYSPACE_EXISTS`.", body = ErrorBody),
        (status = 413, description = "`INVALID_REQUEST`: the body is over `max_request_bytes`.", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the control plane cannot commit (no leader, no quorum).", body = ErrorBody),
    ),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    access: Access,
    IdempotencyKey(request_id): IdempotencyKey,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let spec = spec_from(body, None)?;
    access.check(&spec.name)?;
    let options = WriteOptions {
        expected_revision: None,
        request_id,
    };
    let revision = state
        .engine
        .create_keyspace_with(spec.clone(), options)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ChangeResponse {
            revision,
            keyspace: Some(spec),
        }),
    ))
}

/// Creates or replaces a keyspace. The body's `name` may be left out; if present it must
/// match the path.
#[utoipa::path(
    put,
    path = "/v1/keyspaces/{ks}",
    operation_id = "put_keyspace",
    tag = "catalog",
    params(("ks" = String, Path, description = "Keyspace name."), CasQuery, ("Idempotency-Key" = Option<String>, Header, description = "Commits the change once: a retry with the same key (1 to 128 visible ASCII characters) answers what the first attempt did; the key reused for another change is `INVALID_REQUEST`.")),
    request_body = KeySpaceSpec,
    responses(
        (status = 200, description = "Committed; the answer names the revision.", body = ChangeResponse),
        (status = 400, description = "`INVALID_SPEC` (every bad field listed in `problems`), `INVALID_REQUEST`.", body = ErrorBody),
        (status = 409, description = "`REVISION_MISMATCH`: `expected_revision` is not the catalog's.", body = ErrorBody),
        (status = 413, description = "`INVALID_REQUEST`: the body is over `max_request_bytes`.", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the control plane cannot commit (no leader, no quorum).", body = ErrorBody),
    ),
)]
pub(super) async fn put(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<CasQuery>,
    IdempotencyKey(request_id): IdempotencyKey,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<ChangeResponse>, ApiError> {
    let spec = spec_from(body, Some(&ks))?;
    state.engine.check_spec(&spec).await?;
    let options = WriteOptions {
        expected_revision: query.expected_revision,
        request_id,
    };
    let revision = state
        .engine
        .change_catalog(CatalogChange::Put { spec: spec.clone() }, options)
        .await?;
    Ok(Json(ChangeResponse {
        revision,
        keyspace: Some(spec),
    }))
}

/// Deletes a keyspace and everything cached in it.
#[utoipa::path(
    delete,
    path = "/v1/keyspaces/{ks}",
    operation_id = "delete_keyspace",
    tag = "catalog",
    params(("ks" = String, Path, description = "Keyspace name."), CasQuery, ("Idempotency-Key" = Option<String>, Header, description = "Commits the change once: a retry with the same key (1 to 128 visible ASCII characters) answers what the first attempt did; the key reused for another change is `INVALID_REQUEST`.")),
    responses(
        (status = 200, description = "Committed; the answer names the revision.", body = ChangeResponse),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 409, description = "`REVISION_MISMATCH`: `expected_revision` is not the catalog's.", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the control plane cannot commit (no leader, no quorum).", body = ErrorBody),
    ),
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<CasQuery>,
    IdempotencyKey(request_id): IdempotencyKey,
) -> Result<Json<ChangeResponse>, ApiError> {
    let options = WriteOptions {
        expected_revision: query.expected_revision,
        request_id,
    };
    let revision = state
        .engine
        .change_catalog(CatalogChange::Delete { names: vec![ks] }, options)
        .await?;
    Ok(Json(ChangeResponse {
        revision,
        keyspace: None,
    }))
}

/// Deletes several keyspaces in one change: all of them or none.
#[utoipa::path(
    delete,
    path = "/v1/keyspaces",
    operation_id = "delete_keyspaces",
    tag = "catalog",
    params(NamesQuery, ("Idempotency-Key" = Option<String>, Header, description = "Commits the change once: a retry with the same key (1 to 128 visible ASCII characters) answers what the first attempt did; the key reused for another change is `INVALID_REQUEST`.")),
    responses(
        (status = 200, description = "Committed; the answer names the revision.", body = ChangeResponse),
        (status = 400, description = "`INVALID_REQUEST`: no names, or a bad query string.", body = ErrorBody),
        (status = 404, description = "`KEYSPACE_NOT_FOUND`.", body = ErrorBody),
        (status = 409, description = "`REVISION_MISMATCH`: `expected_revision` is not the catalog's.", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the control plane cannot commit (no leader, no quorum).", body = ErrorBody),
    ),
)]
pub(super) async fn delete_many(
    State(state): State<AppState>,
    access: Access,
    ApiQuery(query): ApiQuery<NamesQuery>,
    IdempotencyKey(request_id): IdempotencyKey,
) -> Result<Json<ChangeResponse>, ApiError> {
    let names: Vec<String> = query
        .names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("names: list at least one keyspace"));
    }
    for name in &names {
        access.check(name)?;
    }
    let revision = state
        .engine
        .change_catalog(
            CatalogChange::Delete { names },
            WriteOptions {
                expected_revision: query.expected_revision,
                request_id,
            },
        )
        .await?;
    Ok(Json(ChangeResponse {
        revision,
        keyspace: None,
    }))
}

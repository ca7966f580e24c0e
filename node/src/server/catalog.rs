//! The keyspace catalog over HTTP: list, get, create, create-or-replace, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::catalog::CatalogChange;
use crate::error::{Error, Problems};
use crate::spec::KeySpaceSpec;
use crate::wire::{ChangeResponse, KeySpaceList};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CasQuery {
    expected_revision: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamesQuery {
    names: String,
    expected_revision: Option<u64>,
}

pub(super) async fn list(State(state): State<AppState>) -> Json<KeySpaceList> {
    Json(KeySpaceList {
        revision: state.engine.revision(),
        keyspaces: state.engine.keyspaces(),
    })
}

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

pub(super) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let spec = spec_from(body, None)?;
    let revision = state.engine.create_keyspace(spec.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(ChangeResponse {
            revision,
            keyspace: Some(spec),
        }),
    ))
}

pub(super) async fn put(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<CasQuery>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<ChangeResponse>, ApiError> {
    let spec = spec_from(body, Some(&ks))?;
    state.engine.check_spec(&spec).await?;
    let revision = state
        .engine
        .change_catalog(
            CatalogChange::Put { spec: spec.clone() },
            query.expected_revision,
        )
        .await?;
    Ok(Json(ChangeResponse {
        revision,
        keyspace: Some(spec),
    }))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ApiPath(ks): ApiPath<String>,
    ApiQuery(query): ApiQuery<CasQuery>,
) -> Result<Json<ChangeResponse>, ApiError> {
    let revision = state
        .engine
        .change_catalog(
            CatalogChange::Delete { names: vec![ks] },
            query.expected_revision,
        )
        .await?;
    Ok(Json(ChangeResponse {
        revision,
        keyspace: None,
    }))
}

pub(super) async fn delete_many(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NamesQuery>,
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
    let revision = state
        .engine
        .change_catalog(CatalogChange::Delete { names }, query.expected_revision)
        .await?;
    Ok(Json(ChangeResponse {
        revision,
        keyspace: None,
    }))
}

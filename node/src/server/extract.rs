//! Extractors whose rejections are JSON errors naming the problem, like every other answer.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error::Error;

/// Path parameters.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| {
                ApiError::bad_request(format!("bad path: {}", e.body_text()))
            })
    }
}

/// Query parameters.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("bad query string: {}", e.body_text()))
            })
    }
}

/// A JSON body (within the route's body limit). Any content type is accepted: `curl -d` sends
/// a form type by default, and the body says what it is.
pub(crate) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ApiBody(body) = ApiBody::from_request(req, state).await?;
        let mut json = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut json)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    ApiError::bad_request(format!("bad JSON body: {}", e.inner()))
                } else {
                    ApiError::bad_request(format!("bad JSON body at `{path}`: {}", e.inner()))
                }
            })
    }
}

/// A raw body (within the route's body limit).
pub(crate) struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let length = content_length(&req);
        Bytes::from_request(req, state)
            .await
            .map(ApiBody)
            .map_err(|e: BytesRejection| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => too_large(length),
                _ => ApiError::bad_request(format!("cannot read the body: {}", e.body_text())),
            })
    }
}

fn content_length(req: &Request) -> Option<usize> {
    req.headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(length: Option<usize>) -> ApiError {
    // The route's limit is not known here; the message says what was sent.
    ApiError::from(Error::InvalidRequest(match length {
        Some(len) => format!("request body of {len} bytes is over this route's limit"),
        None => "request body is over this route's limit".to_owned(),
    }))
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// The `Idempotency-Key` header of a catalog change: the change commits once per key, and a
/// retry with the same key answers what the first attempt did.
pub(crate) struct IdempotencyKey(pub Option<String>);

/// The header's name.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        let key = value.to_str().map_err(|_| {
            ApiError::bad_request("Idempotency-Key: only visible ASCII characters are allowed")
        })?;
        distcache_control::check_request_id(key)
            .map_err(|problem| ApiError::bad_request(format!("Idempotency-Key: {problem}")))?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}
